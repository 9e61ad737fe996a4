namespace Microhv.Guests.PvTest;

/// <summary>
/// Grant-table operations against our own grants (xen/include/public/grant_table.h): the suite runs
/// as the initial domain, id 0, on Microhv and on Xen, and a domain may map and copy what it grants
/// to itself. Batches of map_grant_ref / unmap_grant_ref as Linux's backends issue them, device
/// mappings, mappings by PTE address as gntdev makes them, unmap_and_replace, and copies as netback
/// makes them (GNTTABOP_copy from a grant into our own frame and back), and swap_grant_ref.
/// </summary>
internal static unsafe class GrantChecks
{
    private const ushort Self = 0;                 // our domain id (the initial domain)
    private const int TableSlot = 10;              // window page where our grant table's first frame is mapped
    private const int MapSize = 32, UnmapSize = 24, CopySize = 40;

    public static void Run()
    {
        Checks.Run("grant_map_unmap_batch", &MapUnmapBatch);
        Checks.Run("grant_device_map", &DeviceMap);
        Checks.Run("grant_map_by_pte_address", &MapByPteAddress);
        Checks.Run("grant_unmap_and_replace", &UnmapAndReplace);
        Checks.Run("grant_copy_batch", &CopyBatch);
        Checks.Run("grant_swap_grant_ref", &SwapGrantRef);
    }

    private static ulong* s_table;

    /// <summary>Our grant table's first frame, mapped writable in the window (setup_table once).</summary>
    internal static ulong* Table()
    {
        if (s_table != null) return s_table;
        if (!SetupChecks.NeedWindow()) return null;
        byte* st = stackalloc byte[24];
        ulong* frames = stackalloc ulong[1];
        *(ushort*)st = Xen.DOMID_SELF; *(uint*)(st + 4) = 1; *(short*)(st + 8) = -99; *(ulong*)(st + 16) = (ulong)frames;
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_setup_table, (ulong)st, 1);
        if (!Checks.Expect("setup_table", rc, 0) || !Checks.Expect("setup_table status", *(short*)(st + 8), 0)) return null;
        if (!Checks.Expect("map the grant table", Guest.MapInWindow(TableSlot, frames[0], true), 0)) return null;
        s_table = (ulong*)Guest.WindowPage(TableSlot);
        return s_table;
    }

    /// <summary>grant_entry_v1 { flags, domid, frame } for ourselves, published flags last.</summary>
    internal static void Grant(uint gref, ushort flags, void* page)
    {
        ushort* e = (ushort*)(s_table + gref);
        *(uint*)(e + 2) = (uint)Guest.MfnOf(page);
        e[1] = Self;
        e[0] = flags;
    }

    internal static ushort Flags(uint gref) => *(ushort*)(s_table + gref);

    private static void PutMap(byte* op, ulong hostAddr, uint flags, uint gref, ushort dom)
    {
        for (int i = 0; i < MapSize; i++) op[i] = 0xEE;
        *(ulong*)op = hostAddr; *(uint*)(op + 8) = flags; *(uint*)(op + 12) = gref; *(ushort*)(op + 16) = dom;
    }

    private static short Status(byte* op) => *(short*)(op + 18);
    private static uint Handle(byte* op) => *(uint*)(op + 20);
    private static ulong Bus(byte* op) => *(ulong*)(op + 24);

    private static void PutUnmap(byte* op, ulong hostAddr, ulong second, uint handle)
    {
        *(ulong*)op = hostAddr; *(ulong*)(op + 8) = second; *(uint*)(op + 16) = handle; *(short*)(op + 20) = -99;
    }

    private static short Unmap(ulong cmd, ulong hostAddr, ulong second, uint handle)
    {
        byte* op = stackalloc byte[UnmapSize];
        PutUnmap(op, hostAddr, second, handle);
        long rc = Hypercall.Call3(Xen.grant_table_op, cmd, (ulong)op, 1);
        if (!Checks.Expect("unmap rc", rc, 0)) return -99;
        return *(short*)(op + 20);
    }

    private static void MapUnmapBatch()
    {
        if (Table() == null) return;
        ulong* rw = (ulong*)Guest.Page(8), ro = (ulong*)Guest.Page(9);
        rw[0] = 0x5752746E61726720UL; ro[0] = 0x4F52746E61726720UL;
        Grant(20, Xen.GTF_permit_access, rw);
        Grant(21, Xen.GTF_permit_access | Xen.GTF_readonly, ro);

        byte* ops = stackalloc byte[5 * MapSize];
        PutMap(ops, Guest.WindowPage(11), Xen.GNTMAP_host_map, 20, Self);
        PutMap(ops + MapSize, Guest.WindowPage(12), Xen.GNTMAP_host_map | Xen.GNTMAP_readonly, 21, Self);
        PutMap(ops + 2 * MapSize, Guest.WindowPage(13), Xen.GNTMAP_host_map, 21, Self);          // writable map of a r/o grant
        PutMap(ops + 3 * MapSize, Guest.WindowPage(13), Xen.GNTMAP_host_map, 20, Xen.DOMID_SELF); // map takes a real id
        PutMap(ops + 4 * MapSize, Guest.WindowPage(13), Xen.GNTMAP_host_map, 0xFFFFF, Self);     // past any table
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_map_grant_ref, (ulong)ops, 5);
        if (!Checks.Expect("map batch rc", rc, 0)) return;
        Checks.Expect("op 0 status", Status(ops), Xen.GNTST_okay);
        Checks.Expect("op 1 status", Status(ops + MapSize), Xen.GNTST_okay);
        Checks.Expect("op 2 status (r/o grant)", Status(ops + 2 * MapSize), Xen.GNTST_general_error);
        Checks.Expect("op 3 status (DOMID_SELF)", Status(ops + 3 * MapSize), Xen.GNTST_bad_domain);
        Checks.Expect("op 4 status (bad ref)", Status(ops + 4 * MapSize), Xen.GNTST_bad_gntref);
        Checks.ExpectHex("op 0 dev_bus_addr", Bus(ops), Guest.MfnOf(rw) << 12);
        Checks.ExpectHex("op 4 handle untouched", Handle(ops + 4 * MapSize), 0xEEEEEEEE);
        if (Checks.IsFailing) return;
        Checks.ExpectHex("read through the writable map", Cpu.Read64(Guest.WindowPage(11)), rw[0]);
        Checks.ExpectHex("read through the read-only map", Cpu.Read64(Guest.WindowPage(12)), ro[0]);
        Cpu.Write64(Guest.WindowPage(11) + 8, 0x1234);
        Checks.ExpectHex("write through the map", rw[1], 0x1234);
        Checks.Expect("ref 20 flags while mapped", Flags(20), Xen.GTF_permit_access | Xen.GTF_reading | Xen.GTF_writing);
        Checks.Expect("ref 21 flags while mapped", Flags(21), Xen.GTF_permit_access | Xen.GTF_readonly | Xen.GTF_reading);

        byte* un = stackalloc byte[2 * UnmapSize];
        PutUnmap(un, Guest.WindowPage(11), 0, Handle(ops));
        PutUnmap(un + UnmapSize, Guest.WindowPage(12), 0, Handle(ops + MapSize));
        rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_unmap_grant_ref, (ulong)un, 2);
        Checks.Expect("unmap batch rc", rc, 0);
        Checks.Expect("unmap 0 status", *(short*)(un + 20), Xen.GNTST_okay);
        Checks.Expect("unmap 1 status", *(short*)(un + UnmapSize + 20), Xen.GNTST_okay);
        Checks.Expect("ref 20 flags after unmap", Flags(20), Xen.GTF_permit_access);
        Checks.Expect("ref 21 flags after unmap", Flags(21), Xen.GTF_permit_access | Xen.GTF_readonly);
        Checks.ExpectHex("window PTE cleared", Guest.WindowL1[11], 0);
        Checks.Expect("unmap of a freed handle", Unmap(Xen.GNTTABOP_unmap_grant_ref, Guest.WindowPage(11), 0, Handle(ops)), Xen.GNTST_bad_handle);
        Grant(20, 0, rw);
        Grant(21, 0, ro);
    }

    private static void DeviceMap()
    {
        if (Table() == null) return;
        byte* page = Guest.Page(10);
        Grant(22, Xen.GTF_permit_access, page);
        byte* op = stackalloc byte[MapSize];
        PutMap(op, 0, Xen.GNTMAP_device_map, 22, Self);
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_map_grant_ref, (ulong)op, 1);
        if (!Checks.Expect("map rc", rc, 0) || !Checks.Expect("device_map status", Status(op), Xen.GNTST_okay)) return;
        ulong bus = Bus(op);
        uint h = Handle(op);
        Checks.ExpectHex("dev_bus_addr", bus, Guest.MfnOf(page) << 12);
        Checks.Expect("flags while mapped", Flags(22), Xen.GTF_permit_access | Xen.GTF_reading | Xen.GTF_writing);
        Checks.Expect("unmap at a wrong bus address", Unmap(Xen.GNTTABOP_unmap_grant_ref, 0, bus + 4096, h), Xen.GNTST_bad_dev_addr);
        Checks.Expect("unmap of nothing", Unmap(Xen.GNTTABOP_unmap_grant_ref, 0, 0, h), Xen.GNTST_okay);
        Checks.Expect("flags still in use", Flags(22), Xen.GTF_permit_access | Xen.GTF_reading | Xen.GTF_writing);
        Checks.Expect("unmap at the bus address", Unmap(Xen.GNTTABOP_unmap_grant_ref, 0, bus, h), Xen.GNTST_okay);
        Checks.Expect("flags after unmap", Flags(22), Xen.GTF_permit_access);
        Checks.Expect("handle freed", Unmap(Xen.GNTTABOP_unmap_grant_ref, 0, bus, h), Xen.GNTST_bad_handle);
        Grant(22, 0, page);
    }

    private static void MapByPteAddress()
    {
        if (Table() == null) return;
        ulong* page = (ulong*)Guest.Page(11);
        page[0] = 0x657470202E746E67UL;
        Grant(23, Xen.GTF_permit_access, page);
        ulong pteMa = (Guest.MfnOf(Guest.WindowL1) << 12) + 14 * 8;
        byte* op = stackalloc byte[MapSize];
        PutMap(op, pteMa, Xen.GNTMAP_host_map | Xen.GNTMAP_application_map | Xen.GNTMAP_contains_pte, 23, Self);
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_map_grant_ref, (ulong)op, 1);
        if (!Checks.Expect("map rc", rc, 0) || !Checks.Expect("map status", Status(op), Xen.GNTST_okay)) return;
        Checks.ExpectHex("PTE frame", (Guest.WindowL1[14] & Xen.PTE_MFN_MASK) >> 12, Guest.MfnOf(page));
        Checks.ExpectHex("read through it", Cpu.Read64(Guest.WindowPage(14)), page[0]);
        Checks.Expect("unmap by PTE address", Unmap(Xen.GNTTABOP_unmap_grant_ref, pteMa, 0, Handle(op)), Xen.GNTST_okay);
        Checks.ExpectHex("PTE cleared", Guest.WindowL1[14], 0);
        Checks.Expect("flags after unmap", Flags(23), Xen.GTF_permit_access);
        Grant(23, 0, page);
    }

    private static void UnmapAndReplace()
    {
        if (Table() == null) return;
        ulong* granted = (ulong*)Guest.Page(12), other = (ulong*)Guest.Page(13);
        granted[0] = 0x6465746E61726720UL; other[0] = 0x726568746F202020UL;
        Grant(24, Xen.GTF_permit_access, granted);
        byte* op = stackalloc byte[MapSize];
        PutMap(op, Guest.WindowPage(15), Xen.GNTMAP_host_map, 24, Self);
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_map_grant_ref, (ulong)op, 1);
        if (!Checks.Expect("map rc", rc, 0) || !Checks.Expect("map status", Status(op), Xen.GNTST_okay)) return;
        if (!Checks.Expect("map the other page", Guest.MapInWindow(16, Guest.MfnOf(other), true), 0)) return;
        Checks.Expect("unmap_and_replace", Unmap(Xen.GNTTABOP_unmap_and_replace, Guest.WindowPage(15), Guest.WindowPage(16), Handle(op)), Xen.GNTST_okay);
        Checks.ExpectHex("new_addr's PTE cleared", Guest.WindowL1[16], 0);
        Checks.ExpectHex("host_addr now maps the other page", Cpu.Read64(Guest.WindowPage(15)), other[0]);
        Checks.Expect("flags after unmap", Flags(24), Xen.GTF_permit_access);
        Checks.Expect("handle freed", Unmap(Xen.GNTTABOP_unmap_and_replace, Guest.WindowPage(15), 0, Handle(op)), Xen.GNTST_bad_handle);
        Guest.UnmapInWindow(15);
        Grant(24, 0, granted);
    }

    /// <summary>struct gnttab_copy { source { u; domid; offset }, dest { ... }, len, flags, status }, status junk.</summary>
    private static void PutCopy(byte* op, ulong srcU, ushort srcDom, ushort srcOff, ulong dstU, ushort dstDom, ushort dstOff, ushort len, ushort flags)
    {
        for (int i = 0; i < CopySize; i++) op[i] = 0xEE;
        *(ulong*)op = srcU; *(ushort*)(op + 8) = srcDom; *(ushort*)(op + 10) = srcOff;
        *(ulong*)(op + 16) = dstU; *(ushort*)(op + 24) = dstDom; *(ushort*)(op + 26) = dstOff;
        *(ushort*)(op + 32) = len; *(ushort*)(op + 34) = flags;
    }

    private static short CopyStatus(byte* ops, int i) => *(short*)(ops + i * CopySize + 36);

    private static bool SameBytes(byte* a, byte* b, int len)
    {
        for (int i = 0; i < len; i++) if (a[i] != b[i]) return false;
        return true;
    }

    /// <summary>netback's two copies against our own grants (TX: grant to our frame; RX: our frame to the
    /// grant, both through DOMID_SELF) and refusals, in one batch, each with its own status.</summary>
    private static void CopyBatch()
    {
        if (Table() == null) return;
        byte* src = Guest.Page(14), dst = Guest.Page(15);
        for (int i = 0; i < 4096; i++) { src[i] = (byte)(i * 13 + 7); dst[i] = 0; }
        Grant(25, Xen.GTF_permit_access | Xen.GTF_readonly, src);
        Grant(26, Xen.GTF_permit_access, dst);
        Grant(27, 0, src);
        ulong srcMfn = Guest.MfnOf(src), dstMfn = Guest.MfnOf(dst), l1Mfn = Guest.MfnOf(Guest.WindowL1);

        const int n = 10;
        byte* ops = stackalloc byte[n * CopySize];
        PutCopy(ops, 25, Self, 16, dstMfn, Xen.DOMID_SELF, 100, 128, Xen.GNTCOPY_source_gref);                    // TX
        PutCopy(ops + CopySize, srcMfn, Xen.DOMID_SELF, 300, 26, Xen.DOMID_SELF, 2000, 64, Xen.GNTCOPY_dest_gref); // RX
        PutCopy(ops + 2 * CopySize, srcMfn, Xen.DOMID_SELF, 0, 25, Self, 0, 8, Xen.GNTCOPY_dest_gref);              // r/o grant
        PutCopy(ops + 3 * CopySize, srcMfn, Xen.DOMID_SELF, 4000, dstMfn, Xen.DOMID_SELF, 0, 200, 0);               // past the page
        PutCopy(ops + 4 * CopySize, srcMfn, Self, 0, dstMfn, Xen.DOMID_SELF, 0, 8, 0);                              // frame without DOMID_SELF
        PutCopy(ops + 5 * CopySize, 0xFFFFF, Self, 0, dstMfn, Xen.DOMID_SELF, 0, 8, Xen.GNTCOPY_source_gref);       // past any table
        PutCopy(ops + 6 * CopySize, srcMfn, Xen.DOMID_SELF, 0, l1Mfn, Xen.DOMID_SELF, 4000, 8, 0);                  // into a page table
        PutCopy(ops + 7 * CopySize, 25, 77, 0, dstMfn, Xen.DOMID_SELF, 0, 8, Xen.GNTCOPY_source_gref);              // no such domain
        PutCopy(ops + 8 * CopySize, 0xFFFFFFFFFUL, Xen.DOMID_SELF, 0, dstMfn, Xen.DOMID_SELF, 0, 8, 0);             // no such frame
        PutCopy(ops + 9 * CopySize, 27, Self, 0, dstMfn, Xen.DOMID_SELF, 0, 8, Xen.GNTCOPY_source_gref);            // invalid grant
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_copy, (ulong)ops, n);
        if (!Checks.Expect("copy batch rc", rc, 0)) return;
        Checks.Expect("TX status", CopyStatus(ops, 0), Xen.GNTST_okay);
        Checks.Expect("RX status", CopyStatus(ops, 1), Xen.GNTST_okay);
        Checks.Expect("into a r/o grant", CopyStatus(ops, 2), Xen.GNTST_general_error);
        Checks.Expect("past the page", CopyStatus(ops, 3), Xen.GNTST_bad_copy_arg);
        Checks.Expect("frame named without DOMID_SELF", CopyStatus(ops, 4), Xen.GNTST_permission_denied);
        Checks.Expect("bad ref", CopyStatus(ops, 5), Xen.GNTST_bad_gntref);
        Checks.Expect("into our L1", CopyStatus(ops, 6), Xen.GNTST_general_error);
        Checks.Expect("no such domain", CopyStatus(ops, 7), Xen.GNTST_bad_domain);
        Checks.Expect("no such frame", CopyStatus(ops, 8), Xen.GNTST_bad_page);
        Checks.Expect("invalid grant", CopyStatus(ops, 9), Xen.GNTST_general_error);
        Checks.ExpectHex("op 9 padding untouched", *(uint*)(ops + 9 * CopySize + 28) | (ulong)*(ushort*)(ops + 9 * CopySize + 38) << 32, 0xEEEE_EEEEEEEEUL);
        Checks.Expect("TX bytes", SameBytes(dst + 100, src + 16, 128) ? 1 : 0, 1);
        Checks.Expect("RX bytes", SameBytes(dst + 2000, src + 300, 64) ? 1 : 0, 1);
        Checks.Expect("nothing around them", dst[99] | dst[228] | dst[1999] | dst[2064] | dst[0], 0);
        Checks.ExpectHex("L1 entry untouched", Guest.WindowL1[500], 0);
        Checks.Expect("ref 25 flags after", Flags(25), Xen.GTF_permit_access | Xen.GTF_readonly);
        Checks.Expect("ref 26 flags after", Flags(26), Xen.GTF_permit_access);
        Grant(25, 0, src);
        Grant(26, 0, dst);
    }

    /// <summary>struct gnttab_swap_grant_ref { ref_a; ref_b; status }: the status, or the call's error.</summary>
    internal static long Swap(uint a, uint b)
    {
        uint* op = stackalloc uint[3];
        op[0] = a; op[1] = b; op[2] = 0x7777_EEEE;
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_swap_grant_ref, (ulong)op, 1);
        if (rc != 0) return rc;
        if (op[2] >> 16 != 0x7777) return Checks.Fail("swap wrote past its status") ? 0 : -99;
        return (short)(ushort)op[2];
    }

    private static void SwapGrantRef()
    {
        if (Table() == null) return;
        byte* a = Guest.Page(16), b = Guest.Page(17);
        Grant(28, Xen.GTF_permit_access, a);
        Grant(29, Xen.GTF_permit_access | Xen.GTF_readonly, b);
        ulong e28 = s_table[28], e29 = s_table[29];
        Checks.Expect("swap 28 and 29", Swap(28, 29), Xen.GNTST_okay);
        Checks.ExpectHex("entry 28 now", s_table[28], e29);
        Checks.ExpectHex("entry 29 now", s_table[29], e28);
        Checks.Expect("swap with itself", Swap(28, 28), Xen.GNTST_okay);
        Checks.ExpectHex("entry 28 unchanged", s_table[28], e29);
        Checks.Expect("swap past the table", Swap(28, 0xFFFFF), Xen.GNTST_bad_gntref);
        byte* op = stackalloc byte[MapSize];
        PutMap(op, Guest.WindowPage(11), Xen.GNTMAP_host_map, 29, Self);
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_map_grant_ref, (ulong)op, 1);
        if (!Checks.Expect("map rc", rc, 0) || !Checks.Expect("map ref 29", Status(op), Xen.GNTST_okay)) return;
        Checks.Expect("swap of a mapped grant", Swap(28, 29), Xen.GNTST_eagain);
        Checks.Expect("unmap", Unmap(Xen.GNTTABOP_unmap_grant_ref, Guest.WindowPage(11), 0, Handle(op)), Xen.GNTST_okay);
        Grant(28, 0, a);
        Grant(29, 0, b);
    }
}
