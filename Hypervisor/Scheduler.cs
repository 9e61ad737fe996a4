namespace Microhv.Hypervisor;

/// <summary>
/// Round-robin over the domains' vCPUs (in domain order, then vCPU order) with a fixed time slice,
/// counted in timer ticks. A vCPU is runnable while its domain runs and it is up and not blocked;
/// when none is, the CPU idles until the next interrupt. A vCPU just woken from blocking (Vcpu.Boosted,
/// Xen credit's BOOST) runs first, so an event sent to a sleeping vCPU, an IPI above all, is handled
/// now and not after the sender's slice. Pure policy: the kernel performs the switch it decides.
/// </summary>
public sealed class Scheduler
{
    /// <summary>Time slice: 3 ticks of the 100 Hz timer = 30 ms.</summary>
    public const int SliceTicks = 3;
    /// <summary>A woken vCPU preempts the running one only once that has run this long (Xen's
    /// sched_ratelimit_us, 1 ms by default): a lock holder is not switched out the moment it wakes a waiter.</summary>
    public const ulong RatelimitNs = 1_000_000;
    /// <summary>When the running vCPU's ratelimit ends and a boosted vCPU waits for it (system time ns; 0 = none):
    /// the timer is armed for it (Timers.NextDeadline) and Timers.Tick then asks for the switch.</summary>
    public ulong PreemptAt;

    private readonly Machine _machine;
    private int _lastIndex = -1;
    private int _ticksLeft;
    public ulong Switches;
    /// <summary>The vCPU the last PickNext chose, which the CPU now runs (null: idle).</summary>
    public Vcpu Running { get; private set; }

    public Scheduler(Machine machine) { _machine = machine; }

    /// <summary>A vCPU that is up, not blocked, of a running domain the toolstack has not paused.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static bool IsRunnable(Vcpu v)
        => v != null && v.Domain.State == DomainState.Running && !v.Blocked && v.Online && !v.Domain.Paused;

    /// <summary>A domain left the machine's list: it is no longer the running one, and the rotation
    /// continues from the domain before its slot.</summary>
    public void Forget(Domain d)
    {
        if (Running != null && Running.Domain == d) Running = null;
        int slots = _machine.DomainCount * Domain.VcpuCapacity;
        if (_lastIndex >= slots) _lastIndex = slots - 1;
    }

    /// <summary>Xen's vcpu_wake with credit's BOOST: <paramref name="v"/> was blocked and can run again. It runs
    /// before the round-robin order, preempting the running vCPU now if that one has had its ratelimit, else
    /// when it has (PreemptAt). An idle CPU needs nothing: the interrupt or hypercall's exit picks it.</summary>
    public void WokeUp(Vcpu v)
    {
        v.Boosted = true;
        Vcpu r = Running;
        if (r == null || r == v) return;
        // Another domain's vCPU runs first at the next pick, without preempting this one: I/O between domains
        // (netback to netfront) batches better so. Within a domain (IPIs, a woken lock waiter) it preempts.
        if (r.Domain != v.Domain) return;
        ulong now = _machine.Host.SystemTimeNs();
        if (now - r.RunSince >= RatelimitNs)
        {
            r.PendingExitWork |= Traps.ExitWork.Reschedule;
            return;
        }
        ulong at = r.RunSince + RatelimitNs;
        if (PreemptAt == 0 || at < PreemptAt) PreemptAt = at;
        r.PendingExitWork |= Traps.ExitWork.TimersChanged;
    }

    /// <summary>Timers.Tick at <paramref name="now"/>: a preemption the ratelimit held back is due.</summary>
    public void CheckPreempt(ulong now)
    {
        if (PreemptAt == 0 || now < PreemptAt) return;
        PreemptAt = 0;
        if (Running != null) Running.PendingExitWork |= Traps.ExitWork.Reschedule;
    }

    /// <summary>Called on every timer tick while <paramref name="current"/> runs (null = idle);
    /// true when its slice is used up.</summary>
    public bool Tick(Vcpu current)
    {
        if (current == null) return true;
        if (_ticksLeft > 0) _ticksLeft--;
        return _ticksLeft == 0;
    }

    /// <summary>The vCPU to run next: the next runnable one after the current in domain order
    /// (the current one again if it is the only one), or null to idle.</summary>
    public Vcpu PickNext(Vcpu current, bool preempt)
    {
        if (!preempt && IsRunnable(current)) return Choose(current);
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
                found = v;
                foundIndex = index * Domain.VcpuCapacity + id;
                if (v.Boosted) break;
            }
        }
        PreemptAt = 0;
        if (found == null) return Choose(null);
        if (found != current) Switches++;
        _lastIndex = foundIndex;
        found.Boosted = false;
        _ticksLeft = SliceTicks;
        return Choose(found);
    }

    /// <summary>Makes <paramref name="next"/> the running vCPU; on a change the one leaving is charged the
    /// time since it started (Vcpu.RunNs, the cpu_time getdomaininfo and getvcpuinfo report).</summary>
    private Vcpu Choose(Vcpu next)
    {
        if (next == Running) return next;
        ulong now = _machine.Host.SystemTimeNs();
        Vcpu prev = Running;
        if (prev != null)
        {
            if (now > prev.RunSince) prev.RunNs += now - prev.RunSince;
            Events.Runstate.Change(prev, Events.Runstate.StateOf(prev), now);
            Events.Runstate.Update(prev, now);                  // preempted (runnable) or blocked, as Linux's vcpu_is_preempted reads it
        }
        if (next != null)
        {
            next.RunSince = now;
            Events.Runstate.Change(next, Public.VcpuOps.RUNSTATE_running, now);
            Events.Runstate.Update(next, now);
        }
        return Running = next;
    }

    /// <summary>The time <paramref name="v"/> has run, up to now if it is running.</summary>
    public ulong RunTime(Vcpu v)
    {
        ulong t = v.RunNs;
        if (v == Running)
        {
            ulong now = _machine.Host.SystemTimeNs();
            if (now > v.RunSince) t += now - v.RunSince;
        }
        return t;
    }

    /// <summary>True when no domain can ever run again: all shut down or crashed.</summary>
    public bool AllDomainsEnded()
    {
        for (int i = 0; i < _machine.DomainCount; i++)
        {
            Domain d = _machine.Domains[i];
            if (d.State == DomainState.Running || d.State == DomainState.Building) return false;
        }
        return true;
    }
}
