using System.Collections.Generic;
using Microhv.HAL;
using Xunit;

namespace Microhv.Tests.Hosted;

public class FrameAllocatorTests
{
    private static FrameAllocator Make(ulong baseAddress, ulong frames)
    {
        var bitmap = new ulong[FrameAllocator.BitmapWordsFor(frames)];
        Assert.Equal(FrameStatus.Ok, FrameAllocator.Create(bitmap, baseAddress, frames, out FrameAllocator a));
        return a;
    }

    [Fact]
    public void CreateValidatesArguments()
    {
        Assert.Equal(4UL, FrameAllocator.BitmapWordsFor(65)); // two bitmaps of 2 words
        Assert.Equal(FrameStatus.BitmapTooSmall, FrameAllocator.Create(new ulong[3], 0, 65, out _));
        Assert.Equal(FrameStatus.Misaligned, FrameAllocator.Create(new ulong[2], 0x800, 64, out _));
        Assert.Equal(FrameStatus.BadRange, FrameAllocator.Create(new ulong[2], 0xFFFF_FFFF_FFFF_F000, 2, out _));
    }

    [Fact]
    public void NothingIsFreeUntilUsableRangesAreAdded()
    {
        var a = Make(0, 256);
        Assert.Equal(0UL, a.FreeFrames);
        Assert.False(a.Allocate(out _));
        Assert.Equal(FrameStatus.NotManaged, a.Free(0x5000));
    }

    [Fact]
    public void UsableRangesAreShrunkToWholeFramesAndReservedRangesGrown()
    {
        var a = Make(0, 64);
        a.AddUsableRange(0x1800, 0x4000);   // [0x1800, 0x5800): whole frames 2,3,4
        Assert.Equal(3UL, a.FreeFrames);
        Assert.False(a.IsFree(0x1000));
        Assert.True(a.IsFree(0x2000));
        Assert.True(a.IsFree(0x4FFF));
        Assert.False(a.IsFree(0x5000));
        a.ReserveRange(0x3FFF, 2);          // touches frames 3 and 4
        Assert.Equal(1UL, a.FreeFrames);
        Assert.True(a.IsReserved(0x3000));
        Assert.True(a.IsReserved(0x4000));
        Assert.True(a.IsFree(0x2000));
    }

    [Fact]
    public void ReleasingAReservedRangeFreesOnlyItsWholeReservedFrames()
    {
        // Usable frames 0..15, frame 0 allocated; a boot module at [0x2800, 0x7800) reserves frames 2..7;
        // frame 20 is reserved without being usable (not RAM) and stays out of every release below.
        var a = Make(0, 64);
        a.AddUsableRange(0, 0x10000);
        Assert.True(a.Allocate(out ulong taken));                // frame 0: allocated, outside the range
        a.ReserveRange(0x2800, 0x5000);
        Assert.Equal(16UL - 1 - 6, a.FreeFrames);
        a.ReserveRange(0x14000, 0x1000);

        Assert.Equal(4UL, a.ReleaseReservedRange(0x2800, 0x5000)); // whole frames 3..6; 2 and 7 are partial
        Assert.True(a.IsReserved(0x2000));
        Assert.True(a.IsReserved(0x7000));
        for (ulong f = 3; f <= 6; f++) Assert.True(a.IsFree(f * 4096));
        Assert.Equal(16UL - 1 - 2, a.FreeFrames);
        Assert.Equal(0UL, a.ReleaseReservedRange(0x3000, 0x4000));  // free frames stay free, not counted twice
        Assert.Equal(0UL, a.ReleaseReservedRange(0, 0x1000));       // an allocated frame stays allocated
        Assert.Equal(FrameStatus.Ok, a.Free(taken));
        Assert.Equal(1UL, a.ReleaseReservedRange(0x2000, 0x1000));  // now wholly inside
        Assert.Equal(16UL - 1, a.FreeFrames);                        // frame 7 is still reserved

        // The released frames are handed out and taken back like any other.
        var seen = new HashSet<ulong>();
        while (a.Allocate(out ulong p)) Assert.True(seen.Add(p));
        Assert.Contains(0x3000UL, seen);
        Assert.DoesNotContain(0x7000UL, seen);
        Assert.DoesNotContain(0x14000UL, seen);
        Assert.Equal(FrameStatus.Ok, a.Free(0x3000));
    }

    [Fact]
    public void NeverHandsOutReservedOrUsedFramesAndReportsExhaustion()
    {
        // Usable: 0..16 MiB as a loader would report it; reserved: first MiB, kernel, a module, the boot info.
        const ulong Mb = 0x10_0000;
        var a = Make(0, 4096);
        a.AddUsableRange(0, 0x9F000);          // low memory
        a.AddUsableRange(Mb, 15 * Mb);         // 1..16 MiB
        a.ReserveRange(0, Mb);                 // first MiB / firmware
        a.ReserveRange(Mb, 0x23_4567);         // kernel image (partial last frame)
        a.ReserveRange(0x80_0000, 0x1234);     // module
        a.ReserveRange(0xFF_F000 + 0x10, 8);   // boot info at the very end
        // Reservation before a late AddUsableRange still wins.
        a.AddUsableRange(0, Mb);

        ulong kernelEnd = (Mb + 0x23_4567 + 0xFFF) & ~0xFFFUL;
        ulong expected = (16 * Mb - kernelEnd) / 4096 - 2 /* module */ - 1 /* boot info */;
        Assert.Equal(expected, a.FreeFrames);

        var seen = new HashSet<ulong>();
        while (a.Allocate(out ulong frame))
        {
            Assert.Equal(0UL, frame & 0xFFF);
            Assert.True(frame >= kernelEnd && frame < 16 * Mb, $"0x{frame:X}");
            Assert.False(frame >= 0x80_0000 && frame < 0x80_2000, $"module 0x{frame:X}");
            Assert.NotEqual(0xFF_F000UL, frame);
            Assert.True(seen.Add(frame), "frame handed out twice");
        }
        Assert.Equal((int)expected, seen.Count);
        Assert.Equal(0UL, a.FreeFrames);
        Assert.False(a.TryAllocateFrame(out ulong none));
        Assert.Equal(0UL, none);
    }

    [Fact]
    public void FreeRefusesDoubleFreeForeignAndReservedFrames()
    {
        var a = Make(0x100_0000, 128);
        a.AddUsableRange(0x100_0000, 128 * 4096);
        a.ReserveRange(0x100_0000, 4096);
        Assert.True(a.Allocate(out ulong f));
        Assert.Equal(0x100_1000UL, f);              // lowest non-reserved frame
        Assert.Equal(127UL - 1, a.FreeFrames);
        Assert.Equal(FrameStatus.Ok, a.Free(f));
        Assert.Equal(127UL, a.FreeFrames);
        Assert.Equal(FrameStatus.DoubleFree, a.Free(f));
        Assert.Equal(127UL, a.FreeFrames);
        Assert.Equal(FrameStatus.NotManaged, a.Free(0x100_0000));     // reserved
        Assert.Equal(FrameStatus.NotManaged, a.Free(0xFF_F000));      // below the covered range
        Assert.Equal(FrameStatus.NotManaged, a.Free(0x100_0000 + 128 * 4096)); // past it
        Assert.Equal(FrameStatus.Misaligned, a.Free(f + 8));
        Assert.Equal(FrameStatus.DoubleFree, a.Free(0x100_2000));     // never allocated
        Assert.Equal(127UL, a.FreeFrames);
    }

    [Fact]
    public void FreedFramesAreReusedAndSearchWraps()
    {
        var a = Make(0, 200);
        a.AddUsableRange(0, 200 * 4096);
        var all = new List<ulong>();
        while (a.Allocate(out ulong f)) all.Add(f);
        Assert.Equal(200, all.Count);
        Assert.Equal(FrameStatus.Ok, a.Free(3 * 4096));
        Assert.Equal(FrameStatus.Ok, a.Free(150 * 4096));
        Assert.True(a.Allocate(out ulong x));
        Assert.True(a.Allocate(out ulong y));
        Assert.Equal(new HashSet<ulong> { 3 * 4096, 150 * 4096 }, new HashSet<ulong> { x, y });
        Assert.False(a.Allocate(out _));
    }

    [Fact]
    public void ReservingAnAllocatedFrameTakesItOutOfManagement()
    {
        var a = Make(0, 64);
        a.AddUsableRange(0, 64 * 4096);
        Assert.True(a.Allocate(out ulong f));
        a.ReserveRange(f, 4096);
        Assert.Equal(FrameStatus.NotManaged, a.Free(f));
        Assert.Equal(63UL, a.FreeFrames);
    }

    [Fact]
    public void IsAFrameSourceForPageTables()
    {
        var mem = new SimulatedMemory(0x20_0000, 16 * 4096);
        var a = Make(0x20_0000, 16);
        a.AddUsableRange(0x20_0000, 16 * 4096);
        a.ReserveRange(0x20_0000, 4096);
        FrameSource source = a;
        Assert.Equal(MapStatus.Ok, PageTable.Create(mem, source, out PageTable pt));
        Assert.Equal(MapStatus.Ok, pt.Map(0xFFFF_8000_0000_0000, 0x1234_5000, PageTableEntry.Writable, PageSize.Size4K));
        Assert.Equal(11UL, a.FreeFrames); // 15 usable - 4 tables
        Assert.True(pt.Root >= 0x20_1000);
    }
}
