using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Xunit;
using X = Microhv.Hypervisor.Public.Domctl;

namespace Microhv.Tests.Hypervisor.Toolstack;

/// <summary>setvcpuaffinity/getvcpuaffinity (xl vcpu-pin, xl.cfg's cpus=) on a machine whose boot started four
/// processors of which only 0 and 1 have joined yet: the masks are judged against the started processors, as
/// Xen's against the domain's cpupool, and the scheduler keeps the vCPU off the joined ones it does not name.</summary>
public class VcpuAffinityTests
{
    private const ulong Hard = ToolstackGuest.Buf, Soft = ToolstackGuest.Buf + 8;
    private readonly ToolstackGuest _t = new();
    private readonly Domain _d;

    public VcpuAffinityTests()
    {
        _t.M.Scheduler.Start(4);
        _t.M.Scheduler.Join(1);
        Assert.Equal(0, _t.Create());
        _d = _t.M.FindDomain(_t.CreatedId);
    }

    /// <summary>The domctl with an 8-bit map (libxc's for 4 CPUs) holding <paramref name="hard"/> and <paramref name="soft"/>.</summary>
    private long Affinity(uint cmd, uint flags, byte hard, byte soft = 0)
    {
        _t.Header(cmd, _d.DomainId);
        _t.G.W32(ToolstackGuest.Op + (ulong)X.vcpuaffinity_vcpu, 0);
        _t.G.W32(ToolstackGuest.Op + (ulong)X.vcpuaffinity_flags, flags);
        _t.G.Write(Hard, new[] { hard });
        _t.G.Write(Soft, new[] { soft });
        _t.G.W64(ToolstackGuest.Op + (ulong)(X.vcpuaffinity_hard + X.bitmap_bitmap), Hard);
        _t.G.W32(ToolstackGuest.Op + (ulong)(X.vcpuaffinity_hard + X.bitmap_nr_bits), 8);
        _t.G.W64(ToolstackGuest.Op + (ulong)(X.vcpuaffinity_soft + X.bitmap_bitmap), Soft);
        _t.G.W32(ToolstackGuest.Op + (ulong)(X.vcpuaffinity_soft + X.bitmap_nr_bits), 8);
        return Microhv.Hypervisor.Domctl.Do(_t.V, ToolstackGuest.Op);
    }

    [Fact]
    public void A_processor_started_but_not_joined_can_be_named_and_the_vcpu_waits_for_it()
    {
        Assert.Equal(0, Affinity(X.XEN_DOMCTL_setvcpuaffinity, X.XEN_VCPUAFFINITY_HARD, 0b1100_1000));
        Assert.Equal(1UL << 3 | 0xC0, _d.Vcpu.HardAffinity);
        Assert.Equal(0b1000, _t.G.R8(Hard));                              // what the scheduler uses: within the started CPUs
        Assert.Equal(0, Affinity(X.XEN_DOMCTL_getvcpuaffinity, X.XEN_VCPUAFFINITY_HARD | X.XEN_VCPUAFFINITY_SOFT, 0xFF, 0xFF));
        Assert.Equal((0b1000, 0b1111), (_t.G.R8(Hard), _t.G.R8(Soft)));

        // Built and unpaused: neither joined processor takes it; CPU 3 does once it joins.
        _d.Vcpu.Online = true;
        _d.State = DomainState.Running;
        _d.PauseCount = 0;
        Assert.True(Scheduler.IsRunnable(_d.Vcpu));
        var s = _t.M.Scheduler;
        _t.M.Cpu = 1;
        Assert.NotSame(_d.Vcpu, s.PickNext(null, true));
        _t.M.Cpu = 0;
        Assert.NotSame(_d.Vcpu, s.PickNext(s.Running, true));
        s.Join(3);
        _t.M.Cpu = 3;
        Assert.Same(_d.Vcpu, s.PickNext(null, true));
        Assert.Equal(3u, Processor());                                   // getvcpuinfo's cpu: where it runs...
        _d.Vcpu.Blocked = true;
        Assert.Null(s.PickNext(_d.Vcpu, true));
        Assert.Equal(3u, Processor());                                   // ...or ran last (Xen's v->processor)
    }

    private uint Processor()
    {
        _t.Header(X.XEN_DOMCTL_getvcpuinfo, _d.DomainId);
        _t.G.W32(ToolstackGuest.Op + (ulong)X.getvcpuinfo_vcpu, 0);
        Assert.Equal(0, Microhv.Hypervisor.Domctl.Do(_t.V, ToolstackGuest.Op));
        return _t.G.R32(ToolstackGuest.Op + (ulong)X.getvcpuinfo_cpu);
    }

    [Fact]
    public void A_mask_naming_no_started_processor_is_refused_and_the_old_one_kept()
    {
        Assert.Equal(0, Affinity(X.XEN_DOMCTL_setvcpuaffinity, X.XEN_VCPUAFFINITY_HARD, 0b0100));
        Assert.Equal(-Errno.EINVAL, Affinity(X.XEN_DOMCTL_setvcpuaffinity, X.XEN_VCPUAFFINITY_HARD, 0b1111_0000));
        Assert.Equal(0b0100UL, _d.Vcpu.HardAffinity);
        // A soft mask outside the started processors is kept (Xen checks only the hard one) and reads back empty.
        Assert.Equal(0, Affinity(X.XEN_DOMCTL_setvcpuaffinity, X.XEN_VCPUAFFINITY_SOFT, 0, 0b1_0000));
        Assert.Equal(0b1_0000UL, _d.Vcpu.SoftAffinity);
        Assert.Equal(0, _t.G.R8(Soft));
    }
}
