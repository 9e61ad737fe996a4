namespace Microhv.Hypervisor;

/// <summary>
/// Xen's vcpu_pause and domain_pause (xen/common/domain.c) with vcpu_sleep_sync (xen/common/sched/core.c):
/// before the hypervisor reads or changes the state of another domain's vCPU, that vCPU must be off every
/// processor, its registers, segment selectors and bases and FPU state saved in the Vcpu, so that nothing
/// reads stale copies or writes what the running vCPU will overwrite. The pause makes the vCPU not runnable
/// (Vcpu.PauseCount, or the toolstack's Domain.PauseCount), so the processor that runs it is kicked before
/// the lock goes (Scheduler.TakeKicks) and leaves it at that entry; the pauser then waits through the host
/// (HypervisorHost.WaitDescheduled: the lock dropped while it waits) until the vCPU is descheduled, or may
/// run again (unpaused meanwhile: Xen's loop stops on vcpu_runnable too). With one processor no vCPU of
/// another domain is ever on a processor while the hypervisor runs, and nothing waits.
/// </summary>
public static class VcpuPause
{
    /// <summary>True when <paramref name="v"/> is on no processor other than the one the hypervisor acts for,
    /// or may run again: nothing to wait for (the inverse of vcpu_sleep_sync's loop condition).</summary>
    public static bool Descheduled(Vcpu v)
    {
        int c = v.RunningOn;
        return c < 0 || c == v.Domain.Machine.Cpu || Scheduler.IsRunnable(v);
    }

    /// <summary>vcpu_sleep_sync: <paramref name="v"/> was made not runnable; returns once it is off its processor.</summary>
    public static void SleepSync(Vcpu v)
    {
        if (!Descheduled(v)) v.Domain.Machine.Host.WaitDescheduled(v);
    }

    /// <summary>vcpu_sleep_sync for each vCPU of <paramref name="d"/> (domain_pause's loop).</summary>
    public static void SleepSync(Domain d)
    {
        for (int i = 0; i < d.MaxVcpus; i++) SleepSync(d.Vcpus[i]);
    }

    /// <summary>vcpu_pause: <paramref name="v"/> (never the caller's own) stops and is off every processor on return.</summary>
    public static void Pause(Vcpu v)
    {
        v.PauseCount++;
        SleepSync(v);
    }

    /// <summary>vcpu_unpause: the last pause gone, it may run again (an idle processor is kicked to take it).</summary>
    public static void Unpause(Vcpu v)
    {
        if (--v.PauseCount == 0) v.Domain.Machine.Scheduler.MadeRunnable(v);
    }

    /// <summary>domain_pause (not of the caller's own domain): every vCPU of <paramref name="d"/> stops first, then
    /// each is waited for, so their processors leave them together.</summary>
    public static void PauseDomain(Domain d)
    {
        for (int i = 0; i < d.MaxVcpus; i++) d.Vcpus[i].PauseCount++;
        SleepSync(d);
    }

    /// <summary>domain_unpause.</summary>
    public static void UnpauseDomain(Domain d)
    {
        for (int i = 0; i < d.MaxVcpus; i++) Unpause(d.Vcpus[i]);
    }
}
