using Microhv.Hypervisor;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;
using Xunit;
using static Microhv.Hypervisor.Public.VcpuOps;

namespace Microhv.Tests.Hypervisor.Events;

public sealed class TimerTests
{
    private const ulong Ms = 1_000_000;
    private readonly TestMachine _t = new();
    private readonly EventsGuest _a;
    private readonly long _timerPort;

    public TimerTests()
    {
        _a = new EventsGuest(_t, 1);
        _timerPort = _a.BindVirq(Xen.VIRQ_TIMER);
        Assert.True(_timerPort > 0);
        _t.Host.NowNs = 100 * Ms;
    }

    private void Tick(ulong now)
    {
        _t.Host.NowNs = now;
        Timers.Tick(_t.Machine);
    }

    private bool TimerPending => _a.Pending(_timerPort);

    [Fact]
    public void PvGuestsStartWithAHundredHertzPeriodicTimer()
    {
        Assert.Equal(10 * Ms, _a.V.PeriodicPeriod);
        RunningSinceBoot();                                        // at 0: its first period ends at 10 ms
        Assert.False(TimerPending);
        Tick(100 * Ms);
        Assert.True(TimerPending);
        _a.ClearAllEvents();
        Tick(105 * Ms);
        Assert.False(TimerPending);
        Tick(110 * Ms);
        Assert.True(TimerPending);
    }

    /// <summary>Xen stops a vCPU's periodic timer when it is switched out (sched_context_switch) and runs it
    /// again at switch-in (vcpu_periodic_timer_work): a blocked vCPU is not woken by it, and the period that
    /// ended meanwhile gives one event when the vCPU next runs, the next period counted from then.</summary>
    [Fact]
    public void ThePeriodicTimerRunsOnlyWhileItsVcpuRuns()
    {
        RunningSinceBoot();
        _a.ClearAllEvents();
        Scheduler s = _t.Machine.Scheduler;
        _a.Sched(Sched.SCHEDOP_block);
        Assert.Null(s.PickNext(_a.V, true));                       // switched out, blocked
        Assert.Equal(0UL, Timers.NextDeadline(_t.Machine));        // nothing armed for it
        for (ulong now = 110 * Ms; now <= 200 * Ms; now += 10 * Ms) Tick(now);
        Assert.True(_a.V.Blocked);
        Assert.False(TimerPending);

        Timers.SetSingleshot(_a.V, 205 * Ms, 200 * Ms);             // woken by its one-shot timer instead
        Tick(205 * Ms);
        Assert.False(_a.V.Blocked);
        _a.ClearAllEvents();
        _t.Host.NowNs = 207 * Ms;
        Assert.Same(_a.V, s.PickNext(null, true));                  // back on the CPU: the ended period fires once
        Assert.True(TimerPending);
        Assert.Equal(217 * Ms, _a.V.PeriodicNext);
        Assert.Equal(217 * Ms, Timers.NextDeadline(_t.Machine));
        _a.ClearAllEvents();
        Tick(216 * Ms);
        Assert.False(TimerPending);
        Tick(217 * Ms);
        Assert.True(TimerPending);
    }

    /// <summary>Setting the periodic timer of a vCPU that is not running arms it until that vCPU's next switch-out
    /// (Xen's vcpu_set_periodic_timer arms the timer on v->processor whatever the vCPU does): a blocked vCPU
    /// is woken by the event sent at once, and by the next period's if it is still blocked.</summary>
    [Fact]
    public void SettingThePeriodicTimerOfABlockedVcpuWakesIt()
    {
        RunningSinceBoot();
        Scheduler s = _t.Machine.Scheduler;
        _a.Arg64(periodic_period_ns, 0);
        Assert.Equal(0, _a.VcpuOp(VCPUOP_stop_periodic_timer));
        _a.Sched(Sched.SCHEDOP_block);
        Assert.Null(s.PickNext(_a.V, true));
        _a.ClearAllEvents();
        _a.Sched(Sched.SCHEDOP_block);                             // (blocked again: the clear raised nothing)
        Timers.SetPeriodic(_a.V, 5 * Ms);                          // as another vCPU's VCPUOP_set_periodic_timer does
        Assert.False(_a.V.Blocked);                                // the period since its last event (never) has passed
        Assert.Equal(105 * Ms, _a.V.PeriodicNext);                   // armed although the vCPU is out
        _a.ClearAllEvents();
        _a.V.Blocked = true;
        Tick(104 * Ms);
        Assert.True(_a.V.Blocked);
        Tick(105 * Ms);
        Assert.False(_a.V.Blocked);                                // armed until it is next switched out
    }

    [Fact]
    public void SetTimerOpFiresVirqTimerThroughTick()
    {
        Assert.Equal(0, _a.VcpuOp(VCPUOP_stop_periodic_timer));
        Assert.Equal(0, Timers.SetTimerOp(_a.V, 105 * Ms));
        Assert.Equal(105 * Ms, Timers.NextDeadline(_t.Machine));
        Tick(104 * Ms);
        Assert.False(TimerPending);
        Tick(106 * Ms);
        Assert.True(TimerPending);
        Assert.Equal(1, _a.UpcallPending);
        Assert.Equal(0UL, _a.V.TimerDeadline);                 // one-shot
        _a.ClearAllEvents();
        Tick(200 * Ms);
        Assert.False(TimerPending);
        Assert.Equal(0UL, Timers.NextDeadline(_t.Machine));
    }

    [Fact]
    public void SetTimerOpInThePastFiresAtOnceAndZeroStops()
    {
        _a.VcpuOp(VCPUOP_stop_periodic_timer);
        Assert.Equal(0, Timers.SetTimerOp(_a.V, 50 * Ms));
        Assert.True(TimerPending);
        _a.ClearAllEvents();

        Timers.SetTimerOp(_a.V, 150 * Ms);
        Assert.Equal(0, Timers.SetTimerOp(_a.V, 0));
        Tick(200 * Ms);
        Assert.False(TimerPending);
    }

    [Fact]
    public void SetTimerOpFarInTheFutureFiresAtOnce()
    {
        _a.VcpuOp(VCPUOP_stop_periodic_timer);
        Timers.SetTimerOp(_a.V, 100 * Ms + (1UL << 50));       // a Linux jiffies wrap, by Xen's rule
        Assert.True(TimerPending);
    }

    [Fact]
    public void BlockedVcpuWakesOnTheTimer()
    {
        _a.VcpuOp(VCPUOP_stop_periodic_timer);
        Timers.SetTimerOp(_a.V, 120 * Ms);
        _a.Sched(Sched.SCHEDOP_block);
        Assert.True(_a.V.Blocked);
        Tick(121 * Ms);
        Assert.False(_a.V.Blocked);
    }

    [Fact]
    public void SingleshotTimerThroughVcpuOp()
    {
        _a.VcpuOp(VCPUOP_stop_periodic_timer);
        _a.Arg64(singleshot_timeout_abs_ns, 130 * Ms);
        _a.Arg32(singleshot_flags, VCPU_SSHOTTMR_future);
        Assert.Equal(0, _a.VcpuOp(VCPUOP_set_singleshot_timer));
        Tick(131 * Ms);
        Assert.True(TimerPending);
        _a.ClearAllEvents();

        _a.Arg64(singleshot_timeout_abs_ns, 90 * Ms);
        Assert.Equal(-Errno.ETIME, _a.VcpuOp(VCPUOP_set_singleshot_timer));
        Assert.False(TimerPending);
        _a.Arg32(singleshot_flags, 0);
        Assert.Equal(0, _a.VcpuOp(VCPUOP_set_singleshot_timer));  // without the flag a past deadline fires now
        Assert.True(TimerPending);
        _a.ClearAllEvents();

        _a.Arg64(singleshot_timeout_abs_ns, 300 * Ms);
        _a.VcpuOp(VCPUOP_set_singleshot_timer);
        Assert.Equal(0, _a.VcpuOp(VCPUOP_stop_singleshot_timer));
        Tick(400 * Ms);
        Assert.False(TimerPending);
    }

    [Fact]
    public void PeriodicTimerThroughVcpuOp()
    {
        _a.Arg64(periodic_period_ns, Ms - 1);
        Assert.Equal(-Errno.EINVAL, _a.VcpuOp(VCPUOP_set_periodic_timer));
        RunningSinceBoot();
        _a.ClearAllEvents();
        _a.Arg64(periodic_period_ns, 4 * Ms);
        Assert.Equal(0, _a.VcpuOp(VCPUOP_set_periodic_timer));
        Assert.True(TimerPending);                                 // a period has passed since the last event: at once, as Xen
        _a.ClearAllEvents();
        Tick(103 * Ms);
        Assert.False(TimerPending);
        Tick(104 * Ms);
        Assert.True(TimerPending);
        _a.ClearAllEvents();
        Tick(107 * Ms);
        Assert.False(TimerPending);
        Tick(108 * Ms);
        Assert.True(TimerPending);
    }

    [Fact]
    public void ShutDownDomainsGetNoTimerEvents()
    {
        Timers.SetTimerOp(_a.V, 101 * Ms);
        SchedOp.Shutdown(_a.D, Sched.SHUTDOWN_poweroff);
        _a.ClearAllEvents();
        Tick(200 * Ms);
        Assert.False(TimerPending);
    }

    [Fact]
    public void AOneVcpuDomainHasOnlyVcpuZero()
    {
        _a.V.Initialised = true;                                   // as the domain builder leaves it
        Assert.Equal(1, _a.VcpuOp(VCPUOP_is_up, 0));
        Assert.Equal(-Errno.ENOENT, _a.VcpuOp(VCPUOP_is_up, 1));
        Assert.Equal(-Errno.ENOENT, _a.VcpuOp(VCPUOP_up, 1));
        Assert.Equal(-Errno.ENOENT, _a.VcpuOp(VCPUOP_initialise, 31));
        Assert.Equal(0, _a.VcpuOp(VCPUOP_up, 0));
        Assert.Equal(-Errno.EEXIST, _a.VcpuOp(VCPUOP_initialise, 0));
        Assert.Equal(-Errno.ENOSYS, _a.VcpuOp(77, 0));
    }

    [Fact]
    public void DownOnTheLastVcpuPowersOff()
    {
        Assert.Equal(0, _a.VcpuOp(VCPUOP_down, 0));
        Assert.Equal(DomainState.Shutdown, _a.D.State);
        Assert.Equal(Sched.SHUTDOWN_poweroff, _a.D.ShutdownReason);
    }

    [Fact]
    public void RegisterVcpuInfoMovesItIntoAGuestFrame()
    {
        _a.UpcallMask = 1;
        ulong oldMa = _a.VcpuInfoMa;
        ulong frame = _a.G.Data[1];
        _a.Arg64(register_vcpu_info_mfn, frame);
        _a.Arg32(register_vcpu_info_offset, 128);
        Assert.Equal(0, _a.VcpuOp(VCPUOP_register_vcpu_info));
        Assert.Equal(frame * 4096 + 128, _a.V.VcpuInfoAddress);
        Assert.NotEqual(oldMa, _a.VcpuInfoMa);
        Assert.Equal(1, _a.UpcallMask);                         // contents moved over
        Assert.Equal(1, _a.UpcallPending);                       // Xen marks everything pending after a move
        Assert.Equal(0xFFFF_FFFF_FFFF_FFFFUL, _a.Selector);
        Assert.Equal(FrameType.Writable, _t.FrameTable.TypeOf(frame));
        Assert.True(_t.FrameTable.TypeCount(frame) >= 1);
        uint version = _t.Memory.Read32(_a.VcpuInfoMa + SharedInfo.time + SharedInfo.time_version);
        Assert.True(version != 0 && version % 2 == 0);          // time info written at the new place

        _a.ClearAllEvents();
        _a.UpcallMask = 0;
        Assert.Equal(-Errno.EINVAL, _a.Send((uint)_timerPort));   // a VIRQ port cannot be sent to
        Assert.True(_a.D.EventChannels.SendVirq(Xen.VIRQ_TIMER));  // events now land in the new vcpu_info
        Assert.Equal(1, _a.UpcallPending);
        Assert.Equal(1UL, _a.Selector);

        Assert.Equal(-Errno.EINVAL, _a.VcpuOp(VCPUOP_register_vcpu_info));   // only once
    }

    [Fact]
    public void RegisterVcpuInfoRefusesForeignFramesBadOffsetsAndPageTables()
    {
        var b = new EventsGuest(_t, 2);
        _a.Arg64(register_vcpu_info_mfn, b.G.Data[0]);
        _a.Arg32(register_vcpu_info_offset, 0);
        Assert.Equal(-Errno.EINVAL, _a.VcpuOp(VCPUOP_register_vcpu_info));
        _a.Arg64(register_vcpu_info_mfn, _a.G.Data[0]);
        _a.Arg32(register_vcpu_info_offset, 4096 - 63);
        Assert.Equal(-Errno.EINVAL, _a.VcpuOp(VCPUOP_register_vcpu_info));
        _a.Arg64(register_vcpu_info_mfn, 1UL << 40);
        _a.Arg32(register_vcpu_info_offset, 0);
        Assert.Equal(-Errno.EINVAL, _a.VcpuOp(VCPUOP_register_vcpu_info));
        _t.FrameTable.SetType(_a.G.Spare[0], FrameType.L1PageTable, 1);
        _a.Arg64(register_vcpu_info_mfn, _a.G.Spare[0]);
        Assert.Equal(-Errno.EINVAL, _a.VcpuOp(VCPUOP_register_vcpu_info));
        Assert.Equal(0UL, _a.V.VcpuInfoAddress);
        Assert.Equal(-Errno.EFAULT, Microhv.Hypervisor.Events.VcpuOp.Do(_a.V, VCPUOP_register_vcpu_info, 0, 0x2000_0000));
    }

    /// <summary>The vCPU went on the CPU at time 0 (the scheduler's switch starts its running time).</summary>
    private void RunningSinceBoot()
    {
        ulong now = _t.Host.NowNs;
        _t.Host.NowNs = 0;
        Assert.Same(_a.V, _t.Machine.Scheduler.PickNext(null, true));
        _t.Host.NowNs = now;
    }

    [Fact]
    public void RunstateAreaIsWrittenOnRegistrationAndOnTicks()
    {
        RunningSinceBoot();
        ulong va = Microhv.Tests.Hypervisor.Mm.MmGuest.Va(3) + 16;    // D[2]
        ulong ma = _a.G.Data[2] * 4096 + 16;
        _t.Memory.Fill(ma, 0xAA, runstate_size);
        _a.Arg64(runstate_area_addr, va);
        Assert.Equal(0, _a.VcpuOp(VCPUOP_register_runstate_memory_area));
        Assert.Equal((uint)RUNSTATE_running, _t.Memory.Read32(ma + runstate_state));
        Assert.Equal(100 * Ms, _t.Memory.Read64(ma + runstate_time));
        for (int i = 1; i < 4; i++) Assert.Equal(0UL, _t.Memory.Read64(ma + runstate_time + (ulong)i * 8));
        Assert.Equal(0UL, _t.Memory.Read64(ma + runstate_state_entry_time) & XEN_RUNSTATE_UPDATE);

        _a.V.KernelMode = false;                                   // still written through the kernel's tables
        Tick(150 * Ms);
        Assert.Equal(150 * Ms, _t.Memory.Read64(ma + runstate_time));
        Assert.False(_a.V.KernelMode);

        _a.Arg64(runstate_area_addr, 0xFFFF_8000_0000_0000);
        Assert.Equal(-Errno.EFAULT, _a.VcpuOp(VCPUOP_register_runstate_memory_area));
    }

    [Fact]
    public void RunstateAreaFollowsTheMappingAtEachWriteNeverTheFrameItOnceHad()
    {
        RunningSinceBoot();
        // Issue 14: a page became not-present after the guest rewrote the tables around its runstate
        // area. Every refresh translates the address through the current tables with their current
        // permissions: remapped read-only, the area is not written; remapped onto another page, that
        // page gets it; unmapped, nothing is written; the frame it once had, never again.
        var g = _a.G;
        const ulong P = Microhv.Tests.Hypervisor.Mm.MmGuest.P, RW = Microhv.Tests.Hypervisor.Mm.MmGuest.RW,
            US = Microhv.Tests.Hypervisor.Mm.MmGuest.US, A = Microhv.Tests.Hypervisor.Mm.MmGuest.A, D = Microhv.Tests.Hypervisor.Mm.MmGuest.D;
        ulong va = Microhv.Tests.Hypervisor.Mm.MmGuest.Va(3);            // D[2]
        ulong oldMa = g.Data[2] * 4096, roMa = g.Data[3] * 4096, rwMa = g.Data[0] * 4096;
        _a.Arg64(runstate_area_addr, va);
        Assert.Equal(0, _a.VcpuOp(VCPUOP_register_runstate_memory_area));
        _t.Memory.Fill(oldMa, 0x55, runstate_size);
        _t.Memory.Fill(roMa, 0x66, runstate_size);

        g.Set(g.L1, 3, (g.Data[3] << 12) | P | US | A);                 // the tables are not adopted here: plain stores
        Tick(200 * Ms);
        Assert.Equal(0x6666666666666666UL, _t.Memory.Read64(roMa + runstate_time));
        Assert.Equal(0x5555555555555555UL, _t.Memory.Read64(oldMa + runstate_time));

        g.Set(g.L1, 3, (g.Data[0] << 12) | P | RW | US | A | D);
        Tick(250 * Ms);
        Assert.Equal(250 * Ms, _t.Memory.Read64(rwMa + runstate_time));
        Assert.Equal(0x5555555555555555UL, _t.Memory.Read64(oldMa + runstate_time));

        g.Set(g.L1, 3, 0);                                              // not present
        Tick(300 * Ms);
        Assert.Equal(250 * Ms, _t.Memory.Read64(rwMa + runstate_time));
        Assert.Equal(0x5555555555555555UL, _t.Memory.Read64(oldMa + runstate_time));
    }

    [Fact]
    public void GetRunstateInfoCopiesOut()
    {
        RunningSinceBoot();
        _a.Arg32(runstate_state, 0xFFFF_FFFF);
        Assert.Equal(0, _a.VcpuOp(VCPUOP_get_runstate_info));
        Assert.Equal((uint)RUNSTATE_running, _a.Out32(runstate_state));
        Assert.Equal(-Errno.EFAULT, Microhv.Hypervisor.Events.VcpuOp.Do(_a.V, VCPUOP_get_runstate_info, 0, 0x2000_0000));
    }

    /// <summary>Xen's accounting: the time in each state, the state a vCPU leaves the CPU in (blocked, or runnable
    /// when preempted: what Linux's vcpu_is_preempted reads), blocked to runnable on a wake-up.</summary>
    [Fact]
    public void RunstateCountsTimeInEachState()
    {
        var b = new EventsGuest(_t, 2);
        long port = b.BindVirq(Xen.VIRQ_TIMER);
        Assert.True(port > 0);
        Scheduler s = _t.Machine.Scheduler;
        b.V.Online = true;
        _a.V.PeriodicPeriod = b.V.PeriodicPeriod = 0;              // one-shot timers only, as Linux uses
        _t.Host.NowNs = 0;
        Assert.Same(_a.V, s.PickNext(null, true));                   // a runs from 0
        _t.Host.NowNs = 30 * Ms;
        Assert.Same(b.V, s.PickNext(_a.V, true));                    // a preempted at 30 ms
        Assert.Equal(RUNSTATE_runnable, _a.V.RunstateState);
        Assert.Equal(30 * Ms, _a.V.RunstateTime[RUNSTATE_running]);
        Assert.Equal(RUNSTATE_running, b.V.RunstateState);
        Assert.Equal(30 * Ms, b.V.RunstateTime[RUNSTATE_offline]);   // offline from 0 until it first ran
        _t.Host.NowNs = 40 * Ms;
        b.V.Blocked = true;                                          // b blocks at 40 ms
        Assert.Same(_a.V, s.PickNext(b.V, true));
        Assert.Equal(RUNSTATE_blocked, b.V.RunstateState);
        Assert.Equal(10 * Ms, b.V.RunstateTime[RUNSTATE_running]);
        Assert.Equal(10 * Ms, _a.V.RunstateTime[RUNSTATE_runnable]);
        _t.Host.NowNs = 60 * Ms;
        b.D.EventChannels.SendVirq(Xen.VIRQ_TIMER);                  // its wake-up at 60 ms
        Assert.False(b.V.Blocked);
        Assert.Equal(RUNSTATE_runnable, b.V.RunstateState);
        Assert.Equal(20 * Ms, b.V.RunstateTime[RUNSTATE_blocked]);
    }
}
