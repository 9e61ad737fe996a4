using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Xunit;

namespace Microhv.Tests.Hypervisor.Smp;

/// <summary>The scheduler on several processors: each runs a vCPU no other runs, a woken vCPU goes to an
/// idle processor (kicked once until it enters), an event for a vCPU running elsewhere kicks its processor,
/// and a processor whose vCPU may no longer run is kicked off it. Machine.Cpu is the processor the
/// hypervisor acts for, as the kernel sets it when it takes the lock.</summary>
public class SchedulerSmpTests
{
    private readonly TestMachine _t = new();
    private readonly Scheduler _s;
    private readonly Domain _a, _b;

    public SchedulerSmpTests()
    {
        _a = _t.AddDomain(0, initial: true);
        _b = _t.AddDomain(1);
        _s = _t.Machine.Scheduler;
        _s.Join(1);
        _s.Join(2);
    }

    private Vcpu PickOn(int cpu, Vcpu current, bool preempt = true)
    {
        _t.Machine.Cpu = cpu;
        _s.Entered(cpu);
        return _s.PickNext(current, preempt);
    }

    [Fact]
    public void Each_processor_takes_a_vcpu_no_other_runs()
    {
        Assert.Same(_a.Vcpu, PickOn(0, null));
        Assert.Same(_b.Vcpu, PickOn(1, null));       // a is on CPU 0
        Assert.Null(PickOn(2, null));                // nothing left: CPU 2 idles
        Assert.Equal(0, _a.Vcpu.RunningOn);
        Assert.Equal(1, _b.Vcpu.RunningOn);
        Assert.Same(_b.Vcpu, _s.RunningOn(1));
        // CPU 0's slice ends: b is still on CPU 1, so a stays.
        Assert.Same(_a.Vcpu, PickOn(0, _a.Vcpu));
        // a blocks: CPU 0 idles and a is on no processor.
        _a.Vcpu.Blocked = true;
        Assert.Null(PickOn(0, _a.Vcpu));
        Assert.Equal(-1, _a.Vcpu.RunningOn);
        Assert.True(Scheduler.IsRunning(_b.Vcpu));
        Assert.False(Scheduler.IsRunning(_a.Vcpu));
    }

    [Fact]
    public void A_woken_vcpu_kicks_an_idle_processor_once()
    {
        Assert.Same(_a.Vcpu, PickOn(0, null));
        _b.Vcpu.Blocked = true;
        Assert.Null(PickOn(1, null));
        Assert.Null(PickOn(2, null));
        // On CPU 0, an event wakes b: CPU 1 (idle) is kicked to run it; CPU 0 keeps a.
        _t.Machine.Cpu = 0;
        _b.Vcpu.Blocked = false;
        _s.WokeUp(_b.Vcpu);
        Assert.Equal(0UL, (ulong)(_a.Vcpu.PendingExitWork & ExitWork.Reschedule));
        Assert.Equal(1UL << 1, _s.TakeKicks());
        Assert.Equal(0UL, _s.TakeKicks());                      // kicked already, not entered since
        Assert.Same(_b.Vcpu, PickOn(1, null));                  // the kick's entry runs it
    }

    [Fact]
    public void With_no_idle_processor_a_woken_vcpu_preempts_its_own_domain_here()
    {
        var a1 = _a.Vcpus[1];
        _a.MaxVcpus = 2;
        a1.Online = a1.Initialised = true;
        a1.Blocked = true;
        _t.Host.NowNs = 1_000;
        Assert.Same(_a.Vcpu, PickOn(0, null));
        Assert.Same(_b.Vcpu, PickOn(1, null));
        var c = _t.AddDomain(2);
        Assert.Same(c.Vcpu, PickOn(2, null));
        _t.Machine.Cpu = 0;
        _t.Host.NowNs = 10_000_000;
        a1.Blocked = false;
        _s.WokeUp(a1);
        Assert.Equal(0UL, _s.TakeKicks());
        Assert.NotEqual(0, (int)(_a.Vcpu.PendingExitWork & ExitWork.Reschedule));
        Assert.Same(a1, PickOn(0, _a.Vcpu));
    }

    [Fact]
    public void An_event_for_a_vcpu_running_elsewhere_kicks_its_processor()
    {
        Assert.Same(_a.Vcpu, PickOn(0, null));
        Assert.Same(_b.Vcpu, PickOn(1, null));
        _t.Machine.Cpu = 0;
        _s.Notify(_b.Vcpu);
        _s.Notify(_a.Vcpu);                                     // this processor's own: its exit delivers it
        Assert.Equal(1UL << 1, _s.TakeKicks());
    }

    [Fact]
    public void A_processor_whose_vcpu_may_no_longer_run_is_kicked()
    {
        Assert.Same(_a.Vcpu, PickOn(0, null));
        Assert.Same(_b.Vcpu, PickOn(1, null));
        _t.Machine.Cpu = 0;
        _b.PauseCount = 1;                                      // domctl pausedomain from dom0 on CPU 0
        Assert.Equal(1UL << 1, _s.TakeKicks());
        Assert.Null(PickOn(1, _b.Vcpu, false));                 // CPU 1's exit takes b off
        Assert.Equal(-1, _b.Vcpu.RunningOn);
    }

    [Fact]
    public void Hard_affinity_keeps_a_vcpu_off_other_processors()
    {
        _b.Vcpu.HardAffinity = 1UL << 2;
        Assert.Same(_a.Vcpu, PickOn(0, null));
        Assert.Null(PickOn(1, null));
        Assert.Same(_b.Vcpu, PickOn(2, null));
        // An affinity naming no processor the boot started is every processor, as Xen breaks one left with no
        // processor of its pool (and refuses to set one).
        _b.Vcpu.HardAffinity = 1UL << 40;
        Assert.Same(_b.Vcpu, PickOn(2, _b.Vcpu));
        _b.Vcpu.Blocked = true;                                     // off CPU 2 and woken: CPU 1 may take it
        Assert.Null(PickOn(2, _b.Vcpu));
        _b.Vcpu.Blocked = false;
        Assert.Same(_b.Vcpu, PickOn(1, null));
    }

    /// <summary>CI's SmpTests.CpusOnAModuleLineHoldsItsVcpusToThoseProcessors saw CPU 1 run two domains held to CPUs 2
    /// and 3 for 62 ms: while those had not joined, their affinity named no processor taking guests and was
    /// ignored. It is judged against the started processors: the vCPU waits for its own to join.</summary>
    [Fact]
    public void A_vcpu_held_to_a_started_processor_that_has_not_joined_waits_for_it()
    {
        _s.Start(4);                                                // CPUs 0-3 started; 0, 1 and 2 have joined
        _b.Vcpu.HardAffinity = 1UL << 3;
        Assert.Same(_a.Vcpu, PickOn(0, null));
        Assert.Null(PickOn(1, null));
        Assert.Null(PickOn(2, null));
        // Woken on CPU 0 (which idles not, and may not run it): no joined processor is kicked for it.
        _b.Vcpu.Blocked = true;
        _t.Machine.Cpu = 0;
        _b.Vcpu.Blocked = false;
        _s.WokeUp(_b.Vcpu);
        _s.MadeRunnable(_b.Vcpu);
        Assert.Equal(0UL, _s.TakeKicks());
        Assert.Equal(0UL, (ulong)(_a.Vcpu.PendingExitWork & ExitWork.Reschedule));
        Assert.Null(PickOn(1, null));
        Assert.Same(_a.Vcpu, PickOn(0, _a.Vcpu));
        // CPU 3 joins and takes it at its first pick.
        _s.Join(3);
        Assert.Same(_b.Vcpu, PickOn(3, null));
        // Held to CPUs 3 and 4, of which only 3 started: 4 is dropped, not a reason to run anywhere.
        _b.Vcpu.HardAffinity = 3UL << 3;
        _b.Vcpu.Blocked = true;
        Assert.Null(PickOn(3, _b.Vcpu));
        _b.Vcpu.Blocked = false;
        Assert.Null(PickOn(1, null));
        Assert.Same(_b.Vcpu, PickOn(3, null));
    }

    /// <summary>xl vcpu-pin of a running vCPU away from its processor moves it now, as Xen's vcpu_set_affinity
    /// migrates it: its processor is kicked off it, an idle one it allows is kicked to take it, and a tick
    /// whose slice is not over does not keep it where it may no longer run.</summary>
    [Fact]
    public void A_vcpu_pinned_away_from_its_processor_leaves_it()
    {
        Assert.Same(_a.Vcpu, PickOn(0, null));
        Assert.Same(_b.Vcpu, PickOn(1, null));
        Assert.Null(PickOn(2, null));
        _t.Machine.Cpu = 0;
        _b.Vcpu.HardAffinity = 1UL << 2;
        _s.AffinityChanged(_b.Vcpu);
        Assert.Equal(1UL << 1 | 1UL << 2, _s.TakeKicks());
        _b.Vcpu.PendingExitWork = ExitWork.None;                    // CPU 1's exit takes the work...
        Assert.Null(PickOn(1, _b.Vcpu, false));                    // ...and even a pick without preempting lets it go
        Assert.Same(_b.Vcpu, PickOn(2, null));
        // Pinned to where it runs: nothing to do.
        _t.Machine.Cpu = 0;
        _b.Vcpu.HardAffinity = 3UL << 1;
        _s.AffinityChanged(_b.Vcpu);
        Assert.Equal(0UL, _s.TakeKicks());
        Assert.Equal(0UL, (ulong)(_b.Vcpu.PendingExitWork & ExitWork.Reschedule));
        // Pinned away from this processor, where it runs: its own exit gives it up, to CPU 1 (idle, allowed).
        _b.Vcpu.HardAffinity = 1UL << 1;
        _t.Machine.Cpu = 2;
        _s.AffinityChanged(_b.Vcpu);
        Assert.Equal(1UL << 1, _s.TakeKicks());
        Assert.NotEqual(0UL, (ulong)(_b.Vcpu.PendingExitWork & ExitWork.Reschedule));
        Assert.Null(PickOn(2, _b.Vcpu));
        Assert.Same(_b.Vcpu, PickOn(1, null));
    }

    [Fact]
    public void A_vcpu_woken_where_its_affinity_forbids_kicks_an_idle_processor_it_allows()
    {
        var a1 = _a.Vcpus[1];
        _a.MaxVcpus = 2;
        a1.Online = a1.Initialised = true;
        a1.HardAffinity = 1UL << 2;
        a1.Blocked = true;
        _b.PauseCount = 1;
        _t.Host.NowNs = 1_000;
        Assert.Same(_a.Vcpu, PickOn(0, null));
        Assert.Null(PickOn(1, null));
        Assert.Null(PickOn(2, null));
        // Woken on CPU 1, which idles but may not run it: CPU 2 is kicked.
        _t.Machine.Cpu = 1;
        _t.Host.NowNs = 10_000_000;
        a1.Blocked = false;
        _s.WokeUp(a1);
        Assert.Equal(1UL << 2, _s.TakeKicks());
        // Woken on CPU 0, where its own domain runs and no processor it allows idles: a is not preempted for it.
        Assert.Same(a1, PickOn(2, null));
        var c = _t.AddDomain(2);
        a1.Blocked = true;
        Assert.Same(c.Vcpu, PickOn(2, a1));
        _t.Machine.Cpu = 0;
        a1.Blocked = false;
        _s.WokeUp(a1);
        Assert.Equal(0UL, _s.TakeKicks());
        Assert.Equal(0UL, (ulong)(_a.Vcpu.PendingExitWork & ExitWork.Reschedule));
    }

    [Fact]
    public void Destroying_a_domain_waits_until_no_processor_runs_it()
    {
        _b.CreatedByToolstack = true;
        Assert.Same(_a.Vcpu, PickOn(0, null));
        Assert.Same(_b.Vcpu, PickOn(1, null));
        _t.Machine.Cpu = 0;
        Assert.Equal(-Errno.EAGAIN, Microhv.Hypervisor.Toolstack.DomainLifecycle.Destroy(_a.Vcpu, _b));
        Assert.False(_b.Relinquished);
        Assert.Equal(1UL << 1, _s.TakeKicks());                 // its processor is kicked off it
        Assert.Null(PickOn(1, _b.Vcpu, false));
        _t.Machine.Cpu = 0;
        Assert.Equal(0, Microhv.Hypervisor.Toolstack.DomainLifecycle.Destroy(_a.Vcpu, _b));
        Assert.True(_b.Relinquished);
    }

    [Fact]
    public void Each_processor_is_charged_the_guest_time_it_ran()
    {
        _t.Host.NowNs = 100;
        Assert.Same(_a.Vcpu, PickOn(0, null));
        Assert.Same(_b.Vcpu, PickOn(1, null));
        _t.Host.NowNs = 600;
        _b.Vcpu.Blocked = true;
        Assert.Null(PickOn(1, _b.Vcpu));
        Assert.Equal(500UL, _s.CpuBusyTime(1));
        Assert.Equal(500UL, _s.CpuBusyTime(0));               // a still runs on CPU 0
        Assert.Equal(0UL, _s.CpuBusyTime(2));
    }

    [Fact]
    public void Each_processor_arms_the_timers_of_its_own_vcpus_and_of_those_that_left_it()
    {
        Assert.Same(_a.Vcpu, PickOn(0, null));
        Assert.Same(_b.Vcpu, PickOn(1, null));
        _a.Vcpu.TimerDeadline = 5_000;
        _b.Vcpu.TimerDeadline = 7_000;
        _a.Vcpu.PeriodicPeriod = _b.Vcpu.PeriodicPeriod = 0;         // one-shot timers only, as Linux uses
        _t.Machine.Cpu = 0;
        Assert.Equal(5_000UL, Microhv.Hypervisor.Events.Timers.NextDeadline(_t.Machine));
        _t.Machine.Cpu = 1;
        Assert.Equal(7_000UL, Microhv.Hypervisor.Events.Timers.NextDeadline(_t.Machine));
        _t.Machine.Cpu = 2;
        Assert.Equal(0UL, Microhv.Hypervisor.Events.Timers.NextDeadline(_t.Machine));
        // b blocks on CPU 1: its timer stays CPU 1's while it is on no processor.
        _b.Vcpu.Blocked = true;
        Assert.Null(PickOn(1, _b.Vcpu));
        Assert.Equal(1, _b.Vcpu.LastCpu);
        Assert.Equal(7_000UL, Microhv.Hypervisor.Events.Timers.NextDeadline(_t.Machine));
        _t.Machine.Cpu = 0;
        Assert.Equal(5_000UL, Microhv.Hypervisor.Events.Timers.NextDeadline(_t.Machine));
        // Woken and picked by CPU 2, its deadline goes with it.
        _b.Vcpu.Blocked = false;
        Assert.Same(_b.Vcpu, PickOn(2, null));
        Assert.Equal(7_000UL, Microhv.Hypervisor.Events.Timers.NextDeadline(_t.Machine));
        _t.Machine.Cpu = 1;
        Assert.Equal(0UL, Microhv.Hypervisor.Events.Timers.NextDeadline(_t.Machine));
    }

    [Fact]
    public void An_unpaused_domain_is_taken_by_an_idle_processor()
    {
        _b.PauseCount = 1;
        Assert.Same(_a.Vcpu, PickOn(0, null));
        Assert.Null(PickOn(1, null));
        Assert.Null(PickOn(2, null));
        _t.Machine.Cpu = 0;
        Assert.Equal(0, Microhv.Hypervisor.Toolstack.DomainLifecycle.Unpause(_a.Vcpu, _b));
        Assert.Equal(1UL << 1, _s.TakeKicks());
        Assert.Same(_b.Vcpu, PickOn(1, null));
    }
    /// <summary>The machine ends on the last processor to leave a dead domain, not the first: dom0's poweroff on
    /// -smp 4 once printed the summary while other processors still ran its vCPUs, so its frames were not back.</summary>
    [Fact]
    public void The_machine_ends_only_when_no_processor_runs_a_dead_domain()
    {
        Assert.Same(_a.Vcpu, PickOn(0, null));
        Assert.Same(_b.Vcpu, PickOn(1, null));
        _t.Machine.Cpu = 0;
        _a.State = DomainState.Shutdown;
        _b.State = DomainState.Shutdown;
        Assert.Null(PickOn(0, _a.Vcpu, false));
        Assert.False(_s.AllDomainsEnded());                     // CPU 1 still has b's tables loaded
        Assert.Equal(1UL << 1, _s.TakeKicks());
        Assert.Null(PickOn(1, _b.Vcpu, false));
        Assert.True(_s.AllDomainsEnded());
    }
}
