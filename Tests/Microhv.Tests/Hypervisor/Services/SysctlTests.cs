using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Xunit;
using SysctlOp = Microhv.Hypervisor.Sysctl;
using X = Microhv.Hypervisor.Public.Sysctl;
using DX = Microhv.Hypervisor.Public.Domctl;

namespace Microhv.Tests.Hypervisor.Services;

/// <summary>sysctl at Xen 4.17's interface: the layouts are Debian libxen-dev 4.17's (offsetof), the answers Xen's.</summary>
public class SysctlTests
{
    private const ulong Op = ServiceGuest.Base;              // struct xen_sysctl
    private const ulong Buffer = ServiceGuest.Base + 4096;   // getdomaininfolist's buffer, bitmaps

    private static ServiceGuest Dom0()
    {
        var g = new ServiceGuest(id: 0, initial: true);
        g.Tm.Host.CpuIdLeaves[0] = (0xD, 0, 0, 0);
        g.Tm.Host.CpuIdLeaves[1] = (0x806F8, 0, 0x80202001, 0x178BFBFF);
        g.Tm.Host.CpuIdLeaves[7] = (0, 0x219C07AB, 0x4, 0);
        g.Tm.Host.CpuIdLeaves[0x8000_0000] = (0x8000_0008, 0, 0, 0);
        g.Tm.Host.CpuIdLeaves[0x8000_0001] = (0, 0, 0x121, 0x2C100800);
        g.Tm.Host.CpuIdLeaves[0x8000_0008] = (0x3028, 0, 0, 0);
        return g;
    }

    private static void Header(ServiceGuest g, uint cmd, uint version = X.XEN_SYSCTL_INTERFACE_VERSION)
    {
        for (ulong i = 0; i < (ulong)X.size; i += 8) g.W64(Op + i, 0);
        g.W32(Op + (ulong)X.cmd, cmd);
        g.W32(Op + (ulong)X.interface_version, version);
    }

    [Fact]
    public void Layout_is_libxen_dev_4_17s()
    {
        Assert.Equal(0x15u, X.XEN_SYSCTL_INTERFACE_VERSION);
        Assert.Equal(136, X.size);
        Assert.Equal(8 + 40, X.physinfo_total_pages);
        Assert.Equal(8 + 72, X.physinfo_max_mfn);
        Assert.Equal(8 + 80, X.physinfo_hw_cap);
        Assert.Equal(8 + 8, X.getdomaininfolist_buffer);
        Assert.Equal(8 + 16, X.getdomaininfolist_num_domains);
        Assert.Equal(8 + 24, X.cpupool_op_cpumap_bitmap);
        Assert.Equal(8 + 32, X.cpupool_op_cpumap_nr_bits);
    }

    [Fact]
    public void Physinfo_describes_the_machine()
    {
        var g = Dom0();
        g.Tm.Machine.HostMemoryMap.Add(0, 0x9F000, 1);
        g.Tm.Machine.HostMemoryMap.Add(0x100000, 0x7FF0_0000 - 0x100000, 1);
        g.Tm.Machine.HostMemoryMap.Add(0xFEC0_0000, 0x1000, 2);
        Header(g, X.XEN_SYSCTL_physinfo);
        g.W64(Op + X.physinfo_scrub_pages, 0xDEAD);   // Xen zeroes the whole structure
        Assert.Equal(0, SysctlOp.Do(g.V, Op));
        Assert.Equal(1u, g.R32(Op + X.physinfo_threads_per_core));
        Assert.Equal(1u, g.R32(Op + X.physinfo_cores_per_socket));
        Assert.Equal(1u, g.R32(Op + X.physinfo_nr_cpus));
        Assert.Equal(0u, g.R32(Op + X.physinfo_max_cpu_id));
        Assert.Equal(1u, g.R32(Op + X.physinfo_nr_nodes));
        Assert.Equal(0u, g.R32(Op + X.physinfo_max_node_id));
        Assert.Equal(X.XEN_SYSCTL_PHYSCAP_pv | X.XEN_SYSCTL_PHYSCAP_gnttab_v1 | X.XEN_SYSCTL_PHYSCAP_gnttab_v2, g.R32(Op + X.physinfo_capabilities));
        Assert.Equal(0x9FUL + (0x7FF0_0000UL - 0x100000) / 4096, g.R64(Op + X.physinfo_total_pages));
        Assert.Equal(g.Tm.Machine.Frames.FreeFrameCount, g.R64(Op + X.physinfo_free_pages));
        Assert.NotEqual(0UL, g.R64(Op + X.physinfo_free_pages));
        Assert.Equal(0UL, g.R64(Op + X.physinfo_scrub_pages));
        Assert.Equal(1023UL, g.R64(Op + X.physinfo_max_mfn));
        // Xen's featureset order: 1d, 1c, e1d, e1c, Da1, 7b0, 7c0, e7d.
        Assert.Equal(0x178BFBFFu, g.R32(Op + X.physinfo_hw_cap));
        Assert.Equal(0x80202001u, g.R32(Op + X.physinfo_hw_cap + 4));
        Assert.Equal(0x2C100800u, g.R32(Op + X.physinfo_hw_cap + 8));
        Assert.Equal(0x121u, g.R32(Op + X.physinfo_hw_cap + 12));
        Assert.Equal(0x219C07ABu, g.R32(Op + X.physinfo_hw_cap + 20));
        Assert.Equal(0x4u, g.R32(Op + X.physinfo_hw_cap + 24));
    }

    [Fact]
    public void Sched_id_is_credits()
    {
        var g = Dom0();
        Header(g, X.XEN_SYSCTL_sched_id);
        Assert.Equal(0, SysctlOp.Do(g.V, Op));
        Assert.Equal(5u, g.R32(Op + X.sched_id_sched_id));   // XEN_SCHEDULER_CREDIT
    }

    [Fact]
    public void Getdomaininfolist_walks_the_domains_in_id_order_from_first_domain()
    {
        var g = Dom0();
        g.Tm.AddDomain(7);
        g.Tm.AddDomain(3);
        Header(g, X.XEN_SYSCTL_getdomaininfolist);
        g.W16(Op + X.getdomaininfolist_first_domain, 0);
        g.W32(Op + X.getdomaininfolist_max_domains, 16);
        g.W64(Op + X.getdomaininfolist_buffer, Buffer);
        Assert.Equal(0, SysctlOp.Do(g.V, Op));
        Assert.Equal(3u, g.R32(Op + X.getdomaininfolist_num_domains));
        Assert.Equal(0, g.R16(Buffer + DX.info_domain));
        Assert.Equal(3, g.R16(Buffer + DX.info_size + DX.info_domain));
        Assert.Equal(7, g.R16(Buffer + 2 * DX.info_size + DX.info_domain));
        Assert.Equal((ulong)ServiceGuest.Pages, g.R64(Buffer + DX.info_tot_pages));

        // From id 1, at most one entry: domain 3 only.
        g.W16(Op + X.getdomaininfolist_first_domain, 1);
        g.W32(Op + X.getdomaininfolist_max_domains, 1);
        Assert.Equal(0, SysctlOp.Do(g.V, Op));
        Assert.Equal(1u, g.R32(Op + X.getdomaininfolist_num_domains));
        Assert.Equal(3, g.R16(Buffer + DX.info_domain));

        // Past the last domain: none; a buffer the caller cannot write: -EFAULT.
        g.W16(Op + X.getdomaininfolist_first_domain, 8);
        g.W32(Op + X.getdomaininfolist_max_domains, 16);
        Assert.Equal(0, SysctlOp.Do(g.V, Op));
        Assert.Equal(0u, g.R32(Op + X.getdomaininfolist_num_domains));
        g.W16(Op + X.getdomaininfolist_first_domain, 0);
        g.W64(Op + X.getdomaininfolist_buffer, ServiceGuest.ReadOnlyPage);
        Assert.Equal(-Errno.EFAULT, SysctlOp.Do(g.V, Op));
    }

    [Fact]
    public void Cpupool_freeinfo_has_no_free_cpu_and_info_shows_pool_0()
    {
        var g = Dom0();
        Header(g, X.XEN_SYSCTL_cpupool_op);
        g.W32(Op + X.cpupool_op_op, X.XEN_SYSCTL_CPUPOOL_OP_FREEINFO);
        g.W64(Op + X.cpupool_op_cpumap_bitmap, Buffer);
        g.W32(Op + X.cpupool_op_cpumap_nr_bits, 16);
        g.W16(Buffer, 0xFFFF);
        g.Write(Buffer + 2, new byte[] { 0xAA });
        Assert.Equal(0, SysctlOp.Do(g.V, Op));
        Assert.Equal(0, g.R16(Buffer));        // nr_bits' bytes zeroed, nothing past them written
        Assert.Equal(0xAA, g.R8(Buffer + 2));

        g.W32(Op + X.cpupool_op_op, X.XEN_SYSCTL_CPUPOOL_OP_INFO);
        g.W32(Op + X.cpupool_op_cpupool_id, 0);
        Assert.Equal(0, SysctlOp.Do(g.V, Op));
        Assert.Equal(0u, g.R32(Op + X.cpupool_op_cpupool_id));
        Assert.Equal(5u, g.R32(Op + X.cpupool_op_sched_id));
        Assert.Equal(1u, g.R32(Op + X.cpupool_op_n_dom));
        Assert.Equal(1, g.R16(Buffer));        // CPU 0 is in Pool-0
        g.W32(Op + X.cpupool_op_cpupool_id, 1);
        Assert.Equal(-Errno.ENOENT, SysctlOp.Do(g.V, Op));
        g.W32(Op + X.cpupool_op_op, X.XEN_SYSCTL_CPUPOOL_OP_CREATE);
        Assert.Equal(-Errno.ENOSYS, SysctlOp.Do(g.V, Op));
    }

    [Fact]
    public void A_wrong_version_is_EACCES_before_the_privilege_check_and_others_get_EPERM()
    {
        var g = Dom0();
        Header(g, X.XEN_SYSCTL_physinfo, version: 0x14);
        Assert.Equal(-Errno.EACCES, SysctlOp.Do(g.V, Op));
        Assert.Equal(-Errno.EFAULT, SysctlOp.Do(g.V, ServiceGuest.Unmapped));

        var domU = new ServiceGuest(id: 1);
        Header(domU, X.XEN_SYSCTL_physinfo, version: 0x14);
        Assert.Equal(-Errno.EACCES, SysctlOp.Do(domU.V, Op));
        foreach (uint cmd in new[] { X.XEN_SYSCTL_physinfo, X.XEN_SYSCTL_getdomaininfolist, X.XEN_SYSCTL_sched_id, 99u })
        {
            Header(domU, cmd);
            Assert.Equal(-Errno.EPERM, SysctlOp.Do(domU.V, Op));
        }
        Assert.Equal(0UL, domU.R64(Op + X.physinfo_total_pages));
    }

    [Fact]
    public void Unknown_operations_are_ENOSYS_and_logged_once()
    {
        var g = Dom0();
        Header(g, X.XEN_SYSCTL_readconsole);
        Assert.Equal(-Errno.ENOSYS, SysctlOp.Do(g.V, Op));
        Assert.Equal(-Errno.ENOSYS, SysctlOp.Do(g.V, Op));
        Header(g, 1234);
        Assert.Equal(-Errno.ENOSYS, SysctlOp.Do(g.V, Op));
        Assert.Equal("sysctl: operation 1 not supported (-ENOSYS; logged once)\n", g.ConsoleText);
    }
}
