namespace Microhv.Guests.Fuzz;

/// <summary>
/// What the fuzzer may hand the hypervisor without killing itself. Its memory splits in two: what
/// it lives on (image, stack, heap, start_info, p2m, console ring: "sensitive" frames, never named
/// by a request that could write them) and a sandbox — 40 scratch frames mapped writable in the
/// window (slots 2..41), the window's playground slots (43..511) that requests may map and unmap
/// at will, its own page-table frames (read-only to it, so only the hypervisor's validation decides)
/// and unmapped spare frames at the top of its memory. Pointers handed to the hypervisor point into
/// the scratch slots, whose overflow runs into the playground, never into memory the fuzzer uses.
/// </summary>
internal static unsafe class Sandbox
{
    public const int ScratchSlot = 2, ScratchPages = 40, GrantSlot = 42, PlaygroundSlot = 43, WindowSlots = 512;
    /// <summary>Scratch pages 0..7 hold the request structures of the current call, 36..39 its request
    /// arrays (Arena.AllocList); 8..39 are targets, 35 the one vcpu_info and the runstate area go to.</summary>
    public const int ArenaPages = 8, VictimPage = 35, FirstListPage = 36;
    public const int SpareFrames = 64;

    public static ulong ScratchVa, PlaygroundVa, GrantVa;
    /// <summary>The CPU has no NX: the scratch pages are mapped executable.</summary>
    public static bool ScratchExecutable;
    public static ulong* ScratchMfn;          // ScratchPages entries
    public static ulong WindowL1Mfn, L4Mfn, SharedInfoMfn, ConsoleMfn;
    public static ulong PtVa, PtPfn, NrPt;    // the bootstrap page tables (contiguous pfns)
    public static ulong OwnMin, OwnMax;       // range of our machine frames
    private static byte* s_own;               // one byte per frame in [OwnMin, OwnMax]: 0 not ours, 1 sensitive, 2 sandbox
    private const byte NotOurs = 0, Sensitive = 1, Ours = 2;

    public static ulong ScratchPage(int i) => ScratchVa + (ulong)i * 4096;

    public static bool Initialize()
    {
        ScratchVa = Guest.WindowPage(ScratchSlot);
        GrantVa = Guest.WindowPage(GrantSlot);
        PlaygroundVa = Guest.WindowPage(PlaygroundSlot);
        ScratchMfn = (ulong*)Internal.Runtime.KernelHeap.Allocate((nuint)(ScratchPages * 8));
        for (int i = 0; i < ScratchPages; i++)
        {
            ScratchMfn[i] = Guest.MfnOf(Guest.Page(1 + i));
            if (MapNoExecute(ScratchSlot + i, ScratchMfn[i]) == 0) continue;
            ScratchExecutable = true;
            if (Guest.MapInWindow(ScratchSlot + i, ScratchMfn[i], true) != 0) return false;
        }
        WindowL1Mfn = Guest.MfnOf(Guest.WindowL1);
        PtVa = *(ulong*)(Guest.StartInfo + Xen.SI_pt_base);
        PtPfn = Guest.PfnOf((void*)PtVa);
        NrPt = *(ulong*)(Guest.StartInfo + Xen.SI_nr_pt_frames);
        L4Mfn = Guest.P2m[PtPfn];
        SharedInfoMfn = *(ulong*)(Guest.StartInfo + Xen.SI_shared_info) >> 12;
        ConsoleMfn = Guest.IsInitialDomain ? 0 : *(ulong*)(Guest.StartInfo + Xen.SI_console_mfn);

        OwnMin = ~0UL; OwnMax = 0;
        for (ulong p = 0; p < Guest.NrPages; p++)
        {
            ulong m = Guest.P2m[p];
            if (m < OwnMin) OwnMin = m;
            if (m > OwnMax) OwnMax = m;
        }
        ulong span = OwnMax - OwnMin + 1;
        s_own = (byte*)Internal.Runtime.KernelHeap.Allocate((nuint)span);
        for (ulong i = 0; i < span; i++) s_own[i] = NotOurs;
        for (ulong p = 0; p < Guest.NrPages; p++) s_own[Guest.P2m[p] - OwnMin] = p < Guest.NrPages - SpareFrames ? Sensitive : Ours;
        for (int i = 0; i < ScratchPages; i++) s_own[ScratchMfn[i] - OwnMin] = Ours;
        for (ulong i = 0; i < NrPt; i++) s_own[Guest.P2m[PtPfn + i] - OwnMin] = Ours;
        s_own[WindowL1Mfn - OwnMin] = Ours;
        if (ConsoleMfn >= OwnMin && ConsoleMfn <= OwnMax) s_own[ConsoleMfn - OwnMin] = Sensitive;
        return true;
    }

    /// <summary>
    /// Scratch pages are mapped no-execute (where the CPU has NX): junk callbacks and trap-table entries point
    /// into them, and executing what requests wrote there as our kernel's code can do anything, `xchg eax, esp`
    /// (one byte, 0x94) among it, after which no bounce frame can be written and the domain is crashed,
    /// rightly, as Xen would (the likely cause of seed 2's old crash, "bounce frame: fault writing the guest kernel stack"
    /// with RSP cut to 32 bits). With NX such a callback faults at its first fetch instead (a "wild" trap).
    /// </summary>
    private static long MapNoExecute(int slot, ulong mfn)
        => Hypercall.UpdateVaMapping(Guest.WindowPage(slot), Guest.KernelPte(mfn, true) | 1UL << 63, Xen.UVMF_INVLPG);

    /// <summary>One of our frames the fuzzer lives on: a request must not be able to write it.</summary>
    public static bool IsSensitive(ulong mfn)
        => mfn == ConsoleMfn || (mfn >= OwnMin && mfn <= OwnMax && s_own[mfn - OwnMin] == Sensitive);

    /// <summary>From our own p2m, not the M2P, which requests may rewrite.</summary>
    public static bool IsOwn(ulong mfn) => mfn >= OwnMin && mfn <= OwnMax && s_own[mfn - OwnMin] != NotOurs;

    /// <summary>A machine frame, biased toward the interesting ones; never a sensitive one of ours.</summary>
    public static ulong Mfn()
    {
        ulong m;
        switch (Rng.Int(9))
        {
            case 0: m = ScratchMfn[Rng.Int(ScratchPages)]; break;
            case 1: m = Guest.P2m[PtPfn + Rng.Below(NrPt)]; break;
            case 2: m = Rng.OneIn(2) ? WindowL1Mfn : L4Mfn; break;
            case 3: m = Guest.P2m[Guest.NrPages - 1 - Rng.Below(SpareFrames)]; break;
            case 4: m = SharedInfoMfn; break;
            case 5: m = OwnMin > 16384 ? OwnMin - 1 - Rng.Below(16384) : Rng.Below(16384); break;   // other domains, built before us
            case 6: m = OwnMax + 1 + Rng.Below(16384); break;                                      // other domains, built after us
            case 7: m = Rng.Below(0x40000); break;
            default: m = Special(); break;
        }
        return IsSensitive(m) ? ScratchMfn[Rng.Int(ScratchPages)] : m;
    }

    private static ulong Special()
    {
        switch (Rng.Int(6))
        {
            case 0: return 0;
            case 1: return ~0UL;
            case 2: return ~0UL >> 12;
            case 3: return 1UL << 40 | Rng.Below(1024);
            case 4: return 0xFFFFFFFF;
            default: return Rng.Next();
        }
    }

    /// <summary>A guest virtual address the hypervisor may read or write on our behalf.</summary>
    public static ulong Va()
    {
        switch (Rng.Int(14))
        {
            case 0: return ScratchVa + (ArenaPages * 4096UL) + Rng.Below((ScratchPages - ArenaPages) * 4096UL) & ~7UL;
            case 1: return ScratchVa + Rng.Below(ScratchPages * 4096UL);
            case 2: return ScratchVa + ScratchPages * 4096UL - 1 - Rng.Below(64);   // runs off the end into the playground
            case 3: return Playground();
            case 4: return PtVa + Rng.Below(NrPt) * 4096 + Rng.Below(512) * 8;          // our page tables: read-only
            case 5: return Xen.MACH2PHYS_VIRT_START + Rng.Below(1UL << 20) * 8;       // the read-only M2P
            case 6: return 0xFFFF82D080000000UL + Rng.Below(1UL << 24);                 // Microhv's own image
            case 7: return Xen.HYPERVISOR_VIRT_START + Rng.Below(Xen.HYPERVISOR_VIRT_END - Xen.HYPERVISOR_VIRT_START);
            case 8: return NonCanonical();
            case 9: { int k = Rng.Int(4); return k == 0 ? 0 : k == 1 ? 0x10 : k == 2 ? 0x20 : Rng.Below(0x10000); }
            case 10: return Guest.Layout->VirtBase + 0x40000000UL + Rng.Below(1UL << 20) * 4096;   // unmapped
            case 11: return Rng.OneIn(2) ? 0xFFFFFFFFFFFFF000UL + Rng.Below(4096) : 0x00007FFFFFFFF000UL + Rng.Below(4096);
            case 12: return Rng.Next();
            default: return ScratchPage(ArenaPages + Rng.Int(ScratchPages - ArenaPages));
        }
    }

    public static ulong NonCanonical()
    {
        switch (Rng.Int(3))
        {
            case 0: return 0x0000800000000000UL;
            case 1: return 0x8000000000000000UL | Rng.Below(1UL << 40);
            default: return (Rng.Next() & 0x00007FFFFFFFFFFFUL) | 0x0000800000000000UL | (Rng.Next() & 0x7FFF000000000000UL);
        }
    }

    /// <summary>A page in the playground: slots requests may map, remap and unmap.</summary>
    public static ulong Playground() => PlaygroundVa + Rng.Below(WindowSlots - PlaygroundSlot) * 4096 + (Rng.OneIn(2) ? 0 : Rng.Below(4096));

    /// <summary>Machine address of a playground slot's PTE in the window L1.</summary>
    public static ulong PlaygroundPte() => (WindowL1Mfn << 12) + (ulong)(PlaygroundSlot + Rng.Int(WindowSlots - PlaygroundSlot)) * 8;

    /// <summary>A page-table entry: a frame from <see cref="Mfn"/> with flag combinations valid and not.</summary>
    public static ulong Pte()
    {
        if (Rng.OneIn(12)) return 0;
        ulong flags;
        switch (Rng.Int(6))
        {
            case 0: flags = 0x25; break;                       // present, user, accessed: read-only
            case 1: flags = 0x67; break;                       // + writable, dirty
            case 2: flags = 0x63 | 0x80; break;                // PSE
            case 3: flags = 0x7 | 0x100 | 0x18; break;         // global, PCD/PWT
            case 4: flags = 0x67 | (1UL << 63); break;         // NX
            default: flags = Rng.Next() & 0xFFF; break;
        }
        if (Rng.OneIn(16)) flags |= Rng.Next() & 0x7FF0000000000000UL;   // reserved and software bits
        return (Mfn() << 12 & 0x000FFFFFFFFFF000UL) | flags;
    }

    /// <summary>A count: the edges of every integer width and the absurd.</summary>
    public static ulong Count()
    {
        switch (Rng.Int(12))
        {
            case 0: return 0;
            case 1: return 1;
            case 2: case 3: return 2 + Rng.Below(15);
            case 4: return 0x7FFFFFFF;
            case 5: return 0x80000000UL + Rng.Below(2);
            case 6: return 0xFFFFFFFEUL + Rng.Below(2);
            case 7: return 0x100000000UL;
            case 8: return ~0UL;
            case 9: return 1UL << Rng.Int(64);
            case 10: return (1UL << Rng.Int(64)) - 1;
            default: return Rng.Next();
        }
    }

    /// <summary>Any argument: an address, a count, a frame or a random word.</summary>
    public static ulong Value()
    {
        switch (Rng.Int(5))
        {
            case 0: case 1: return Va();
            case 2: return Count();
            case 3: return Mfn();
            default: return Rng.OneIn(2) ? Rng.Below(32) : Rng.Next();
        }
    }

    /// <summary>A domain id: ours, the others, the special ids, junk.</summary>
    public static ulong DomId()
    {
        switch (Rng.Int(6))
        {
            case 0: return 0x7FF0;                               // DOMID_SELF
            case 1: case 2: return Rng.Below(6);
            case 3: return 0x7FF1 + Rng.Below(6);                // DOMID_IO, XEN, COW, INVALID, IDLE
            case 4: return 0xFFFF;
            default: return Rng.Next() & 0xFFFF;
        }
    }
}
