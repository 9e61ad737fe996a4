namespace Microhv.Hypervisor;

/// <summary>
/// Round-robin over the domains' vCPUs (in domain order, then vCPU order) with a fixed time slice,
/// counted in timer ticks, on every processor that takes guests (<see cref="Cpus"/>): each picks the
/// next runnable vCPU no other processor runs and its hard affinity allows (judged against the processors the
/// boot started, <see cref="Started"/>: one held to processors still joining waits for them). A vCPU is runnable while its
/// domain runs and it is up and not blocked; a processor with none idles until an interrupt or a kick.
/// A vCPU just woken from blocking (Vcpu.Boosted, Xen credit's BOOST) runs first: an idle processor is
/// kicked to take it, else it preempts a vCPU of its own domain on this processor, so an event sent to a
/// sleeping vCPU, an IPI above all, is handled now and not after the sender's slice. Pure policy over
/// per-processor state, always for the processor holding the hypervisor now (Machine.Cpu): the kernel
/// performs the switch it decides and sends the kicks it collects (<see cref="TakeKicks"/>).
/// </summary>
public sealed class Scheduler
{
    /// <summary>Time slice: 3 ticks of the 100 Hz timer = 30 ms.</summary>
    public const int SliceTicks = 3;
    /// <summary>A woken vCPU preempts the running one only once that has run this long (Xen's
    /// sched_ratelimit_us, 1 ms by default): a lock holder is not switched out the moment it wakes a waiter.</summary>
    public const ulong RatelimitNs = 1_000_000;

    private readonly Machine _machine;
    private int _lastIndex = -1;
    private readonly int[] _ticksLeft = new int[Machine.MaxCpus];
    /// <summary>Per processor: when its running vCPU's ratelimit ends and a boosted vCPU waits for it (system time ns; 0 = none).</summary>
    private readonly ulong[] _preemptAt = new ulong[Machine.MaxCpus];
    private readonly Vcpu[] _running = new Vcpu[Machine.MaxCpus];
    /// <summary>Processors to kick (collected until the kernel takes them), and those kicked that have not entered since.</summary>
    private ulong _kicks, _kicked;
    public ulong Switches;
    /// <summary>Processors that take guests (bit n = processor n): the boot processor, and each other one once it joined.</summary>
    public ulong Cpus = 1;
    /// <summary>Processors the boot started (bit n = processor n): those in <see cref="Cpus"/> and those that will
    /// join, as Xen's cpupool holds every processor brought up before dom0 is built. A hard affinity is judged
    /// against these, not against Cpus: a vCPU held to processors that have not joined yet waits for them
    /// (it does not run on the others meanwhile).</summary>
    public ulong Started = 1;
    /// <summary>Per processor: the time it ran guests (system time ns), for the summary.</summary>
    private readonly ulong[] _busyNs = new ulong[Machine.MaxCpus];

    /// <summary>The vCPU this processor (Machine.Cpu) runs (null: idle).</summary>
    public Vcpu Running => _running[_machine.Cpu];
    /// <summary>The vCPU processor <paramref name="cpu"/> runs (null: idle).</summary>
    public Vcpu RunningOn(int cpu) => _running[cpu];
    /// <summary>Whether <paramref name="v"/> is on some processor now.</summary>
    public static bool IsRunning(Vcpu v) => v.RunningOn >= 0;

    /// <summary>This processor's pending ratelimit end (0 = none): Timers.NextDeadline arms for it.</summary>
    public ulong PreemptAt => _preemptAt[_machine.Cpu];

    public Scheduler(Machine machine) { _machine = machine; }

    /// <summary>The boot started processors 0 to <paramref name="count"/> - 1; they join when they can.</summary>
    public void Start(int count) => Started |= count >= 64 ? ulong.MaxValue : (1UL << count) - 1;

    /// <summary>Processor <paramref name="cpu"/> takes guests from now on.</summary>
    public void Join(int cpu)
    {
        Cpus |= 1UL << cpu;
        Started |= 1UL << cpu;
    }

    /// <summary>The processors <paramref name="v"/> may run on: its hard affinity, unless that names no started
    /// processor at all, which is every processor, as Xen breaks an affinity left with no processor of its
    /// pool (cpu_disable_scheduler: the hard affinity becomes all CPUs). Xen refuses to set such an affinity
    /// (vcpu_set_hard_affinity, and the boot's cpus= here), so this is a safety net, not a way in.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public ulong Allowed(Vcpu v) => (v.HardAffinity & Started) != 0 ? v.HardAffinity : ulong.MaxValue;

    /// <summary>Processor <paramref name="cpu"/> entered the hypervisor: a kick sent to it has arrived.</summary>
    public void Entered(int cpu) => _kicked &= ~(1UL << cpu);

    /// <summary>A vCPU that is up, not blocked, not paused by the hypervisor (VcpuPause), of a running domain the toolstack has not paused.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static bool IsRunnable(Vcpu v)
        => v != null && v.Domain.State == DomainState.Running && !v.Blocked && v.Online && !v.Domain.Paused && v.PauseCount == 0;

    /// <summary>A domain left the machine's list: it is no longer the running one, and the rotation
    /// continues from the domain before its slot.</summary>
    public void Forget(Domain d)
    {
        for (int c = 0; c < Machine.MaxCpus; c++)
        {
            Vcpu r = _running[c];
            if (r == null || r.Domain != d) continue;
            r.RunningOn = -1;
            _running[c] = null;
        }
        int slots = _machine.DomainCount * Domain.VcpuCapacity;
        if (_lastIndex >= slots) _lastIndex = slots - 1;
    }

    /// <summary>Xen's vcpu_wake with credit's BOOST: <paramref name="v"/> was blocked (or down) and can run again.
    /// It runs before the round-robin order: on this processor if it idles (its exit picks it), else on an idle
    /// processor, kicked to take it, else by preempting the vCPU of its own domain running here now if that one
    /// has had its ratelimit, or when it has (the processor's preempt deadline); only where its hard affinity
    /// allows.</summary>
    public void WokeUp(Vcpu v)
    {
        v.Boosted = true;
        int me = _machine.Cpu;
        Vcpu r = _running[me];
        if (r == v || v.RunningOn >= 0) return;
        bool here = (Allowed(v) & (1UL << me)) != 0;
        if (r == null && here) return;
        int idle = IdleCpuFor(v);
        if (idle >= 0)
        {
            _kicks |= 1UL << idle;
            return;
        }
        // Another domain's vCPU runs first at the next pick, without preempting this one: I/O between domains
        // (netback to netfront) batches better so. Within a domain (IPIs, a woken lock waiter) it preempts.
        if (r == null || r.Domain != v.Domain || !here) return;
        ulong now = _machine.Host.SystemTimeNs();
        if (now - r.RunSince >= RatelimitNs)
        {
            r.PendingExitWork |= Traps.ExitWork.Reschedule;
            return;
        }
        ulong at = r.RunSince + RatelimitNs;
        if (_preemptAt[me] == 0 || at < _preemptAt[me]) _preemptAt[me] = at;
        r.PendingExitWork |= Traps.ExitWork.TimersChanged;
    }

    /// <summary><paramref name="v"/> can run now without having been woken (its domain unpaused): an idle
    /// processor, if there is one, is kicked to take it; otherwise it waits for a slice like any other.</summary>
    public void MadeRunnable(Vcpu v)
    {
        if (!IsRunnable(v) || v.RunningOn >= 0) return;
        int idle = IdleCpuFor(v);
        if (idle >= 0) _kicks |= 1UL << idle;
    }

    /// <summary>A processor other than this one that takes guests, runs none now, is not already kicked to
    /// take one, and that <paramref name="v"/>'s hard affinity allows; -1 when there is none (also while the
    /// only ones it allows have not joined yet: the first of them to join takes it at its first tick).</summary>
    private int IdleCpuFor(Vcpu v)
    {
        ulong cpus = Cpus & ~(1UL << _machine.Cpu) & ~_kicks & ~_kicked & Allowed(v);
        for (int c = 0; cpus != 0; c++, cpus >>= 1)
            if ((cpus & 1) != 0 && _running[c] == null) return c;
        return -1;
    }

    /// <summary>Xen's vcpu_set_affinity (sched_unit_migrate_start): <paramref name="v"/>'s hard affinity changed. If it
    /// runs on a processor the new one forbids, that processor gives it up at its next exit (kicked by TakeKicks,
    /// or this one's own exit), and an idle processor it allows is kicked to take it.</summary>
    public void AffinityChanged(Vcpu v)
    {
        int c = v.RunningOn;
        if (c < 0 || (Allowed(v) & (1UL << c)) != 0) return;
        v.PendingExitWork |= Traps.ExitWork.Reschedule;
        int idle = IdleCpuFor(v);
        if (idle >= 0) _kicks |= 1UL << idle;
    }

    /// <summary>Xen's vcpu_kick: <paramref name="v"/> has an event to take; if another processor runs it,
    /// that processor is kicked so its way back to the guest delivers the upcall now.</summary>
    public void Notify(Vcpu v)
    {
        int c = v.RunningOn;
        if (c >= 0 && c != _machine.Cpu) _kicks |= 1UL << c;
    }

    /// <summary>Timers.Tick at <paramref name="now"/>: a preemption the ratelimit held back is due.</summary>
    public void CheckPreempt(ulong now)
    {
        ulong cpus = Cpus;
        for (int c = 0; cpus != 0; c++, cpus >>= 1)
        {
            if ((cpus & 1) == 0 || _preemptAt[c] == 0 || now < _preemptAt[c]) continue;
            _preemptAt[c] = 0;
            if (_running[c] != null) _running[c].PendingExitWork |= Traps.ExitWork.Reschedule;
        }
    }

    /// <summary>The processors the kernel must kick before the hypervisor's lock goes to another (never this
    /// one, never one kicked that has not entered since): those collected by WokeUp and Notify, and each one
    /// whose running vCPU may no longer run (its domain paused, crashed or shut down, the vCPU down or
    /// blocked by another's hand) or must give way (a preemption asked for it).</summary>
    public ulong TakeKicks()
    {
        int me = _machine.Cpu;
        ulong mask = _kicks;
        _kicks = 0;
        ulong cpus = Cpus;
        for (int c = 0; cpus != 0; c++, cpus >>= 1)
        {
            if ((cpus & 1) == 0 || c == me) continue;
            Vcpu r = _running[c];
            if (r != null && (!IsRunnable(r) || (r.PendingExitWork & Traps.ExitWork.Reschedule) != 0)) mask |= 1UL << c;
        }
        mask &= ~(1UL << me) & ~_kicked;
        _kicked |= mask;
        return mask;
    }

    /// <summary>Called on every timer tick while <paramref name="current"/> runs (null = idle);
    /// true when its slice is used up.</summary>
    public bool Tick(Vcpu current)
    {
        if (current == null) return true;
        int me = _machine.Cpu;
        if (_ticksLeft[me] > 0) _ticksLeft[me]--;
        return _ticksLeft[me] == 0;
    }

    /// <summary>The vCPU this processor runs next: the next runnable one after the current in domain order
    /// that no other processor runs and whose affinity allows this one (the current one again if it is the
    /// only one), or null to idle. Without <paramref name="preempt"/> the current one stays if it may.</summary>
    public Vcpu PickNext(Vcpu current, bool preempt)
    {
        int me = _machine.Cpu;
        ulong meBit = 1UL << me;
        if (!preempt && IsRunnable(current) && (Allowed(current) & meBit) != 0) return Choose(current);
        int domains = _machine.DomainCount;
        if (domains == 0) return Choose(null);
        // The rotation's position: a domain index and a vCPU id in it (_lastIndex packs both).
        int di = _lastIndex < 0 ? domains - 1 : (_lastIndex / Domain.VcpuCapacity) % domains;
        int vi = _lastIndex < 0 ? Domain.VcpuCapacity : _lastIndex % Domain.VcpuCapacity;
        Vcpu found = null;
        int foundIndex = 0;
        // Every vCPU once, starting after the position: the rest of its domain, the other domains, then its own again.
        for (int k = 0; k <= domains && (found == null || !found.Boosted); k++)
        {
            int index = (di + k) % domains;
            Domain d = _machine.Domains[index];
            int first = k == 0 ? vi + 1 : 0;
            int last = k == domains ? (vi < d.MaxVcpus ? vi + 1 : d.MaxVcpus) : d.MaxVcpus;
            for (int id = first; id < last; id++)
            {
                Vcpu v = d.Vcpus[id];
                if (!IsRunnable(v) || found != null && !v.Boosted) continue;
                if (v.RunningOn >= 0 && v.RunningOn != me || (Allowed(v) & meBit) == 0) continue;
                found = v;
                foundIndex = index * Domain.VcpuCapacity + id;
                if (v.Boosted) break;
            }
        }
        _preemptAt[me] = 0;
        if (found == null) return Choose(null);
        if (found != current) Switches++;
        _lastIndex = foundIndex;
        found.Boosted = false;
        _ticksLeft[me] = SliceTicks;
        return Choose(found);
    }

    /// <summary>Makes <paramref name="next"/> the running vCPU; on a change the one leaving is charged the
    /// time since it started (Vcpu.RunNs, the cpu_time getdomaininfo and getvcpuinfo report).</summary>
    private Vcpu Choose(Vcpu next)
    {
        int me = _machine.Cpu;
        Vcpu prev = _running[me];
        if (next == prev) return next;
        ulong now = _machine.Host.SystemTimeNs();
        if (prev != null)
        {
            if (now > prev.RunSince)
            {
                prev.RunNs += now - prev.RunSince;
                _busyNs[me] += now - prev.RunSince;
            }
            prev.RunningOn = -1;
            prev.LastCpu = me;
            Events.Timers.SwitchedOut(prev);
            Events.Runstate.Change(prev, Events.Runstate.StateOf(prev), now);
            Events.Runstate.Update(prev, now);                  // preempted (runnable) or blocked, as Linux's vcpu_is_preempted reads it
        }
        if (next != null)
        {
            next.RunSince = now;
            next.RunningOn = me;
            Events.Runstate.Change(next, Public.VcpuOps.RUNSTATE_running, now);
            Events.Runstate.Update(next, now);
            Events.Timers.SwitchedIn(next, now);
        }
        return _running[me] = next;
    }

    /// <summary>The time <paramref name="v"/> has run, up to now if it is running.</summary>
    public ulong RunTime(Vcpu v)
    {
        ulong t = v.RunNs;
        if (v.RunningOn >= 0)
        {
            ulong now = _machine.Host.SystemTimeNs();
            if (now > v.RunSince) t += now - v.RunSince;
        }
        return t;
    }

    /// <summary>The time processor <paramref name="cpu"/> has run guests, up to now.</summary>
    public ulong CpuBusyTime(int cpu)
    {
        ulong t = _busyNs[cpu];
        Vcpu r = _running[cpu];
        if (r != null)
        {
            ulong now = _machine.Host.SystemTimeNs();
            if (now > r.RunSince) t += now - r.RunSince;
        }
        return t;
    }

    /// <summary>True when no domain can ever run again (all shut down or crashed) and no processor still runs
    /// one of their vCPUs: the last processor to leave a dead domain's tables is the one that ends the machine,
    /// after it has relinquished that domain (a processor kicked off it may not have switched yet).</summary>
    public bool AllDomainsEnded()
    {
        ulong cpus = Cpus;
        for (int c = 0; cpus != 0; c++, cpus >>= 1) if ((cpus & 1) != 0 && _running[c] != null) return false;
        for (int i = 0; i < _machine.DomainCount; i++)
        {
            Domain d = _machine.Domains[i];
            if (d.State == DomainState.Running || d.State == DomainState.Building) return false;
        }
        return true;
    }
}
