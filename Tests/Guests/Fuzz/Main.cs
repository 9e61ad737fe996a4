using System.Runtime.InteropServices;

namespace Microhv.Guests.Fuzz;

/// <summary>
/// The hostile-guest fuzzer's entry. Command line (start_info.cmd_line): <c>seed=S calls=N</c>
/// (default 1 and 100000), <c>log=1</c> to print every call before it is made (<c>logfrom=K</c>:
/// from call K on), <c>mode=canary fuzzers=N wait=S</c> for the canary domain instead. Each call is a
/// hostile hypercall (one in eight a privileged or faulting instruction) drawn from (seed, call
/// number); at the end the fuzzer prints <c>fuzz: seed S: N calls done</c> and powers off, which is
/// what the canary waits for (Canary.cs).
/// </summary>
internal static unsafe class FuzzMain
{
    private static ulong s_seed = 1, s_calls = 100000, s_logFrom = ~0UL, s_n;
    private static HostileCall s_call;
    private static ulong s_probe, s_pa, s_pb, s_pc;
    private static long s_result;
    private static ulong s_hypercalls, s_probes, s_ok, s_leaks;
    private static uint s_timerPort;
    private static ulong s_lastMask;

    [UnmanagedCallersOnly(EntryPoint = "fuzz_main")]
    private static void Main(byte* startInfo, GuestLayout* layout)
    {
        Internal.Runtime.KernelHeap.Initialize((byte*)layout->HeapStart, (byte*)layout->HeapEnd);
        Internal.Runtime.Failure.Handler = &RuntimeFailure;
        Guest.Initialize(startInfo, layout);
        Internal.Runtime.ModuleStartup.Initialize((void**)layout->ModulesStart, (void**)layout->ModulesEnd);
        long trapRc = FuzzTraps.Install();
        long windowRc = Guest.CreateWindow();
        long sharedRc = Guest.WindowL1 != null ? Guest.MapSharedInfo() : -1;
        XenConsole.Initialize();
        if (trapRc != 0 || windowRc != 0 || sharedRc != 0) Fail("fuzz: set-up failed (trap table, window or shared_info)");
        FuzzTraps.InstallCallbacks();

        byte* cmd = startInfo + Xen.SI_cmd_line;
        if (Options.IsCanary(cmd))
        {
            Canary.Run((int)Options.Number(cmd, "fuzzers=", 1), Options.Number(cmd, "wait=", 600));
            return;
        }
        s_seed = Options.Number(cmd, "seed=", 1);
        s_calls = Options.Number(cmd, "calls=", 100000);
        if (Options.Number(cmd, "log=", 0) != 0) s_logFrom = Options.Number(cmd, "logfrom=", 0);
        if (Guest.NrPages < 2048) Fail("fuzz: needs pages=2048 or more (its spare frames must lie outside the bootstrap mapping)");
        if (!Sandbox.Initialize()) Fail("fuzz: cannot map the scratch pages");

        XenConsole.Write("fuzz: seed "); XenConsole.Udec(s_seed); XenConsole.Write(", "); XenConsole.Udec(s_calls);
        XenConsole.Line(Sandbox.ScratchExecutable ? " calls (scratch pages executable: no NX)" : " calls");
        for (s_n = 0; s_n < s_calls; s_n++)
        {
            Rng.Start(s_seed, s_n);
            Arena.Reset();
            FuzzTraps.InCall = true;
            if (Rng.OneIn(8))
            {
                PrivOps.Choose(out s_probe, out s_pa, out s_pb, out s_pc);
                if (s_n >= s_logFrom) Log.Probe(s_seed, s_n, s_probe, s_pa, s_pb, s_pc);
                FuzzTraps.InProbe = true;
                Cpu.CheckRun(&RunProbe);
                FuzzTraps.InProbe = false;
                s_probes++;
            }
            else
            {
                Generator.Next(ref s_call, 0);
                if (s_n >= s_logFrom) Log.Call(s_seed, s_n, ref s_call);
                ulong before = FuzzTraps.Unexpected, wildBefore = FuzzTraps.Wild;
                s_result = -9999;
                Cpu.CheckRun(&RunCall);
                FuzzTraps.InProbe = false;                   // an iret's, when its refusal abandoned the call
                if (FuzzTraps.Unexpected != before) Log.Trap("unexpected", s_seed, s_n, ref s_call);
                else if (FuzzTraps.Wild != wildBefore && FuzzTraps.Wild <= 16) Log.Trap("wild", s_seed, s_n, ref s_call);
                s_hypercalls++;
                if (s_result == 0) s_ok++;
                AfterCall();
            }
            FuzzTraps.InCall = false;
            if (s_n >= s_logFrom) WatchMask();
            CheckOwnMappings();
            if ((s_n & 4095) == 4095) LookForLeaks();
            if ((s_n + 1) % 100000 == 0 && s_n + 1 != s_calls)
            {
                XenConsole.Write("fuzz: seed "); XenConsole.Udec(s_seed); XenConsole.Write(": "); XenConsole.Udec(s_n + 1); XenConsole.Line(" calls");
            }
        }
        // Our console_io writes may have left a line open on the hypervisor console: end it first.
        byte newline = (byte)'\n';
        Hypercall.ConsoleWrite(&newline, 1);
        XenConsole.Write("fuzz: seed "); XenConsole.Udec(s_seed); XenConsole.Write(": "); XenConsole.Udec(s_calls); XenConsole.Line(" calls done");
        XenConsole.Write("fuzz: stats: "); XenConsole.Udec(s_hypercalls); XenConsole.Write(" hypercalls ("); XenConsole.Udec(s_ok);
        XenConsole.Write(" returned 0), "); XenConsole.Udec(s_probes); XenConsole.Write(" instructions, "); XenConsole.Udec(FuzzTraps.Traps);
        XenConsole.Write(" traps, "); XenConsole.Udec(FuzzTraps.Wild);
        XenConsole.Write(" wild, "); XenConsole.Udec(FuzzTraps.Unexpected); XenConsole.Write(" unexpected, "); XenConsole.Udec(s_leaks); XenConsole.Line(" leaks");
        Hypercall.Shutdown(Xen.SHUTDOWN_poweroff);
    }

    private static void RunCall()
    {
        HostileCall c = s_call;
        if (c.Nr == 13) KeepAWakeSource();
        if (c.RestoreTraps) { s_result = FencedHypercall(&c.Nr, (ulong)FuzzTraps.Table); return; }
        if (c.Nr == 23)
        {
            // Its refusal is a trap at the iret's target, often our own landing: expected, like a probe's.
            FuzzTraps.InProbe = true;
            s_result = Cpu.IretTo(c.A1, c.A2, c.A3, 0, c.A4);
            return;
        }
        s_result = Rng.OneIn(8) ? Int82(c.Nr, c.A1, c.A2, c.A3, c.A4, c.A5) : Hypercall.Raw(c.Nr, c.A1, c.A2, c.A3, c.A4, c.A5);
    }

    /// <summary>
    /// A wild multicall list (the M2P, whose entries populate_physmap lets any domain choose, our page
    /// tables, scratch pages other requests wrote into) can hold sched_op(SCHEDOP_block), which unmasks
    /// events and waits for one, as on Xen. A blocked vCPU wakes only for a port that is not masked,
    /// so before each multicall VIRQ_TIMER is bound (-EEXIST when it still is: its port from the bind
    /// that made it), a 10 ms periodic timer runs, a one-shot timer is set in the past (it fires at once:
    /// the periodic one stops while a blocked vCPU is switched out, as in Xen) and that port is unmasked,
    /// which also raises the upcall at once if it is pending: a block then returns at once. Seed 208
    /// (call 474377, beside 205-207) blocked with its timer bound and running but masked: an earlier
    /// request had copied page-table entries over the evtchn_mask words of its own shared_info, which
    /// Xen lets a domain do too.
    /// </summary>
    private static void KeepAWakeSource()
    {
        uint* bind = stackalloc uint[3];                  // struct evtchn_bind_virq { virq; vcpu; port }
        bind[0] = Xen.VIRQ_TIMER; bind[1] = 0; bind[2] = 0;
        if (Hypercall.EventChannelOp(Xen.EVTCHNOP_bind_virq, bind) == 0) s_timerPort = bind[2];
        ulong* period = stackalloc ulong[1];              // struct vcpu_set_periodic_timer { period_ns }
        period[0] = 10_000_000;
        Hypercall.Call3(Xen.vcpu_op, 6, 0, (ulong)period);   // VCPUOP_set_periodic_timer
        if (s_timerPort == 0) return;
        Hypercall.Call1(Xen.set_timer_op, 1);             // a deadline passed long ago: VIRQ_TIMER now
        uint* unmask = stackalloc uint[1];                // struct evtchn_unmask { port }
        unmask[0] = s_timerPort;
        Hypercall.EventChannelOp(Xen.EVTCHNOP_unmask, unmask);
    }

    /// <summary>With logging on: a change of our first evtchn_mask word (ports 0-63) is printed after the call
    /// that made it, since a masked timer port is how a block becomes a sleep for good.</summary>
    private static void WatchMask()
    {
        ulong mask = Cpu.Read64((ulong)(Guest.SharedInfo + Xen.SH_evtchn_mask));
        if (mask == s_lastMask) return;
        s_lastMask = mask;
        XenConsole.Write("fuzz: seed "); XenConsole.Udec(s_seed); XenConsole.Write(" call "); XenConsole.Udec(s_n);
        XenConsole.Write(": evtchn_mask word 0 is now "); XenConsole.Hex(mask); XenConsole.Line("");
    }

    private static void RunProbe() => PrivOps.Probe(s_probe, s_pa, s_pb, s_pc);

    [System.Runtime.RuntimeImport("*", "fuzz_int82")] [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.InternalCall)]
    private static extern long Int82(ulong nr, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5);

    [System.Runtime.RuntimeImport("*", "fuzz_fenced_hypercall")] [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.InternalCall)]
    private static extern long FencedHypercall(ulong* call, ulong trapTable);

    /// <summary>Re-installs what the call may have replaced, and notes where vcpu_info went.</summary>
    private static void AfterCall()
    {
        HostileCall c = s_call;
        if (c.RestoreCallbacks) FuzzTraps.InstallCallbacks();
        if (c.Nr == 24 && c.A1 == 10 && s_result == 0)
        {
            ulong mfn = Cpu.Read64(c.A3), offset = Cpu.Read64(c.A3 + 8) & 0xFFFFFFFF;
            FuzzTraps.MovedVcpuInfo = mfn == Sandbox.ScratchMfn[Sandbox.VictimPage] ? Sandbox.ScratchPage(Sandbox.VictimPage) + offset : 0;
        }
    }

    /// <summary>No call may take away the window's own slots (shared_info, console, scratch): our
    /// requests never name them, so a change is the hypervisor's doing. Reported, then the failure stops us.</summary>
    private static void CheckOwnMappings()
    {
        for (int slot = Sandbox.ScratchSlot; slot < Sandbox.ScratchSlot + Sandbox.ScratchPages; slot++)
        {
            ulong pte = Cpu.Read64((ulong)&Guest.WindowL1[slot]);
            if ((pte & 0x000FFFFFFFFFF001UL) == (Sandbox.ScratchMfn[slot - Sandbox.ScratchSlot] << 12 | 1)) continue;
            XenConsole.Write("fuzz: seed "); XenConsole.Udec(s_seed); XenConsole.Write(" call "); XenConsole.Udec(s_n);
            XenConsole.Write(": our window slot "); XenConsole.Dec(slot); XenConsole.Write(" changed to "); XenConsole.Hex(pte);
            XenConsole.Write(" after "); Log.Call(s_seed, s_n, ref s_call);
            Hypercall.Shutdown(Xen.SHUTDOWN_crash);
        }
    }

    /// <summary>Whatever the hypervisor let us map or copy into scratch must not be the canary's.</summary>
    private static void LookForLeaks()
    {
        for (int i = Sandbox.ArenaPages; i < Sandbox.ScratchPages; i++)
        {
            if (!Canary.Leaked((ulong*)Sandbox.ScratchPage(i))) continue;
            s_leaks++;
            XenConsole.Write("fuzz: seed "); XenConsole.Udec(s_seed); XenConsole.Write(" near call "); XenConsole.Udec(s_n);
            XenConsole.Line(": the canary's pattern is in our scratch memory");
        }
    }

    private static void Fail(string why)
    {
        XenConsole.Line(why);
        Hypercall.Shutdown(Xen.SHUTDOWN_crash);
    }

    private static void RuntimeFailure(int code, ulong detail)
    {
        XenConsole.Write("fuzz: runtime failure ");
        XenConsole.Dec(code);
        XenConsole.Line("");
        Hypercall.Shutdown(Xen.SHUTDOWN_crash);
    }
}
