using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Tests.Hypervisor.Mm;
using Xunit;
using static Microhv.Tests.Hypervisor.Mm.MmGuest;

namespace Microhv.Tests.Hypervisor;

/// <summary>GuestMemory.Cursor: one walk per page, yet every use sees the page tables as they are now.</summary>
public class GuestMemoryCursorTests
{
    [Fact]
    public void ReadsThroughTheCurrentMappingAfterAnEntryChanges()
    {
        var g = new MmGuest();
        g.T.Memory.Poke64(g.Data[0] * 4096 + 8, 0x1111);
        g.T.Memory.Poke64(g.Data[1] * 4096 + 8, 0x2222);
        var c = default(GuestMemory.Cursor);
        Assert.True(c.ReadU64(g.V, Va(1) + 8, out ulong v));
        Assert.Equal(0x1111UL, v);

        g.Set(g.L1, 1, Pte(g.Data[1], P | RW | US));
        Assert.True(c.ReadU64(g.V, Va(1) + 8, out v));
        Assert.Equal(0x2222UL, v);

        g.Set(g.L1, 1, Pte(g.Data[1], P | RW));                  // no User: the guest may not reach it
        Assert.False(c.ReadU64(g.V, Va(1) + 8, out _));
        g.Set(g.L1, 1, 0);
        Assert.False(c.ReadU64(g.V, Va(1) + 8, out _));
    }

    [Fact]
    public void AChangeHigherUpOrOfTheRootIsSeenToo()
    {
        var g = new MmGuest();
        var c = default(GuestMemory.Cursor);
        Assert.True(c.Translate(g.V, Va(1), 8, false, out ulong ma));
        Assert.Equal(g.Data[0] * 4096, ma);

        g.Set(g.L2, 2, Pte(g.L1, P | RW | A));                    // User cleared one level up
        Assert.False(c.Translate(g.V, Va(1), 8, false, out _));
        g.Set(g.L2, 2, Pte(g.L1, P | RW | US | A));
        Assert.True(c.Translate(g.V, Va(1), 8, false, out _));

        ulong savedRoot = g.V.GuestTable;
        g.V.GuestTable = g.Spare[0] * 4096;                      // an empty L4
        Assert.False(c.Translate(g.V, Va(1), 8, false, out _));
        g.V.GuestTable = savedRoot;
        Assert.True(c.Translate(g.V, Va(1), 8, false, out _));
    }

    [Fact]
    public void AReadOnlyPageIsNotWritableThroughACursorThatReadIt()
    {
        var g = new MmGuest();
        var c = default(GuestMemory.Cursor);
        Assert.True(c.Translate(g.V, Va(CodeSlot), 8, false, out _));
        Assert.False(c.Translate(g.V, Va(CodeSlot), 8, true, out _));
        Assert.True(c.Translate(g.V, Va(1), 8, true, out _));
        Assert.True(c.Translate(g.V, Va(1), 8, false, out _));
    }

    [Fact]
    public void AFrameTheDomainNoLongerOwnsIsNotReached()
    {
        var g = new MmGuest();
        var c = default(GuestMemory.Cursor);
        Assert.True(c.Translate(g.V, Va(1), 8, false, out _));
        g.M.FrameTable.SetOwner(g.Data[0], FrameTable.OwnerXen);
        Assert.False(c.Translate(g.V, Va(1), 8, false, out _));
    }

    [Fact]
    public void RangesCrossingAPageOrEmptyAreLeftToTheCaller()
    {
        var g = new MmGuest();
        var c = default(GuestMemory.Cursor);
        Assert.False(c.Translate(g.V, Va(1) + 4090, 8, false, out _));
        Assert.False(c.Translate(g.V, Va(1), 0, false, out _));
        g.T.Memory.Poke64(g.Data[0] * 4096 + 4092, 0x4444_3333_2222_1111UL);   // bytes 4092..4095 + 4 of Data[1]
        g.T.Memory.Poke64(g.Data[1] * 4096, 0x0000_0000_8888_7777UL);
        Assert.True(c.ReadU64(g.V, Va(1) + 4092, out ulong v));
        Assert.Equal(0x8888_7777_2222_1111UL, v);
    }
}

public class GuestMemoryFetchTests
{
    [Fact]
    public void Fetch_reads_across_a_page_boundary_and_stops_where_the_mapping_ends()
    {
        var g = new Microhv.Tests.Hypervisor.Traps.TrapsGuest();
        ulong code = Microhv.Tests.Hypervisor.Traps.TrapsGuest.Va(Microhv.Tests.Hypervisor.Traps.TrapsGuest.CodeSlot);
        ulong end = code + 4096 - 3;                                   // 3 bytes in the code page, the rest in the next
        g.WriteBytes(end, 0x0F, 0x0B, 0x78, 0x65, 0x6E, 0x0F, 0xA2);
        var buf = new byte[15];
        Assert.Equal(7, Microhv.Hypervisor.GuestMemory.Fetch(g.V, end, buf, 7));
        Assert.Equal(new byte[] { 0x0F, 0x0B, 0x78, 0x65, 0x6E, 0x0F, 0xA2 }, buf[..7]);
        Assert.Equal(2, Microhv.Hypervisor.GuestMemory.Fetch(g.V, end, buf, 2));   // only what was asked
        ulong last = Microhv.Tests.Hypervisor.Traps.TrapsGuest.Va(Microhv.Tests.Hypervisor.Traps.TrapsGuest.Slots) - 4;
        Assert.Equal(4, Microhv.Hypervisor.GuestMemory.Fetch(g.V, last, buf, 15)); // the next page is unmapped
        Assert.Equal(0, Microhv.Hypervisor.GuestMemory.Fetch(g.V, 0xFFFF_8000_0000_0000, buf, 15)); // the hypervisor's hole
        Assert.Equal(0, Microhv.Hypervisor.GuestMemory.Fetch(g.V, 0x0000_8000_0000_0000, buf, 15)); // non-canonical
    }
}
