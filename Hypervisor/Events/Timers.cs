using Microhv.HAL;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;

namespace Microhv.Hypervisor.Events;

/// <summary>
/// A vCPU's two timers (Xen's singleshot_timer and periodic_timer) and the SCHEDOP_poll timeout,
/// all in system-time nanoseconds. Each fires by raising VIRQ_TIMER (if the guest bound it). The periodic
/// one runs as Xen's does: armed when its vCPU is switched in or the guest sets it (an event at once if a
/// period has passed since the last one), stopped when the vCPU is switched out, so a blocked vCPU is not
/// woken by it (<see cref="SwitchedIn"/>, <see cref="SwitchedOut"/>). The
/// kernel calls <see cref="Tick"/> on every hypervisor timer interrupt; a deadline already in the
/// past when it is set fires at once, as a Xen timer set in the past does.
/// </summary>
public static class Timers
{
    /// <summary>PV guests start with Xen's default 100 Hz periodic ticker until they stop it.</summary>
    public const ulong DefaultPeriodNs = 10_000_000;
    /// <summary>VCPUOP_set_periodic_timer refuses periods below 1 ms.</summary>
    public const ulong MinPeriodNs = 1_000_000;
    /// <summary>set_timer_op treats deadlines 2^50 ns (about 13 days) or more away as Linux jiffy wraps: fire now.</summary>
    private const ulong FarFutureNs = 1UL << 50;

    public static void InitVcpu(Vcpu v)
    {
        v.PeriodicPeriod = DefaultPeriodNs;
        v.PeriodicNext = v.PeriodicLast = 0;
        v.TimerDeadline = 0;
    }

    /// <summary>set_timer_op(timeout): one-shot at absolute system time <paramref name="timeout"/>; 0 stops it.</summary>
    public static long SetTimerOp(Vcpu v, ulong timeout)
    {
        if (timeout == 0)
        {
            v.TimerDeadline = 0;
            return 0;
        }
        ulong now = v.Domain.Machine.Host.SystemTimeNs();
        if (timeout > now && timeout - now >= FarFutureNs)
        {
            SendTimerEvent(v);                     // the old deadline stays, as in Xen
            return 0;
        }
        SetSingleshot(v, timeout, now);
        return 0;
    }

    /// <summary>Arms the one-shot timer, firing it now if <paramref name="deadline"/> has passed.</summary>
    public static void SetSingleshot(Vcpu v, ulong deadline, ulong now)
    {
        if (deadline <= now)
        {
            v.TimerDeadline = 0;
            SendTimerEvent(v);
            return;
        }
        v.TimerDeadline = deadline;
        v.PendingExitWork |= ExitWork.TimersChanged;
    }

    /// <summary>VCPUOP_set_periodic_timer / stop_periodic_timer (0): Xen's vcpu_set_periodic_timer, which arms the
    /// timer whether or not its vCPU runs, sending the event at once if a period has passed since the last.</summary>
    public static void SetPeriodic(Vcpu v, ulong periodNs)
    {
        v.PeriodicPeriod = periodNs;
        if (periodNs == 0)
        {
            v.PeriodicNext = 0;
            return;
        }
        PeriodicWork(v, v.Domain.Machine.Host.SystemTimeNs());
        v.PendingExitWork |= ExitWork.TimersChanged;
    }

    /// <summary><paramref name="v"/> is switched in at <paramref name="now"/> (Xen's vcpu_periodic_timer_work at a
    /// context switch): its periodic timer is armed again, firing at once if a period ended while it was out
    /// (one event; missed periods are not made up, the next counts from now).</summary>
    public static void SwitchedIn(Vcpu v, ulong now)
    {
        if (v.PeriodicPeriod != 0) PeriodicWork(v, now);
    }

    /// <summary><paramref name="v"/> leaves its processor: its periodic timer stops (Xen's stop_timer at a context switch).</summary>
    public static void SwitchedOut(Vcpu v) => v.PeriodicNext = 0;

    /// <summary>Xen's vcpu_periodic_timer_work: the event if a period has passed since the last one, and the timer
    /// armed for the next period (PeriodicNext is always PeriodicLast + PeriodicPeriod while armed).</summary>
    private static void PeriodicWork(Vcpu v, ulong now)
    {
        ulong next = v.PeriodicLast + v.PeriodicPeriod;
        if (now >= next)
        {
            v.PeriodicLast = now;
            next = now + v.PeriodicPeriod;
            SendTimerEvent(v);
        }
        v.PeriodicNext = next;
    }

    private static void SendTimerEvent(Vcpu v) => v.Domain.EventChannels.SendVirq(Xen.VIRQ_TIMER, v.Id);

    /// <summary>
    /// The hypervisor timer interrupt: fires every due one-shot and periodic timer (the periodic one
    /// re-arms one period from now, skipping missed periods), ends timed-out polls, and refreshes
    /// registered runstate areas.
    /// </summary>
    public static void Tick(Machine m)
    {
        ulong now = m.Host.SystemTimeNs();
        m.Scheduler.CheckPreempt(now);
        for (int i = 0; i < m.DomainCount; i++)
        {
            Domain d = m.Domains[i];
            if (d == null || d.State != DomainState.Running) continue;
            for (int n = 0; n < d.MaxVcpus; n++)
            {
                Vcpu v = d.Vcpus[n];
                if (!v.Online) continue;
                if (v.TimerDeadline != 0 && now >= v.TimerDeadline)
                {
                    v.TimerDeadline = 0;
                    SendTimerEvent(v);
                }
                if (v.PeriodicNext != 0 && v.PeriodicPeriod != 0 && now >= v.PeriodicNext) PeriodicWork(v, now);
                if (v.Polling && v.PollDeadline != 0 && now >= v.PollDeadline) EventChannels.Wake(v);
                Runstate.Update(v, now);
            }
        }
    }

    /// <summary>The earliest pending deadline this processor (Machine.Cpu) answers for (system time ns), or 0 if
    /// none: lets the kernel program its timer closer than the next 10 ms tick. A processor answers for the
    /// vCPU it runs and for those on no processor that ran on it last (Xen keeps a vCPU's timers on
    /// v->processor), so each deadline is armed on one processor, not on all; whichever processor's timer
    /// fires runs every due timer (<see cref="Tick"/>), so a deadline armed where its vCPU no longer is
    /// still fires on time.</summary>
    public static ulong NextDeadline(Machine m)
    {
        int me = m.Cpu;
        bool alone = m.Scheduler.Cpus == 1UL;                 // one processor answers for every vCPU
        ulong next = m.Scheduler.PreemptAt;
        for (int i = 0; i < m.DomainCount; i++)
        {
            Domain d = m.Domains[i];
            if (d == null || d.State != DomainState.Running) continue;
            for (int n = 0; n < d.MaxVcpus; n++)
            {
                Vcpu v = d.Vcpus[n];
                if (!v.Online || !alone && (v.RunningOn >= 0 ? v.RunningOn : v.LastCpu) != me) continue;
                next = Earlier(next, v.TimerDeadline);
                if (v.PeriodicPeriod != 0) next = Earlier(next, v.PeriodicNext);   // (0: not armed)
                if (v.Polling) next = Earlier(next, v.PollDeadline);
            }
        }
        return next;
    }

    private static ulong Earlier(ulong a, ulong b) => b == 0 ? a : a == 0 || b < a ? b : a;
}
