namespace Microhv.Guests.PvTest;

/// <summary>
/// The page-table validation model: mappings of our own pages succeed; page tables never become
/// writable; frames we do not own and the hypervisor's hole cannot be mapped; pin, unpin,
/// new_baseptr, flushes; writable page tables emulated after vm_assist.
/// Spare pages: 0 window L1, 1 fresh L1, 2 self-mapping L1, 3 L4 copy, 4 data page, 5-6 scratch.
/// </summary>
internal static unsafe class MemoryChecks
{
    public static void Run()
    {
        Checks.Run("update_va_mapping_map_write_unmap", &MapWriteUnmap);
        Checks.Run("mmu_update_page_table_writable_rejected", &PageTableWritable);
        Checks.Run("mmu_update_unowned_frame_rejected", &UnownedFrame);
        Checks.Run("update_va_mapping_hypervisor_hole_rejected", &HypervisorHole);
        Checks.Run("mmu_update_bad_pointer_efault", &MmuUpdateBadPointer);
        Checks.Run("mmuext_pin_unpin_l1", &PinUnpinL1);
        Checks.Run("mmuext_pin_self_writable_l1_rejected", &PinSelfWritable);
        Checks.Run("mmuext_new_baseptr", &NewBaseptr);
        Checks.Run("mmuext_tlb_flush_invlpg", &Flushes);
        Checks.Run("writable_pagetables_emulated", &WritablePageTables);
        Checks.Run("memory_balloon_decrease_then_populate", &Balloon);
    }

    /// <summary>A balloon driver's round trip on our last guest frame (outside every mapping the builder
    /// made): decrease_reservation gives its frame back, populate_physmap gives a zeroed one back at the
    /// same guest frame, its MFN written into the list and the M2P pointing at it.</summary>
    private static void Balloon()
    {
        if (!SetupChecks.NeedWindow()) return;
        ulong pfn = Guest.NrPages - 1;
        ulong* list = stackalloc ulong[1];
        // struct xen_memory_reservation { extent_start; nr_extents; extent_order; mem_flags; domid_t domid; }
        ulong* r = stackalloc ulong[4];
        ushort* domid = stackalloc ushort[4];
        domid[0] = Xen.DOMID_SELF;
        long before = Hypercall.MemoryOp(Xen.XENMEM_current_reservation, domid);
        list[0] = Guest.P2m[pfn];
        r[0] = (ulong)list; r[1] = 1; r[2] = 0; r[3] = Xen.DOMID_SELF;
        if (!Checks.Expect("decrease_reservation of our last frame", Hypercall.MemoryOp(Xen.XENMEM_decrease_reservation, r), 1)) return;
        Checks.Expect("current_reservation after", Hypercall.MemoryOp(Xen.XENMEM_current_reservation, domid), before - 1);
        list[0] = pfn;
        if (!Checks.Expect("populate_physmap at that frame", Hypercall.MemoryOp(Xen.XENMEM_populate_physmap, r), 1)) return;
        ulong mfn = list[0];
        Checks.ExpectHex("M2P of the new frame", Guest.M2p[mfn], pfn);
        Checks.Expect("current_reservation back", Hypercall.MemoryOp(Xen.XENMEM_current_reservation, domid), before);
        Guest.P2m[pfn] = mfn;
        if (!Checks.Expect("map the new frame", Guest.MapInWindow(TestSlot, mfn, true), 0)) return;
        ulong* page = (ulong*)Guest.WindowPage(TestSlot);
        ulong any = 0;
        for (int i = 0; i < 512; i++) any |= page[i];
        Checks.ExpectHex("its contents", any, 0);
        page[0] = 0x5A5A;
        Checks.Expect("unmap it", Guest.UnmapInWindow(TestSlot), 0);
    }

    private static byte* DataPage => Guest.Page(4);
    private const int TestSlot = Guest.WindowTest;

    private static long MmuUpdateOne(ulong ptr, ulong val)
    {
        ulong* req = stackalloc ulong[2];
        req[0] = ptr;
        req[1] = val;
        uint done = 0xFFFF;
        return Hypercall.MmuUpdate(req, 1, &done);
    }

    /// <summary>Machine address of the window L1's entry for window page <paramref name="index"/>.</summary>
    private static ulong WindowPteMachine(int index) => (Guest.MfnOf(Guest.WindowL1) << 12) + (ulong)index * 8;

    private static void MapWriteUnmap()
    {
        if (!SetupChecks.NeedWindow()) return;
        ulong va = Guest.WindowPage(TestSlot);
        ulong* data = (ulong*)DataPage;
        data[0] = 0x1122334455667788;
        if (!Checks.Expect("update_va_mapping(map)", Guest.MapInWindow(TestSlot, Guest.MfnOf(data), true), 0)) return;
        Checks.ExpectHex("read through the new mapping", *(ulong*)va, 0x1122334455667788);
        *(ulong*)(va + 8) = 0xCAFEF00D;
        Checks.ExpectHex("write seen through our own mapping", data[1], 0xCAFEF00D);
        ulong pte = Guest.WindowL1[TestSlot];
        Checks.ExpectHex("PTE frame in our L1", (pte & Xen.PTE_MFN_MASK) >> 12, Guest.MfnOf(data));
        if (!Checks.Expect("update_va_mapping(unmap)", Guest.UnmapInWindow(TestSlot), 0)) return;
        Checks.ExpectHex("PTE after unmap", Guest.WindowL1[TestSlot], 0);
        Traps.Expect(14, 3);
        Cpu.Read64(va);
        if (!Traps.Seen) Checks.Fail("no #PF reading the unmapped page");
    }

    private static void PageTableWritable()
    {
        if (!SetupChecks.NeedWindow()) return;
        ulong ptBase = *(ulong*)(Guest.StartInfo + Xen.SI_pt_base);
        ulong l4Mfn = Guest.MfnOf((void*)ptBase);
        long rc = MmuUpdateOne(WindowPteMachine(TestSlot), Guest.KernelPte(l4Mfn, true));
        Checks.ExpectRejected("mmu_update mapping our L4 writable", rc);
        rc = Guest.MapInWindow(TestSlot, Guest.MfnOf(Guest.WindowL1), true);
        Checks.ExpectRejected("update_va_mapping of our window L1 writable", rc);
        // Read-only is allowed.
        Checks.Expect("update_va_mapping of our L4 read-only", Guest.MapInWindow(TestSlot, l4Mfn, false), 0);
        Guest.UnmapInWindow(TestSlot);
    }

    private static void UnownedFrame()
    {
        if (!SetupChecks.NeedWindow()) return;
        // A frame beyond any machine address: nobody owns it and it is not I/O space either.
        long rc = MmuUpdateOne(WindowPteMachine(TestSlot), Guest.KernelPte(0xFFFFFFFFF, true));
        Checks.ExpectRejected("mmu_update mapping mfn 0xfffffffff", rc);
        rc = Guest.MapInWindow(TestSlot, 0xFFFFFFFFF, false);
        Checks.ExpectRejected("update_va_mapping of mfn 0xfffffffff", rc);
        // An entry pointing at the hypervisor's M2P L3 (in our L4's slot 256) is Xen's frame.
        ulong ptBase = *(ulong*)(Guest.StartInfo + Xen.SI_pt_base);
        ulong hvL3 = (((ulong*)ptBase)[256] & Xen.PTE_MFN_MASK) >> 12;
        if (hvL3 != 0)
        {
            rc = Guest.MapInWindow(TestSlot, hvL3, true);
            Checks.ExpectRejected("update_va_mapping of the hypervisor's L3 writable", rc);
        }
        Checks.ExpectHex("PTE left unchanged", Guest.WindowL1[TestSlot], 0);
        Guest.UnmapInWindow(TestSlot);
    }

    private static void HypervisorHole()
    {
        ulong pte = Guest.KernelPte(Guest.MfnOf(DataPage), true);
        Checks.ExpectRejected("update_va_mapping(0xffff800000001000)", Hypercall.UpdateVaMapping(0xFFFF800000001000, pte, Xen.UVMF_INVLPG));
        Checks.ExpectRejected("update_va_mapping(0xffff830000000000)", Hypercall.UpdateVaMapping(0xFFFF830000000000, pte, Xen.UVMF_INVLPG));
        Checks.ExpectRejected("update_va_mapping(non-canonical)", Hypercall.UpdateVaMapping(0x0000900000000000, pte, Xen.UVMF_INVLPG));
    }

    private static void MmuUpdateBadPointer()
    {
        uint done = 0;
        Checks.Expect("mmu_update(0x1000, 1)", Hypercall.MmuUpdate((ulong*)0x1000, 1, &done), -Xen.EFAULT);
        Checks.Expect("mmu_update(hypervisor hole, 1)", Hypercall.MmuUpdate((ulong*)0xFFFF830000000000, 1, &done), -Xen.EFAULT);
        ulong* op = stackalloc ulong[3];
        Checks.Expect("mmuext_op(0x1000, 1)", Hypercall.Call4(Xen.mmuext_op, 0x1000, 1, (ulong)&done, Xen.DOMID_SELF), -Xen.EFAULT);
    }

    private static void PinUnpinL1()
    {
        byte* l1 = Guest.Page(1);
        ulong mfn = Guest.MfnOf(l1);
        // A writable mapping of the page exists: pinning must fail until it is read-only.
        Checks.ExpectRejected("pin L1 while mapped writable", Hypercall.MmuextOp(Xen.MMUEXT_PIN_L1_TABLE, mfn, 0));
        if (!Checks.Expect("make the L1 read-only", Guest.MakeReadOnly(l1), 0)) return;
        // Entry 0 maps our data page read-only: a valid L1.
        ((ulong*)Guest.Page(6))[0] = 0;
        if (!Checks.Expect("pin L1", Hypercall.MmuextOp(Xen.MMUEXT_PIN_L1_TABLE, mfn, 0), 0)) { Guest.MakeWritable(l1); return; }
        Checks.ExpectRejected("pin L1 twice", Hypercall.MmuextOp(Xen.MMUEXT_PIN_L1_TABLE, mfn, 0));
        Checks.ExpectRejected("make a pinned L1 writable", Guest.MakeWritable(l1));
        Checks.Expect("unpin L1", Hypercall.MmuextOp(Xen.MMUEXT_UNPIN_TABLE, mfn, 0), 0);
        Checks.ExpectRejected("unpin an unpinned frame", Hypercall.MmuextOp(Xen.MMUEXT_UNPIN_TABLE, mfn, 0));
        Checks.Expect("make it writable again", Guest.MakeWritable(l1), 0);
    }

    private static void PinSelfWritable()
    {
        byte* l1 = Guest.Page(2);
        ulong mfn = Guest.MfnOf(l1);
        ((ulong*)l1)[0] = Guest.KernelPte(mfn, true);    // maps itself writable
        if (!Checks.Expect("make the L1 read-only", Guest.MakeReadOnly(l1), 0)) return;
        long rc = Hypercall.MmuextOp(Xen.MMUEXT_PIN_L1_TABLE, mfn, 0);
        Checks.ExpectRejected("pin an L1 that maps itself writable", rc);
        if (rc == 0) Hypercall.MmuextOp(Xen.MMUEXT_UNPIN_TABLE, mfn, 0);
        Checks.Expect("make it writable again", Guest.MakeWritable(l1), 0);
        ((ulong*)l1)[0] = 0;
    }

    private static void NewBaseptr()
    {
        ulong ptBase = *(ulong*)(Guest.StartInfo + Xen.SI_pt_base);
        ulong* copy = (ulong*)Guest.Page(3);
        for (int i = 0; i < 512; i++) copy[i] = ((ulong*)ptBase)[i];
        ulong copyMfn = Guest.MfnOf(copy), oldMfn = Guest.MfnOf((void*)ptBase);
        if (!Checks.Expect("make the L4 copy read-only", Guest.MakeReadOnly(copy), 0)) return;
        if (!Checks.Expect("pin L4 copy", Hypercall.MmuextOp(Xen.MMUEXT_PIN_L4_TABLE, copyMfn, 0), 0)) return;
        long rc = Hypercall.MmuextOp(Xen.MMUEXT_NEW_BASEPTR, copyMfn, 0);
        Checks.Expect("new_baseptr(copy)", rc, 0);
        // Still running, stack and data still there; the copy is now the live L4.
        Checks.ExpectHex("L4 copy reads back", copy[511], ((ulong*)ptBase)[511]);
        Checks.Expect("new_baseptr(original)", Hypercall.MmuextOp(Xen.MMUEXT_NEW_BASEPTR, oldMfn, 0), 0);
        Checks.Expect("unpin L4 copy", Hypercall.MmuextOp(Xen.MMUEXT_UNPIN_TABLE, copyMfn, 0), 0);
        Checks.ExpectRejected("new_baseptr(a data frame)", Hypercall.MmuextOp(Xen.MMUEXT_NEW_BASEPTR, Guest.MfnOf(DataPage), 0));
        Checks.Expect("make the copy writable again", Guest.MakeWritable(copy), 0);
    }

    private static void Flushes()
    {
        Checks.Expect("TLB_FLUSH_LOCAL", Hypercall.MmuextOp(Xen.MMUEXT_TLB_FLUSH_LOCAL, 0, 0), 0);
        Checks.Expect("INVLPG_LOCAL", Hypercall.MmuextOp(Xen.MMUEXT_INVLPG_LOCAL, (ulong)DataPage, 0), 0);
        Checks.Expect("TLB_FLUSH_ALL", Hypercall.MmuextOp(Xen.MMUEXT_TLB_FLUSH_ALL, 0, 0), 0);
        Checks.Expect("INVLPG_ALL", Hypercall.MmuextOp(Xen.MMUEXT_INVLPG_ALL, (ulong)DataPage, 0), 0);
        Checks.Expect("update_va_mapping UVMF_ALL|UVMF_TLB_FLUSH",
            Hypercall.UpdateVaMapping((ulong)DataPage, Guest.KernelPte(Guest.MfnOf(DataPage), true), Xen.UVMF_TLB_FLUSH | Xen.UVMF_ALL), 0);
    }

    private static void WritablePageTables()
    {
        if (!SetupChecks.NeedWindow()) return;
        long rc = Hypercall.Call2(Xen.vm_assist, Xen.VMASST_CMD_enable, Xen.VMASST_TYPE_writable_pagetables);
        if (!Checks.Expect("vm_assist(enable, writable_pagetables)", rc, 0)) return;
        ulong* data = (ulong*)DataPage;
        data[2] = 0x5A5A5A5A0F0F0F0F;
        // A direct store into our read-only L1: the hypervisor emulates and validates it.
        Traps.ExpectNone();
        Guest.WindowL1[TestSlot] = Guest.KernelPte(Guest.MfnOf(data), true);
        ulong va = Guest.WindowPage(TestSlot);
        Checks.ExpectHex("read through the emulated PTE", *(ulong*)(va + 16), 0x5A5A5A5A0F0F0F0F);
        // A direct store that would make a page table writable is refused with a #PF.
        Traps.Expect(14, 3);
        Cpu.Write64((ulong)&Guest.WindowL1[TestSlot + 1], Guest.KernelPte(Guest.MfnOf(Guest.WindowL1), true));
        if (!Traps.Seen) Checks.Fail("no #PF for a PTE making our L1 writable");
        Checks.ExpectHex("refused PTE not written", Guest.WindowL1[TestSlot + 1], 0);
        Guest.WindowL1[TestSlot] = 0;
        Hypercall.MmuextOp(Xen.MMUEXT_INVLPG_LOCAL, va, 0);
        Checks.ExpectHex("PTE cleared by a direct store", Guest.WindowL1[TestSlot], 0);
    }
}
