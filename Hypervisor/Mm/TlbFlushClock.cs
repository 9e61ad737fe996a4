using Microhv.HAL;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// Xen's TLB-flush clock (tlbflush_clock, tlbflush_time[], page->tlbflush_timestamp) and flush_tlb_mask:
/// which other processors may still hold a translation that must go before a frame is trusted in a new
/// role. Every full flush of a processor's TLB (a CR3 load: a vCPU switch, new_baseptr, the guest's own
/// flushes, a flush IPI) is a tick of the clock; a frame whose last type reference went (FrameTable.Stamp)
/// or that was given back to the free pool is stamped with the clock. A processor that has not flushed since
/// the stamp may still translate through the frame with its old rights (a writable mapping of a frame now
/// a page table, a paging-structure cache entry through a table now writable, any mapping of a frame now
/// another domain's): those processors are flushed (an IPI the kernel answers before the hypercall goes on)
/// when the frame changes type (PageTypes.GetPageType) or is handed out again (the frame source's fence).
/// Only processors running a vCPU of the frame's owner are candidates (Xen filters d->dirty_cpumask the same
/// way): a processor that ran one earlier has loaded another CR3 since, and another domain's mappings of the
/// frame were grant mappings, flushed where they were undone (GrantHostMapping), or the control domain's
/// foreign mappings, whose own flushes are its kernel's business as on Xen.
/// The clock is 32 bits and stops at its last value: after 4 billion flushes every check flushes, which is
/// slow but never wrong. The hypervisor is serialized by one lock (docs/smp.md), but a processor may load CR3
/// outside it (a guest's system call and iret switch the guest's page tables without the lock, GuestEntry's
/// unlocked path): so the clock ticks atomically, and a processor takes its tick before the CR3 load and records
/// it after (Xen's pre_flush / post_flush). A stamp taken between the two then equals or follows the tick, so
/// that processor still counts as stale for it: never wrongly clean. Stamps and frees happen only under the lock.
/// </summary>
public sealed class TlbFlushClock : ReuseFence
{
    private const uint Last = uint.MaxValue;
    private readonly Machine _machine;
    private uint _now = 1;
    private readonly uint[] _flushedAt = new uint[Machine.MaxCpus];
    private uint _freedAt;
    private bool _freedPending, _ownerNoted;
    /// <summary>Processors that ran the owners of the frames freed since the last fence, when they were freed.</summary>
    private ulong _freedCpus;
    /// <summary>Flush requests sent to other processors (the summary reports them).</summary>
    public ulong RemoteFlushes;

    public TlbFlushClock(Machine machine) { _machine = machine; }

    /// <summary>The clock now: the stamp of a frame released now.</summary>
    public uint Now => _now;

    /// <summary>Processor <paramref name="cpu"/> flushed its whole TLB now (under the lock: nothing can be
    /// stamped between the flush and this tick).</summary>
    public void Flushed(int cpu) => _flushedAt[cpu] = Tick();

    /// <summary>A full flush about to happen (a CR3 load, possibly outside the lock): its time, for
    /// <see cref="FlushedAt"/> once it is done.</summary>
    public uint BeginFlush() => Tick();

    /// <summary>Processor <paramref name="cpu"/>'s flush that began at <paramref name="time"/> is done.</summary>
    public void FlushedAt(int cpu, uint time) => _flushedAt[cpu] = time;

    private uint Tick()
    {
        while (true)
        {
            uint now = _now;
            if (now == Last) return Last;
            if (System.Threading.Interlocked.CompareExchange(ref _now, now + 1, now) == now) return now + 1;
        }
    }

    /// <summary>The processors taking guests, other than this one, that have not flushed since <paramref name="stamp"/>.</summary>
    public ulong StaleCpus(uint stamp)
    {
        ulong others = _machine.Scheduler.Cpus & ~(1UL << _machine.Cpu), mask = 0;
        for (int c = 0; others != 0; c++, others >>= 1)
            if ((others & 1) != 0 && _flushedAt[c] <= stamp) mask |= 1UL << c;
        return mask;
    }

    /// <summary>Flushes the processors that may still translate through frame <paramref name="mfn"/> from before
    /// it last lost its type: those running a vCPU of its owner that have not flushed since.</summary>
    public void FlushStale(ulong mfn)
    {
        if (_machine.Scheduler.Cpus == 1UL << _machine.Cpu) return;      // no other processor takes guests
        Domain owner = _machine.FindDomain(_machine.FrameTable.OwnerOf(mfn));
        if (owner == null) return;                                        // nobody's frame: no guest maps it
        Flush(StaleCpus(_machine.FrameTable.Stamp(mfn)) & CpusRunning(owner, ulong.MaxValue));
    }

    /// <summary>Xen's flush_tlb_mask over the processors in <paramref name="cpus"/> (never this one).</summary>
    public void Flush(ulong cpus)
    {
        cpus &= ~(1UL << _machine.Cpu);
        if (cpus == 0) return;
        _machine.Host.FlushCpus(cpus);
        for (int c = 0; cpus != 0; c++, cpus >>= 1)
        {
            if ((cpus & 1) == 0) continue;
            _flushedAt[c] = Tick();
            RemoteFlushes++;
        }
    }

    /// <summary>The other processors now running a vCPU of <paramref name="d"/> whose bit is set in
    /// <paramref name="vcpuMask"/> (bit n = vCPU n): the ones a guest's TLB_FLUSH_MULTI, INVLPG_ALL or
    /// update_va_mapping with a vCPU mask reaches. A processor that ran one of its vCPUs before has loaded
    /// another CR3 since, which flushed its TLB.</summary>
    public ulong CpusRunning(Domain d, ulong vcpuMask)
    {
        Scheduler s = _machine.Scheduler;
        ulong others = s.Cpus & ~(1UL << _machine.Cpu), mask = 0;
        for (int c = 0; others != 0; c++, others >>= 1)
        {
            if ((others & 1) == 0) continue;
            Vcpu r = s.RunningOn(c);
            if (r != null && r.Domain == d && r.Id < 64 && (vcpuMask >> r.Id & 1) != 0) mask |= 1UL << c;
        }
        return mask;
    }

    /// <summary>Flushes the other processors running a vCPU of <paramref name="d"/> in <paramref name="vcpuMask"/>.</summary>
    public void FlushDomain(Domain d, ulong vcpuMask)
    {
        if (_machine.Scheduler.Cpus == 1UL << _machine.Cpu) return;
        Flush(CpusRunning(d, vcpuMask));
    }

    /// <summary>A frame of <paramref name="owner"/> (null: nobody's) goes back to the pool next: the processors
    /// running its vCPUs now are the ones that may translate to it.</summary>
    public void FreeingFrameOf(Domain owner)
    {
        if (owner != null) _freedCpus |= CpusRunning(owner, ulong.MaxValue);
        _ownerNoted = true;
    }

    /// <summary>A frame went back to the free pool now (with no owner noted first: any processor may translate to it).</summary>
    public override void Freed()
    {
        _freedAt = _now;
        _freedPending = true;
        if (!_ownerNoted) _freedCpus = ulong.MaxValue;
        _ownerNoted = false;
    }

    /// <summary>A frame is handed out: every frame freed so far must be out of every other TLB first.</summary>
    public override void BeforeReuse()
    {
        if (!_freedPending) return;
        _freedPending = false;
        ulong candidates = _freedCpus;
        _freedCpus = 0;
        if (_machine.Scheduler.Cpus == 1UL << _machine.Cpu) return;
        Flush(StaleCpus(_freedAt) & candidates);
    }
}
