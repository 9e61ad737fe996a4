namespace Microhv.Guests.PvTest;

/// <summary>
/// An LDT of our own (MMUEXT_SET_LDT), as Xen 4.17 gives it to a PV kernel: the hypervisor maps the LDT's
/// page when the CPU first reads a descriptor through a selector with TI=1, after checking it as a GDT
/// page (a DPL-0 data descriptor is raised to DPL 3), and from then on holds it as a descriptor page: it
/// cannot be mapped writable until the LDT changes. A page it cannot take is
/// a #PF at the LDT's own address. And the data-segment selectors, LDT ones included, stay what we loaded
/// across rescheduling (Xen's save_segments / load_segments).
/// </summary>
internal static unsafe class LdtChecks
{
    public static void Run()
    {
        Checks.Run("ldt_data_selector_reads_memory", &DataSelector);
        Checks.Run("ldt_bad_arguments_and_a_writable_page", &BadInputs);
        Checks.Run("ldt_page_stays_a_descriptor_page_until_the_ldt_changes", &Unmapped);
        Checks.Run("segment_selectors_kept_across_yields", &KeptAcrossYields);
    }

    private const ulong VectorPF = 14, EINVAL = 22, EBUSY = 16;
    private const uint MsrFsBase = 0xC0000100, MsrGsBase = 0xC0000101;
    /// <summary>LDT entries 1, 2 and 3 with RPL 3 and TI=1.</summary>
    private const ushort Ldt1 = 0x000F, Ldt2 = 0x0017, Ldt3 = 0x001F;
    private const ulong DataDpl0 = 0x00CF_9200_0000_FFFFUL, DataDpl3 = 0x00CF_F200_0000_FFFFUL, Accessed = 1UL << 40;
    /// <summary>The 32-bit base of entry 3: an FS loaded from it reads at this base plus the offset.</summary>
    private const uint FsBase3 = 0x1234_5000;

    private static byte* s_page, s_word;

    /// <summary>A page of our own for the LDT (from the heap, never given back), zeroed, with entries 1-3.</summary>
    private static ulong* LdtPage()
    {
        if (s_page == null)
        {
            s_page = (byte*)Internal.Runtime.KernelHeap.AllocateAligned(4096, 4096);
            s_word = (byte*)Internal.Runtime.KernelHeap.AllocateAligned(8, 8);
        }
        ulong* ldt = (ulong*)s_page;
        for (int i = 0; i < 512; i++) ldt[i] = 0;
        ldt[1] = DataDpl0;
        ldt[2] = DataDpl3;
        ldt[3] = DataDpl3 | ((ulong)(FsBase3 & 0xFF_FFFF) << 16) | ((ulong)(FsBase3 >> 24) << 56);
        return ldt;
    }

    private static long SetLdt(void* linear, ulong entries) => Hypercall.MmuextOp(Xen.MMUEXT_SET_LDT, (ulong)linear, entries);

    private static void DataSelector()
    {
        ulong* ldt = LdtPage();
        *(ulong*)s_word = 0x5EED_1D7D_0000_0042;
        ushort* saved = stackalloc ushort[4];
        Cpu.ReadSelectors(saved);
        ulong fsBase = Cpu.Rdmsr(MsrFsBase);
        if (!Checks.Expect("make the LDT page read-only", Guest.MakeReadOnly(ldt), 0)) return;
        if (Checks.Expect("SET_LDT with 4 entries", SetLdt(ldt, 4), 0))
        {
            Traps.ExpectNone();
            // Entry 1 is a DPL-0 data segment: usable at RPL 3 only because the hypervisor raised its DPL.
            Cpu.LoadDs(Ldt1);
            Cpu.LoadFs(Ldt3);
            ulong read = Cpu.FsRead64((ulong)s_word - FsBase3);
            ushort* now = stackalloc ushort[4];
            Cpu.ReadSelectors(now);
            Cpu.LoadDs(saved[0]);
            Cpu.LoadFs(saved[2]);
            Hypercall.Call2(Xen.set_segment_base, Xen.SEGBASE_FS, fsBase);
            if (Checks.ExpectHex("the word read at fs:[offset] (entry 3's base)", read, 0x5EED_1D7D_0000_0042)
                && Checks.ExpectHex("DS", now[0], Ldt1) && Checks.ExpectHex("FS", now[2], Ldt3)
                && Checks.ExpectHex("entry 1 as the CPU left it (DPL raised to 3, accessed)", ldt[1], DataDpl3 | Accessed)
                && Checks.ExpectHex("entry 3 accessed", ldt[3] & Accessed, Accessed))
                Checks.Expect("the LDT page cannot be made writable while it is the LDT's", Guest.MakeWritable(ldt), -(long)EBUSY);
            Checks.Expect("SET_LDT with no entries", SetLdt(null, 0), 0);
        }
        Checks.Expect("make the LDT page writable again", Guest.MakeWritable(ldt), 0);
    }

    private static void BadInputs()
    {
        ulong* ldt = LdtPage();
        if (!Checks.Expect("SET_LDT not page-aligned", SetLdt((byte*)ldt + 8, 1), -(long)EINVAL)) return;
        if (!Checks.Expect("SET_LDT with 8193 entries", SetLdt(ldt, 8193), -(long)EINVAL)) return;
        if (!Checks.Expect("SET_LDT in the hypervisor's range", SetLdt((void*)(Xen.HYPERVISOR_VIRT_START + 0x1000), 1), -(long)EINVAL)) return;
        if (!Checks.Expect("SET_LDT non-canonical", SetLdt((void*)0x0000_8000_0000_0000, 1), -(long)EINVAL)) return;
        // Our page is mapped writable: the hypervisor cannot take it as a descriptor page. Loading a selector
        // from it is our own #PF at the LDT's address.
        if (!Checks.Expect("SET_LDT of a writable page", SetLdt(ldt, 4), 0)) return;
        ushort* saved = stackalloc ushort[4];
        Cpu.ReadSelectors(saved);
        Traps.Expect(VectorPF, 2);
        Cpu.LoadDs(Ldt2);
        Traps.ExpectNone();
        Cpu.LoadDs(saved[0]);
        if (!Traps.Seen) Checks.Fail("no #PF");
        else Checks.ExpectHex("#PF address", Traps.SeenCr2, (ulong)ldt + 16);
        Checks.Expect("SET_LDT with no entries", SetLdt(null, 0), 0);
    }

    /// <summary>Once the hypervisor mapped the LDT page, it holds it as a descriptor page until the LDT changes:
    /// our own read-only mapping may go, but a writable one is refused until SET_LDT drops it (Xen 4.17's
    /// put_page_from_l1e only puts that mapping's reference). Then, writable, it is refused as the LDT's.</summary>
    private static void Unmapped()
    {
        ulong* ldt = LdtPage();
        ulong mfn = Guest.MfnOf(ldt);
        ushort* saved = stackalloc ushort[4];
        Cpu.ReadSelectors(saved);
        if (!Checks.Expect("make the LDT page read-only", Guest.MakeReadOnly(ldt), 0)) return;
        if (!Checks.Expect("SET_LDT with 4 entries", SetLdt(ldt, 4), 0)) return;
        Traps.ExpectNone();
        Cpu.LoadDs(Ldt2);
        Cpu.LoadDs(saved[0]);
        bool ok = Checks.Expect("unmap our mapping of the LDT page", Hypercall.UpdateVaMapping((ulong)ldt, 0, Xen.UVMF_INVLPG), 0)
            && Checks.Expect("map it writable while it is the LDT's", Hypercall.UpdateVaMapping((ulong)ldt, Guest.KernelPte(mfn, true), Xen.UVMF_INVLPG), -(long)EBUSY)
            && Checks.Expect("map it read-only again", Hypercall.UpdateVaMapping((ulong)ldt, Guest.KernelPte(mfn, false), Xen.UVMF_INVLPG), 0)
            && Checks.Expect("SET_LDT with no entries", SetLdt(null, 0), 0)
            && Checks.Expect("map it writable once the LDT changed", Guest.MakeWritable(ldt), 0)
            && Checks.Expect("SET_LDT of the writable page", SetLdt(ldt, 4), 0);
        if (ok)
        {
            Traps.Expect(VectorPF, 2);
            Cpu.LoadDs(Ldt2);
            Traps.ExpectNone();
            Cpu.LoadDs(saved[0]);
            if (!Traps.Seen) Checks.Fail("no #PF loading a selector from a writable LDT page");
            else Checks.ExpectHex("#PF address", Traps.SeenCr2, (ulong)ldt + 16);
        }
        Checks.Expect("SET_LDT with no entries", SetLdt(null, 0), 0);
        Checks.Expect("LDT page writable", Guest.MakeWritable(ldt), 0);
    }

    /// <summary>DS, ES, FS and GS from our LDT, then many yields (on a machine with other vCPUs to run, each a
    /// switch away and back): the selectors and the base FS took from its descriptor are still ours.</summary>
    private static void KeptAcrossYields()
    {
        ulong* ldt = LdtPage();
        *(ulong*)s_word = 0x0BAD_5E1E_C70F_0042;
        ushort* saved = stackalloc ushort[4];
        Cpu.ReadSelectors(saved);
        ulong fsBase = Cpu.Rdmsr(MsrFsBase), gsBase = Cpu.Rdmsr(MsrGsBase);
        if (!Checks.Expect("make the LDT page read-only", Guest.MakeReadOnly(ldt), 0)) return;
        if (Checks.Expect("SET_LDT with 4 entries", SetLdt(ldt, 4), 0))
        {
            ushort* want = stackalloc ushort[4];
            want[0] = Ldt1; want[1] = Ldt2; want[2] = Ldt3; want[3] = Ldt2;
            ushort* now = stackalloc ushort[4];
            Traps.ExpectNone();
            Cpu.LoadSelectors(want);
            int rounds = 0;
            bool same = true;
            ulong read = 0;
            for (; rounds < 200 && same; rounds++)
            {
                Hypercall.SchedOp(Xen.SCHEDOP_yield, null);
                for (int spin = 0; spin < 2000; spin++) Cpu.Pause();
                Cpu.ReadSelectors(now);
                for (int i = 0; i < 4; i++) same &= now[i] == want[i];
                read = Cpu.FsRead64((ulong)s_word - FsBase3);
                same &= read == 0x0BAD_5E1E_C70F_0042;
            }
            Cpu.LoadSelectors(saved);
            Hypercall.Call2(Xen.set_segment_base, Xen.SEGBASE_FS, fsBase);
            Hypercall.Call2(Xen.set_segment_base, Xen.SEGBASE_GS_KERNEL, gsBase);
            if (!same)
            {
                Checks.Fail("after ");
                Checks.AppendSigned(rounds);
                Checks.Append(" yields DS ES FS GS = ");
                for (int i = 0; i < 4; i++) { Checks.AppendHex(now[i]); Checks.Append(" "); }
                Checks.Append("fs:[word] = ");
                Checks.AppendHex(read);
            }
            Checks.Expect("SET_LDT with no entries", SetLdt(null, 0), 0);
        }
        Checks.Expect("make the LDT page writable again", Guest.MakeWritable(ldt), 0);
    }
}
