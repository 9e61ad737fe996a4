using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Xunit;

namespace Microhv.Tests.Hypervisor.Services;

public class MemoryOpTests
{
    // memory.h sub-commands.
    private const ulong XENMEM_increase_reservation = 0, XENMEM_decrease_reservation = 1, XENMEM_maximum_ram_page = 2,
        XENMEM_current_reservation = 3, XENMEM_maximum_reservation = 4, XENMEM_populate_physmap = 6,
        XENMEM_memory_map = 9, XENMEM_machine_memory_map = 10, XENMEM_exchange = 11, XENMEM_machphys_mapping = 12, XENMEM_maximum_gpfn = 14;
    private const ushort DOMID_SELF = 0x7FF0;

    [Fact]
    public void Memory_map_is_one_ram_entry_of_the_domain_size()
    {
        var g = new ServiceGuest();
        ulong map = ServiceGuest.Base, buf = ServiceGuest.Base + 64;
        g.W32(map, 16);
        g.W64(map + 8, buf);
        Assert.Equal(0, MemoryOp.Do(g.V, XENMEM_memory_map, map));
        Assert.Equal(1u, g.R32(map));
        Assert.Equal(0UL, g.R64(buf));                                  // e820entry: addr
        Assert.Equal(ServiceGuest.Pages * 4096UL, g.R64(buf + 8));      // size
        Assert.Equal(1u, g.R32(buf + 16));                              // type E820_RAM
        Assert.Equal(-14, MemoryOp.Do(g.V, XENMEM_memory_map, ServiceGuest.Unmapped));
    }

    [Fact]
    public void Memory_map_with_room_for_nothing_returns_nothing()
    {
        var g = new ServiceGuest();
        g.W32(ServiceGuest.Base, 0);
        g.W64(ServiceGuest.Base + 8, ServiceGuest.Unmapped);
        Assert.Equal(0, MemoryOp.Do(g.V, XENMEM_memory_map, ServiceGuest.Base));
        Assert.Equal(0u, g.R32(ServiceGuest.Base));
    }

    [Fact]
    public void Machine_memory_map_is_for_the_initial_domain_only()
    {
        var g = new ServiceGuest();
        Assert.Equal(-1, MemoryOp.Do(g.V, XENMEM_machine_memory_map, ServiceGuest.Base));
    }

    [Fact]
    public void Machine_memory_map_is_the_host_map_with_denied_io_in_holes_reported_unusable()
    {
        var dom0 = new ServiceGuest(id: 0, initial: true);
        var m = dom0.Tm.Machine;
        m.HostMemoryMap.Add(0, 0x9FC00, 1);
        m.HostMemoryMap.Add(0xF0000, 0x10000, 2);
        m.HostMemoryMap.Add(0x100000, 0x3FEE0000, 1);
        m.IoMem.MfnLimit = 1UL << (36 - 12);
        m.IoMem.Deny(0xFEC00, 0xFEC00, "IO-APIC");
        m.IoMem.Deny(0xFEE00, 0xFEE00, "local APIC");
        m.IoMem.ReadOnly(0xFEBF0, 0xFEBF0, "MSI-X table");        // read-only: still mappable, not reported
        ulong map = ServiceGuest.Base, buf = ServiceGuest.Base + 64;
        dom0.W32(map, 8);
        dom0.W64(map + 8, buf);
        Assert.Equal(0, MemoryOp.Do(dom0.V, XENMEM_machine_memory_map, map));
        Assert.Equal(5u, dom0.R32(map));
        (ulong, ulong, uint) E(int i) => (dom0.R64(buf + (ulong)i * 20), dom0.R64(buf + (ulong)i * 20 + 8), dom0.R32(buf + (ulong)i * 20 + 16));
        Assert.Equal((0UL, 0x9FC00UL, 1u), E(0));
        Assert.Equal((0xF0000UL, 0x10000UL, 2u), E(1));
        Assert.Equal((0x100000UL, 0x3FEE0000UL, 1u), E(2));
        Assert.Equal((0xFEC00000UL, 0x1000UL, 5u), E(3));          // E820_UNUSABLE
        Assert.Equal((0xFEE00000UL, 0x1000UL, 5u), E(4));

        dom0.W32(map, 3);                                          // room for the map but not one more
        Assert.Equal(-22, MemoryOp.Do(dom0.V, XENMEM_machine_memory_map, map));
        dom0.W32(map, 0);                                          // a null buffer asks for the count
        dom0.W64(map + 8, 0);
        Assert.Equal(0, MemoryOp.Do(dom0.V, XENMEM_machine_memory_map, map));
        Assert.Equal(5u, dom0.R32(map));
    }

    [Fact]
    public void Reservations_answer_for_self_and_refuse_others()
    {
        var g = new ServiceGuest(id: 1);
        g.Tm.AddDomain(2);
        g.W16(ServiceGuest.Base, DOMID_SELF);
        Assert.Equal(ServiceGuest.Pages, MemoryOp.Do(g.V, XENMEM_current_reservation, ServiceGuest.Base));
        Assert.Equal(ServiceGuest.Pages, MemoryOp.Do(g.V, XENMEM_maximum_reservation, ServiceGuest.Base));
        g.W16(ServiceGuest.Base, 1);
        Assert.Equal(ServiceGuest.Pages, MemoryOp.Do(g.V, XENMEM_current_reservation, ServiceGuest.Base));
        g.W16(ServiceGuest.Base, 2);
        Assert.Equal(-1, MemoryOp.Do(g.V, XENMEM_current_reservation, ServiceGuest.Base));
        // The maximum is max_pages, which the toolstack may set above what the domain holds.
        g.D.MaxPages = ServiceGuest.Pages + 5;
        g.W16(ServiceGuest.Base, DOMID_SELF);
        Assert.Equal(ServiceGuest.Pages + 5, MemoryOp.Do(g.V, XENMEM_maximum_reservation, ServiceGuest.Base));
        g.W16(ServiceGuest.Base, 77);
        Assert.Equal(-3, MemoryOp.Do(g.V, XENMEM_current_reservation, ServiceGuest.Base));
        Assert.Equal(-14, MemoryOp.Do(g.V, XENMEM_maximum_reservation, ServiceGuest.Unmapped));
    }

    [Fact]
    public void Maximum_gpfn_is_the_published_max_pfn_minus_one()
    {
        var g = new ServiceGuest();
        g.D.SharedInfoMfn = g.Tm.NewFrame(1);
        g.W16(ServiceGuest.Base, DOMID_SELF);
        Assert.Equal(0, MemoryOp.Do(g.V, XENMEM_maximum_gpfn, ServiceGuest.Base));   // nothing published: (0 ?: 1) - 1
        g.Tm.Memory.Write64(g.D.SharedInfoMfn * 4096 + SharedInfo.arch_max_pfn, 0x1234);
        Assert.Equal(0x1233, MemoryOp.Do(g.V, XENMEM_maximum_gpfn, ServiceGuest.Base));
    }

    [Fact]
    public void Machphys_mapping_names_the_m2p_window()
    {
        var g = new ServiceGuest();
        g.Tm.Machine.M2pEntries = 1024;
        Assert.Equal(0, MemoryOp.Do(g.V, XENMEM_machphys_mapping, ServiceGuest.Base));
        Assert.Equal(0xFFFF_8000_0000_0000UL, g.R64(ServiceGuest.Base));       // MACH2PHYS_VIRT_START
        Assert.Equal(0xFFFF_8040_0000_0000UL, g.R64(ServiceGuest.Base + 8));   // MACH2PHYS_VIRT_END
        Assert.Equal(1023UL, g.R64(ServiceGuest.Base + 16));
        Assert.Equal(-14, MemoryOp.Do(g.V, XENMEM_machphys_mapping, ServiceGuest.ReadOnlyPage));
    }

    [Fact]
    public void Maximum_ram_page_is_the_number_of_machine_frames()
        => Assert.Equal(1024, MemoryOp.Do(new ServiceGuest().V, XENMEM_maximum_ram_page, 0));

    private static void Reservation(ServiceGuest g, ulong va, ulong list, ulong n, uint order, ushort domid)
    {
        g.W64(va, list); g.W64(va + 8, n); g.W32(va + 16, order); g.W32(va + 20, 0); g.W16(va + 24, domid);
    }

    [Fact]
    public void A_domain_at_its_max_pages_is_granted_no_extent()
    {
        var g = new ServiceGuest();
        g.D.MaxPages = ServiceGuest.Pages;
        Reservation(g, ServiceGuest.Base, ServiceGuest.Base + 64, 4, 0, DOMID_SELF);
        Assert.Equal(0, MemoryOp.Do(g.V, XENMEM_populate_physmap, ServiceGuest.Base));
        Assert.Equal(0, MemoryOp.Do(g.V, XENMEM_increase_reservation, ServiceGuest.Base));
        Assert.Equal(ServiceGuest.Pages, (int)g.D.NrPages);
        Assert.Equal(0, MemoryOp.Do(g.V, XENMEM_populate_physmap, ServiceGuest.Unmapped));   // Xen: start_extent
        g.W16(ServiceGuest.Base, DOMID_SELF);
        Assert.Equal(ServiceGuest.Pages, MemoryOp.Do(g.V, XENMEM_maximum_reservation, ServiceGuest.Base));
    }

    /// <summary>A balloon's round trip: frames given back with decrease_reservation come back, zeroed,
    /// with populate_physmap, their MFNs written into the list and the M2P pointing at the guest frames.</summary>
    [Fact]
    public void Populate_gives_back_up_to_max_pages_zeroed_with_the_m2p_set()
    {
        var g = new ServiceGuest();
        g.D.MaxPages = ServiceGuest.Pages;
        ulong m2p = g.Tm.NewFrame(0);
        g.Tm.NewFrame(0);
        g.Tm.Machine.M2pTableAddress = m2p * 4096;
        g.Tm.Machine.M2pEntries = 1024;
        g.Tm.Memory.Fill(512 * 4096, 0xAB, 2 * 4096);                  // the next frames the pool hands out: dirty
        ulong list = ServiceGuest.Base + 64;
        g.W64(list, g.Mfns[7]); g.W64(list + 8, g.Mfns[6]);
        Reservation(g, ServiceGuest.Base, list, 2, 0, DOMID_SELF);
        Assert.Equal(2, MemoryOp.Do(g.V, XENMEM_decrease_reservation, ServiceGuest.Base));
        g.W16(ServiceGuest.Base + 512, DOMID_SELF);
        Assert.Equal(ServiceGuest.Pages - 2, MemoryOp.Do(g.V, XENMEM_current_reservation, ServiceGuest.Base + 512));

        g.W64(list, 7); g.W64(list + 8, 6); g.W64(list + 16, 5);
        Reservation(g, ServiceGuest.Base, list, 3, 0, DOMID_SELF);
        Assert.Equal(2, MemoryOp.Do(g.V, XENMEM_populate_physmap, ServiceGuest.Base));   // the third would pass max_pages
        Assert.Equal(ServiceGuest.Pages, (int)g.D.NrPages);
        for (int i = 0; i < 2; i++)
        {
            ulong mfn = g.R64(list + (ulong)i * 8);
            Assert.Equal((ushort)1, g.Tm.FrameTable.OwnerOf(mfn));
            Assert.Equal(FrameType.None, g.Tm.FrameTable.TypeOf(mfn));
            Assert.Equal(0UL, g.Tm.Memory.Read64(mfn * 4096 + 8 * (ulong)i));
            Assert.Equal((ulong)(7 - i), g.Tm.Memory.Read64(m2p * 4096 + mfn * 8));
            Assert.Equal(mfn, g.D.P2m[7 - i]);
        }
        Assert.Equal(5UL, g.R64(list + 16));                           // not done: left as it was
    }

    [Fact]
    public void Increase_reservation_hands_out_frames_with_no_guest_frame_and_stops_where_it_must()
    {
        var g = new ServiceGuest();
        g.D.MaxPages = ServiceGuest.Pages;
        ulong list = ServiceGuest.Base + 64;
        g.W64(list, g.Mfns[7]); g.W64(list + 8, g.Mfns[6]);
        Reservation(g, ServiceGuest.Base, list, 2, 0, DOMID_SELF);
        Assert.Equal(2, MemoryOp.Do(g.V, XENMEM_decrease_reservation, ServiceGuest.Base));

        Reservation(g, ServiceGuest.Base, list, 1, 10, DOMID_SELF);
        Assert.Equal(0, MemoryOp.Do(g.V, XENMEM_increase_reservation, ServiceGuest.Base));   // order 10: above a domU's 9
        Reservation(g, ServiceGuest.Base, ServiceGuest.ReadOnlyPage, 1, 0, DOMID_SELF);
        Assert.Equal(0, MemoryOp.Do(g.V, XENMEM_increase_reservation, ServiceGuest.Base));   // the MFN could not go back
        Assert.Equal(ServiceGuest.Pages - 2, (int)g.D.NrPages);

        Reservation(g, ServiceGuest.Base, list, 1, 0, DOMID_SELF);
        Assert.Equal(1, MemoryOp.Do(g.V, XENMEM_increase_reservation, ServiceGuest.Base));
        Assert.Equal((ushort)1, g.Tm.FrameTable.OwnerOf(g.R64(list)));
        Assert.Equal(ServiceGuest.Pages - 1, (int)g.D.NrPages);
        Reservation(g, ServiceGuest.Base, list, 1, 0, 2);
        Assert.Equal(0, MemoryOp.Do(g.V, XENMEM_increase_reservation, ServiceGuest.Base));   // no domain 2: start_extent, as Xen
    }

    [Fact]
    public void Growing_stops_at_max_pages_and_a_bad_reservation_does_nothing()
    {
        var g = new ServiceGuest();
        // At max_pages already: no extent (Xen's over-allocation), said once per domain.
        Reservation(g, ServiceGuest.Base, ServiceGuest.Base + 64, 4, 0, DOMID_SELF);
        Assert.Equal(0, MemoryOp.Do(g.V, XENMEM_populate_physmap, ServiceGuest.Base));
        Assert.Equal(0, MemoryOp.Do(g.V, XENMEM_increase_reservation, ServiceGuest.Base));
        Assert.Equal(ServiceGuest.Pages, (int)g.D.NrPages);
        Assert.Contains("over-allocation", g.ConsoleText);
        // An unreadable reservation is no extent done (Xen returns start_extent).
        Assert.Equal(0, MemoryOp.Do(g.V, XENMEM_populate_physmap, ServiceGuest.Unmapped));
        // Room for two more: populate_physmap gives two frames, records the gpfns in the M2P and returns the MFNs.
        g.D.MaxPages = ServiceGuest.Pages + 2;
        ulong list = ServiceGuest.Base + 64;
        g.W64(list, 100);
        g.W64(list + 8, 101);
        g.W64(list + 16, 102);
        Reservation(g, ServiceGuest.Base, list, 3, 0, DOMID_SELF);
        Assert.Equal(2, MemoryOp.Do(g.V, XENMEM_populate_physmap, ServiceGuest.Base));
        ulong a = g.R64(list), b = g.R64(list + 8);
        Assert.Equal((ushort)1, g.Tm.FrameTable.OwnerOf(a));
        Assert.Equal((ushort)1, g.Tm.FrameTable.OwnerOf(b));
        Assert.NotEqual(a, b);
        Assert.Equal(102UL, g.R64(list + 16));       // the third was not done
        Assert.Equal(ServiceGuest.Pages + 2, (int)g.D.NrPages);
        // An order above what a domU may ask (9) does nothing.
        g.D.MaxPages = 1 << 20;
        Reservation(g, ServiceGuest.Base, list, 1, 10, DOMID_SELF);
        Assert.Equal(0, MemoryOp.Do(g.V, XENMEM_increase_reservation, ServiceGuest.Base));
    }

    [Fact]
    public void Decrease_takes_back_plain_owned_frames_and_stops_at_the_first_it_cannot_take()
    {
        var g = new ServiceGuest();
        ulong list = ServiceGuest.Base + 64;
        ulong free = g.Mfns[7];
        g.W64(list, free);
        g.W64(list + 8, g.Mfns[6]);
        g.Tm.FrameTable.SetType(g.Mfns[6], FrameType.L1PageTable, 1);   // in use as a page table
        g.W64(list + 16, g.Mfns[5]);
        Reservation(g, ServiceGuest.Base, list, 3, 0, DOMID_SELF);
        Assert.Equal(1, MemoryOp.Do(g.V, XENMEM_decrease_reservation, ServiceGuest.Base));
        Assert.Equal(FrameTable.OwnerNone, g.Tm.FrameTable.OwnerOf(free));
        Assert.Equal(Domain.Invalid, g.D.P2m[7]);
        Assert.Equal(ServiceGuest.Pages - 1, (int)g.D.NrPages);
        Assert.Equal((ushort)1, g.Tm.FrameTable.OwnerOf(g.Mfns[6]));

        // A frame of another owner is refused outright.
        g.W64(list, g.Tm.NewFrame(2));
        Reservation(g, ServiceGuest.Base, list, 1, 0, DOMID_SELF);
        Assert.Equal(0, MemoryOp.Do(g.V, XENMEM_decrease_reservation, ServiceGuest.Base));
    }

    [Fact]
    public void Unknown_commands_are_enosys_and_exchange_is_the_hardware_domains()
    {
        var g = new ServiceGuest();
        Assert.Equal(-1, MemoryOp.Do(g.V, XENMEM_exchange, ServiceGuest.Base));     // see Io/MemoryExchangeTests
        Assert.Equal(-38, MemoryOp.Do(g.V, 63, ServiceGuest.Base));
    }
}
