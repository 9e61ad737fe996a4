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
