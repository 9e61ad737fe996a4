using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Mm;
using Microhv.Tests.Hypervisor.Mm;
using Xunit;

namespace Microhv.Tests.Hypervisor.Io;

/// <summary>The hardware domain's mappings of I/O space through its own page-table updates (Xen's get_page_from_l1e for dom_io frames).</summary>
public class IoMemTests
{
    private const ulong MmioMfn = 0xFEBC0;                  // beyond the test machine's frame table: I/O space
    private const ulong LapicMfn = 0xFEE00;
    private const ushort DOMID_SELF = 0x7FF0, DOMID_IO = 0x7FF1;
    private const int DataSlot = 1;

    private static MmGuest Guest(bool hardware)
    {
        var g = new MmGuest(id: hardware ? (ushort)0 : (ushort)1, initial: hardware);
        g.M.IoMem.MfnLimit = 1UL << (39 - 12);
        g.M.IoMem.Deny(LapicMfn, LapicMfn, "local APIC");
        g.M.IoMem.ReadOnly(MmioMfn + 8, MmioMfn + 8, "MSI-X table");
        return g;
    }

    private static long MapAt(MmGuest g, int slot, ulong pte, ushort foreign = DOMID_SELF)
    {
        g.Arg(0, MmGuest.EntryMa(g.L1, slot));
        g.Arg(8, pte);
        return MmuUpdate.Do(g.V, MmGuest.Base, 1, 0, foreign);
    }

    [Fact]
    public void Hardware_domain_maps_mmio_uncached_and_unmaps_it_without_references()
    {
        var g = Guest(hardware: true);
        ulong pte = MmGuest.Pte(MmioMfn, MmGuest.P | MmGuest.RW | PageTableEntry.CacheDisable);
        Assert.Equal(0, MapAt(g, 20, pte));
        Assert.Equal(MmioMfn, (g.Get(g.L1, 20) & PageTableEntry.AddressMask) >> 12);
        Assert.Equal(0, MapAt(g, 20, 0));                       // unmapping drops nothing
        Assert.Equal(0UL, g.Get(g.L1, 20));
    }

    [Fact]
    public void Low_megabyte_and_firmware_ranges_inside_ram_are_io_space()
    {
        var g = Guest(hardware: true);
        g.T.FrameTable.SetOwner(0xF5, FrameTable.OwnerIo);    // the kernel marks the low 1 MiB DOMID_IO
        Assert.Equal(0, MapAt(g, 21, MmGuest.Pte(0xF5, MmGuest.P)));
        Assert.Equal(0u, g.RefCount(0xF5));
        // A free RAM frame (owner none) is not I/O space: -EBUSY as for any frame not the domain's.
        Assert.Equal(-16, MapAt(g, 22, MmGuest.Pte(0x200, MmGuest.P)));
    }

    [Fact]
    public void Microhv_pages_and_frames_beyond_the_address_width_are_refused()
    {
        var g = Guest(hardware: true);
        Assert.Equal(-1, MapAt(g, 20, MmGuest.Pte(LapicMfn, MmGuest.P | MmGuest.RW)));
        Assert.Equal(-1, MapAt(g, 20, MmGuest.Pte(1UL << (39 - 12), MmGuest.P)));
    }

    [Fact]
    public void Read_only_ranges_are_installed_without_write_access()
    {
        var g = Guest(hardware: true);
        Assert.Equal(0, MapAt(g, 20, MmGuest.Pte(MmioMfn + 8, MmGuest.P | MmGuest.RW)));
        Assert.Equal(0UL, g.Get(g.L1, 20) & MmGuest.RW);
        Assert.Equal(MmioMfn + 8, (g.Get(g.L1, 20) & PageTableEntry.AddressMask) >> 12);
        Assert.Equal(0, MapAt(g, 21, MmGuest.Pte(MmioMfn, MmGuest.P | MmGuest.RW)));   // the next frame keeps it
        Assert.Equal(MmGuest.RW, g.Get(g.L1, 21) & MmGuest.RW);
    }

    [Fact]
    public void Domid_io_as_the_page_owner_is_checked_against_the_callers_permissions()
    {
        var dom0 = Guest(hardware: true);
        Assert.Equal(0, MapAt(dom0, 20, MmGuest.Pte(MmioMfn, MmGuest.P | MmGuest.RW), DOMID_IO));
        var domU = Guest(hardware: false);
        Assert.Equal(-1, MapAt(domU, 20, MmGuest.Pte(MmioMfn, MmGuest.P | MmGuest.RW), DOMID_IO));
    }

    [Fact]
    public void Other_domains_map_no_io_space()
    {
        var g = Guest(hardware: false);
        Assert.Equal(-1, MapAt(g, 20, MmGuest.Pte(MmioMfn, MmGuest.P)));
        Assert.Equal(-1, UpdateVaMapping.Do(g.V, MmGuest.Va(DataSlot), MmGuest.Pte(MmioMfn, MmGuest.P | MmGuest.RW), 0));
        Assert.Equal(g.Data[0], (g.Get(g.L1, DataSlot) & PageTableEntry.AddressMask) >> 12);   // the old mapping stays
    }
}
