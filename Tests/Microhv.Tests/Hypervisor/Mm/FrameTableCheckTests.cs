using Microhv.HAL;
using Microhv.Hypervisor;
using Xunit;

namespace Microhv.Tests.Hypervisor.Mm;

/// <summary>The frame table's self-check at shutdown: a table whose free frames are blank and whose used frames
/// belong to no domain is consistent; each kind of leftover (an owner, a type, a count, a reference, a pin, the
/// validated flag on a free frame; a frame still a domain's, or a page table of nobody's) is found and reported.</summary>
public class FrameTableCheckTests
{
    private const ulong Frames = 256, Base = 0;
    private readonly FrameTable _ft = new(Frames);
    private readonly FrameAllocator _alloc;

    public FrameTableCheckTests()
    {
        Assert.Equal(FrameStatus.Ok, FrameAllocator.Create(new ulong[FrameAllocator.BitmapWordsFor(Frames)], Base, Frames, out _alloc));
        Assert.Equal(FrameStatus.Ok, _alloc.AddUsableRange(16 * 4096, (Frames - 16) * 4096));   // frames 16.. free, 0-15 unmanaged
        Assert.Equal(FrameStatus.Ok, _alloc.ReserveRange(32 * 4096, 4 * 4096));                 // 32-35 reserved
        _ft.SetOwner(0, FrameTable.OwnerIo);
        _ft.SetOwner(1, FrameTable.OwnerXen);
        Assert.True(_alloc.Allocate(out ulong used));                                            // the hypervisor's own frame
        _ft.SetOwner(used >> 12, FrameTable.OwnerXen);
    }

    private FrameProblem[] Run(out ulong bad, out ulong checkedFrames)
    {
        var problems = new FrameProblem[4];
        bad = FrameTableCheck.Run(_ft, _alloc, problems, out checkedFrames);
        return problems;
    }

    [Fact]
    public void A_table_with_blank_free_frames_and_the_hypervisors_own_is_consistent()
    {
        Run(out ulong bad, out ulong checkedFrames);
        Assert.Equal(0UL, bad);
        Assert.Equal(Frames, checkedFrames);
    }

    private static ulong FreeFrame(FrameAllocator a)
    {
        for (ulong mfn = 100; ; mfn++) if (a.IsFree(mfn << 12)) return mfn;
    }

    [Fact]
    public void A_free_frame_with_an_owner_is_found()
    {
        ulong mfn = FreeFrame(_alloc);
        _ft.SetOwner(mfn, 3);
        var p = Run(out ulong bad, out _);
        Assert.Equal(1UL, bad);
        Assert.Equal(mfn, p[0].Mfn);
        Assert.Equal(FrameFault.FreeButOwned, p[0].Fault);
        Assert.Equal(3UL, p[0].Value);
    }

    [Fact]
    public void A_free_frame_with_a_type_or_a_type_count_is_found()
    {
        ulong mfn = FreeFrame(_alloc);
        _ft.SetType(mfn, FrameType.L1PageTable, 1);
        var p = Run(out ulong bad, out _);
        Assert.Equal(1UL, bad);
        Assert.Equal(FrameFault.FreeButTyped, p[0].Fault);
        Assert.Equal((ulong)FrameType.L1PageTable << 32 | 1, p[0].Value);
        _ft.SetType(mfn, FrameType.Writable, 0);                 // a type left without a count is still a leftover
        Assert.Equal(FrameFault.FreeButTyped, Run(out _, out _)[0].Fault);
    }

    [Fact]
    public void A_free_frame_with_references_is_found()
    {
        ulong mfn = FreeFrame(_alloc);
        _ft.SetRefCount(mfn, 2);
        var p = Run(out ulong bad, out _);
        Assert.Equal(1UL, bad);
        Assert.Equal(FrameFault.FreeButReferenced, p[0].Fault);
        Assert.Equal(2UL, p[0].Value);
        _ft.SetRefCount(mfn, 0);
        _ft.SetForeignRefs(mfn, 1);
        Assert.Equal(FrameFault.FreeButReferenced, Run(out _, out _)[0].Fault);
    }

    [Fact]
    public void A_free_frame_pinned_or_validated_is_found()
    {
        ulong a = FreeFrame(_alloc);
        _ft.SetPinned(a, true);
        ulong b = a + 1;
        Assert.True(_alloc.IsFree(b << 12));
        _ft.SetValidated(b, true);
        var p = Run(out ulong bad, out _);
        Assert.Equal(2UL, bad);
        Assert.Equal((a, FrameFault.FreeButPinned), (p[0].Mfn, p[0].Fault));
        Assert.Equal((b, FrameFault.FreeButValidated), (p[1].Mfn, p[1].Fault));
    }

    [Fact]
    public void A_frame_a_domain_still_owns_after_every_domain_ended_is_found()
    {
        Assert.True(_alloc.Allocate(out ulong phys));
        _ft.SetOwner(phys >> 12, 1);
        var p = Run(out ulong bad, out _);
        Assert.Equal(1UL, bad);
        Assert.Equal((phys >> 12, FrameFault.OwnedByEndedDomain, 1UL), (p[0].Mfn, p[0].Fault, p[0].Value));
    }

    [Fact]
    public void A_used_frame_of_nobody_still_a_pinned_page_table_is_found()
    {
        Assert.True(_alloc.Allocate(out ulong phys));
        ulong mfn = phys >> 12;
        _ft.SetType(mfn, FrameType.L2PageTable, 1);
        _ft.SetPinned(mfn, true);
        var p = Run(out ulong bad, out _);
        Assert.Equal(1UL, bad);
        Assert.Equal((mfn, FrameFault.PageTableWithoutDomain), (p[0].Mfn, p[0].Fault));
    }

    [Fact]
    public void Every_inconsistency_is_counted_and_the_first_ones_reported()
    {
        for (ulong mfn = 100; mfn < 110; mfn++) _ft.SetOwner(mfn, 2);
        var p = Run(out ulong bad, out _);
        Assert.Equal(10UL, bad);
        Assert.Equal(new ulong[] { 100, 101, 102, 103 }, new[] { p[0].Mfn, p[1].Mfn, p[2].Mfn, p[3].Mfn });
    }
}
