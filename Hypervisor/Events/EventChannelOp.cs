using Microhv.HAL;
using Microhv.Hypervisor.Public;
using static Microhv.Hypervisor.Public.EventChannel;

namespace Microhv.Hypervisor.Events;

/// <summary>
/// event_channel_op(cmd, arg): reads the command's argument struct from the guest, acts on the
/// domain's <see cref="EventChannels"/>, and writes the results back (xen/common/event_channel.c).
/// Out fields are checked writable before anything changes, so a bad pointer never leaks a port.
/// The FIFO ABI's commands (init_control, expand_array, set_priority) are in Fifo.cs.
/// </summary>
public static class EventChannelOp
{
    [System.Runtime.CompilerServices.SkipLocalsInit]        // the ports below are written by their read before any use
    public static long Do(Vcpu v, ulong cmd, ulong arg)
    {
        switch ((int)(uint)cmd)
        {
            case EVTCHNOP_alloc_unbound: return AllocUnbound(v, arg);
            case EVTCHNOP_bind_interdomain: return BindInterdomain(v, arg);
            case EVTCHNOP_bind_virq: return BindVirq(v, arg);
            case EVTCHNOP_bind_ipi: return BindIpi(v, arg);
            case EVTCHNOP_bind_pirq: return BindPirq(v, arg);
            case EVTCHNOP_close: return WithPort(v, arg, out uint c) ? v.Domain.EventChannels.Close(c) : -Errno.EFAULT;
            case EVTCHNOP_send: return WithPort(v, arg, out uint s) ? v.Domain.EventChannels.Send(s) : -Errno.EFAULT;
            case EVTCHNOP_unmask: return WithPort(v, arg, out uint u) ? v.Domain.EventChannels.Unmask(u) : -Errno.EFAULT;
            case EVTCHNOP_status: return Status(v, arg);
            case EVTCHNOP_bind_vcpu: return BindVcpu(v, arg);
            case EVTCHNOP_reset: case EVTCHNOP_reset_cont: return Reset(v, arg);
            case EVTCHNOP_init_control: return Fifo.InitControl(v, arg);
            case EVTCHNOP_expand_array: return Fifo.ExpandArray(v, arg);
            case EVTCHNOP_set_priority: return Fifo.SetPriority(v, arg);
            default: return -Errno.ENOSYS;
        }
    }

    /// <summary>event_channel_op_compat (16): the same commands in one struct evtchn_op {cmd; union}.</summary>
    public static long Compat(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + op_cmd, out uint cmd)) return -Errno.EFAULT;
        return Do(v, cmd, arg + op_u);
    }

    private static bool WithPort(Vcpu v, ulong arg, out uint port) => GuestMemory.ReadU32(v, arg + EventChannel.port, out port);

    /// <summary>True when the guest may write [va, va+length) (length below a page: first and last byte decide).</summary>
    private static bool Writable(Vcpu v, ulong va, int length)
        => GuestMemory.Translate(v, va, true, out ulong _) && GuestMemory.Translate(v, va + (ulong)(length - 1), true, out ulong _);

    /// <summary>Xen's rcu_lock_domain_by_any_id plus the XSM_TARGET check: self always, others only
    /// for a privileged caller. Returns 0, -ESRCH or -EPERM.</summary>
    private static long TargetDomain(Vcpu v, ushort id, out Domain target)
    {
        Domain self = v.Domain;
        target = id == Xen.DOMID_SELF ? self : self.Machine.FindDomain(id);
        if (target == null) return -Errno.ESRCH;
        if (target != self && !self.IsInitialDomain) { target = null; return -Errno.EPERM; }
        return 0;
    }

    private static long AllocUnbound(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU16(v, arg + alloc_unbound_dom, out ushort dom) || !GuestMemory.ReadU16(v, arg + alloc_unbound_remote_dom, out ushort rdom))
            return -Errno.EFAULT;
        if (!Writable(v, arg + alloc_unbound_port, 4)) return -Errno.EFAULT;
        long rc = TargetDomain(v, dom, out Domain d);
        if (rc != 0) return rc;
        if (rdom == Xen.DOMID_SELF) rdom = v.Domain.DomainId;      // the caller, even when allocating for another domain
        int port = d.EventChannels.AllocUnbound(rdom);
        if (port < 0) return port;
        GuestMemory.WriteU32(v, arg + alloc_unbound_port, (uint)port);
        return 0;
    }

    private static long BindInterdomain(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU16(v, arg + bind_interdomain_remote_dom, out ushort rdom) || !GuestMemory.ReadU32(v, arg + bind_interdomain_remote_port, out uint rport))
            return -Errno.EFAULT;
        if (!Writable(v, arg + bind_interdomain_local_port, 4)) return -Errno.EFAULT;
        Domain remote = rdom == Xen.DOMID_SELF ? v.Domain : v.Domain.Machine.FindDomain(rdom);
        if (remote == null) return -Errno.ESRCH;
        int port = v.Domain.EventChannels.BindInterdomain(remote, rport);
        if (port < 0) return port;
        GuestMemory.WriteU32(v, arg + bind_interdomain_local_port, (uint)port);
        return 0;
    }

    private static long BindVirq(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + bind_virq_virq, out uint virq) || !GuestMemory.ReadU32(v, arg + bind_virq_vcpu, out uint vcpu))
            return -Errno.EFAULT;
        if (!Writable(v, arg + bind_virq_port, 4)) return -Errno.EFAULT;
        int port = v.Domain.EventChannels.BindVirq(virq, vcpu);
        if (port < 0) return port;
        GuestMemory.WriteU32(v, arg + bind_virq_port, (uint)port);
        return 0;
    }

    private static long BindPirq(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + bind_pirq_pirq, out uint pirq)) return -Errno.EFAULT;
        if (!Writable(v, arg + bind_pirq_port, 4)) return -Errno.EFAULT;
        int port = v.Domain.EventChannels.BindPirq(pirq);
        if (port < 0) return port;
        GuestMemory.WriteU32(v, arg + bind_pirq_port, (uint)port);
        return 0;
    }

    private static long BindIpi(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + bind_ipi_vcpu, out uint vcpu)) return -Errno.EFAULT;
        if (!Writable(v, arg + bind_ipi_port, 4)) return -Errno.EFAULT;
        int port = v.Domain.EventChannels.BindIpi(vcpu);
        if (port < 0) return port;
        GuestMemory.WriteU32(v, arg + bind_ipi_port, (uint)port);
        return 0;
    }

    private static long BindVcpu(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + bind_vcpu_port, out uint port) || !GuestMemory.ReadU32(v, arg + bind_vcpu_vcpu, out uint vcpu))
            return -Errno.EFAULT;
        return v.Domain.EventChannels.BindVcpu(port, vcpu);
    }

    private static long Status(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU16(v, arg + status_dom, out ushort dom) || !GuestMemory.ReadU32(v, arg + status_port, out uint port))
            return -Errno.EFAULT;
        if (!Writable(v, arg + status_status, 16)) return -Errno.EFAULT;
        long rc = TargetDomain(v, dom, out Domain d);
        if (rc != 0) return rc;
        EventChannels ec = d.EventChannels;
        if (!ec.IsValidPort(port)) return -Errno.EINVAL;
        int p = (int)port;
        int status = ec.Status(p);
        GuestMemory.WriteU32(v, arg + status_status, (uint)status);
        GuestMemory.WriteU32(v, arg + status_vcpu, (uint)ec.NotifyVcpuOf(p));
        if (status == EVTCHNSTAT_unbound)
        {
            ushort rdom = ec.RemoteDomainOf(p);
            GuestMemory.WriteU8(v, arg + status_unbound_dom, (byte)rdom);
            GuestMemory.WriteU8(v, arg + status_unbound_dom + 1, (byte)(rdom >> 8));
        }
        else if (status == EVTCHNSTAT_interdomain)
        {
            ushort rdom = ec.RemoteDomainOf(p);
            GuestMemory.WriteU8(v, arg + status_interdomain_dom, (byte)rdom);
            GuestMemory.WriteU8(v, arg + status_interdomain_dom + 1, (byte)(rdom >> 8));
            GuestMemory.WriteU32(v, arg + status_interdomain_port, (uint)ec.RemotePortOf(p));
        }
        else if (status == EVTCHNSTAT_pirq)
        {
            GuestMemory.WriteU32(v, arg + status_pirq, (uint)ec.RemotePortOf(p));
        }
        else if (status == EVTCHNSTAT_virq)
        {
            GuestMemory.WriteU32(v, arg + status_virq, (uint)ec.RemotePortOf(p));
        }
        return 0;
    }

    /// <summary>EVTCHNOP_reset: another domain may only be reset while paused, which Microhv cannot do.</summary>
    private static long Reset(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU16(v, arg + reset_dom, out ushort dom)) return -Errno.EFAULT;
        long rc = TargetDomain(v, dom, out Domain d);
        if (rc != 0) return rc;
        if (d != v.Domain) return -Errno.EINVAL;
        d.EventChannels.Reset();
        return 0;
    }
}
