namespace Microhv.Guests.Fuzz;

/// <summary>One hypercall: number and five arguments, and what it may have undone of the fuzzer's
/// own set-up (its trap table, its callbacks), to re-install after it.</summary>
internal struct HostileCall
{
    public ulong Nr, A1, A2, A3, A4, A5;
    public bool RestoreTraps, RestoreCallbacks;
}

/// <summary>
/// Chooses the next hostile hypercall. Numbers 0–63 with biased arguments, except that the ones
/// whose random form could destroy the fuzzer itself are always built structurally (their
/// requests name only sandbox targets: Calls*.cs), and a few are never made. Never made, because
/// on Xen too they would legitimately end or freeze the caller: iret (23) from a random stack or in a
/// multicall (it is made through a context of ours: Iret below), sched_op/sched_op_compat block, shutdown and watchdog, vcpu_op down of vCPU 0, poll
/// without a timeout. Allowed but undone after: set_trap_table (cleared, then ours re-installed,
/// so no junk entry survives for an INT n to jump through), set_callbacks, callback_op. Privileged
/// instructions never far-jump to a selector that could be 32-bit code (PrivOps.cs), and no request
/// names a live mapping of ours (MmCalls.cs) or lets a count run into junk (Arena.AllocList).
/// </summary>
internal static unsafe class Generator
{
    public static void Next(ref HostileCall c, int depth)
    {
        c = default;
        int nr = Rng.Int(64);
        c.Nr = (ulong)nr;
        switch (nr)
        {
            case 1: MmCalls.MmuUpdate(ref c); return;
            case 13:
                if (depth == 0) { MulticallBuilder.Build(ref c); return; }
                c.Nr = 17; c.A1 = Rng.Below(12); c.A2 = Sandbox.Va(); return;   // no nesting: xen_version instead
            case 14: MmCalls.UpdateVaMapping(ref c, false); return;
            case 22: MmCalls.UpdateVaMapping(ref c, true); return;
            case 26: MmCalls.MmuextOp(ref c); return;
            case 12: DomainCalls.MemoryOp(ref c); return;
            case 20: DomainCalls.GrantTableOp(ref c); return;
            case 16: case 32: DomainCalls.EventChannelOp(ref c); return;
            case 24: DomainCalls.VcpuOp(ref c); return;
            case 6: case 29: DomainCalls.SchedOp(ref c); return;
            case 19: case 33: DomainCalls.PhysdevOp(ref c); return;
            case 23:
                if (depth == 0) { Iret(ref c); return; }
                c.Nr = 17; c.A1 = 0; c.A2 = 0; return;                                // no iret entry: xen_version instead
        }
        c.A1 = Sandbox.Value(); c.A2 = Sandbox.Value(); c.A3 = Sandbox.Value(); c.A4 = Sandbox.Value(); c.A5 = Sandbox.Value();
        // console_io's write prints any length, as Xen's does, through continuations: a count of gigabytes from
        // a mapped buffer would keep the run printing for minutes. Up to 128 KiB still spans several entries.
        if (nr == 18 && (uint)c.A1 == 0) c.A2 &= 0x1FFFF;
        if (nr == 0 || nr == 3) c.RestoreTraps = true;
        if (nr == 4 || nr == 30 || nr == 28) c.RestoreCallbacks = true;
        if (nr == 0 && Rng.OneIn(2)) c.A1 = (ulong)TrapTableJunk();
    }

    /// <summary>
    /// iret through a context of ours (Cpu.IretTo: A1 CS, A2 SS, A3 RIP, 0 for the landing after the call,
    /// A4 its flags) that the CPU may refuse: a selector of the hypervisor's (its code and data, the TSS, a
    /// 32-bit ring-1 code one on Xen), past the GDT's hypervisor entries, null, an LDT one (there is no
    /// LDT), a data segment as CS or code as SS; a non-canonical RIP, one in the hypervisor's range or
    /// unmapped; VGCF_in_syscall. The exit's IRETQ then faults in ring 0 and the fault must come back to us
    /// as our own #GP, #NP or #SS at the target (Hypervisor/Traps/ExitFault.cs), which abandons the call.
    /// Never RPL 3 (a return to user mode, which we have no page tables for: legitimately fatal) and never
    /// a selector that could be 32-bit code of ring 3 (FLAT_RING3_CS32, our GDT's entries): the landing
    /// would run in compatibility mode.
    /// </summary>
    private static void Iret(ref HostileCall c)
    {
        ulong cs = Rng.Int(4) switch
        {
            0 => 0xE030,                                                         // FLAT_KERNEL_CS, RPL 0
            1 => Rng.OneIn(2) ? 0xE008UL + Rng.Below(8) * 8 : 0,                // the hypervisor's own, or null
            2 => 0xF000 + Rng.Below(0x200) * 8,                                  // past the hypervisor's entries
            _ => 4 + Rng.Below(0x2000) * 8,                                      // an LDT selector
        };
        if (cs == 0xE020) cs = 0xE028;                                           // FLAT_RING3_CS32: data instead
        ulong ss = Rng.Int(4) switch
        {
            0 => 0xE028,                                                         // FLAT_KERNEL_SS, RPL 0
            1 => Rng.OneIn(2) ? 0xE008UL + Rng.Below(8) * 8 : 0,
            2 => 0xF000 + Rng.Below(0x200) * 8,
            _ => 4 + Rng.Below(0x2000) * 8,
        };
        ulong rip = Rng.Int(4) switch
        {
            0 => Sandbox.NonCanonical(),
            1 => Rng.OneIn(2) ? 0xFFFF82D080000000UL + Rng.Below(1UL << 20) : Guest.Layout->VirtBase + 0x40000000UL,
            _ => 0,                                                              // the landing: only the selectors are wrong
        };
        c.Nr = 23; c.A1 = cs; c.A2 = ss; c.A3 = rip; c.A4 = Rng.OneIn(4) ? 1UL << 8 : 0;   // VGCF_in_syscall
    }

    /// <summary>A trap table of random entries (vector, flags, selector, address), not always terminated.</summary>
    private static unsafe ulong* TrapTableJunk()
    {
        int n = 1 + Rng.Int(8);
        ulong* t = Arena.Alloc((ulong)n * 16 + 16);
        for (int i = 0; i < n; i++)
        {
            t[2 * i] = Rng.Below(300) | Rng.Below(8) << 8 | (Rng.OneIn(2) ? 0xE033UL : Rng.Below(0x10000)) << 16;
            t[2 * i + 1] = Sandbox.Va();
        }
        if (Rng.OneIn(2)) { t[2 * n] = 0; t[2 * n + 1] = 0; }
        return t;
    }
}
