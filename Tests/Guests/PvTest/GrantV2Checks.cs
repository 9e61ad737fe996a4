namespace Microhv.Guests.PvTest;

/// <summary>
/// Grant-table version 2 against our own grants (xen/include/public/grant_table.h: set_version,
/// get_status_frames, grant_entry_v2, grant_status_t): the switch, the status frame mapped read-only
/// where GTF_reading/GTF_writing now appear, full-page, sub-page and transitive entries through map and
/// copy, the refusals of a switch back while grants or the status frame are in use, and the reserved
/// entries kept across it. Runs after GrantChecks (whose table frame stays mapped) and leaves version 1.
/// </summary>
internal static unsafe class GrantV2Checks
{
    private const ushort Self = 0;                 // our domain id (the initial domain)
    private const int TableSlot = 10, StatusSlot = 17, MapSlot = 18;
    private const int MapSize = 32, CopySize = 40;

    private static byte* s_table;                  // the table's first frame, as grant_entry_v2[256]
    private static ushort* s_status;               // the status frame, mapped read-only, null until then

    public static void Run()
    {
        Checks.Run("grant_v2_set_version", &SetVersion);
        Checks.Run("grant_v2_map_status", &MapStatus);
        Checks.Run("grant_v2_sub_page_copy", &SubPageCopy);
        Checks.Run("grant_v2_back_to_v1", &BackToV1);
        Checks.Run("grant_add_to_physmap_pv", &AddToPhysmap);
    }

    private static long SetVersionTo(uint version, out uint writtenBack)
    {
        uint* op = stackalloc uint[1];
        *op = version;
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_set_version, (ulong)op, 1);
        writtenBack = *op;
        return rc;
    }

    private static long GetVersion()
    {
        uint* op = stackalloc uint[2];
        op[0] = Xen.DOMID_SELF; op[1] = 0xEEEE;
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_get_version, (ulong)op, 1);
        return rc != 0 ? rc : op[1];
    }

    /// <summary>struct gnttab_get_status_frames { nr_frames; dom; status; frame_list }: the status, or the call's error.</summary>
    private static long GetStatusFrames(uint nrFrames, ushort dom, ulong list, ulong count = 1)
    {
        byte* op = stackalloc byte[16];
        *(uint*)op = nrFrames; *(ushort*)(op + 4) = dom; *(short*)(op + 6) = -99; *(ulong*)(op + 8) = list;
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_get_status_frames, (ulong)op, count);
        return rc != 0 ? rc : *(short*)(op + 6);
    }

    /// <summary>grant_entry_v2 for ourselves: the union's body (bytes 4-15), then the header, flags last.</summary>
    private static void Put(uint gref, ushort flags, ulong frameOrGref, uint middle = 0)
    {
        byte* e = s_table + gref * 16;
        *(uint*)(e + 4) = middle;
        *(ulong*)(e + 8) = frameOrGref;
        *(ushort*)(e + 2) = Self;
        *(ushort*)e = flags;
    }

    private static ushort EntryFlags(uint gref) => *(ushort*)(s_table + gref * 16);

    private static short Map(uint gref, uint flags, out uint handle)
    {
        byte* op = stackalloc byte[MapSize];
        for (int i = 0; i < MapSize; i++) op[i] = 0xEE;
        *(ulong*)op = Guest.WindowPage(MapSlot); *(uint*)(op + 8) = flags; *(uint*)(op + 12) = gref; *(ushort*)(op + 16) = Self;
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_map_grant_ref, (ulong)op, 1);
        handle = *(uint*)(op + 20);
        return rc != 0 ? (short)-99 : *(short*)(op + 18);
    }

    private static short Unmap(uint handle)
    {
        byte* op = stackalloc byte[24];
        *(ulong*)op = Guest.WindowPage(MapSlot); *(ulong*)(op + 8) = 0; *(uint*)(op + 16) = handle; *(short*)(op + 20) = -99;
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_unmap_grant_ref, (ulong)op, 1);
        return rc != 0 ? (short)-98 : *(short*)(op + 20);
    }

    private static short Copy(ulong srcU, ushort srcDom, ushort srcOff, ulong dstU, ushort dstDom, ushort dstOff, ushort len, ushort flags)
    {
        byte* op = stackalloc byte[CopySize];
        *(ulong*)op = srcU; *(ushort*)(op + 8) = srcDom; *(ushort*)(op + 10) = srcOff;
        *(ulong*)(op + 16) = dstU; *(ushort*)(op + 24) = dstDom; *(ushort*)(op + 26) = dstOff;
        *(ushort*)(op + 32) = len; *(ushort*)(op + 34) = flags; *(short*)(op + 36) = -99;
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_copy, (ulong)op, 1);
        return rc != 0 ? (short)-98 : *(short*)(op + 36);
    }

    private static void SetVersion()
    {
        if (GrantChecks.Table() == null) return;
        ulong* list = stackalloc ulong[2];
        Checks.Expect("get_status_frames in version 1", GetStatusFrames(1, Xen.DOMID_SELF, (ulong)list), Xen.GNTST_general_error);
        Checks.Expect("set_version(3)", SetVersionTo(3, out uint back), -Xen.EINVAL);
        Checks.Expect("version written back", back, 1);
        if (!Checks.Expect("set_version(2)", SetVersionTo(2, out back), 0)) return;
        Checks.Expect("version written back", back, 2);
        Checks.Expect("get_version", GetVersion(), 2);
        Checks.Expect("set_version(2) again", SetVersionTo(2, out back), 0);

        byte* st = stackalloc byte[24];
        *(ushort*)st = Xen.DOMID_SELF; *(uint*)(st + 4) = 1; *(short*)(st + 8) = -99; *(ulong*)(st + 16) = (ulong)list;
        Checks.Expect("setup_table", Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_setup_table, (ulong)st, 1), 0);
        Checks.Expect("setup_table status", *(short*)(st + 8), Xen.GNTST_okay);
        Checks.ExpectHex("the same shared frame", list[0], (Guest.WindowL1[TableSlot] & Xen.PTE_MFN_MASK) >> 12);
        s_table = (byte*)Guest.WindowPage(TableSlot);

        list[0] = 0;
        if (!Checks.Expect("get_status_frames", GetStatusFrames(1, Xen.DOMID_SELF, (ulong)list), Xen.GNTST_okay)) return;
        Checks.Expect("one status frame for one shared frame", GetStatusFrames(2, Xen.DOMID_SELF, (ulong)list), Xen.GNTST_general_error);
        Checks.Expect("no such domain", GetStatusFrames(1, 77, (ulong)list), Xen.GNTST_bad_domain);
        Checks.Expect("count 2", GetStatusFrames(1, Xen.DOMID_SELF, (ulong)list, 2), -Xen.EINVAL);
        Checks.Expect("list in the hypervisor's area", GetStatusFrames(1, Xen.DOMID_SELF, 0xFFFF800000000000UL), -Xen.EFAULT);
        if (!Checks.Expect("map the status frame read-only", Guest.MapInWindow(StatusSlot, list[0], false), 0)) return;
        s_status = (ushort*)Guest.WindowPage(StatusSlot);
        Checks.Expect("no grant in use", s_status[10] | s_status[14] | s_status[20], 0);
    }

    private static bool NeedVersion2()
    {
        if (s_status != null) return true;
        return Checks.Fail("needs version 2 and its status frame");
    }

    private static void MapStatus()
    {
        if (!NeedVersion2()) return;
        ulong* page = (ulong*)Guest.Page(8);
        page[0] = 0x327620746E617267UL;
        Put(10, Xen.GTF_permit_access, Guest.MfnOf(page));
        if (!Checks.Expect("map a full-page grant", Map(10, Xen.GNTMAP_host_map, out uint h), Xen.GNTST_okay)) return;
        Checks.ExpectHex("read through it", Cpu.Read64(Guest.WindowPage(MapSlot)), page[0]);
        Checks.Expect("status while mapped", s_status[10], Xen.GTF_reading | Xen.GTF_writing);
        Checks.Expect("entry flags untouched", EntryFlags(10), Xen.GTF_permit_access);
        Checks.Expect("unmap", Unmap(h), Xen.GNTST_okay);
        Checks.Expect("status after unmap", s_status[10], 0);

        Put(11, Xen.GTF_permit_access | Xen.GTF_readonly, Guest.MfnOf(page));
        Checks.Expect("writable map of a r/o grant", Map(11, Xen.GNTMAP_host_map, out h), Xen.GNTST_general_error);
        if (Checks.Expect("read-only map", Map(11, Xen.GNTMAP_host_map | Xen.GNTMAP_readonly, out h), Xen.GNTST_okay))
        {
            Checks.Expect("status of a read-only map", s_status[11], Xen.GTF_reading);
            Checks.Expect("unmap", Unmap(h), Xen.GNTST_okay);
        }
        Put(12, Xen.GTF_permit_access | Xen.GTF_sub_page, Guest.MfnOf(page), 256u << 16);
        Checks.Expect("map a sub-page grant", Map(12, Xen.GNTMAP_host_map, out h), Xen.GNTST_general_error);
        Put(13, Xen.GTF_transitive, 10, Self);
        Checks.Expect("map a transitive grant", Map(13, Xen.GNTMAP_host_map, out h), Xen.GNTST_general_error);
        Checks.Expect("no status left", s_status[11] | s_status[12] | s_status[13], 0);

        ulong* e = (ulong*)s_table;
        ulong e12a = e[24], e12b = e[25];
        Checks.Expect("swap_grant_ref of 16-byte entries", GrantChecks.Swap(12, 13), Xen.GNTST_okay);
        Checks.ExpectHex("entry 13 is the sub-page grant", e[26], e12a);
        Checks.ExpectHex("with its frame", e[27], e12b);
        Checks.Expect("swap past 256 entries", GrantChecks.Swap(12, 256), Xen.GNTST_bad_gntref);
        for (uint r = 10; r <= 13; r++) Put(r, 0, 0);
    }

    private static void SubPageCopy()
    {
        if (!NeedVersion2()) return;
        byte* src = Guest.Page(18), dst = Guest.Page(9);
        for (int i = 0; i < 4096; i++) { src[i] = (byte)(i * 11 + 3); dst[i] = 0; }
        ulong srcMfn = Guest.MfnOf(src);
        Put(14, Xen.GTF_permit_access | Xen.GTF_sub_page, Guest.MfnOf(dst), 256 | 512u << 16);
        Checks.Expect("copy into the sub-page", Copy(srcMfn, Xen.DOMID_SELF, 0, 14, Self, 256, 512, Xen.GNTCOPY_dest_gref), Xen.GNTST_okay);
        bool same = true;
        for (int i = 0; i < 512; i++) same &= dst[256 + i] == src[i];
        Checks.Expect("bytes copied", same ? 1 : 0, 1);
        Checks.Expect("nothing around them", dst[255] | dst[768], 0);
        Checks.Expect("starting before it", Copy(srcMfn, Xen.DOMID_SELF, 0, 14, Self, 255, 16, Xen.GNTCOPY_dest_gref), Xen.GNTST_general_error);
        Checks.Expect("ending after it", Copy(srcMfn, Xen.DOMID_SELF, 0, 14, Self, 700, 69, Xen.GNTCOPY_dest_gref), Xen.GNTST_general_error);
        Checks.Expect("past the page", Copy(srcMfn, Xen.DOMID_SELF, 0, 14, Self, 4000, 100, Xen.GNTCOPY_dest_gref), Xen.GNTST_bad_copy_arg);
        Checks.Expect("copy out of the sub-page", Copy(14, Self, 300, srcMfn, Xen.DOMID_SELF, 2048, 100, Xen.GNTCOPY_source_gref), Xen.GNTST_okay);
        Checks.Expect("bytes copied back", src[2048] == dst[300] && src[2147] == dst[399] ? 1 : 0, 1);
        Checks.Expect("status after the copies", s_status[14], 0);
        Checks.Expect("entry flags untouched", EntryFlags(14), Xen.GTF_permit_access | Xen.GTF_sub_page);

        Put(15, Xen.GTF_transitive, 14, Self);          // trans_domid = ourselves, the granter: refused
        Checks.Expect("self-referential transitive grant", Copy(15, Self, 300, srcMfn, Xen.DOMID_SELF, 0, 8, Xen.GNTCOPY_source_gref), Xen.GNTST_general_error);
        Put(16, Xen.GTF_permit_access | Xen.GTF_readonly, srcMfn);
        Checks.Expect("full-page v2 grant", Copy(16, Self, 8, Guest.MfnOf(dst), Xen.DOMID_SELF, 1000, 64, Xen.GNTCOPY_source_gref), Xen.GNTST_okay);
        Checks.Expect("its bytes", dst[1000] == src[8] && dst[1063] == src[71] ? 1 : 0, 1);
        Checks.Expect("no status left", s_status[15] | s_status[16], 0);
        for (uint r = 14; r <= 16; r++) Put(r, 0, 0);
    }

    private static void BackToV1()
    {
        if (!NeedVersion2()) return;
        byte* page = Guest.Page(8);
        Put(20, Xen.GTF_permit_access, Guest.MfnOf(page));
        if (!Checks.Expect("map ref 20", Map(20, Xen.GNTMAP_host_map, out uint h), Xen.GNTST_okay)) return;
        Checks.Expect("set_version(1) with ref 20 mapped", SetVersionTo(1, out uint back), -Xen.EBUSY);
        Checks.Expect("version written back", back, 2);
        Checks.Expect("unmap ref 20", Unmap(h), Xen.GNTST_okay);
        Checks.Expect("set_version(1) with the status frame mapped", SetVersionTo(1, out back), -Xen.EBUSY);
        Put(5, Xen.GTF_transitive, 20, Self);
        Checks.Expect("set_version(1) with a transitive reserved entry", SetVersionTo(1, out back), -Xen.ERANGE);
        Put(5, 0, 0);
        Checks.Expect("get_version", GetVersion(), 2);
        if (!Checks.Expect("unmap the status frame", Guest.UnmapInWindow(StatusSlot), 0)) return;
        s_status = null;

        Put(3, Xen.GTF_permit_access, Guest.MfnOf(page));   // reserved: may stay mapped across the switch
        if (!Checks.Expect("map ref 3", Map(3, Xen.GNTMAP_host_map, out h), Xen.GNTST_okay)) return;
        Checks.Expect("set_version(1)", SetVersionTo(1, out back), 0);
        Checks.Expect("version written back", back, 1);
        Checks.Expect("get_version", GetVersion(), 1);
        ulong* v1 = (ulong*)s_table;
        Checks.ExpectHex("ref 3 as a v1 entry, status in its flags",
            v1[3], Xen.GTF_permit_access | Xen.GTF_reading | Xen.GTF_writing | (ulong)Guest.MfnOf(page) << 32);
        Checks.ExpectHex("ref 20 cleared", v1[20] | v1[40] | v1[41], 0);
        ulong* list = stackalloc ulong[1];
        Checks.Expect("get_status_frames in version 1", GetStatusFrames(1, Xen.DOMID_SELF, (ulong)list), Xen.GNTST_general_error);
        Checks.Expect("unmap ref 3", Unmap(h), Xen.GNTST_okay);
        Checks.Expect("ref 3 flags after unmap", GrantChecks.Flags(3), Xen.GTF_permit_access);
        v1[3] = 0;
    }

    /// <summary>XENMEM_add_to_physmap of our status frame: for translated guests only, -EACCES for a PV domain.</summary>
    private static void AddToPhysmap()
    {
        byte* xatp = stackalloc byte[24];
        *(ushort*)xatp = Xen.DOMID_SELF; *(ushort*)(xatp + 2) = 0; *(uint*)(xatp + 4) = Xen.XENMAPSPACE_grant_table;
        *(ulong*)(xatp + 8) = Xen.XENMAPIDX_grant_table_status; *(ulong*)(xatp + 16) = 0x1000;
        Checks.Expect("add_to_physmap(grant_table, status 0)", Hypercall.MemoryOp(Xen.XENMEM_add_to_physmap, xatp), -Xen.EACCES);
        *(ushort*)xatp = 77;
        Checks.Expect("for no such domain", Hypercall.MemoryOp(Xen.XENMEM_add_to_physmap, xatp), -Xen.ESRCH);
    }
}
