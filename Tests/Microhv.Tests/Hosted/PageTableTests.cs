using Microhv.HAL;
using Xunit;

namespace Microhv.Tests.Hosted;

public class PageTableTests
{
    private const ulong MemBase = 0x10_0000;
    private const int Frames = 64;
    private const ulong P = PageTableEntry.Present, W = PageTableEntry.Writable, U = PageTableEntry.User, NX = PageTableEntry.NoExecute;

    private readonly SimulatedMemory _mem = new(MemBase, Frames * 4096);
    private readonly BumpFrameSource _frames;
    private readonly PageTable _pt;

    public PageTableTests()
    {
        _frames = new BumpFrameSource(_mem, MemBase, Frames);
        Assert.Equal(MapStatus.Ok, PageTable.Create(_mem, _frames, out _pt));
    }

    /// <summary>Independent walk by SDM index arithmetic: entry at level (4..1) for va, or 0 if a level above is absent.</summary>
    private ulong RawEntry(ulong va, int level)
    {
        ulong table = _pt.Root;
        for (int l = 4; ; l--)
        {
            int shift = 12 + 9 * (l - 1);
            ulong entry = _mem.Peek64(table + ((va >> shift) & 0x1FF) * 8);
            if (l == level) return entry;
            if ((entry & 1) == 0) return 0;
            table = entry & 0x000F_FFFF_FFFF_F000;
        }
    }

    [Fact]
    public void CreateZeroesTheRoot()
    {
        Assert.Single(_frames.Handed);
        Assert.Equal(_frames.Handed[0], _pt.Root);
        for (ulong i = 0; i < 512; i++) Assert.Equal(0UL, _mem.Peek64(_pt.Root + i * 8));
    }

    [Fact]
    public void Map4KBuildsFourLevelsAndTranslates()
    {
        ulong va = 0x0000_0040_0040_1000, pa = 0x0020_3000;
        Assert.Equal(MapStatus.Ok, _pt.Map(va, pa, W, PageSize.Size4K));
        Assert.Equal(4, _frames.Handed.Count); // PML4 + PDPT + PD + PT

        // Non-leaf entries: P|W, no U (leaf is supervisor), pointing at the frames handed out in order.
        Assert.Equal(_frames.Handed[1] | P | W, RawEntry(va, 4));
        Assert.Equal(_frames.Handed[2] | P | W, RawEntry(va, 3));
        Assert.Equal(_frames.Handed[3] | P | W, RawEntry(va, 2));
        Assert.Equal(pa | P | W, RawEntry(va, 1));

        // New tables were zeroed (the frame source dirtied them with 0xCC) except the one entry written.
        for (int t = 1; t < 4; t++)
        {
            int nonZero = 0;
            for (ulong i = 0; i < 512; i++) if (_mem.Peek64(_frames.Handed[t] + i * 8) != 0) nonZero++;
            Assert.Equal(1, nonZero);
        }

        Assert.True(_pt.Translate(va + 0xABC, out ulong got, out ulong flags, out PageSize size));
        Assert.Equal(pa + 0xABC, got);
        Assert.Equal(PageSize.Size4K, size);
        Assert.Equal(P | W, flags);
        Assert.False(_pt.Translate(va + 0x1000, out _, out _, out _));
        Assert.False(_pt.Translate(va - 0x1000, out _, out _, out _));
    }

    [Fact]
    public void UserLeafMakesIntermediatesUserAndTheLeafDecides()
    {
        ulong kernelVa = 0x40_0000, userVa = 0x40_1000;
        Assert.Equal(MapStatus.Ok, _pt.Map(kernelVa, 0x50_0000, W, PageSize.Size4K));
        Assert.Equal(0UL, RawEntry(kernelVa, 4) & U);
        Assert.Equal(MapStatus.Ok, _pt.Map(userVa, 0x50_1000, U | NX, PageSize.Size4K));
        // Shared intermediates were widened to User; no new tables were needed.
        Assert.Equal(4, _frames.Handed.Count);
        Assert.Equal(U, RawEntry(userVa, 4) & U);
        Assert.Equal(U, RawEntry(userVa, 3) & U);
        Assert.Equal(U, RawEntry(userVa, 2) & U);
        Assert.Equal(0UL, RawEntry(userVa, 4) & NX);

        Assert.True(_pt.Translate(userVa, out _, out ulong userFlags, out _));
        Assert.Equal(P | U | NX, userFlags); // not writable: the leaf said so
        Assert.True(_pt.Translate(kernelVa, out _, out ulong kernelFlags, out _));
        Assert.Equal(P | W, kernelFlags); // still supervisor-only although intermediates are U
    }

    [Fact]
    public void EffectiveFlagsCombineLevelsLikeTheCpu()
    {
        ulong va = 0x7F_0000_0000;
        Assert.Equal(MapStatus.Ok, _pt.Map(va, 0x6000, W | U | PageTableEntry.Global | PageTableEntry.CacheDisable, PageSize.Size4K));
        Assert.True(_pt.Translate(va, out _, out ulong flags, out _));
        Assert.Equal(P | W | U | PageTableEntry.Global | PageTableEntry.CacheDisable, flags);

        // Clear R/W in the PDPTE: the page becomes read-only although the PTE says writable.
        ulong pml4e = RawEntry(va, 4);
        ulong pdptSlot = (pml4e & PageTableEntry.AddressMask) + (ulong)PageTableEntry.L3Index(va) * 8;
        _mem.Poke64(pdptSlot, _mem.Peek64(pdptSlot) & ~W);
        Assert.True(_pt.Translate(va, out _, out flags, out _));
        Assert.Equal(0UL, flags & W);
        Assert.Equal(U, flags & U);

        // Clear U/S in the PML4E: supervisor-only.
        ulong pml4Slot = _pt.Root + (ulong)PageTableEntry.L4Index(va) * 8;
        _mem.Poke64(pml4Slot, pml4e & ~U);
        Assert.True(_pt.Translate(va, out _, out flags, out _));
        Assert.Equal(0UL, flags & U);

        // XD in the PD entry only: no-execute for the whole walk.
        Assert.Equal(0UL, flags & NX);
        ulong pdSlot = (RawEntry(va, 3) & PageTableEntry.AddressMask) + (ulong)PageTableEntry.L2Index(va) * 8;
        _mem.Poke64(pdSlot, _mem.Peek64(pdSlot) | NX);
        Assert.True(_pt.Translate(va, out _, out flags, out _));
        Assert.Equal(NX, flags & NX);
    }

    [Fact]
    public void Map2MAnd1GPages()
    {
        ulong va2m = 0xFFFF_8000_0060_0000, pa2m = 0x1_4060_0000;
        Assert.Equal(MapStatus.Ok, _pt.Map(va2m, pa2m, W, PageSize.Size2M));
        Assert.Equal(pa2m | P | W | PageTableEntry.PageSize, RawEntry(va2m, 2));
        Assert.True(_pt.Translate(va2m + 0x1_2345, out ulong pa, out ulong flags, out PageSize size));
        Assert.Equal(pa2m + 0x1_2345, pa);
        Assert.Equal(PageSize.Size2M, size);
        Assert.Equal(P | W, flags); // PS is not reported

        ulong va1g = 0xFFFF_FFFF_C000_0000, pa1g = 0x3_C000_0000;
        Assert.Equal(MapStatus.Ok, _pt.Map(va1g, pa1g, NX, PageSize.Size1G));
        Assert.Equal(pa1g | P | NX | PageTableEntry.PageSize, RawEntry(va1g, 3));
        Assert.True(_pt.Translate(va1g + 0x3FFF_FFFF, out pa, out flags, out size));
        Assert.Equal(pa1g + 0x3FFF_FFFF, pa);
        Assert.Equal(PageSize.Size1G, size);
        Assert.Equal(P | NX, flags);
        Assert.False(_pt.Translate(va1g - 1, out _, out _, out _));
    }

    [Fact]
    public void LargePagePatBitIsAccepted()
    {
        Assert.Equal(MapStatus.Ok, _pt.Map(0x20_0000, 0x40_0000, W | PageTableEntry.PatLarge, PageSize.Size2M));
        Assert.Equal(0x40_0000 | P | W | PageTableEntry.PatLarge | PageTableEntry.PageSize, RawEntry(0x20_0000, 2));
        Assert.True(_pt.Translate(0x20_0000, out ulong pa, out _, out _));
        Assert.Equal(0x40_0000UL, pa);
    }

    [Theory]
    [InlineData(0x1001UL, 0x2000UL, PageSize.Size4K)]
    [InlineData(0x1000UL, 0x2800UL, PageSize.Size4K)]
    [InlineData(0x20_1000UL, 0x40_0000UL, PageSize.Size2M)]
    [InlineData(0x20_0000UL, 0x40_1000UL, PageSize.Size2M)]
    [InlineData(0x4020_0000UL, 0x8000_0000UL, PageSize.Size1G)]
    [InlineData(0x4000_0000UL, 0x8020_0000UL, PageSize.Size1G)]
    public void MisalignedAddressesAreRejected(ulong va, ulong pa, PageSize size)
    {
        Assert.Equal(MapStatus.Misaligned, _pt.Map(va, pa, W, size));
        Assert.Single(_frames.Handed); // nothing built
    }

    [Theory]
    [InlineData(0x0000_8000_0000_0000UL)]
    [InlineData(0xFFFF_7FFF_FFFF_F000UL)]
    [InlineData(0x1000_0000_0000_0000UL)]
    public void NonCanonicalAddressesAreRejected(ulong va)
    {
        Assert.Equal(MapStatus.NonCanonical, _pt.Map(va, 0x1000, W, PageSize.Size4K));
        Assert.Equal(MapStatus.NonCanonical, _pt.Unmap(va));
        Assert.False(_pt.Translate(va, out _, out _, out _));
        Assert.Equal(PageWalkResult.NonCanonical, _pt.Walk(va, out _, out _));
    }

    [Fact]
    public void BadPhysicalAddressesAndFlagsAreRejected()
    {
        Assert.Equal(MapStatus.InvalidAddress, _pt.Map(0x1000, 0x0010_0000_0000_0000, W, PageSize.Size4K)); // bit 52
        Assert.Equal(MapStatus.InvalidAddress, _pt.Map(0x1000, 0x2000, W | 0x4000, PageSize.Size4K));     // flag in 51:12
        Assert.Equal(MapStatus.InvalidPageSize, _pt.Map(0x1000, 0x2000, W, (PageSize)7));
    }

    [Fact]
    public void DoubleMapIsRefused()
    {
        Assert.Equal(MapStatus.Ok, _pt.Map(0x5000, 0x9000, W, PageSize.Size4K));
        Assert.Equal(MapStatus.AlreadyMapped, _pt.Map(0x5000, 0xA000, 0, PageSize.Size4K));
        Assert.Equal(0x9000 | P | W, RawEntry(0x5000, 1)); // unchanged
        // A 2M page over a region already holding a page table.
        Assert.Equal(MapStatus.AlreadyMapped, _pt.Map(0, 0x20_0000, W, PageSize.Size2M));
    }

    [Fact]
    public void SmallPageInsideLargePageConflicts()
    {
        Assert.Equal(MapStatus.Ok, _pt.Map(0x20_0000, 0x80_0000, W, PageSize.Size2M));
        Assert.Equal(MapStatus.ConflictsWithLargePage, _pt.Map(0x20_5000, 0x1000, W, PageSize.Size4K));
        Assert.Equal(MapStatus.Ok, _pt.Map(0x4000_0000, 0x4000_0000, W, PageSize.Size1G));
        Assert.Equal(MapStatus.ConflictsWithLargePage, _pt.Map(0x4020_0000, 0x20_0000, W, PageSize.Size2M));
        Assert.Equal(MapStatus.ConflictsWithLargePage, _pt.Map(0x7FFF_F000, 0x1000, W, PageSize.Size4K));
    }

    [Fact]
    public void OutOfMemoryWhenFrameSourceIsDry()
    {
        var mem = new SimulatedMemory(MemBase, 2 * 4096);
        var frames = new BumpFrameSource(mem, MemBase, 2);
        Assert.Equal(MapStatus.Ok, PageTable.Create(mem, frames, out PageTable pt));
        Assert.Equal(MapStatus.OutOfMemory, pt.Map(0x1000, 0x2000, W, PageSize.Size4K));
        Assert.False(pt.Translate(0x1000, out _, out _, out _));
        Assert.Equal(MapStatus.OutOfMemory, PageTable.Create(mem, frames, out _));
    }

    [Fact]
    public void UnmapRemoves4KAndWholeLargePages()
    {
        Assert.Equal(MapStatus.Ok, _pt.Map(0x3000, 0x7000, W, PageSize.Size4K));
        Assert.Equal(MapStatus.Ok, _pt.Map(0x4000, 0x8000, W, PageSize.Size4K));
        Assert.Equal(MapStatus.Ok, _pt.Unmap(0x3000, out PageSize size));
        Assert.Equal(PageSize.Size4K, size);
        Assert.False(_pt.Translate(0x3000, out _, out _, out _));
        Assert.True(_pt.Translate(0x4000, out _, out _, out _));
        Assert.Equal(MapStatus.NotMapped, _pt.Unmap(0x3000));
        Assert.Equal(MapStatus.NotMapped, _pt.Unmap(0x7F_0000_0000));

        Assert.Equal(MapStatus.Ok, _pt.Map(0x60_0000, 0x60_0000, W, PageSize.Size2M));
        Assert.Equal(MapStatus.Ok, _pt.Unmap(0x61_2345, out size)); // any address inside
        Assert.Equal(PageSize.Size2M, size);
        Assert.False(_pt.Translate(0x60_0000, out _, out _, out _));

        Assert.Equal(MapStatus.Ok, _pt.Map(0x80_0000_0000, 0, W, PageSize.Size1G));
        Assert.Equal(MapStatus.Ok, _pt.Unmap(0x80_0000_0000, out size));
        Assert.Equal(PageSize.Size1G, size);
        // The slot can be reused.
        Assert.Equal(MapStatus.Ok, _pt.Map(0x80_0000_0000, 0x4000_0000, W, PageSize.Size1G));
    }

    [Fact]
    public void MapRangeMapsEveryPage()
    {
        Assert.Equal(MapStatus.Ok, _pt.MapRange(0xFFFF_8000_0000_0000, 0x20_0000, 5 * 4096, W, PageSize.Size4K));
        for (ulong i = 0; i < 5; i++)
        {
            Assert.True(_pt.Translate(0xFFFF_8000_0000_0000 + i * 4096 + 7, out ulong pa, out _, out _));
            Assert.Equal(0x20_0000 + i * 4096 + 7, pa);
        }
        Assert.False(_pt.Translate(0xFFFF_8000_0000_0000 + 5 * 4096, out _, out _, out _));
        Assert.Equal(MapStatus.Misaligned, _pt.MapRange(0x10_0000, 0, 4096 + 1, W, PageSize.Size4K));
        Assert.Equal(MapStatus.Ok, _pt.MapRange(0x4000_0000, 0x4000_0000, 4 * 0x20_0000, W, PageSize.Size2M));
        Assert.True(_pt.Translate(0x4060_0000, out ulong p2, out _, out PageSize s2));
        Assert.Equal(0x4060_0000UL, p2);
        Assert.Equal(PageSize.Size2M, s2);
    }

    [Fact]
    public void MapRangeRollsBackOnFailure()
    {
        Assert.Equal(MapStatus.Ok, _pt.Map(0x12000, 0xF2000, 0, PageSize.Size4K));
        Assert.Equal(MapStatus.AlreadyMapped, _pt.MapRange(0x10000, 0xA0000, 4 * 4096, W, PageSize.Size4K));
        Assert.False(_pt.Translate(0x10000, out _, out _, out _));
        Assert.False(_pt.Translate(0x11000, out _, out _, out _));
        Assert.True(_pt.Translate(0x12000, out ulong pa, out _, out _)); // the pre-existing page survives
        Assert.Equal(0xF2000UL, pa);
        Assert.False(_pt.Translate(0x13000, out _, out _, out _));

        // Crossing into the non-canonical hole fails and rolls back too.
        Assert.Equal(MapStatus.NonCanonical, _pt.MapRange(0x0000_7FFF_FFFF_E000, 0, 3 * 4096, W, PageSize.Size4K));
        Assert.False(_pt.Translate(0x0000_7FFF_FFFF_E000, out _, out _, out _));
    }

    [Fact]
    public void WalkReportsTheEntrySlotAndLevel()
    {
        ulong va = 0x1234_5678_9000;
        Assert.Equal(PageWalkResult.NotPresent, _pt.Walk(va, out ulong slot, out int level));
        Assert.Equal(4, level);
        Assert.Equal(_pt.Root + (ulong)PageTableEntry.L4Index(va) * 8, slot);

        Assert.Equal(MapStatus.Ok, _pt.Map(va, 0xABC000, W, PageSize.Size4K));
        Assert.Equal(PageWalkResult.Mapped, _pt.Walk(va, out slot, out level));
        Assert.Equal(1, level);
        Assert.Equal((RawEntry(va, 2) & PageTableEntry.AddressMask) + (ulong)PageTableEntry.L1Index(va) * 8, slot);
        Assert.Equal(0xABC000 | P | W, _mem.Peek64(slot));

        // Neighbour in the same page table: not present at level 1.
        Assert.Equal(PageWalkResult.NotPresent, _pt.Walk(va + 0x1000, out slot, out level));
        Assert.Equal(1, level);

        Assert.Equal(MapStatus.Ok, _pt.Map(0x4000_0000, 0, W, PageSize.Size2M));
        Assert.Equal(PageWalkResult.Mapped, PageTable.Walk(_mem, _pt.Root, 0x4010_0000, out slot, out level));
        Assert.Equal(2, level);
        Assert.Equal(P | W | PageTableEntry.PageSize, _mem.Peek64(slot));
    }

    [Fact]
    public void HostileTablesAreNeverReadOutsideMemory()
    {
        // A "guest" PML4E pointing far outside memory, and a PS bit in a PML4E (reserved).
        ulong va = 0x1000;
        _mem.Poke64(_pt.Root, 0x7_0000_0000 | P | W);
        Assert.Equal(PageWalkResult.BadTableAddress, _pt.Walk(va, out ulong slot, out int level));
        Assert.Equal(3, level);
        Assert.Equal(0x7_0000_0000UL, slot);
        Assert.False(_pt.Translate(va, out _, out _, out _));
        Assert.Equal(MapStatus.BadTableAddress, _pt.Map(va, 0x1000, W, PageSize.Size4K));

        _mem.Poke64(_pt.Root, P | W | PageTableEntry.PageSize);
        Assert.Equal(PageWalkResult.ReservedBitSet, _pt.Walk(va, out _, out level));
        Assert.Equal(4, level);
        Assert.False(_pt.Translate(va, out _, out _, out _));

        Assert.Equal(PageWalkResult.BadTableAddress, PageTable.Walk(_mem, 0xDEAD_0000_0000, va, out _, out _));
        Assert.Empty(_mem.Faults);
    }
}
