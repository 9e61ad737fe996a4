using Microhv.Hypervisor;
using Microhv.Hypervisor.Traps;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;
using Xunit;
using static Microhv.Hypervisor.Public.Sched;

namespace Microhv.Tests.Hypervisor.Events;

public sealed class SchedOpTests
{
    private readonly TestMachine _t = new();
    private readonly EventsGuest _a, _b;

    public SchedOpTests()
    {
        _a = new EventsGuest(_t, 1);
        _b = new EventsGuest(_t, 2);
    }

    [Fact]
    public void YieldRequestsAReschedule()
    {
        Assert.Equal(0, _a.Sched(SCHEDOP_yield));
        Assert.True((_a.V.PendingExitWork & ExitWork.Reschedule) != 0);
        Assert.False(_a.V.Blocked);
    }

    [Fact]
    public void BlockEnablesEventsAndSleepsUntilAnEvent()
    {
        long p = _a.BindIpi();
        _a.UpcallMask = 1;
        Assert.Equal(0, _a.Sched(SCHEDOP_block));
        Assert.Equal(0, _a.UpcallMask);
        Assert.True(_a.V.Blocked);
        Assert.True((_a.V.PendingExitWork & ExitWork.Reschedule) != 0);
        Assert.False(Scheduler.IsRunnable(_a.V));

        _a.D.EventChannels.SetPending((int)p);
        Assert.False(_a.V.Blocked);
    }

    [Fact]
    public void BlockReturnsAtOnceWhenAnEventIsAlreadyPending()
    {
        long p = _a.BindIpi();
        _a.UpcallMask = 1;                                    // masked at vCPU level: pending but not delivered
        _a.Send((uint)p);
        Assert.Equal(1, _a.UpcallPending);
        Assert.Equal(0, _a.Sched(SCHEDOP_block));
        Assert.False(_a.V.Blocked);
    }

    [Fact]
    public void BlockedVcpuIgnoresMaskedPorts()
    {
        long p = _a.BindIpi();
        _a.SetMask(p, true);
        _a.Sched(SCHEDOP_block);
        _a.Send((uint)p);
        Assert.True(_a.V.Blocked);
        _a.Unmask((uint)p);
        Assert.False(_a.V.Blocked);
    }

    private long Poll(uint[] ports, ulong timeout)
    {
        ulong list = Microhv.Tests.Hypervisor.Mm.MmGuest.Va(1);   // data page D[0]
        for (int i = 0; i < ports.Length; i++) _t.Memory.Write32(_a.G.Data[0] * 4096 + (ulong)i * 4, ports[i]);
        _a.Arg64(poll_ports, list);
        _a.Arg32(poll_nr_ports, (uint)ports.Length);
        _a.Arg64(poll_timeout, timeout);
        return _a.Sched(SCHEDOP_poll);
    }

    [Fact]
    public void PollBlocksUntilThePolledPortIsPendingEvenIfMasked()
    {
        long p = _a.BindIpi();
        long other = _a.BindIpi();
        _a.SetMask(p, true);
        _a.SetMask(other, true);
        _a.UpcallMask = 1;
        Assert.Equal(0, Poll(new[] { (uint)p }, 0));
        Assert.True(_a.V.Blocked);
        Assert.True(_a.D.Vcpu.Polling);
        Assert.Equal(1, _a.UpcallMask);                         // poll does not enable delivery

        _a.Send((uint)other);
        Assert.True(_a.V.Blocked);                              // a different port does not end a one-port poll
        _a.Send((uint)p);
        Assert.False(_a.V.Blocked);
        Assert.False(_a.D.Vcpu.Polling);
    }

    [Fact]
    public void PollReturnsAtOnceWhenAPortIsPending()
    {
        long p = _a.BindIpi();
        long q = _a.BindIpi();
        _a.SetMask(q, true);
        _a.UpcallMask = 1;
        _a.Send((uint)q);
        Assert.Equal(0, Poll(new[] { (uint)p, (uint)q }, 0));
        Assert.False(_a.V.Blocked);
        Assert.False(_a.D.Vcpu.Polling);
    }

    [Fact]
    public void PollTimesOutThroughTheTick()
    {
        long p = _a.BindIpi();
        _a.UpcallMask = 1;
        _a.V.PeriodicPeriod = 0;
        _b.V.PeriodicPeriod = 0;
        _t.Host.NowNs = 1_000_000;
        Assert.Equal(0, Poll(new[] { (uint)p }, 3_000_000));
        Assert.True(_a.V.Blocked);
        Assert.Equal(3_000_000UL, Timers.NextDeadline(_t.Machine));
        _t.Host.NowNs = 2_999_999;
        Timers.Tick(_t.Machine);
        Assert.True(_a.V.Blocked);
        _t.Host.NowNs = 3_000_000;
        Timers.Tick(_t.Machine);
        Assert.False(_a.V.Blocked);
    }

    [Fact]
    public void PollChecksItsArguments()
    {
        Assert.Equal(-Errno.EINVAL, Poll(new uint[129], 0));
        Assert.False(_a.V.Blocked);
        Assert.Equal(-Errno.EINVAL, Poll(new uint[] { EventChannels.Capacity }, 0));
        Assert.False(_a.V.Blocked);
        _a.Arg64(poll_ports, 0x2000_0000);                      // unmapped list
        _a.Arg32(poll_nr_ports, 1);
        Assert.Equal(-Errno.EFAULT, _a.Sched(SCHEDOP_poll));
        Assert.False(_a.V.Blocked);
        Assert.Equal(-Errno.EFAULT, SchedOp.Do(_a.V, SCHEDOP_poll, 0x2000_0000));
    }

    [Fact]
    public void ShutdownRecordsTheReasonAndTheFirstOneWins()
    {
        _a.Arg32(shutdown_reason, SHUTDOWN_reboot);
        Assert.Equal(0, _a.Sched(SCHEDOP_shutdown));
        Assert.Equal(DomainState.Shutdown, _a.D.State);
        Assert.Equal(SHUTDOWN_reboot, _a.D.ShutdownReason);
        Assert.True((_a.V.PendingExitWork & ExitWork.Reschedule) != 0);
        _a.Arg32(shutdown_reason, SHUTDOWN_poweroff);
        _a.Sched(SCHEDOP_shutdown);
        Assert.Equal(SHUTDOWN_reboot, _a.D.ShutdownReason);
        Assert.Equal(DomainState.Running, _b.D.State);
        Assert.Equal(-Errno.EFAULT, SchedOp.Do(_b.V, SCHEDOP_shutdown, 0x2000_0000));
    }

    [Fact]
    public void CompatShutdownTakesTheReasonDirectly()
    {
        Assert.Equal(0, SchedOp.Compat(_a.V, SCHEDOP_shutdown, SHUTDOWN_crash));
        Assert.Equal(SHUTDOWN_crash, _a.D.ShutdownReason);
        Assert.Equal(DomainState.Shutdown, _a.D.State);
        Assert.Equal(0, SchedOp.Compat(_b.V, SCHEDOP_yield, 0));
        Assert.Equal(-Errno.ENOSYS, SchedOp.Compat(_b.V, SCHEDOP_poll, 0));
    }

    [Fact]
    public void ShutdownCodeIsRecorded()
    {
        _a.Arg32(shutdown_reason, SHUTDOWN_crash);
        Assert.Equal(0, _a.Sched(SCHEDOP_shutdown_code));
        Assert.Equal((ulong)SHUTDOWN_crash, _a.D.ShutdownCode);
        Assert.Equal(DomainState.Running, _a.D.State);
    }

    [Fact]
    public void RemoteShutdownNeedsPrivilege()
    {
        _a.Arg16(remote_shutdown_domain_id, 2);
        _a.Arg32(remote_shutdown_reason, SHUTDOWN_poweroff);
        Assert.Equal(-Errno.EPERM, _a.Sched(SCHEDOP_remote_shutdown));
        Assert.Equal(DomainState.Running, _b.D.State);

        var t = new TestMachine();
        var dom0 = new EventsGuest(t, 0, initial: true);
        var domU = new EventsGuest(t, 3);
        dom0.Arg16(remote_shutdown_domain_id, 3);
        dom0.Arg32(remote_shutdown_reason, SHUTDOWN_reboot);
        Assert.Equal(0, dom0.Sched(SCHEDOP_remote_shutdown));
        Assert.Equal(DomainState.Shutdown, domU.D.State);
        Assert.Equal(SHUTDOWN_reboot, domU.D.ShutdownReason);
        dom0.Arg16(remote_shutdown_domain_id, 8);
        Assert.Equal(-Errno.ESRCH, dom0.Sched(SCHEDOP_remote_shutdown));
    }

    [Fact]
    public void UnknownCommandsAreEnosys()
    {
        Assert.Equal(-Errno.ENOSYS, _a.Sched(SCHEDOP_watchdog));
        Assert.Equal(-Errno.ENOSYS, _a.Sched(42));
    }
}
