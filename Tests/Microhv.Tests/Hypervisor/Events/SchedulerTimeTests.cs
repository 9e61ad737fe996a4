using Microhv.Hypervisor;
using Xunit;

namespace Microhv.Tests.Hypervisor.Events;

/// <summary>Each vCPU is charged the time it held the CPU (getdomaininfo's cpu_time, xl list's Time(s)); paused and
/// offline vCPUs do not run.</summary>
public class SchedulerTimeTests
{
    [Fact]
    public void Each_vcpu_is_charged_the_time_it_ran()
    {
        var tm = new TestMachine();
        Domain a = tm.AddDomain(0, initial: true), b = tm.AddDomain(1);
        Scheduler s = tm.Machine.Scheduler;
        tm.Host.NowNs = 100;
        Assert.Same(a.Vcpu, s.PickNext(null, true));
        tm.Host.NowNs = 400;
        Assert.Same(a.Vcpu, s.PickNext(a.Vcpu, false));     // staying on: nothing charged yet
        Assert.Equal(300UL, s.RunTime(a.Vcpu));
        Assert.Same(b.Vcpu, s.PickNext(a.Vcpu, true));      // a leaves at 400 after 300 ns
        tm.Host.NowNs = 1000;
        a.Vcpu.Blocked = true;
        Assert.Same(b.Vcpu, s.PickNext(b.Vcpu, true));
        b.Vcpu.Blocked = true;
        Assert.Null(s.PickNext(b.Vcpu, true));              // b leaves at 1000 after 600 ns; idle
        tm.Host.NowNs = 5000;
        Assert.Equal(300UL, s.RunTime(a.Vcpu));
        Assert.Equal(600UL, s.RunTime(b.Vcpu));

        // A paused domain and an offline vCPU are not runnable.
        a.Vcpu.Blocked = b.Vcpu.Blocked = false;
        a.PauseCount = 1;
        b.Vcpu.Online = false;
        Assert.Null(s.PickNext(null, true));
    }
}
