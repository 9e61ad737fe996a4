using System.Linq;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Irq;
using Microhv.Tests.Hypervisor.Services;
using Xunit;

namespace Microhv.Tests.Hypervisor.Io;

/// <summary>
/// The interrupt path Linux PV dom0 uses (arch/x86/pci/xen.c, drivers/xen/events/events_base.c):
/// map_pirq for a GSI, setup_gsi, alloc_irq_vector, EVTCHNOP_bind_pirq, irq_status_query, the line
/// firing, PHYSDEVOP_eoi, the EOI bitmap page; and the refusals for other domains.
/// </summary>
public class PirqTests
{
    private const ulong PHYSDEVOP_irq_status_query = 5, PHYSDEVOP_alloc_irq_vector = 10, PHYSDEVOP_eoi = 12,
        PHYSDEVOP_map_pirq = 13, PHYSDEVOP_unmap_pirq = 14, PHYSDEVOP_setup_gsi = 21, PHYSDEVOP_pirq_eoi_gmfn_v2 = 28,
        PHYSDEVOP_apic_read = 8, PHYSDEVOP_pci_device_add = 25;
    private const ulong EVTCHNOP_bind_pirq = 2, EVTCHNOP_close = 3, EVTCHNOP_status = 5;
    private const ushort DOMID_SELF = 0x7FF0;
    private const ulong A = ServiceGuest.Base;

    private static ServiceGuest Dom0()
    {
        var g = new ServiceGuest(id: 0, initial: true);
        g.D.SharedInfoMfn = g.Tm.NewFrame(0);
        return g;
    }

    private static long MapGsi(ServiceGuest g, int gsi, int pirq = -1)
    {
        g.W16(A, DOMID_SELF);
        g.W32(A + 4, 1);                  // MAP_PIRQ_TYPE_GSI
        g.W32(A + 8, (uint)gsi);
        g.W32(A + 12, (uint)pirq);
        return PhysdevOp.Do(g.V, PHYSDEVOP_map_pirq, A);
    }

    private static long SetupGsi(ServiceGuest g, int gsi, bool level, bool activeLow)
    {
        g.W32(A + 64, (uint)gsi);
        g.Write(A + 68, new[] { (byte)(level ? 1 : 0), (byte)(activeLow ? 1 : 0) });
        return PhysdevOp.Do(g.V, PHYSDEVOP_setup_gsi, A + 64);
    }

    private static long BindPirq(ServiceGuest g, int pirq, out uint port)
    {
        g.W32(A + 128, (uint)pirq);
        g.W32(A + 132, 1);                // BIND_PIRQ__WILL_SHARE
        long rc = EventChannelOp.Do(g.V, EVTCHNOP_bind_pirq, A + 128);
        port = g.R32(A + 136);
        return rc;
    }

    [Fact]
    public void A_level_gsi_is_mapped_set_up_bound_delivered_masked_and_unmasked_by_eoi()
    {
        var g = Dom0();
        var host = g.Tm.Host;
        Assert.Equal(0, MapGsi(g, 16, 16));
        Assert.Equal(16u, g.R32(A + 12));                          // pirq = gsi
        Assert.Equal(0, SetupGsi(g, 16, level: true, activeLow: true));
        g.W32(A + 192, 16);
        Assert.Equal(0, PhysdevOp.Do(g.V, PHYSDEVOP_alloc_irq_vector, A + 192));
        Assert.Equal(16u, g.R32(A + 196));                         // Xen answers the IRQ as its "vector"
        Assert.Empty(host.GsiRoutes);                              // nothing routed before a bind

        Assert.Equal(0, BindPirq(g, 16, out uint port));
        Assert.NotEqual(0u, port);
        Assert.Equal((16, (byte)(IrqRouting.FirstVector + 16), true, true, false), host.GsiRoutes.Last());

        g.W32(A + 256, 16);
        Assert.Equal(0, PhysdevOp.Do(g.V, PHYSDEVOP_irq_status_query, A + 256));
        Assert.Equal(1u, g.R32(A + 260));                          // XENIRQSTAT_needs_eoi

        Assert.True(IrqRouting.VectorToGsi(IrqRouting.FirstVector + 16, out int gsi));
        Assert.Same(g.D, g.Tm.Machine.Irqs.OnInterrupt(gsi));
        Assert.True(g.D.EventChannels.IsPending((int)port));
        Assert.True(host.GsiRoutes.Last().Masked);                 // held masked until the guest's EOI
        Assert.True(g.Tm.Machine.Irqs.IsInFlight(16));

        g.W32(A + 256, 16);
        Assert.Equal(0, PhysdevOp.Do(g.V, PHYSDEVOP_eoi, A + 256));
        Assert.False(host.GsiRoutes.Last().Masked);
        Assert.False(g.Tm.Machine.Irqs.IsInFlight(16));
    }

    [Fact]
    public void An_edge_line_is_never_masked_and_needs_no_eoi()
    {
        var g = Dom0();
        Assert.Equal(0, MapGsi(g, 1, 1));
        Assert.Equal(0, SetupGsi(g, 1, level: false, activeLow: false));
        Assert.Equal(0, BindPirq(g, 1, out uint port));
        int routes = g.Tm.Host.GsiRoutes.Count;
        g.Tm.Machine.Irqs.OnInterrupt(1);
        Assert.True(g.D.EventChannels.IsPending((int)port));
        Assert.Equal(routes, g.Tm.Host.GsiRoutes.Count);
        g.W32(A + 256, 1);                                         // an EOI is harmless: nothing is in flight
        Assert.Equal(0, PhysdevOp.Do(g.V, PHYSDEVOP_eoi, A + 256));
        Assert.Equal(routes, g.Tm.Host.GsiRoutes.Count);
    }

    [Fact]
    public void The_eoi_bitmap_page_carries_the_bit_of_every_bound_level_pirq()
    {
        var g = Dom0();
        ulong page = g.Mfns[7];
        g.W64(A + 300, page);
        Assert.Equal(0, PhysdevOp.Do(g.V, PHYSDEVOP_pirq_eoi_gmfn_v2, A + 300));
        Assert.Equal(-16, PhysdevOp.Do(g.V, PHYSDEVOP_pirq_eoi_gmfn_v2, A + 300));      // once only: -EBUSY
        MapGsi(g, 9, 9);
        SetupGsi(g, 9, level: true, activeLow: false);
        Assert.Equal(0, BindPirq(g, 9, out uint port));
        Assert.Equal(1UL << 9, g.Tm.Memory.Read64(page * 4096));
        g.W32(A + 400, port);
        Assert.Equal(0, EventChannelOp.Do(g.V, EVTCHNOP_close, A + 400));
        Assert.Equal(0UL, g.Tm.Memory.Read64(page * 4096));
        Assert.True(g.Tm.Host.GsiRoutes.Last().Masked);           // closing the port masks the line
    }

    [Fact]
    public void Bind_pirq_reports_its_status_and_refuses_a_second_port()
    {
        var g = Dom0();
        MapGsi(g, 5, 5);
        Assert.Equal(0, BindPirq(g, 5, out uint port));
        Assert.Equal(-17, BindPirq(g, 5, out _));                 // -EEXIST
        Assert.Equal(-22, BindPirq(g, 6, out _));                 // not mapped: -EINVAL
        g.W16(A + 500, DOMID_SELF);
        g.W32(A + 504, port);
        Assert.Equal(0, EventChannelOp.Do(g.V, EVTCHNOP_status, A + 500));
        Assert.Equal(3u, g.R32(A + 508));                          // EVTCHNSTAT_pirq
        Assert.Equal(5u, g.R32(A + 516));
        g.W16(A, DOMID_SELF);
        g.W32(A + 4, 5);
        Assert.Equal(-16, PhysdevOp.Do(g.V, PHYSDEVOP_unmap_pirq, A));   // still bound: -EBUSY
    }

    [Fact]
    public void Bad_gsis_and_setup_after_bind_are_refused()
    {
        var g = Dom0();
        Assert.Equal(-22, MapGsi(g, 24));                          // the machine has 24 lines
        Assert.Equal(-22, MapGsi(g, -5));
        Assert.Equal(-22, MapGsi(g, 3, pirq: 4));                  // pirq must be the GSI
        Assert.Equal(0, MapGsi(g, 3));
        Assert.Equal(0, BindPirq(g, 3, out _));
        Assert.Equal(-17, SetupGsi(g, 3, level: true, activeLow: true));
        Assert.Equal(-22, SetupGsi(g, 99, level: true, activeLow: true));
        Assert.Equal(-14, PhysdevOp.Do(g.V, PHYSDEVOP_map_pirq, ServiceGuest.Unmapped));
    }

    [Fact]
    public void Interrupts_for_unbound_lines_are_counted_spurious()
    {
        var g = Dom0();
        Assert.Null(g.Tm.Machine.Irqs.OnInterrupt(7));
        Assert.Equal(1UL, g.Tm.Machine.Irqs.Spurious);
    }

    [Fact]
    public void Apic_read_reads_the_io_apic_for_the_hardware_domain()
    {
        var g = Dom0();
        g.Tm.Host.IoApicRegisters[(0xFEC00000, 1)] = 0x00170020;
        g.W64(A, 0xFEC00000);
        g.W32(A + 8, 1);
        Assert.Equal(0, PhysdevOp.Do(g.V, PHYSDEVOP_apic_read, A));
        Assert.Equal(0x00170020u, g.R32(A + 12));
        g.W64(A, 0xFEC01000);                                      // no IO-APIC there
        Assert.Equal(-22, PhysdevOp.Do(g.V, PHYSDEVOP_apic_read, A));
    }

    [Fact]
    public void Other_domains_get_eperm_and_one_log_line()
    {
        var g = new ServiceGuest(id: 1);
        g.D.SharedInfoMfn = g.Tm.NewFrame(1);
        Assert.Equal(-1, MapGsi(g, 9, 9));
        Assert.Equal(-1, MapGsi(g, 10, 10));
        Assert.Equal(-1, SetupGsi(g, 9, true, true));
        Assert.Equal(-1, BindPirq(g, 9, out _));
        g.W32(A + 600, 0);
        Assert.Equal(-1, PhysdevOp.Do(g.V, PHYSDEVOP_pci_device_add, A + 600));
        Assert.Equal(-1, PhysdevOp.Do(g.V, PHYSDEVOP_apic_read, A));
        Assert.Empty(g.Tm.Host.GsiRoutes);
        string log = g.ConsoleText;
        Assert.Contains("hwdom: d1 may not map physical IRQs: not the hardware domain (-EPERM; logged once)\n", log);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(log, "may not map physical IRQs"));
        Assert.Contains("hwdom: d1 may not report PCI devices", log);
    }

    [Fact]
    public void Pci_device_add_records_the_function()
    {
        var g = Dom0();
        g.Write(A, new byte[] { 0, 0, 0, 3 << 3 });               // seg 0, bus 0, devfn 00:03.0
        Assert.Equal(0, PhysdevOp.Do(g.V, PHYSDEVOP_pci_device_add, A));
        Assert.True(g.Tm.Machine.PciDevices.Contains(0x18));
    }
}

/// <summary>MSI for the hardware domain's PCI functions (map_pirq of MAP_PIRQ_TYPE_MSI_SEG as Linux dom0 issues it).</summary>
public class MsiTests
{
    private const ulong PHYSDEVOP_map_pirq = 13, EVTCHNOP_bind_pirq = 2;
    private const ushort DOMID_SELF = 0x7FF0;
    private const ulong A = ServiceGuest.Base;
    private const uint Dev = 0x8000_0000u | (2u << 11);         // 00:02.0

    /// <summary>A function with a 64-bit MSI capability at 0x80 (behind a power-management one at 0x40).</summary>
    private static ServiceGuest Dom0WithMsiDevice()
    {
        var g = new ServiceGuest(id: 0, initial: true);
        g.D.SharedInfoMfn = g.Tm.NewFrame(0);
        var cfg = g.Tm.Host.PciConfig;
        cfg[Dev] = 0x29228086;                                  // vendor 8086, device 2922
        cfg[Dev | 0x04] = 0x0010_0007;                          // status: capabilities list
        cfg[Dev | 0x34] = 0x40;
        cfg[Dev | 0x40] = 0x0000_8001;                          // PM capability, next 0x80
        cfg[Dev | 0x80] = 0x0080_0005;                          // MSI, next none, control: 64-bit
        return g;
    }

    private static long MapMsi(ServiceGuest g, uint devfn, ulong tableBase = 0)
    {
        g.W16(A, DOMID_SELF);
        g.W32(A + 4, 3);                                        // MAP_PIRQ_TYPE_MSI_SEG
        g.W32(A + 8, 0xFFFFFFFF);                               // index -1
        g.W32(A + 12, 0xFFFFFFFF);                              // pirq -1: allocate
        g.W32(A + 16, 0);                                       // segment 0, bus 0
        g.W32(A + 20, devfn);
        g.W64(A + 32, tableBase);
        return PhysdevOp.Do(g.V, PHYSDEVOP_map_pirq, A);
    }

    [Fact]
    public void Map_writes_the_message_into_the_function_and_its_vector_raises_the_pirq()
    {
        var g = Dom0WithMsiDevice();
        Assert.Equal(0, MapMsi(g, 2 << 3));
        uint pirq = g.R32(A + 12);
        Assert.Equal((uint)Pirqs.FirstMsiPirq, pirq);
        var cfg = g.Tm.Host.PciConfig;
        Assert.Equal(0xFEE00000u, cfg[Dev | 0x84]);              // the boot CPU (APIC ID 0), physical
        Assert.Equal(0u, cfg[Dev | 0x88]);                       // upper address
        uint vector = cfg[Dev | 0x8C] & 0xFFFF;
        Assert.True(MsiRouting.VectorToSlot((int)vector, out int slot));
        Assert.Equal(0x0080_0005u, cfg[Dev | 0x80]);             // the enable bit is Linux's to set

        g.W32(A + 128, pirq);
        g.W32(A + 132, 0);
        Assert.Equal(0, EventChannelOp.Do(g.V, EVTCHNOP_bind_pirq, A + 128));
        uint port = g.R32(A + 136);
        Assert.Same(g.D, g.Tm.Machine.Msis.OnInterrupt(slot));
        Assert.True(g.D.EventChannels.IsPending((int)port));
        Assert.Empty(g.Tm.Host.GsiRoutes);                       // no IO-APIC line involved

        Assert.Equal(0, MapMsi(g, 2 << 3));                      // a second message gets the next pirq and vector
        Assert.Equal(pirq + 1, g.R32(A + 12));
        Assert.NotEqual(vector, g.Tm.Host.PciConfig[Dev | 0x8C] & 0xFFFF);
    }

    [Fact]
    public void Missing_functions_msi_x_and_functions_without_msi_are_refused()
    {
        var g = Dom0WithMsiDevice();
        Assert.Equal(-19, MapMsi(g, 5 << 3));                    // nothing at 00:05.0: -ENODEV
        Assert.Equal(-95, MapMsi(g, 2 << 3, tableBase: 0xFEBF0000));   // MSI-X asked of a function without it
        g.Tm.Host.PciConfig[Dev | 0x04] = 0x0000_0007;           // no capability list
        Assert.Equal(-95, MapMsi(g, 2 << 3));
        Assert.False(g.Tm.Host.PciConfig.ContainsKey(Dev | 0x84));   // no message was written
    }

    [Fact]
    public void Msix_entries_get_the_message_masked_until_bound_and_the_table_turns_read_only()
    {
        var g = Dom0WithMsiDevice();
        const uint Msix = 0x8000_0000u | (4u << 11);           // 00:04.0, an MSI-X function
        const ulong Bar = 0x3F0000;                             // its table BAR, in the test machine's memory
        var cfg = g.Tm.Host.PciConfig;
        cfg[Msix] = 0x10D38086;                                 // e1000e
        cfg[Msix | 0x04] = 0x0010_0007;
        cfg[Msix | 0x34] = 0x90;
        cfg[Msix | 0x90] = 0x0003_0011;                         // MSI-X, 4 entries
        cfg[Msix | 0x94] = 0x0000_0000;                         // table at BAR + 0 (BIR 0)
        cfg[Msix | 0x98] = 0x0000_0800;                         // PBA at BAR + 0x800 (BIR 0)
        for (ulong i = 0; i < 4; i++) g.Tm.Memory.Write32(Bar + i * 16 + 12, 1);   // reset state: masked
        g.W32(A + 24, 1);                                       // entry_nr 1
        Assert.Equal(0, MapMsi(g, 4 << 3, tableBase: Bar));
        uint pirq = g.R32(A + 12);
        ulong entry = Bar + 16;
        Assert.Equal(0xFEE00000u, g.Tm.Memory.Read32(entry));
        Assert.Equal(0u, g.Tm.Memory.Read32(entry + 4));
        Assert.True(MsiRouting.VectorToSlot((int)g.Tm.Memory.Read32(entry + 8), out int slot));
        Assert.Equal(1u, g.Tm.Memory.Read32(entry + 12) & 1);   // masked until bound
        Assert.True(g.Tm.Machine.IoMem.IsReadOnly(Bar >> 12));  // the table page (and the PBA's) read-only to dom0

        g.W32(A + 128, pirq);
        g.W32(A + 132, 0);
        Assert.Equal(0, EventChannelOp.Do(g.V, EVTCHNOP_bind_pirq, A + 128));
        Assert.Equal(0u, g.Tm.Memory.Read32(entry + 12) & 1);
        uint port = g.R32(A + 136);
        g.Tm.Machine.Msis.OnInterrupt(slot);
        Assert.True(g.D.EventChannels.IsPending((int)port));
        g.W32(A + 140, port);
        Assert.Equal(0, EventChannelOp.Do(g.V, 3, A + 140));    // EVTCHNOP_close masks the entry again
        Assert.Equal(1u, g.Tm.Memory.Read32(entry + 12) & 1);

        g.W32(A + 24, 4);                                       // beyond the table
        Assert.Equal(-22, MapMsi(g, 4 << 3, tableBase: Bar));
    }

    [Fact]
    public void Other_domains_cannot_map_msis()
    {
        var g = new ServiceGuest(id: 1);
        g.Tm.Host.PciConfig[Dev] = 0x29228086;
        Assert.Equal(-1, MapMsi(g, 2 << 3));
        Assert.DoesNotContain(g.Tm.Host.PortAccesses, a => !a.In);
    }
}
