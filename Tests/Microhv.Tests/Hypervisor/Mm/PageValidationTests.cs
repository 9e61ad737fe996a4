using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using Xunit;
using static Microhv.Tests.Hypervisor.Mm.MmGuest;

namespace Microhv.Tests.Hypervisor.Mm;

/// <summary>Validation of whole tables when a page-table type is taken (Xen's promote_lN_table) and its release.</summary>
public class PageValidationTests
{
    [Fact]
    public void AdoptedTablesHoldXensReferenceCounts()
    {
        var g = new MmGuest();
        // The root: one type reference for guest_table, one for the pin (as Xen's builder leaves it).
        Assert.Equal(FrameType.L4PageTable, g.Type(g.L4));
        Assert.Equal(2u, g.TypeCount(g.L4));
        Assert.True(g.M.FrameTable.IsPinned(g.L4));
        Assert.Equal(g.L4 << 12, g.V.GuestTable);
        // Each lower table is referenced once by its parent entry.
        Assert.Equal(FrameType.L3PageTable, g.Type(g.L3));
        Assert.Equal(1u, g.TypeCount(g.L3));
        Assert.Equal(FrameType.L2PageTable, g.Type(g.L2));
        Assert.Equal(FrameType.L1PageTable, g.Type(g.L1));
        Assert.Equal(1u, g.TypeCount(g.L1));
        // Writable leaves made their frames writable; read-only leaves only hold general references.
        foreach (ulong d in g.Data) { Assert.Equal(FrameType.Writable, g.Type(d)); Assert.Equal(1u, g.TypeCount(d)); Assert.Equal(1u, g.RefCount(d)); }
        Assert.Equal(FrameType.None, g.Type(g.Code));
        Assert.Equal(1u, g.RefCount(g.Code));
        // L1 frame: referenced by the L2 entry and by its own read-only mapping.
        Assert.Equal(2u, g.RefCount(g.L1));
    }

    [Fact]
    public void GuestKernelMappingsAreForcedUser()
    {
        var g = new MmGuest();
        Assert.NotEqual(0UL, g.Get(g.L1, L4Slot) & PageTableEntry.User);
        Assert.NotEqual(0UL, g.Get(g.L4, 0) & PageTableEntry.Accessed);
    }

    [Fact]
    public void ValidatedL4GetsTheHypervisorSlots()
    {
        var t = new TestMachine();
        for (int i = 0; i < Layout.HypervisorL4SlotCount; i++) t.Machine.HypervisorL4Slots[i] = 0xABC0_0000UL + (ulong)i * 0x1000 + 3;
        var g = new MmGuest(t, adopt: false);
        g.Set(g.L4, 256, Pte(g.Data[0], P | RW | US));            // guest junk in the hole: overwritten, never referenced
        g.Set(g.L4, 271, Pte(g.L4, P | RW | US));
        Assert.Equal(0, PageTypes.AdoptInitialPageTables(g.Dom, g.L4));
        for (int i = 0; i < Layout.HypervisorL4SlotCount; i++) Assert.Equal(t.Machine.HypervisorL4Slots[i], g.Get(g.L4, 256 + i));
        Assert.Equal(1u, g.TypeCount(g.Data[0]));
    }

    [Fact]
    public void TableMappingAPageTableWritableIsRefusedAndLeavesNoReferences()
    {
        var g = new MmGuest(adopt: false);
        g.Set(g.L1, 20, Pte(g.L2, P | RW | US));
        Assert.Equal(-Errno.EBUSY, PageTypes.AdoptInitialPageTables(g.Dom, g.L4));
        foreach (ulong f in new[] { g.L4, g.L3, g.L2, g.L1, g.Data[0], g.Code, g.Args })
        {
            Assert.Equal(0u, g.TypeCount(f));
            Assert.Equal(0u, g.RefCount(f));
        }
        Assert.Equal(0UL, g.V.GuestTable);
    }

    [Theory]
    [InlineData(2, PageTableEntry.PageSize)]          // a 2 MiB superpage
    [InlineData(3, PageTableEntry.PageSize)]          // a 1 GiB superpage
    [InlineData(2, PageTableEntry.CacheDisable)]
    [InlineData(4, PageTableEntry.Global)]
    public void NonLeafEntriesRefuseFlagsAPvGuestMayNotSet(int level, ulong flag)
    {
        var g = new MmGuest(adopt: false);
        ulong table = level == 4 ? g.L4 : level == 3 ? g.L3 : g.L2;
        int index = level == 4 ? 0 : level == 3 ? 0 : 2;
        g.Set(table, index, g.Get(table, index) | flag);
        Assert.Equal(-Errno.EINVAL, PageTypes.AdoptInitialPageTables(g.Dom, g.L4));
    }

    [Fact]
    public void LeafCacheAttributesOnlyForTheInitialDomain()
    {
        var u = new MmGuest(adopt: false);
        u.Set(u.L1, 1, u.Get(u.L1, 1) | PageTableEntry.CacheDisable);
        Assert.Equal(-Errno.EINVAL, PageTypes.AdoptInitialPageTables(u.Dom, u.L4));

        var d0 = new MmGuest(id: 0, initial: true, adopt: false);
        d0.Set(d0.L1, 1, d0.Get(d0.L1, 1) | PageTableEntry.CacheDisable);
        Assert.Equal(0, PageTypes.AdoptInitialPageTables(d0.Dom, d0.L4));
    }

    [Fact]
    public void LeafReservedBitsAreRefused()
    {
        var g = new MmGuest(adopt: false);
        // Bit 7 of a PTE is PAT (a cache attribute), refused for a domain without devices.
        g.Set(g.L1, 1, g.Get(g.L1, 1) | PageTableEntry.Pat4K);
        Assert.Equal(-Errno.EINVAL, PageTypes.AdoptInitialPageTables(g.Dom, g.L4));
    }

    [Fact]
    public void SelfReferencingTablesAreRefused()
    {
        var g = new MmGuest(adopt: false);
        g.Set(g.L4, 5, Pte(g.L4, P | US));               // a read-only linear L4 self-map
        Assert.Equal(-Errno.EINVAL, PageTypes.AdoptInitialPageTables(g.Dom, g.L4));

        var h = new MmGuest(adopt: false);
        h.Set(h.L2, 7, Pte(h.L2, P | US));               // an L2 used as its own L1
        Assert.Equal(-Errno.EINVAL, PageTypes.AdoptInitialPageTables(h.Dom, h.L4));
        Assert.Equal(0u, h.TypeCount(h.L2));
    }

    [Fact]
    public void FramesOfOthersAreRefused()
    {
        var t = new TestMachine();
        var other = new MmGuest(t, id: 2);
        var g = new MmGuest(t, id: 1, adopt: false);
        g.Set(g.L1, 20, Pte(other.Data[0], P | US));
        Assert.Equal(-Errno.EBUSY, PageTypes.AdoptInitialPageTables(g.Dom, g.L4));

        g.Set(g.L1, 20, Pte(3, P | US));                 // a frame of the hypervisor
        t.FrameTable.SetOwner(3, FrameTable.OwnerXen);
        Assert.Equal(-Errno.EBUSY, PageTypes.AdoptInitialPageTables(g.Dom, g.L4));

        g.Set(g.L1, 20, Pte(100_000, P | US));           // beyond the frame table: I/O or hypervisor memory
        Assert.Equal(-Errno.EPERM, PageTypes.AdoptInitialPageTables(g.Dom, g.L4));

        g.Set(g.L3, 1, Pte(other.L2, P | RW | US));      // another domain's table as our L2
        g.Set(g.L1, 20, 0);
        Assert.Equal(-Errno.EINVAL, PageTypes.AdoptInitialPageTables(g.Dom, g.L4));
    }

    [Fact]
    public void DroppingTheLastTypeReferenceReleasesTheWholeTree()
    {
        var g = new MmGuest();
        var m = g.M;
        PageTypes.PutPageAndType(m, g.L4);               // guest_table's reference
        Assert.Equal(1u, g.TypeCount(g.L1));
        g.M.FrameTable.SetPinned(g.L4, false);
        PageTypes.PutPageAndType(m, g.L4);               // the pin's
        Assert.Equal(0u, g.TypeCount(g.L4));
        Assert.Equal(0u, g.TypeCount(g.L3));
        Assert.Equal(0u, g.TypeCount(g.L2));
        Assert.Equal(0u, g.TypeCount(g.L1));
        foreach (ulong d in g.Data) { Assert.Equal(0u, g.TypeCount(d)); Assert.Equal(0u, g.RefCount(d)); }
        Assert.Equal(0u, g.RefCount(g.L1));
    }

    [Fact]
    public void ChangingAFramesTypeFlushesStaleTranslations()
    {
        var g = new MmGuest();
        int before = g.T.Host.TlbFlushes;
        // Data[0] was writable; once unmapped it may become a page table only after a TLB flush.
        Assert.Equal(0, MmuUpdate.One(g.V, g.Dom, EntryMa(g.L1, 1), 0));
        Assert.Equal(0, PageTypes.GetPageAndType(g.M, g.Dom, g.Data[0], FrameType.L1PageTable));
        Assert.Equal(before + 1, g.T.Host.TlbFlushes);
    }
}
