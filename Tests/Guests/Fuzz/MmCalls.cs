namespace Microhv.Guests.Fuzz;

/// <summary>
/// mmu_update, mmuext_op and update_va_mapping built from sandbox targets: page-table writes go to
/// the window L1's playground slots, to entries of our own tables that are still empty, to scratch
/// frames (plain memory), to machine addresses of other domains and to junk; never to an entry that
/// maps something of ours (clearing it would unmap the fuzzer: legitimate on Xen too). Frames that
/// could be cleared, copied over or switched to as page-table base are never sensitive ones of ours.
/// </summary>
internal static unsafe class MmCalls
{
    public static void MmuUpdate(ref HostileCall c)
    {
        int n = 1 + Rng.Int(8);
        ulong* req = Arena.AllocList((ulong)n * 16);
        for (int i = 0; i < n; i++)
        {
            ulong ptr, val = Sandbox.Pte();
            switch (Rng.Int(7))
            {
                case 0: case 1: ptr = Sandbox.PlaygroundPte(); break;
                case 2: ptr = EmptyOwnEntry(); break;
                case 3: ptr = (Sandbox.ScratchMfn[Sandbox.ArenaPages + Rng.Int(Sandbox.ScratchPages - Sandbox.ArenaPages)] << 12) + Rng.Below(512) * 8; break;
                case 4: ptr = (Sandbox.Mfn() << 12) + Rng.Below(512) * 8; break;                       // anyone's frame, foreign included
                case 5: ptr = (Sandbox.Mfn() << 12) | 1; val = Rng.OneIn(2) ? Rng.Below(1UL << 20) : Rng.Next(); break;   // MMU_MACHPHYS_UPDATE
                default: ptr = (Sandbox.Mfn() << 12) + Rng.Below(4096); break;                         // any command bits, misaligned
            }
            if (Rng.OneIn(20)) ptr = Rng.Next();
            if (Sandbox.IsSensitive(ptr >> 12) || MapsOurs(ptr)) ptr = Sandbox.PlaygroundPte();
            req[2 * i] = ptr;
            req[2 * i + 1] = val;
        }
        c.A1 = Rng.OneIn(16) ? Sandbox.Va() : (ulong)req;
        c.A2 = Rng.OneIn(6) ? Sandbox.Count() : (ulong)(uint)n | (Rng.OneIn(10) ? 0x80000000UL : 0);   // MMU_UPDATE_PREEMPTED
        c.A3 = Rng.OneIn(3) ? 0 : Sandbox.Va();
        c.A4 = Rng.OneIn(2) ? 0x7FF0 : Sandbox.DomId() | (Rng.OneIn(4) ? Rng.Below(8) << 16 : 0);
    }

    /// <summary>An entry of one of our page tables that maps something of ours (the window's own slots,
    /// a non-empty entry of the bootstrap tables): writing it could unmap the fuzzer.</summary>
    private static bool MapsOurs(ulong ptr)
    {
        ulong mfn = ptr >> 12, index = (ptr & 0xFFF) / 8;
        if (mfn == Sandbox.WindowL1Mfn) return index < Sandbox.PlaygroundSlot;
        for (ulong t = 0; t < Sandbox.NrPt; t++)
            if (Guest.P2m[Sandbox.PtPfn + t] == mfn) return Cpu.Read64(Sandbox.PtVa + t * 4096 + index * 8) != 0;
        return false;
    }

    /// <summary>Machine address of an entry of our own L4/L3/L2/L1 that is empty now (so writing it
    /// adds a mapping and takes none of ours away), or of the window L1's playground.</summary>
    public static ulong EmptyOwnEntry()
    {
        ulong t = Rng.Below(Sandbox.NrPt);
        ulong* table = (ulong*)(Sandbox.PtVa + t * 4096);
        for (int tries = 0; tries < 8; tries++)
        {
            ulong i = Rng.Below(512);
            if (Cpu.Read64((ulong)&table[i]) == 0) return (Guest.P2m[Sandbox.PtPfn + t] << 12) + i * 8;
        }
        return Sandbox.PlaygroundPte();
    }

    public static void MmuextOp(ref HostileCall c)
    {
        int n = 1 + Rng.Int(6);
        ulong* op = Arena.AllocList((ulong)n * 24);
        for (int i = 0; i < n; i++)
        {
            ulong cmd = Rng.OneIn(10) ? Rng.Next() & 0xFFFFFFFF : Rng.Below(20);
            ulong arg1 = Sandbox.Mfn(), arg2 = Rng.OneIn(2) ? Sandbox.Count() : Sandbox.Mfn();
            switch (cmd)
            {
                case 5:                                     // NEW_BASEPTR: ours (no change) or anyone else's
                    arg1 = Rng.OneIn(2) ? Sandbox.L4Mfn : Sandbox.Mfn();
                    if (Sandbox.IsOwn(arg1) && arg1 != Sandbox.L4Mfn) arg1 = Sandbox.L4Mfn;
                    break;
                case 7: case 9: case 11: arg1 = Sandbox.Va(); arg2 = Sandbox.Va(); break;   // INVLPG_*, vcpumask pointer
                case 8: arg2 = Sandbox.Va(); break;
                case 13: arg1 = Sandbox.Va(); arg2 = Sandbox.Count(); break;                // SET_LDT
                case 17: arg2 = Sandbox.Mfn(); break;                                        // COPY_PAGE src
            }
            op[3 * i] = cmd;
            op[3 * i + 1] = arg1;
            op[3 * i + 2] = arg2;
        }
        c.A1 = Rng.OneIn(16) ? Sandbox.Va() : (ulong)op;
        c.A2 = Rng.OneIn(6) ? Sandbox.Count() : (ulong)(uint)n | (Rng.OneIn(10) ? 0x80000000UL : 0);
        c.A3 = Rng.OneIn(3) ? 0 : Sandbox.Va();
        c.A4 = Rng.OneIn(2) ? 0x7FF0 : Sandbox.DomId();
    }

    /// <summary>update_va_mapping(va, pte, flags) and the _otherdomain form: the address is a
    /// playground page or one no mapping of ours can be at (hole, non-canonical, unmapped).</summary>
    public static void UpdateVaMapping(ref HostileCall c, bool otherDomain)
    {
        switch (Rng.Int(6))
        {
            case 0: c.A1 = Sandbox.NonCanonical(); break;
            case 1: c.A1 = Xen.HYPERVISOR_VIRT_START + Rng.Below(Xen.HYPERVISOR_VIRT_END - Xen.HYPERVISOR_VIRT_START); break;
            case 2: c.A1 = Guest.Layout->VirtBase + 0x40000000UL + Rng.Below(1UL << 20) * 4096; break;
            default: c.A1 = Sandbox.Playground(); break;
        }
        c.A2 = Sandbox.Pte();
        ulong flags = Rng.Below(8);
        if (Rng.OneIn(4)) flags |= Sandbox.Va() & ~7UL;        // UVMF_MULTI's vcpumask pointer
        c.A3 = flags;
        if (otherDomain) c.A4 = Sandbox.DomId();
    }
}
