namespace Microhv.Guests.Fuzz;

/// <summary>
/// Structured requests for the hypercalls that take a command and an argument structure: each
/// structure is laid out with Xen's field offsets (xen/include/public) and filled with biased
/// values, sometimes replaced by a wild pointer. Grant mappings go to playground addresses (or the
/// window L1's playground PTEs with GNTMAP_contains_pte); vcpu_info and the runstate area to the
/// victim scratch page or the playground.
/// </summary>
internal static unsafe class DomainCalls
{
    private static ulong Pointer(ulong* structure) => Rng.OneIn(12) ? Sandbox.Va() : (ulong)structure;

    public static void MemoryOp(ref HostileCall c)
    {
        ulong cmd = Rng.OneIn(8) ? Rng.Next() & 0xFFFFFFFF : Rng.Below(32);
        if (Rng.OneIn(8)) cmd |= Rng.Below(1UL << 20) << 6;         // a continuation's start extent
        ulong* s = Arena.Alloc(64);
        if (cmd % 64 <= 6 || cmd % 64 == 11)                         // reservation ops, exchange
        {
            int n = 1 + Rng.Int(16);
            ulong* extents = Arena.Alloc((ulong)n * 8);
            for (int i = 0; i < n; i++) extents[i] = Rng.OneIn(3) ? Rng.Below(1UL << 20) : Sandbox.Mfn();
            s[0] = Rng.OneIn(8) ? Sandbox.Va() : (ulong)extents;          // extent_start
            s[1] = Rng.OneIn(4) ? Sandbox.Count() : (ulong)n;             // nr_extents
            s[2] = Rng.OneIn(3) ? Rng.Below(20) : 0 | (Rng.OneIn(4) ? Rng.Below(1UL << 32) << 32 : 0);   // extent_order, mem_flags
            s[3] = Sandbox.DomId();
        }
        else if (cmd % 64 == 10 || cmd % 64 == 9)                   // memory_map: nr_entries, buffer
        {
            s[0] = Sandbox.Count() & 0xFFFFFFFF;
            s[1] = Sandbox.Va();
        }
        c.A1 = cmd;
        c.A2 = Pointer(s);
    }

    public static void GrantTableOp(ref HostileCall c)
    {
        ulong cmd = Rng.OneIn(10) ? Rng.Next() & 0xFFFFFFFF : Rng.Below(14);
        int n = 1 + Rng.Int(6);
        ulong* ops = Arena.AllocList((ulong)n * 48);
        for (int i = 0; i < n; i++)
        {
            ulong* op = ops + i * 6;
            switch (cmd)
            {
                case 0:                                              // map_grant_ref {host_addr; flags; ref; dom; status; handle; dev_bus_addr}
                    bool pte = Rng.OneIn(4);
                    op[0] = pte ? Sandbox.PlaygroundPte() : Rng.OneIn(8) ? Sandbox.NonCanonical() : Sandbox.Playground() & ~0xFFFUL;
                    ulong flags = Rng.OneIn(8) ? Rng.Next() & 0xFFFFFFFF : 2 | Rng.Below(2) | Rng.Below(2) << 2 | Rng.Below(2) << 3 | (pte ? 16UL : 0);
                    op[1] = flags | (Rng.OneIn(3) ? Rng.Below(16) : Rng.OneIn(2) ? 8 + Rng.Below(8) : Rng.Next() & 0xFFFFFFFF) << 32;
                    op[2] = Sandbox.DomId();
                    break;
                case 1:                                              // unmap_grant_ref {host_addr; dev_bus_addr; handle; status}
                    op[0] = Rng.OneIn(4) ? 0 : Rng.OneIn(4) ? Sandbox.PlaygroundPte() : Sandbox.Playground() & ~0xFFFUL;
                    op[1] = Rng.OneIn(2) ? 0 : Sandbox.Mfn() << 12;
                    op[2] = Rng.OneIn(2) ? Rng.Below(16) : Rng.Next() & 0xFFFFFFFF;
                    break;
                case 2:                                              // setup_table {dom; nr_frames; frame_list; status}
                    op[0] = Sandbox.DomId() | (Rng.OneIn(2) ? Rng.Below(5) : Sandbox.Count() & 0xFFFFFFFF) << 32;
                    op[1] = Sandbox.Va();
                    break;
                case 6: case 9: case 10:                             // query_size, get_status_frames, get_version
                    op[0] = Sandbox.DomId() | (Rng.OneIn(2) ? Rng.Below(5) : Sandbox.Count() & 0xFFFFFFFF) << 32;
                    op[1] = Sandbox.Va();
                    break;
                case 8:                                              // set_version
                    op[0] = Rng.OneIn(2) ? 1 + Rng.Below(2) : Rng.Next() & 0xFFFFFFFF;
                    break;
                default:                                             // copy, transfer, unmap_and_replace, swap, cache_flush...
                    op[0] = Rng.OneIn(2) ? Sandbox.Mfn() : Rng.Below(16);
                    op[1] = Sandbox.DomId() | (ulong)Rng.Below(4096) << 16;
                    op[2] = Rng.OneIn(2) ? Sandbox.Mfn() : Rng.Below(16);
                    op[3] = Sandbox.DomId() | (ulong)Rng.Below(4096) << 16;
                    op[4] = Rng.Below(8192) | Rng.Below(8) << 16;
                    break;
            }
        }
        if (Rng.OneIn(8)) cmd |= Rng.Below(1UL << 20) << 12;            // continuation bits
        c.A1 = cmd;
        c.A2 = Pointer(ops);
        c.A3 = Rng.OneIn(4) ? Sandbox.Count() : (ulong)n;
    }

    public static void EventChannelOp(ref HostileCall c)
    {
        ulong cmd = Rng.OneIn(10) ? Rng.Next() & 0xFFFFFFFF : Rng.Below(16);
        ulong* s = Arena.Alloc(64);
        ulong* fields = c.Nr == 16 ? s + 1 : s;                      // event_channel_op_compat: {cmd; union}
        fields[0] = Rng.OneIn(2) ? Sandbox.DomId() | (Rng.OneIn(2) ? Rng.Below(64) : Rng.Next() & 0xFFFFFFFF) << 32 : Rng.Below(64) | Rng.Below(64) << 32;
        fields[1] = Rng.OneIn(2) ? Rng.Below(64) | Rng.Below(4) << 32 : Sandbox.Value();
        fields[2] = Rng.OneIn(2) ? Rng.Below(64) : Sandbox.Value();
        if (cmd == 11 || cmd == 12) fields[0] = Sandbox.Mfn();         // init_control / expand_array: control_gfn, array_gfn
        if (c.Nr == 16) { s[0] = cmd; c.A1 = Pointer(s); return; }
        c.A1 = cmd;
        c.A2 = Pointer(s);
    }

    public static void VcpuOp(ref HostileCall c)
    {
        ulong cmd = Rng.OneIn(10) ? Rng.Next() & 0xFFFFFFFF : Rng.Below(16);
        ulong vcpu = Rng.OneIn(4) ? (Rng.OneIn(2) ? 1 + Rng.Below(40) : Rng.Next()) : 0;
        if (cmd == 2 && (uint)vcpu == 0) cmd = 3;                    // never VCPUOP_down of vCPU 0: is_up instead
        ulong* s = Arena.Alloc(64);
        switch (cmd)
        {
            case 5:                                                  // register_runstate_memory_area {addr}
                s[0] = Rng.OneIn(2) ? Sandbox.ScratchPage(Sandbox.VictimPage) + Rng.Below(4096) : Rng.OneIn(2) ? Sandbox.Playground() : Sandbox.Va();
                break;
            case 10:                                                 // register_vcpu_info {mfn; offset; rsvd}
                s[0] = Rng.OneIn(2) ? Sandbox.ScratchMfn[Sandbox.VictimPage] : Sandbox.Mfn();
                s[1] = Rng.OneIn(2) ? Rng.Below(4096) : Rng.OneIn(2) ? 4096 - 64 + Rng.Below(64) : Rng.Next();
                break;
            case 6: case 8:                                          // set_periodic_timer {period_ns}, set_singleshot_timer {timeout; flags}
                s[0] = Rng.OneIn(2) ? Sandbox.Count() : 1000000UL * (1 + Rng.Below(20));
                s[1] = Rng.Below(4);
                break;
        }
        c.A1 = cmd;
        c.A2 = vcpu;
        c.A3 = Pointer(s);
    }

    public static void SchedOp(ref HostileCall c)
    {
        ulong* s = Arena.Alloc(64);
        ulong cmd;
        switch (Rng.Int(8))
        {
            case 0: case 1: cmd = 0; break;                          // yield
            case 2: cmd = 5; s[0] = Rng.Below(8); break;             // shutdown_code: only sets the code
            case 3: cmd = 4; s[0] = Sandbox.DomId() | Rng.Below(8) << 32; break;   // remote_shutdown: we are not privileged
            case 4:                                                  // poll {ports; nr_ports; timeout}: always with a timeout (1 ns after boot: expired)
                cmd = 3;
                s[0] = Rng.OneIn(2) ? (ulong)(s + 4) : Sandbox.Va();
                s[1] = Rng.OneIn(2) ? Rng.Below(4) : Sandbox.Count();
                s[2] = 1;
                if (s[1] != 0 && s[1] <= 128 && s[0] == (ulong)(s + 4)) s[1] = 1 + Rng.Below(3);
                break;
            case 5: cmd = 7; break;                                  // pin_override: privileged
            default: cmd = 8 + (Rng.OneIn(2) ? Rng.Below(8) : Rng.Next() & 0xFFFFFFF); break;   // unknown
        }
        if (c.Nr == 6 && cmd != 0) cmd = 3 + Rng.Below(100);          // sched_op_compat: 0 yield, 1 block, 2 shutdown; the rest unknown
        c.A1 = cmd;
        c.A2 = c.Nr == 6 ? Sandbox.Value() : cmd == 3 && Rng.OneIn(4) ? Sandbox.Va() : (ulong)s;
        if (cmd == 3 && c.A2 != (ulong)s) c.A1 = 0;                  // a poll struct we do not control could have no timeout
    }

    public static void PhysdevOp(ref HostileCall c)
    {
        ulong cmd = Rng.OneIn(10) ? Rng.Next() & 0xFFFFFFFF : Rng.Below(32);
        ulong* s = Arena.Alloc(64);
        ulong* fields = c.Nr == 19 ? s + 1 : s;                      // physdev_op_compat: {cmd; union}
        fields[0] = Rng.OneIn(2) ? Rng.Below(8) : Sandbox.Value();
        fields[1] = Sandbox.Value();
        if (c.Nr == 19) { s[0] = cmd; c.A1 = Pointer(s); return; }
        c.A1 = cmd;
        c.A2 = Pointer(s);
    }
}
