using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Xunit;

namespace Microhv.Tests.Hypervisor.Services;

public class XenVersionTests
{
    // version.h sub-commands.
    private const ulong XENVER_version = 0, XENVER_extraversion = 1, XENVER_capabilities = 3,
        XENVER_platform_parameters = 5, XENVER_get_features = 6, XENVER_pagesize = 7, XENVER_commandline = 9, XENVER_build_id = 10;

    [Fact]
    public void Version_is_4_17_as_major_16_minor()
        => Assert.Equal(0x0004_0011, XenVersion.Do(new ServiceGuest().V, XENVER_version, 0));

    [Fact]
    public void Strings_are_nul_terminated_in_their_fields()
    {
        var g = new ServiceGuest();
        Assert.Equal(0, XenVersion.Do(g.V, XENVER_extraversion, ServiceGuest.Base));
        Assert.Equal(".0-microhv", g.RString(ServiceGuest.Base, 16));
        Assert.Equal(0, XenVersion.Do(g.V, XENVER_capabilities, ServiceGuest.Base + 4096));
        Assert.Equal("xen-3.0-x86_64 ", g.RString(ServiceGuest.Base + 4096, 1024));
        Assert.Equal(-14, XenVersion.Do(g.V, XENVER_capabilities, ServiceGuest.ReadOnlyPage));
    }

    [Fact]
    public void Platform_parameters_give_the_hypervisor_virt_start()
    {
        var g = new ServiceGuest();
        Assert.Equal(0, XenVersion.Do(g.V, XENVER_platform_parameters, ServiceGuest.Base));
        Assert.Equal(0xFFFF_8000_0000_0000UL, g.R64(ServiceGuest.Base));
    }

    [Fact]
    public void Features_are_the_ones_Xen_gives_a_pv_guest()
    {
        var g = new ServiceGuest();
        g.W32(ServiceGuest.Base, 0);
        Assert.Equal(0, XenVersion.Do(g.V, XENVER_get_features, ServiceGuest.Base));
        uint map = g.R32(ServiceGuest.Base + 4);
        // mmu_pt_update_preserve_ad (5), highmem_assist (6), gnttab_map_avail_bits (7); not translated (0, 2), not dom0 (11).
        Assert.Equal((1u << 5) | (1u << 6) | (1u << 7), map);

        var dom0 = new ServiceGuest(id: 0, initial: true);
        dom0.W32(ServiceGuest.Base, 0);
        Assert.Equal(0, XenVersion.Do(dom0.V, XENVER_get_features, ServiceGuest.Base));
        Assert.NotEqual(0u, dom0.R32(ServiceGuest.Base + 4) & (1u << 11));

        g.W32(ServiceGuest.Base, 1);   // XENFEAT_NR_SUBMAPS is 1
        Assert.Equal(-22, XenVersion.Do(g.V, XENVER_get_features, ServiceGuest.Base));
        Assert.Equal(-14, XenVersion.Do(g.V, XENVER_get_features, ServiceGuest.Unmapped));
    }

    [Fact]
    public void Pagesize_needs_a_null_argument()
    {
        var g = new ServiceGuest();
        Assert.Equal(4096, XenVersion.Do(g.V, XENVER_pagesize, 0));
        Assert.Equal(-22, XenVersion.Do(g.V, XENVER_pagesize, ServiceGuest.Base));
    }

    [Fact]
    public void Commandline_and_build_id_are_privileged()
    {
        var g = new ServiceGuest();
        Assert.Equal(0, XenVersion.Do(g.V, XENVER_commandline, ServiceGuest.Base));
        Assert.Equal("<denied>", g.RString(ServiceGuest.Base, 1024));
        Assert.Equal(-1, XenVersion.Do(g.V, XENVER_build_id, 0));
        Assert.Equal(-38, XenVersion.Do(g.V, 99, 0));
    }
}

public class PhysdevOpTests
{
    private const ulong PHYSDEVOP_set_iopl = 6;

    [Fact]
    public void Set_iopl_accepts_0_to_3_only()
    {
        var g = new ServiceGuest();
        g.W32(ServiceGuest.Base, 3);
        Assert.Equal(0, PhysdevOp.Do(g.V, PHYSDEVOP_set_iopl, ServiceGuest.Base));
        Assert.Equal(3, g.V.Iopl);
        g.W32(ServiceGuest.Base, 4);
        Assert.Equal(-22, PhysdevOp.Do(g.V, PHYSDEVOP_set_iopl, ServiceGuest.Base));
        Assert.Equal(3, g.V.Iopl);
        Assert.Equal(-14, PhysdevOp.Do(g.V, PHYSDEVOP_set_iopl, ServiceGuest.Unmapped));
    }

    [Fact]
    public void Interrupt_queries_of_a_domain_without_devices_answer_as_xen()
    {
        var g = new ServiceGuest();
        Assert.Equal(-38, PhysdevOp.Do(g.V, 23, ServiceGuest.Base));   // get_free_pirq: not offered
        g.W32(ServiceGuest.Base, 0);
        Assert.Equal(0, PhysdevOp.Do(g.V, 5, ServiceGuest.Base));      // irq_status_query: conservatively needs_eoi
        Assert.Equal(1u, g.R32(ServiceGuest.Base + 4));
        g.W32(ServiceGuest.Base, 4096);
        Assert.Equal(-22, PhysdevOp.Do(g.V, 5, ServiceGuest.Base));    // beyond the domain's pirqs
        g.W64(ServiceGuest.Base, 0);
        Assert.Equal(-22, PhysdevOp.Do(g.V, 28, ServiceGuest.Base));   // pirq_eoi_gmfn_v2 of a frame not the domain's
    }
}
