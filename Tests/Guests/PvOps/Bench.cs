namespace Microhv.Guests.PvOps;

/// <summary>
/// pvops.mode=bench: per-operation costs through the same pv_ops, the median of many repetitions,
/// one line each: `bench: ROW MEDIAN_TICKS REPS` (TSC ticks; Tests/Bench parses it). The workload's
/// `pvops: phase` lines come first. A row with no meaning for the backend is left out (the report
/// says why): null_hypercall, pin_unpin_l4 and evtchn_send_self natively, evtchn_send_self under
/// the shim (it has no IPI channels), irq_cli_sti_bare (the reference for irq_disable_enable: the bare
/// instructions, which a PV kernel in ring 3 cannot run) under a hypervisor. pvops.quick=1 takes fewer repetitions.
/// </summary>
public static unsafe class Bench
{
    private const int MaxReps = 101, QuickReps = 21;
    private const ulong EVTCHNOP_bind_ipi = 7;
    private const ulong TimerDelayNs = 1000000;          // timer_latency: 1 ms ahead
    private struct Samples { public fixed ulong T[MaxReps]; }
    private static Samples s_samples;

    // Pool pages (Workload.cs lists the others): 100 remapped by update_va_mapping, 101 an L1 for the
    // mmu_update rows, 102 an empty L4 for pin_unpin_l4, 103 the data page the L1's entries map.
    private const int RemapPage = 100, BenchL1 = 101, BenchL4 = 102, MappedPage = 103;
    private static ulong* PoolPage(int i) => (ulong*)(Guest.Layout->PagesStart + (ulong)i * 4096);
    private static ulong s_entry;
    private static uint s_ipiPort;
    private static bool s_failed;

    public static void Run()
    {
        int reps = CommandLine.Has("pvops.quick=", "1") ? QuickReps : MaxReps;
        bool pv = !PvOps.IsNative;
        // The rate the ticks below are counted in: calibrated by the PIT natively, from vcpu_time_info under PV.
        Log.Write("pvops: tsc_per_ms "); Log.Dec(PvOps.TscPerMs); Log.Line("");
        if (pv) Measure("null_hypercall", &NullCall, reps);
        Measure("console_write_64", &ConsoleWrite, reps < 21 ? reps : 21);
        Measure("update_va_mapping", &UpdateVa, reps);

        s_entry = PvOps.VirtToMachine(PoolPage(MappedPage)) | 0x67;    // P|RW|U|A|D
        if (Check("alloc_pt bench L1", PvOps.AllocPt(1, PoolPage(BenchL1))))
        {
            Measure("mmu_update_1", &MmuUpdate1, reps);
            Measure("mmu_update_512", &MmuUpdate512, reps);
            PvOps.LazyMmu(true);
            for (int k = 0; k < 512; k++) PvOps.SetPte(PoolPage(BenchL1) + k, 0);
            Check("lazy flush", PvOps.LazyMmu(false));
            Check("release_pt bench L1", PvOps.ReleasePt(1, PoolPage(BenchL1)));
        }
        if (pv) Measure("pin_unpin_l4", &PinUnpinL4, reps);
        Measure("new_baseptr", &NewBaseptr, reps);
        Measure("irq_disable_enable", &IrqPair, reps);
        if (!pv) Measure("irq_cli_sti_bare", &BareIrqPair, reps);
        Measure("trap_bounce", &TrapBounce, reps);
        if (pv && BindIpi()) Measure("evtchn_send_self", &EvtchnSendSelf, reps);
        Measure("timer_latency", &TimerLatency, reps);
        if (s_failed) Log.Line("bench: errors (see above)");
    }

    private static bool Check(string what, long rc)
    {
        if (rc == 0) return true;
        s_failed = true;
        Log.Write("pvops: bench "); Log.Write(what); Log.Write(" failed: -"); Log.Dec((ulong)(-rc)); Log.Line("");
        return false;
    }

    /// <summary>An operation returns its own cost in ticks (most time themselves with two rdtsc).</summary>
    private static void Measure(string row, delegate*<ulong> op, int reps)
    {
        fixed (ulong* s = s_samples.T)
        {
            for (int i = 0; i < reps; i++) s[i] = op();
            for (int i = 1; i < reps; i++)          // insertion sort: reps is small
            {
                ulong v = s[i];
                int j = i - 1;
                while (j >= 0 && s[j] > v) { s[j + 1] = s[j]; j--; }
                s[j + 1] = v;
            }
            Log.Write("bench: "); Log.Write(row); Log.Write(" "); Log.Dec(s[reps / 2]); Log.Write(" "); Log.Dec((ulong)reps); Log.Line("");
        }
    }

    private static ulong NullCall()
    {
        ulong t0 = Cpu.Rdtsc();
        PvOps.NullCall();
        return Cpu.Rdtsc() - t0;
    }

    /// <summary>The two sites alone (not the workload's counting wrappers): natively they are `cli` and `sti` inline.</summary>
    private static ulong IrqPair()
    {
        ulong t0 = Cpu.Rdtsc();
        Paravirt.IrqDisable();
        Paravirt.IrqEnable();
        return Cpu.Rdtsc() - t0;
    }

    private static ulong BareIrqPair() => NativeCpu.BareIrqPair();

    private static ulong NewBaseptr()
    {
        ulong t0 = Cpu.Rdtsc();
        Check("new_baseptr", PvOps.WriteCr3(PvOps.KernelCr3));
        return Cpu.Rdtsc() - t0;
    }

    /// <summary>Remaps one of our pool pages to itself, writable, with a single-page flush.</summary>
    private static ulong UpdateVa()
    {
        ulong va = (ulong)PoolPage(RemapPage);
        ulong pte = PvOps.VirtToMachine((void*)va) | 0x67;
        ulong t0 = Cpu.Rdtsc();
        Check("update_va_mapping", PvOps.UpdateVa(va, pte));
        return Cpu.Rdtsc() - t0;
    }

    /// <summary>One entry of a pinned (PV) L1: one mmu_update request.</summary>
    private static ulong MmuUpdate1()
    {
        ulong t0 = Cpu.Rdtsc();
        Check("mmu_update_1", PvOps.SetPte(PoolPage(BenchL1), s_entry));
        return Cpu.Rdtsc() - t0;
    }

    /// <summary>A whole L1 in lazy MMU mode: the hypercall backend sends one 512-request mmu_update, the ROM four of 128.</summary>
    private static ulong MmuUpdate512()
    {
        ulong* l1 = PoolPage(BenchL1);
        ulong t0 = Cpu.Rdtsc();
        PvOps.LazyMmu(true);
        for (int k = 0; k < 512; k++) PvOps.SetPte(l1 + k, s_entry);
        long rc = PvOps.LazyMmu(false);
        ulong t = Cpu.Rdtsc() - t0;
        Check("mmu_update_512", rc);
        return t;
    }

    /// <summary>Linux's pgd_alloc/pgd_free under Xen: the page made read-only and pinned as an L4, then unpinned and writable again.</summary>
    private static ulong PinUnpinL4()
    {
        ulong t0 = Cpu.Rdtsc();
        long pin = PvOps.AllocPt(4, PoolPage(BenchL4));
        long unpin = PvOps.ReleasePt(4, PoolPage(BenchL4));
        ulong t = Cpu.Rdtsc() - t0;
        Check("pin L4", pin);
        Check("unpin L4", unpin);
        return t;
    }

    private static ulong TrapBounce()
    {
        ulong t0;
        if (PvOps.IsNative)
        {
            t0 = Cpu.Rdtsc();
            NativeCpu.Int3();
            return Cpu.Rdtsc() - t0;
        }
        Traps.Expect(3, 0);
        t0 = Cpu.Rdtsc();
        Cpu.Int3();
        return Cpu.Rdtsc() - t0;
    }

    private static ulong ConsoleWrite()
    {
        byte* line = stackalloc byte[64];
        for (int i = 0; i < 63; i++) line[i] = (byte)'.';
        line[63] = (byte)'\n';
        ulong t0 = Cpu.Rdtsc();
        Paravirt.ConsoleWrite(line, 64);
        return Cpu.Rdtsc() - t0;
    }

    /// <summary>An IPI channel to our own vCPU 0 (EVTCHNOP_bind_ipi); false where there is none (the shim).</summary>
    private static bool BindIpi()
    {
        uint* bind = stackalloc uint[2];
        bind[0] = 0; bind[1] = 0;
        long rc = Hypercall.EventChannelOp(EVTCHNOP_bind_ipi, bind);
        if (rc != 0) return false;
        s_ipiPort = bind[1];
        return true;
    }

    /// <summary>EVTCHNOP_send to our own port with events unmasked, until the upcall has counted it.</summary>
    private static ulong EvtchnSendSelf()
    {
        uint port = s_ipiPort;
        uint before = Events.CountOf(port);
        ulong t0 = Cpu.Rdtsc();
        long rc = Hypercall.EventChannelOp(Xen.EVTCHNOP_send, &port);
        for (int spin = 0; spin < 1000000 && Events.CountOf(port) == before; spin++) Cpu.Pause();
        ulong t = Cpu.Rdtsc() - t0;
        if (Check("evtchn_send", rc) && Events.CountOf(port) == before) Check("evtchn_send delivery", -1);
        return t;
    }

    /// <summary>A one-shot timer 1 ms ahead, halted for: the ticks from the deadline to the interrupt handler or upcall (0 if early).</summary>
    private static ulong TimerLatency()
    {
        ulong delay = TimerDelayNs / 1000000 * PvOps.TscPerMs;
        PvOps.IrqDisable();
        ulong before = PvOps.TimerTicks();
        ulong t0 = Cpu.Rdtsc();
        long rc = PvOps.SetTimer(PvOps.TimeNs() + TimerDelayNs);
        for (int spins = 0; PvOps.TimerTicks() == before && spins < 1000; spins++)
        {
            PvOps.SafeHalt();
            PvOps.IrqDisable();
        }
        PvOps.IrqEnable();
        Check("set_timer", rc);
        ulong handler = PvOps.IsNative ? Hardware.LastTickTsc : Events.LastUpcallTsc;
        if (PvOps.TimerTicks() == before) { Check("timer never fired", -1); return 0; }
        return handler > t0 + delay ? handler - t0 - delay : 0;
    }
}
