using System.Linq;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Io;
using Xunit;

namespace Microhv.Tests.Hypervisor.Io;

/// <summary>Port I/O of the hardware domain and of other domains (Xen's guest_io_read/guest_io_write).</summary>
public class GuestIoTests
{
    private static (TestMachine tm, Domain dom0, Domain domU) Machine()
    {
        var tm = new TestMachine();
        tm.Machine.IoPorts.DenyPcDefaults();
        tm.Machine.IoPorts.Deny(0x3F8, 0x3FF, "serial console (COM1)");
        return (tm, tm.AddDomain(0, initial: true), tm.AddDomain(1));
    }

    [Fact]
    public void Hardware_domain_reaches_permitted_ports_for_real()
    {
        var (tm, dom0, _) = Machine();
        tm.Host.PortValues[0x60] = 0x1C;                 // i8042 data
        tm.Host.PortValues[0xC000] = 0x12345678;
        Assert.Equal(0x1Cu, GuestIo.Read(dom0, 0x60, 1));
        Assert.Equal(0x12345678u, GuestIo.Read(dom0, 0xC000, 4));
        GuestIo.Write(dom0, 0xC010, 2, 0xBEEF);
        Assert.Contains((false, 0xC010u, 2, 0xBEEFu), tm.Host.PortAccesses);
    }

    [Fact]
    public void Ports_microhv_keeps_read_all_ones_and_drop_writes_even_for_the_hardware_domain()
    {
        var (tm, dom0, _) = Machine();
        tm.Host.PortValues[0x3F8] = 0x41;
        tm.Host.PortValues[0x21] = 0x00;
        Assert.Equal(0xFFu, GuestIo.Read(dom0, 0x3F8, 1));
        Assert.Equal(0xFFu, GuestIo.Read(dom0, 0x21, 1));
        Assert.Equal(0xFFu, GuestIo.Read(dom0, 0x42, 1));       // the PIT
        GuestIo.Write(dom0, 0x3F8, 1, 0x41);
        GuestIo.Write(dom0, 0x20, 1, 0x20);
        Assert.Empty(tm.Host.PortAccesses);
    }

    [Fact]
    public void A_wide_access_spanning_a_kept_port_is_split_byte_by_byte()
    {
        var (tm, dom0, _) = Machine();
        tm.Host.PortValues[0x3F6] = 0xBBAA;
        // 0x3F6..0x3F9: the permitted word read for real, 0x3F8-0x3F9 (COM1) as all ones.
        Assert.Equal(0xFFFFBBAAu, GuestIo.Read(dom0, 0x3F6, 4));
        Assert.Equal(new[] { (true, 0x3F6u, 2, 0xBBAAu) }, tm.Host.PortAccesses);
    }

    [Fact]
    public void Other_domains_get_no_port()
    {
        var (tm, _, domU) = Machine();
        tm.Host.PortValues[0x60] = 0x1C;
        Assert.Equal(0xFFu, GuestIo.Read(domU, 0x60, 1));
        Assert.Equal(0xFFFFFFFFu, GuestIo.Read(domU, 0xC000, 4));
        GuestIo.Write(domU, 0x60, 1, 0xFE);
        GuestIo.Write(domU, 0xCF8, 4, 0x8000_0000);
        Assert.Equal(0xFFFFFFFFu, GuestIo.Read(domU, 0xCFC, 4));
        Assert.Empty(tm.Host.PortAccesses);
    }

    [Fact]
    public void Pci_configuration_goes_through_the_domains_own_config_address()
    {
        var (tm, dom0, domU) = Machine();
        uint bdf03 = 0x8000_0000u | (3u << 11);              // bus 0, device 3, function 0
        tm.Host.PciConfig[bdf03] = 0x100E8086;               // e1000: device 100e, vendor 8086
        tm.Host.PciConfig[bdf03 | 0x3C] = 0x0000010B;

        GuestIo.Write(dom0, 0xCF8, 4, bdf03);
        Assert.Equal(bdf03, GuestIo.Read(dom0, 0xCF8, 4));       // the latch, not the real register
        Assert.DoesNotContain(tm.Host.PortAccesses, a => a.Port == 0xCF8);
        Assert.Equal(0x100E8086u, GuestIo.Read(dom0, 0xCFC, 4));
        Assert.Equal(0x100Eu, GuestIo.Read(dom0, 0xCFE, 2));      // the upper word of the dword

        // Another domain's CONFIG_ADDRESS does not disturb the hardware domain's.
        GuestIo.Write(domU, 0xCF8, 4, 0x8000_0000u | (1u << 11));
        GuestIo.Write(dom0, 0xCF8, 4, bdf03 | 0x3C);
        GuestIo.Write(dom0, 0xCFC, 1, 0x0A);                     // interrupt line
        Assert.Equal(0x0000010Au, tm.Host.PciConfig[bdf03 | 0x3C]);
        // Before each data access the real CONFIG_ADDRESS is set to the domain's (dword aligned).
        var last = tm.Host.PortAccesses.Last(a => a.Port == 0xCF8);
        Assert.Equal(bdf03 | 0x3C, last.Value);
    }

    [Fact]
    public void Pci_config_data_with_the_enable_bit_clear_reads_all_ones()
    {
        var (tm, dom0, _) = Machine();
        GuestIo.Write(dom0, 0xCF8, 4, 3u << 11);
        Assert.Equal(0xFFFFFFFFu, GuestIo.Read(dom0, 0xCFC, 4));
        Assert.Empty(tm.Host.PortAccesses);
    }

    [Fact]
    public void Rtc_index_is_latched_and_data_reaches_the_rtc_only_for_the_hardware_domain()
    {
        var (tm, dom0, domU) = Machine();
        tm.Host.PortValues[0x71] = 0x59;
        GuestIo.Write(dom0, 0x70, 1, 0x80);                      // NMI-disable bit + seconds register
        Assert.Equal(0x80u, GuestIo.Read(dom0, 0x70, 1));
        Assert.Equal(0x59u, GuestIo.Read(dom0, 0x71, 1));
        Assert.Equal((false, 0x70u, 1, 0x00u), tm.Host.PortAccesses[0]);   // bit 7 never reaches the hardware
        tm.Host.PortAccesses.Clear();
        GuestIo.Write(domU, 0x70, 1, 0x00);
        Assert.Equal(0u, GuestIo.Read(domU, 0x70, 1));          // every domain has its own index
        Assert.Equal(0xFFu, GuestIo.Read(domU, 0x71, 1));
        Assert.Empty(tm.Host.PortAccesses);
    }
}
