using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Xunit;
using DomctlOp = Microhv.Hypervisor.Domctl;
using X = Microhv.Hypervisor.Public.Domctl;

namespace Microhv.Tests.Hypervisor.Services;

/// <summary>domctl at Xen 4.17's interface: getdomaininfo with Xen's semantics, and the refusals in Xen's order.</summary>
public class DomctlTests
{
    private const ulong Op = ServiceGuest.Base;   // struct xen_domctl
    private const ulong Info = Op + X.u;

    private static void Header(ServiceGuest g, uint cmd, ushort domain, uint version = X.XEN_DOMCTL_INTERFACE_VERSION)
    {
        for (ulong i = 0; i < (ulong)X.size; i += 8) g.W64(Op + i, 0xFFFF_FFFF_FFFF_FFFF);
        g.W32(Op + (ulong)X.cmd, cmd);
        g.W32(Op + (ulong)X.interface_version, version);
        g.W16(Op + (ulong)X.domain, domain);
    }

    [Fact]
    public void Layout_is_libxen_dev_4_17s()
    {
        Assert.Equal(0x15u, X.XEN_DOMCTL_INTERFACE_VERSION);
        Assert.Equal(144, X.size);
        Assert.Equal(16, X.u);
        Assert.Equal(112, X.info_size);
        Assert.Equal(48, X.info_shared_info_frame);
        Assert.Equal(56, X.info_cpu_time);
        Assert.Equal(64, X.info_nr_online_vcpus);
        Assert.Equal(76, X.info_handle);
        Assert.Equal(92, X.info_cpupool);
        Assert.Equal(96, X.info_gpaddr_bits);
        Assert.Equal(104, X.info_arch_config);
    }

    [Fact]
    public void Getdomaininfo_of_dom0_itself()
    {
        var g = new ServiceGuest(id: 0, initial: true);
        g.D.SharedInfoMfn = 0x1234;
        g.Tm.Host.NowNs = 1_000_000_000;
        Assert.Same(g.V, g.Tm.Machine.Scheduler.PickNext(null, true));   // dom0 starts running at 1 s
        g.Tm.Host.NowNs = 5_000_000_000;
        g.Tm.Host.CpuIdLeaves[0x8000_0000] = (0x8000_0008, 0, 0, 0);
        g.Tm.Host.CpuIdLeaves[0x8000_0008] = (0x3028, 0, 0, 0);
        Header(g, X.XEN_DOMCTL_getdomaininfo, 0);
        Assert.Equal(0, DomctlOp.Do(g.V, Op));
        Assert.Equal(0, g.R16(Op + X.domain));
        Assert.Equal(0, g.R16(Info + X.info_domain));
        Assert.Equal(0, g.R16(Info + X.info_pad1));
        // Running (the caller), not blocked, not shut down; SHUTDOWN_CODE_INVALID in bits 16-31 as on Xen.
        Assert.Equal(0xFFFF_0000u | X.XEN_DOMINF_running, g.R32(Info + X.info_flags));
        Assert.Equal((ulong)ServiceGuest.Pages, g.R64(Info + X.info_tot_pages));
        Assert.Equal((ulong)ServiceGuest.Pages, g.R64(Info + X.info_max_pages));
        Assert.Equal(0UL, g.R64(Info + X.info_outstanding_pages));
        Assert.Equal(0x1234UL, g.R64(Info + X.info_shared_info_frame));
        Assert.Equal(4_000_000_000UL, g.R64(Info + X.info_cpu_time));     // ran from 1 s to 5 s
        Assert.Equal(1u, g.R32(Info + X.info_nr_online_vcpus));
        Assert.Equal(0u, g.R32(Info + X.info_max_vcpu_id));
        Assert.Equal(0u, g.R32(Info + X.info_ssidref));
        for (int i = 0; i < 16; i++) Assert.Equal(0, g.R8(Info + X.info_handle + (ulong)i));
        Assert.Equal(0u, g.R32(Info + X.info_cpupool));
        Assert.Equal(0x28, g.R8(Info + X.info_gpaddr_bits));
        Assert.Equal(0UL, g.R64(Info + X.info_arch_config));
    }

    [Fact]
    public void Getdomaininfo_takes_the_first_domain_at_or_above_the_id()
    {
        var g = new ServiceGuest(id: 0, initial: true);
        Domain blocked = g.Tm.AddDomain(4);
        blocked.Vcpu.Blocked = true;
        Domain down = g.Tm.AddDomain(9);
        down.State = DomainState.Shutdown;
        down.ShutdownReason = Sched.SHUTDOWN_reboot;

        Header(g, X.XEN_DOMCTL_getdomaininfo, 1);
        Assert.Equal(0, DomctlOp.Do(g.V, Op));
        Assert.Equal(4, g.R16(Op + X.domain));             // echoed
        Assert.Equal(4, g.R16(Info + X.info_domain));
        Assert.Equal(0xFFFF_0000u | X.XEN_DOMINF_blocked, g.R32(Info + X.info_flags));

        Header(g, X.XEN_DOMCTL_getdomaininfo, 5);
        Assert.Equal(0, DomctlOp.Do(g.V, Op));
        Assert.Equal(9, g.R16(Info + X.info_domain));
        Assert.Equal(X.XEN_DOMINF_shutdown | (uint)Sched.SHUTDOWN_reboot << 16, g.R32(Info + X.info_flags));

        Header(g, X.XEN_DOMCTL_getdomaininfo, 10);
        Assert.Equal(-Errno.ESRCH, DomctlOp.Do(g.V, Op));
        Header(g, X.XEN_DOMCTL_getdomaininfo, Xen.DOMID_SELF);
        Assert.Equal(-Errno.EINVAL, DomctlOp.Do(g.V, Op));
    }

    [Fact]
    public void Refusals_come_in_Xens_order()
    {
        var g = new ServiceGuest(id: 0, initial: true);
        Header(g, X.XEN_DOMCTL_getdomaininfo, 0, version: 0x14);
        Assert.Equal(-Errno.EACCES, DomctlOp.Do(g.V, Op));
        Assert.Equal(-Errno.EFAULT, DomctlOp.Do(g.V, ServiceGuest.Unmapped));
        Header(g, X.XEN_DOMCTL_pausedomain, 5);
        Assert.Equal(-Errno.ESRCH, DomctlOp.Do(g.V, Op));    // no such domain, before anything else

        var domU = new ServiceGuest(id: 1);
        Header(domU, X.XEN_DOMCTL_getdomaininfo, 1);
        Assert.Equal(-Errno.EPERM, DomctlOp.Do(domU.V, Op));
        Assert.Equal(0xFFFF_FFFFu, domU.R32(Op + X.u + X.info_flags));   // nothing written
        Header(domU, X.XEN_DOMCTL_pausedomain, 1);
        Assert.Equal(-Errno.EPERM, DomctlOp.Do(domU.V, Op));
        Header(domU, X.XEN_DOMCTL_createdomain, 0);
        Assert.Equal(-Errno.EPERM, DomctlOp.Do(domU.V, Op));
        Header(domU, X.XEN_DOMCTL_getdomaininfo, 1, version: 0x16);
        Assert.Equal(-Errno.EACCES, DomctlOp.Do(domU.V, Op));
    }

    [Fact]
    public void Other_operations_are_ENOSYS_for_dom0_and_logged_once()
    {
        var g = new ServiceGuest(id: 0, initial: true);
        Header(g, 20, 0);      // XEN_DOMCTL_iomem_permission
        Assert.Equal(-Errno.ENOSYS, DomctlOp.Do(g.V, Op));
        Assert.Equal(-Errno.ENOSYS, DomctlOp.Do(g.V, Op));
        Header(g, 21, 0);      // XEN_DOMCTL_ioport_permission
        Assert.Equal(-Errno.ENOSYS, DomctlOp.Do(g.V, Op));
        Assert.Equal("domctl: operation 20 not supported (-ENOSYS; logged once)\n" +
                     "domctl: operation 21 not supported (-ENOSYS; logged once)\n", g.ConsoleText);
    }
}
