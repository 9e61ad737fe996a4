using Microhv.HAL;
using Xunit;

namespace Microhv.Tests.Hosted;

/// <summary>Expected values from Intel SDM Vol. 3A, 4.5 (Tables 4-15 .. 4-20, Figures 4-8 .. 4-11).</summary>
public class PageTableEntryTests
{
    [Fact]
    public void FlagBitsArePlacedAsTheSdmDefinesThem()
    {
        Assert.Equal(0x1UL, PageTableEntry.Present);          // bit 0 P
        Assert.Equal(0x2UL, PageTableEntry.Writable);         // bit 1 R/W
        Assert.Equal(0x4UL, PageTableEntry.User);             // bit 2 U/S
        Assert.Equal(0x8UL, PageTableEntry.WriteThrough);     // bit 3 PWT
        Assert.Equal(0x10UL, PageTableEntry.CacheDisable);    // bit 4 PCD
        Assert.Equal(0x20UL, PageTableEntry.Accessed);        // bit 5 A
        Assert.Equal(0x40UL, PageTableEntry.Dirty);           // bit 6 D
        Assert.Equal(0x80UL, PageTableEntry.PageSize);        // bit 7 PS
        Assert.Equal(0x80UL, PageTableEntry.Pat4K);           // bit 7 PAT in a PTE
        Assert.Equal(0x100UL, PageTableEntry.Global);         // bit 8 G
        Assert.Equal(0x1000UL, PageTableEntry.PatLarge);      // bit 12 PAT in a 2M/1G leaf
        Assert.Equal(0x8000_0000_0000_0000UL, PageTableEntry.NoExecute); // bit 63 XD
    }

    [Fact]
    public void AddressMasksCoverBits51Down()
    {
        Assert.Equal(0x000F_FFFF_FFFF_F000UL, PageTableEntry.AddressMask);   // 51:12
        Assert.Equal(0x000F_FFFF_FFE0_0000UL, PageTableEntry.AddressMask2M); // 51:21
        Assert.Equal(0x000F_FFFF_C000_0000UL, PageTableEntry.AddressMask1G); // 51:30
        Assert.Equal(4096UL, PageTableEntry.SizeOf(PageSize.Size4K));
        Assert.Equal(2UL * 1024 * 1024, PageTableEntry.SizeOf(PageSize.Size2M));
        Assert.Equal(1024UL * 1024 * 1024, PageTableEntry.SizeOf(PageSize.Size1G));
    }

    [Fact]
    public void MakeCombinesAddressAndFlagsAndDropsStrayBits()
    {
        Assert.Equal(0x0000_1234_5678_9003UL, PageTableEntry.Make(0x1234_5678_9000, 0x3));
        // Bits outside 51:12 of the address are not taken; flags in 51:12 are not taken.
        Assert.Equal(0x0000_0000_0000_5001UL, PageTableEntry.Make(0xFFF0_0000_0000_5ABC, 0x1));
        Assert.Equal(0x8000_0000_0000_7007UL, PageTableEntry.Make(0x7000, 0x8000_0000_0001_0007));
    }

    [Fact]
    public void MakeLeafSetsPsForLargePages()
    {
        Assert.Equal(0x4020_0083UL, PageTableEntry.MakeLeaf(0x4020_0000, 0x3, PageSize.Size2M));
        Assert.Equal(0x8000_0081UL, PageTableEntry.MakeLeaf(0x8000_0000, 0x1, PageSize.Size1G));
        // PAT for large pages lives in bit 12, under the 2M address field.
        Assert.Equal(0x0060_1081UL, PageTableEntry.MakeLeaf(0x0060_0000, PageTableEntry.Present | PageTableEntry.PatLarge, PageSize.Size2M));
        Assert.Equal(0x5000_0001UL, PageTableEntry.MakeLeaf(0x5000_0000, 0x1, PageSize.Size4K));
        Assert.Equal(0x0060_1000UL, PageTableEntry.LeafAddress(0x0060_1083, PageSize.Size4K));
        Assert.Equal(0x0060_0000UL, PageTableEntry.LeafAddress(0x0060_1083, PageSize.Size2M));
    }

    [Fact]
    public void Predicates()
    {
        ulong e = 0x8000_0000_0000_0087;
        Assert.True(PageTableEntry.IsPresent(e));
        Assert.True(PageTableEntry.IsWritable(e));
        Assert.True(PageTableEntry.IsUser(e));
        Assert.True(PageTableEntry.IsLargePage(e));
        Assert.True(PageTableEntry.IsNoExecute(e));
        Assert.False(PageTableEntry.IsPresent(0x2));
        Assert.False(PageTableEntry.IsWritable(0x5));
        Assert.False(PageTableEntry.IsUser(0x3));
        Assert.False(PageTableEntry.IsLargePage(0x7));
        Assert.False(PageTableEntry.IsNoExecute(0x7FFF_FFFF_FFFF_FFFF));
        Assert.Equal(0x000F_FFFF_FFFF_F000UL, PageTableEntry.Address(0xFFFF_FFFF_FFFF_FFFF));
    }

    [Fact]
    public void IndicesComeFromBits47To12()
    {
        ulong va = (3UL << 39) | (5UL << 30) | (7UL << 21) | (9UL << 12) | 0x123;
        Assert.Equal(3, PageTableEntry.L4Index(va));
        Assert.Equal(5, PageTableEntry.L3Index(va));
        Assert.Equal(7, PageTableEntry.L2Index(va));
        Assert.Equal(9, PageTableEntry.L1Index(va));
        Assert.Equal(3, PageTableEntry.IndexAt(va, 4));
        Assert.Equal(5, PageTableEntry.IndexAt(va, 3));
        Assert.Equal(7, PageTableEntry.IndexAt(va, 2));
        Assert.Equal(9, PageTableEntry.IndexAt(va, 1));

        Assert.Equal(256, PageTableEntry.L4Index(0xFFFF_8000_0000_0000));
        Assert.Equal(511, PageTableEntry.L4Index(0xFFFF_FFFF_8000_0000));
        Assert.Equal(510, PageTableEntry.L3Index(0xFFFF_FFFF_8000_0000));
        Assert.Equal(0, PageTableEntry.L2Index(0xFFFF_FFFF_8000_0000));
        Assert.Equal(255, PageTableEntry.L4Index(0x0000_7FFF_FFFF_F000));
        Assert.Equal(511, PageTableEntry.L3Index(0x0000_7FFF_FFFF_F000));
        Assert.Equal(511, PageTableEntry.L2Index(0x0000_7FFF_FFFF_F000));
        Assert.Equal(511, PageTableEntry.L1Index(0x0000_7FFF_FFFF_F000));
    }

    [Theory]
    [InlineData(0x0000_0000_0000_0000UL, true)]
    [InlineData(0x0000_7FFF_FFFF_FFFFUL, true)]
    [InlineData(0x0000_8000_0000_0000UL, false)]
    [InlineData(0x0001_0000_0000_0000UL, false)]
    [InlineData(0x8000_0000_0000_0000UL, false)]
    [InlineData(0xFFFF_7FFF_FFFF_FFFFUL, false)]
    [InlineData(0xFFFF_8000_0000_0000UL, true)]
    [InlineData(0xFFFF_FFFF_FFFF_FFFFUL, true)]
    public void CanonicalMeansBits63To47Equal(ulong va, bool canonical)
    {
        Assert.Equal(canonical, PageTableEntry.IsCanonical(va));
    }
}
