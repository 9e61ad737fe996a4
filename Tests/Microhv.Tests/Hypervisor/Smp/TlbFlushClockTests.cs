using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using Xunit;

namespace Microhv.Tests.Hypervisor.Smp;

/// <summary>Xen's TLB-flush clock: a processor that has not flushed since a frame lost its type (or went back to
/// the pool) is flushed before the frame takes another type (or another owner); one that has, is not; a guest's
/// flush with a vCPU mask reaches the processors running those vCPUs only.</summary>
public class TlbFlushClockTests
{
    private readonly TestMachine _t = new();
    private readonly Domain _d, _e;
    private readonly TlbFlushClock _clock;

    public TlbFlushClockTests()
    {
        _d = _t.AddDomain(0, initial: true);
        _e = _t.AddDomain(1);
        _clock = _t.Machine.Tlb;
        _t.Machine.Scheduler.Join(1);
        _t.Machine.Scheduler.Join(2);
        _t.Machine.Scheduler.Join(3);
    }

    /// <summary>d's vCPUs 0, 1 and 2 on CPUs 0, 1 and 2, e's on CPU 3; the hypervisor acts for CPU 0.</summary>
    private void RunEverywhere()
    {
        _d.MaxVcpus = 3;
        for (int i = 1; i < 3; i++) { _d.Vcpus[i].Online = true; _d.Vcpus[i].Initialised = true; }
        Scheduler s = _t.Machine.Scheduler;
        for (int c = 0; c < 4; c++) { _t.Machine.Cpu = c; s.PickNext(null, true); }
        Assert.Equal(3, _e.Vcpu.RunningOn);
        _t.Machine.Cpu = 0;
    }

    private void Flushed(int cpu) => _clock.Flushed(cpu);

    [Fact]
    public void A_writable_frame_becoming_a_page_table_flushes_the_processors_that_have_not_flushed_since()
    {
        RunEverywhere();
        ulong mfn = _t.NewFrame(_d.DomainId);
        Flushed(3);
        Flushed(1);
        Flushed(2);
        Assert.Equal(0, PageTypes.GetPageType(_t.Machine, _d, mfn, FrameType.Writable));
        Flushed(2);                                           // CPU 2 flushes while the frame is still writable
        PageTypes.PutPageType(_t.Machine, mfn);              // the last writable mapping goes: stamped now
        Assert.Equal(_clock.Now, _t.FrameTable.Stamp(mfn));
        Assert.Equal(0, PageTypes.GetPageType(_t.Machine, _d, mfn, FrameType.L1PageTable));
        // CPUs 1 and 2 run d and flushed before the stamp; CPU 3 runs e, which never mapped d's frame.
        Assert.Equal(new[] { (1UL << 1) | (1UL << 2) }, _t.Host.CpuFlushes);

        // Once both have flushed after the stamp, the next change flushes nobody else.
        PageTypes.PutPageType(_t.Machine, mfn);
        Flushed(1);
        Flushed(2);
        _t.Host.CpuFlushes.Clear();
        Assert.Equal(0, PageTypes.GetPageType(_t.Machine, _d, mfn, FrameType.Writable));
        Assert.Empty(_t.Host.CpuFlushes);
    }

    /// <summary>A CR3 load outside the lock (a guest's system call or iret): its tick is taken before the load and
    /// recorded after, so a frame stamped in between still finds that processor stale (Xen's pre_flush/post_flush).</summary>
    [Fact]
    public void A_flush_outside_the_lock_counts_from_its_start()
    {
        RunEverywhere();
        ulong mfn = _t.NewFrame(_d.DomainId);
        Assert.Equal(0, PageTypes.GetPageType(_t.Machine, _d, mfn, FrameType.Writable));
        Flushed(2);
        uint begun = _clock.BeginFlush();                     // CPU 1 is about to load CR3, unlocked
        PageTypes.PutPageType(_t.Machine, mfn);              // meanwhile, under the lock: stamped
        _clock.FlushedAt(1, begun);                           // CPU 1's load is done
        Assert.NotEqual(0UL, _clock.StaleCpus(_t.FrameTable.Stamp(mfn)) & (1UL << 1));
        uint later = _clock.BeginFlush();                     // a load that begins after the stamp
        _clock.FlushedAt(1, later);
        Assert.Equal(0UL, _clock.StaleCpus(_t.FrameTable.Stamp(mfn)) & (1UL << 1));
    }

    [Fact]
    public void Only_a_processor_stale_for_the_stamp_is_flushed()
    {
        RunEverywhere();
        ulong mfn = _t.NewFrame(_d.DomainId);
        Assert.Equal(0, PageTypes.GetPageType(_t.Machine, _d, mfn, FrameType.Writable));
        Flushed(1);
        PageTypes.PutPageType(_t.Machine, mfn);
        Flushed(2);                                           // after the stamp: clean
        Assert.Equal((1UL << 1) | (1UL << 3), _clock.StaleCpus(_t.FrameTable.Stamp(mfn)));
        Assert.Equal(0, PageTypes.GetPageType(_t.Machine, _d, mfn, FrameType.L1PageTable));
        Assert.Equal(new[] { 1UL << 1 }, _t.Host.CpuFlushes);  // CPU 3 runs e only
    }

    [Fact]
    public void A_frame_given_back_is_flushed_out_of_stale_processors_before_it_is_handed_out_again()
    {
        RunEverywhere();
        Flushed(1);
        Flushed(2);
        Flushed(3);
        _clock.FreeingFrameOf(_d);                            // d runs on CPUs 1 and 2 (and this one)
        _clock.Freed();
        Flushed(2);
        _clock.BeforeReuse();
        Assert.Equal(new[] { 1UL << 1 }, _t.Host.CpuFlushes);
        _clock.BeforeReuse();                                 // nothing freed since
        Assert.Single(_t.Host.CpuFlushes);

        // A frame freed with no owner noted (a rolled-back allocation): any stale processor.
        _t.Host.CpuFlushes.Clear();
        _clock.Freed();
        _clock.BeforeReuse();
        Assert.Equal(new[] { (1UL << 1) | (1UL << 2) | (1UL << 3) }, _t.Host.CpuFlushes);
    }

    [Fact]
    public void The_frame_allocator_asks_its_fence_before_it_hands_out_a_frame()
    {
        Assert.Equal(FrameStatus.Ok, FrameAllocator.Create(new ulong[FrameAllocator.BitmapWordsFor(64)], 0x100000, 64, out FrameAllocator frames));
        Assert.Equal(FrameStatus.Ok, frames.AddUsableRange(0x100000, 64 * 4096));
        var fence = new CountingFence();
        frames.Fence = fence;
        Assert.True(frames.Allocate(out ulong pa));
        Assert.Equal(1, fence.Reuses);
        Assert.Equal(FrameStatus.Ok, frames.Free(pa));
        Assert.Equal(1, fence.Frees);
        Assert.True(frames.TryAllocateContiguous(1, ulong.MaxValue, out _));
        Assert.Equal(2, fence.Reuses);
    }

    private sealed class CountingFence : ReuseFence
    {
        public int Frees, Reuses;
        public override void Freed() => Frees++;
        public override void BeforeReuse() => Reuses++;
    }

    [Fact]
    public void A_guest_flush_reaches_the_processors_running_the_vcpus_it_names()
    {
        var d1 = _d.Vcpus[1];
        _d.MaxVcpus = 2;
        d1.Online = d1.Initialised = true;
        Scheduler s = _t.Machine.Scheduler;
        _t.Machine.Cpu = 0; s.PickNext(null, true);           // d.v0 on CPU 0
        _t.Machine.Cpu = 1; s.PickNext(null, true);           // d.v1 on CPU 1
        _t.Machine.Cpu = 2; s.PickNext(null, true);           // e.v0 on CPU 2
        Assert.Equal(1, d1.RunningOn);
        Assert.Equal(2, _e.Vcpu.RunningOn);
        _t.Machine.Cpu = 0;
        Assert.Equal(1UL << 1, _clock.CpusRunning(_d, ulong.MaxValue));
        Assert.Equal(0UL, _clock.CpusRunning(_d, 1));         // vCPU 0 only: this processor
        _clock.FlushDomain(_d, 2);
        Assert.Equal(new[] { 1UL << 1 }, _t.Host.CpuFlushes);
        Assert.Equal(1UL, _clock.RemoteFlushes);
    }

    [Fact]
    public void One_processor_never_asks_for_a_remote_flush()
    {
        var t = new TestMachine();
        Domain d = t.AddDomain(0, initial: true);
        ulong mfn = t.NewFrame(d.DomainId);
        Assert.Equal(0, PageTypes.GetPageType(t.Machine, d, mfn, FrameType.Writable));
        PageTypes.PutPageType(t.Machine, mfn);
        Assert.Equal(0, PageTypes.GetPageType(t.Machine, d, mfn, FrameType.L1PageTable));
        t.Machine.Tlb.FlushDomain(d, ulong.MaxValue);
        Assert.Empty(t.Host.CpuFlushes);
    }
}
