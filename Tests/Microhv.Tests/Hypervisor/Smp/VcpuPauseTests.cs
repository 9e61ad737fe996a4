using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Microhv.Tests.Hypervisor.Toolstack;
using Xunit;
using C = Microhv.Hypervisor.Public.VcpuGuestContext;
using X = Microhv.Hypervisor.Public.Domctl;

namespace Microhv.Tests.Hypervisor.Smp;

/// <summary>Xen's vcpu_pause / domain_pause with vcpu_sleep_sync (VcpuPause): dom0 on CPU 0 pauses or reads a
/// domain whose vCPU runs on CPU 1. The pause kicks CPU 1, the pauser waits (HypervisorHost.WaitDescheduled,
/// where the kernel lets the lock go) until CPU 1's exit has left the vCPU and saved its registers and segment
/// bases, and what getvcpucontext reads is the state the vCPU left with, not the copy from its last switch.</summary>
public class VcpuPauseTests
{
    private readonly ToolstackGuest _t = new();
    private readonly Domain _d;
    private readonly Vcpu _v;
    private readonly GuestEntry _cpu1;

    public VcpuPauseTests()
    {
        Scheduler s = _t.M.Scheduler;
        s.Join(1);
        _d = _t.G.Tm.AddDomain(1);
        _v = _d.Vcpu;
        _v.Initialised = true;
        _v.Regs.Rip = 0x1000;                                  // the copy from before it ran
        _v.Regs.Cs = Xen.FLAT_KERNEL_CS64;
        _v.Regs.Ss = Xen.FLAT_KERNEL_SS64;
        _v.KernelMode = true;
        _t.M.Cpu = 0;
        s.Entered(0);
        Assert.Same(_t.V, s.PickNext(null, true));             // dom0 on CPU 0
        _t.M.Cpu = 1;
        s.Entered(1);
        _cpu1 = new GuestEntry(_t.M, 1) { Current = s.PickNext(null, true) };
        Assert.Same(_v, _cpu1.Current);                        // domain 1's vCPU on CPU 1
        _v.FsBaseLive = _v.GsBaseLive = true;                  // its bases are in CPU 1
        _t.M.Cpu = 0;                                          // dom0's hypercalls from here on
    }

    /// <summary>CPU 1 enters (the kick's interrupt) with the vCPU's registers as they are now, and its FS base
    /// in the CPU; its exit decides the vCPU may not run and leaves it.</summary>
    private void Cpu1Exits(ulong rip, ulong rbx, ulong fsBase)
    {
        var frame = new TrapFrame { Rip = rip, Rbx = rbx, Cs = Xen.FLAT_KERNEL_CS64, Ss = Xen.FLAT_KERNEL_SS64, Rflags = 0x202 };
        _t.G.Tm.Host.LiveFsBase = fsBase;
        _t.M.Cpu = 1;
        _t.M.Scheduler.Entered(1);
        _cpu1.Interrupt(ref frame);
        _t.M.Cpu = 0;
    }

    [Fact]
    public void Pausing_a_domain_whose_vcpu_runs_elsewhere_kicks_that_processor_and_waits_until_it_exits()
    {
        var host = _t.G.Tm.Host;
        ulong kicked = 0;
        bool descheduledBefore = true;
        host.OnWaitDescheduled = v =>
        {
            descheduledBefore = VcpuPause.Descheduled(v);
            kicked = _t.M.Scheduler.TakeKicks();               // what the kernel's Leave sends before it lets the lock go
            Cpu1Exits(0x2000, 7, 0x5000);
        };
        Assert.Equal(0, _t.Domctl(X.XEN_DOMCTL_pausedomain, 1));
        Assert.Equal(new[] { _v }, host.DescheduleWaits);
        Assert.False(descheduledBefore);                       // still on CPU 1 when the pauser began to wait
        Assert.Equal(1UL << 1, kicked);
        Assert.Equal(-1, _v.RunningOn);
        Assert.Null(_t.M.Scheduler.RunningOn(1));              // CPU 1 idles
        Assert.True(VcpuPause.Descheduled(_v));
        Assert.Equal(0x2000UL, _v.Regs.Rip);

        // Paused and off its processor: a second pause, and getvcpucontext, wait for nothing.
        Assert.Equal(0, _t.Domctl(X.XEN_DOMCTL_pausedomain, 1));
        Assert.Single(host.DescheduleWaits);
        Assert.Equal(0, _t.Domctl(X.XEN_DOMCTL_unpausedomain, 1));
        Assert.Equal(0, _t.Domctl(X.XEN_DOMCTL_unpausedomain, 1));
        Assert.True(Scheduler.IsRunnable(_v));
    }

    [Fact]
    public void Getvcpucontext_of_a_vcpu_running_elsewhere_reads_the_state_it_left_with()
    {
        var host = _t.G.Tm.Host;
        host.OnWaitDescheduled = v =>
        {
            Assert.False(Scheduler.IsRunnable(v));             // vcpu_pause: it may not run while it is read
            Assert.Equal(1UL << 1, _t.M.Scheduler.TakeKicks());
            Cpu1Exits(0xFFFF_FFFF_8123_4567, 0xB0B, 0x7F00_1234_5000);
        };
        _t.Header(X.XEN_DOMCTL_getvcpucontext, 1);
        _t.G.W32(ToolstackGuest.Op + (ulong)X.vcpucontext_vcpu, 0);
        _t.G.W64(ToolstackGuest.Op + (ulong)X.vcpucontext_ctxt, ToolstackGuest.Ctx);
        Assert.Equal(0, Microhv.Hypervisor.Domctl.Do(_t.V, ToolstackGuest.Op));
        Assert.Single(host.DescheduleWaits);
        ulong u = ToolstackGuest.Ctx + (ulong)C.user_regs;
        Assert.Equal(0xFFFF_FFFF_8123_4567UL, _t.G.R64(u + (ulong)C.rip));      // not the 0x1000 of its last switch
        Assert.Equal(0xB0BUL, _t.G.R64(u + (ulong)C.rbx));
        Assert.Equal(0x7F00_1234_5000UL, _t.G.R64(ToolstackGuest.Ctx + (ulong)C.fs_base));
        // The read over, it may run again (the domain is not paused) and an idle processor is kicked to take it.
        Assert.Equal(0, _v.PauseCount);
        Assert.True(Scheduler.IsRunnable(_v));
        Assert.Equal(1UL << 1, _t.M.Scheduler.TakeKicks() & (1UL << 1));
    }

    [Fact]
    public void On_one_processor_nothing_waits()
    {
        var t = new ToolstackGuest();
        Domain d = t.G.Tm.AddDomain(1);
        d.Vcpu.Initialised = true;
        t.M.Scheduler.PickNext(null, true);
        Assert.Equal(0, t.Domctl(X.XEN_DOMCTL_pausedomain, 1));
        t.Header(X.XEN_DOMCTL_getvcpucontext, 1);
        t.G.W64(ToolstackGuest.Op + (ulong)X.vcpucontext_ctxt, ToolstackGuest.Ctx);
        Assert.Equal(0, Microhv.Hypervisor.Domctl.Do(t.V, ToolstackGuest.Op));
        Assert.Empty(t.G.Tm.Host.DescheduleWaits);
        Assert.Equal(0, d.Vcpu.PauseCount);
    }

    [Fact]
    public void A_vcpu_unpaused_by_another_processor_while_the_pauser_waits_is_not_waited_for()
    {
        // Xen's vcpu_sleep_sync stops waiting when the vCPU may run again.
        _d.PauseCount = 1;
        Assert.False(VcpuPause.Descheduled(_v));
        _d.PauseCount = 0;
        Assert.True(VcpuPause.Descheduled(_v));
        // Its own processor's vCPU is never waited for.
        _t.M.Cpu = 1;
        _d.PauseCount = 1;
        Assert.True(VcpuPause.Descheduled(_v));
    }

    /// <summary>Xen's getvcpucontext argument checks (xen/common/domctl.c): an id past max_vcpus or the calling vCPU
    /// itself (it cannot be paused) is -EINVAL, a vCPU never initialised -ENODATA, an unwritable buffer -EFAULT.</summary>
    [Fact]
    public void Getvcpucontext_refuses_as_Xen_does()
    {
        var t = new ToolstackGuest();
        Domain d = t.G.Tm.AddDomain(1);
        long Get(ushort dom, uint vcpu, ulong ctxt)
        {
            t.Header(X.XEN_DOMCTL_getvcpucontext, dom);
            t.G.W32(ToolstackGuest.Op + (ulong)X.vcpucontext_vcpu, vcpu);
            t.G.W64(ToolstackGuest.Op + (ulong)X.vcpucontext_ctxt, ctxt);
            return Microhv.Hypervisor.Domctl.Do(t.V, ToolstackGuest.Op);
        }
        d.Vcpu.Initialised = false;
        Assert.Equal(-Errno.ENODATA, Get(1, 0, ToolstackGuest.Ctx));
        d.Vcpu.Initialised = true;
        Assert.Equal(-Errno.EINVAL, Get(1, 1, ToolstackGuest.Ctx));          // past max_vcpus
        Assert.Equal(-Errno.EFAULT, Get(1, 0, 0xFFFF_8000_0000_0000));       // nothing of the caller's there
        Assert.Equal(0, Get(1, 0, ToolstackGuest.Ctx));
        t.V.Initialised = true;
        Assert.Equal(-Errno.EINVAL, Get(0, 0, ToolstackGuest.Ctx));          // the calling vCPU itself
        Assert.Equal(0, d.Vcpu.PauseCount);
    }
}
