using Microhv.HAL;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;

namespace Microhv.Hypervisor.Events;

/// <summary>
/// sched_op and the older sched_op_compat (xen/common/sched/core.c): yield, block until an event,
/// poll ports, shut down. Blocking only marks the vCPU and records <see cref="Traps.ExitWork.Reschedule"/>;
/// GuestEntry's exit then asks the scheduler for another one, and an event or timer wakes it.
/// </summary>
public static class SchedOp
{
    public static long Do(Vcpu v, ulong cmd, ulong arg)
    {
        switch ((int)(uint)cmd)
        {
            case Sched.SCHEDOP_yield: return Yield(v);
            case Sched.SCHEDOP_block: return Block(v);
            case Sched.SCHEDOP_shutdown:
                if (!GuestMemory.ReadU32(v, arg + Sched.shutdown_reason, out uint reason)) return -Errno.EFAULT;
                Shutdown(v.Domain, (byte)reason);
                return 0;
            case Sched.SCHEDOP_shutdown_code:
                if (!GuestMemory.ReadU32(v, arg + Sched.shutdown_reason, out uint code)) return -Errno.EFAULT;
                v.Domain.ShutdownCode = (byte)code;
                return 0;
            case Sched.SCHEDOP_poll: return Poll(v, arg);
            case Sched.SCHEDOP_remote_shutdown: return RemoteShutdown(v, arg);
            case Sched.SCHEDOP_pin_override: return PinOverride(v, arg);
            default: return -Errno.ENOSYS;                           // SCHEDOP_watchdog: no domain watchdogs
        }
    }

    /// <summary>sched_op_compat (6): the argument is the value itself, not a pointer.</summary>
    public static long Compat(Vcpu v, ulong cmd, ulong arg)
    {
        switch ((int)(uint)cmd)
        {
            case Sched.SCHEDOP_yield: return Yield(v);
            case Sched.SCHEDOP_block: return Block(v);
            case Sched.SCHEDOP_shutdown: Shutdown(v.Domain, (byte)arg); return 0;
            default: return -Errno.ENOSYS;
        }
    }

    private static long Yield(Vcpu v)
    {
        v.PendingExitWork |= ExitWork.Reschedule;
        return 0;
    }

    /// <summary>Xen's vcpu_block_enable_events: events are unmasked first, and the check for one
    /// already pending comes after marking the vCPU blocked so none is missed.</summary>
    private static long Block(Vcpu v)
    {
        VcpuInfo.EnableDelivery(v);
        v.Blocked = true;
        if (EventChannels.UpcallPending(v)) v.Blocked = false;
        else v.PendingExitWork |= ExitWork.Reschedule;
        return 0;
    }

    /// <summary>Xen's domain_shutdown: the first shutdown (or crash) wins.</summary>
    public static void Shutdown(Domain d, int reason)
    {
        if (d.State == DomainState.Shutdown || d.State == DomainState.Crashed) return;
        d.State = DomainState.Shutdown;
        d.ShutdownReason = reason;
        for (int i = 0; i < d.MaxVcpus; i++) d.Vcpus[i].PendingExitWork |= ExitWork.Reschedule;
        Toolstack.DomainLifecycle.NotifyDomExc(d.Machine);
    }

    private static long RemoteShutdown(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU8(v, arg + Sched.remote_shutdown_domain_id, out byte lo)
            || !GuestMemory.ReadU8(v, arg + Sched.remote_shutdown_domain_id + 1, out byte hi)
            || !GuestMemory.ReadU32(v, arg + Sched.remote_shutdown_reason, out uint reason))
            return -Errno.EFAULT;
        Domain target = v.Domain.Machine.FindDomain((ushort)(lo | (hi << 8)));
        if (target == null) return -Errno.ESRCH;
        if (!v.Domain.IsInitialDomain) return -Errno.EPERM;
        Shutdown(target, (byte)reason);
        return 0;
    }

    /// <summary>Only the hardware domain may pin; there is one physical CPU, so only CPU 0 or -1 (unpin) fit.</summary>
    private static long PinOverride(Vcpu v, ulong arg)
    {
        if (!v.Domain.IsInitialDomain) return -Errno.EPERM;
        if (!GuestMemory.ReadU32(v, arg + Sched.pin_override_pcpu, out uint pcpu)) return -Errno.EFAULT;
        return pcpu == 0 || pcpu == 0xFFFF_FFFF ? 0 : -Errno.EINVAL;
    }

    /// <summary>
    /// Xen's do_poll: block until one of the named ports is pending or the timeout (absolute system
    /// time, 0 = none) passes. Returns at once when an event upcall is due or a port is already
    /// pending. One port is watched exactly; with several, any event in the domain wakes the vCPU.
    /// </summary>
    private static long Poll(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU64(v, arg + Sched.poll_ports, out ulong ports)
            || !GuestMemory.ReadU32(v, arg + Sched.poll_nr_ports, out uint nrPorts)
            || !GuestMemory.ReadU64(v, arg + Sched.poll_timeout, out ulong timeout))
            return -Errno.EFAULT;
        if (nrPorts > Sched.SCHEDOP_poll_max_ports) return -Errno.EINVAL;

        EventChannels ec = v.Domain.EventChannels;
        v.Polling = true;
        ec.Polling = true;
        v.PollPort = -1;
        v.Blocked = true;

        if (EventChannels.UpcallPending(v)) return EndPoll(v, 0);
        uint port = 0;
        for (uint i = 0; i < nrPorts; i++)
        {
            if (!GuestMemory.ReadU32(v, ports + (ulong)i * 4, out port)) return EndPoll(v, -Errno.EFAULT);
            if (port >= EventChannels.Capacity) return EndPoll(v, -Errno.EINVAL);
            if (ec.IsPending((int)port)) return EndPoll(v, 0);
        }
        if (nrPorts == 1) v.PollPort = (int)port;
        if (timeout != 0)
        {
            if (timeout <= v.Domain.Machine.Host.SystemTimeNs()) return EndPoll(v, 0);
            v.PollDeadline = timeout;
            v.PendingExitWork |= ExitWork.TimersChanged;
        }
        v.PendingExitWork |= ExitWork.Reschedule;
        return 0;
    }

    /// <summary>A poll that ends before it blocked: no wake-up boost, the vCPU simply carries on.</summary>
    private static long EndPoll(Vcpu v, long rc)
    {
        v.Blocked = false;
        EventChannels.EndPoll(v);
        return rc;
    }
}
