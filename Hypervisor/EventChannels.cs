using Microhv.HAL;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>What a port is bound to (Xen's ECS_* states; Hypervisor = a port whose consumer is Xen itself).</summary>
public enum ChannelState : byte { Free, Reserved, Unbound, Interdomain, Virq, Ipi, Hypervisor, Pirq }

/// <summary>
/// A domain's event channels (xen/common/event_channel.c): the port table lives here; the pending and
/// mask bits live where the guest reads and writes them, in shared_info with the 2-level ABI
/// (Events/Evtchn2l.cs) or in the event words of the FIFO ABI once the guest switched to it with
/// EVTCHNOP_init_control (Events/EvtchnFifo.cs). All storage is allocated when the domain is created.
///
/// Each port notifies one vCPU of the domain (Xen's notify_vcpu_id: vCPU 0 unless bound to another
/// with bind_virq, bind_ipi or bind_vcpu); per-vCPU VIRQs (timer, debug) have a port per vCPU.
/// </summary>
public sealed unsafe class EventChannels
{
    /// <summary>Ports per domain; the 2-level ABI could address 4096, Linux uses a few dozen.</summary>
    public const int Capacity = 1024;

    public readonly Domain Domain;
    private readonly ChannelState[] _state = new ChannelState[Capacity];
    /// <summary>Unbound: the domain allowed to bind; interdomain: the peer domain.</summary>
    private readonly ushort[] _remoteDomain = new ushort[Capacity];
    /// <summary>Interdomain: the peer's port; virq: the VIRQ number; pirq: the pirq.</summary>
    private readonly int[] _remotePort = new int[Capacity];
    /// <summary>Some vCPU of the domain may be in SCHEDOP_poll (Xen's poll_mask is not empty): only then
    /// does a raised port look for pollers. Set by the poll, cleared when a check finds none.</summary>
    public bool Polling;
    /// <summary>The vCPU each port notifies (Xen's notify_vcpu_id).</summary>
    private readonly byte[] _notifyVcpu = new byte[Capacity];
    /// <summary>Port of each VIRQ, per vCPU (Xen's v->virq_to_evtchn): [vcpu * NR_VIRQS + virq]; global VIRQs use vCPU 0's row.</summary>
    private readonly int[] _virqToPort = new int[Domain.VcpuCapacity * Xen.NR_VIRQS];

    /// <summary>The FIFO ABI's state; inactive (the 2-level ABI) until EVTCHNOP_init_control.</summary>
    public readonly EvtchnFifo Fifo;

    public EventChannels(Domain domain)
    {
        Domain = domain;
        Fifo = new EvtchnFifo(this);
        Clear();
    }

    /// <summary>The table of a new domain (also a reused pooled one): every port free, port 0 reserved.
    /// Unlike <see cref="Reset"/> nothing is closed: the caller made sure no peer is bound any more.</summary>
    public void Clear()
    {
        Zero.Fill(_state);
        Zero.Fill(_remoteDomain);
        Zero.Fill(_remotePort);
        Zero.Fill(_virqToPort);
        Zero.Fill(_notifyVcpu);
        Polling = false;
        Fifo.Clear();
        _state[0] = ChannelState.Reserved;     // Xen never hands out port 0: guests use it as "no port"
        for (int i = 0; i < Domain.VcpuCapacity; i++) Timers.InitVcpu(Domain.Vcpus[i]);
    }

    public bool IsValidPort(long port) => port >= 0 && port < Capacity;
    public ChannelState StateOf(int port) => IsValidPort(port) ? _state[port] : ChannelState.Free;
    public ushort RemoteDomainOf(int port) => IsValidPort(port) ? _remoteDomain[port] : (ushort)0;
    public int RemotePortOf(int port) => IsValidPort(port) ? _remotePort[port] : 0;
    /// <summary>The port VIRQ <paramref name="virq"/> is bound to on vCPU <paramref name="vcpu"/> (a global VIRQ: vCPU 0's), or 0.</summary>
    public int PortOfVirq(int virq, int vcpu = 0)
    {
        if (virq < 0 || virq >= Xen.NR_VIRQS || (uint)vcpu >= Domain.VcpuCapacity) return 0;
        if (VirqIsGlobal((uint)virq)) vcpu = 0;
        return _virqToPort[vcpu * Xen.NR_VIRQS + virq];
    }
    /// <summary>The vCPU a port notifies (EVTCHNOP_status's vcpu).</summary>
    public int NotifyVcpuOf(int port) => IsValidPort(port) ? _notifyVcpu[port] : 0;

    /// <summary>Xen's get_free_port: the lowest free port, or -ENOSPC.</summary>
    private int FindFreePort()
    {
        // A port the FIFO ABI still has on a queue (LINKED) is not reused yet (Xen's evtchn_is_busy).
        for (int p = 1; p < Capacity; p++) if (_state[p] == ChannelState.Free && !Fifo.IsBusy(p)) return p;
        return -(int)Errno.ENOSPC;
    }

    private void Bind(int port, ChannelState state, ushort remoteDomain, int remotePort, int notifyVcpu = 0)
    {
        // evtchn_port_init, for a port newly taken: the default priority (an unbound port a peer binds keeps its own).
        if (_state[port] == ChannelState.Free && state != ChannelState.Free) Fifo.InitPort(port);
        _state[port] = state;
        _notifyVcpu[port] = (byte)notifyVcpu;
        _remoteDomain[port] = remoteDomain;
        _remotePort[port] = remotePort;
    }

    // ---- The guest-visible bits: the 2-level ABI's in shared_info, or the FIFO ABI's event words ----

    public bool IsPending(int port) => IsValidPort(port) && (Fifo.Active ? Fifo.IsPending(port) : Evtchn2l.IsPending(Domain, port));
    public bool IsMasked(int port) => IsValidPort(port) && (Fifo.Active ? Fifo.IsMasked(port) : Evtchn2l.IsMasked(Domain, port));

    /// <summary>Xen's evtchn_port_set_pending to the port's vCPU with the domain's ABI (Evtchn2l, EvtchnFifo);
    /// pollers of the port wake when it becomes pending, whether or not it is masked.</summary>
    public void SetPending(int port)
    {
        if ((uint)port >= Capacity) return;
        bool newly = Fifo.Active ? Fifo.SetPending(Domain.Vcpus[_notifyVcpu[port]], port) : Evtchn2l.SetPending(Domain, _notifyVcpu, port);
        if (newly && Polling) CheckPollers(port);
    }

    private void ClearPending(int port)
    {
        if (Fifo.Active) Fifo.ClearPending(port);
        else Evtchn2l.ClearPending(Domain, port);
    }

    /// <summary>EVTCHNOP_unmask (Xen's evtchn_unmask): clearing a set mask on a pending port delivers it now.</summary>
    public long Unmask(long port)
    {
        if (!IsValidPort(port)) return -Errno.EINVAL;
        int p = (int)port;
        Vcpu notify = Domain.Vcpus[_notifyVcpu[p]];
        if (Fifo.Active)
        {
            if (Fifo.Unmask(notify, p) && Polling) CheckPollers(p);
        }
        else Evtchn2l.Unmask(Domain, notify, p);
        return 0;
    }

    /// <summary>Xen's send_guest_{vcpu,global}_virq: raise the port bound to <paramref name="virq"/> (on
    /// <paramref name="vcpu"/> for a per-vCPU VIRQ); false if none is.</summary>
    public bool SendVirq(int virq, int vcpu = 0)
    {
        int port = PortOfVirq(virq, vcpu);
        if (port == 0) return false;
        SetPending(port);
        return true;
    }

    /// <summary>The kernel asks before returning to a guest whether to bounce an event upcall:
    /// evtchn_upcall_pending set and evtchn_upcall_mask clear (Xen's local_events_need_delivery).</summary>
    public static bool UpcallPending(Vcpu v) => VcpuInfo.UpcallPending(v) != 0 && VcpuInfo.UpcallMask(v) == 0;

    // ---- Blocking and polling ----

    /// <summary>Xen's vcpu_unblock: the vCPU becomes runnable and any poll ends. A vCPU that was blocked
    /// is boosted and preempts the running one (Scheduler.WokeUp, within Xen's ratelimit), so the event is
    /// handled now rather than at the end of a time slice. Only a blocked vCPU can be polling (SCHEDOP_poll
    /// blocks it, and whatever unblocks it ends the poll), so one that is not blocked has no poll to end.</summary>
    public static void Wake(Vcpu v)
    {
        if (v.Blocked)
        {
            v.Blocked = false;
            if (v.RunstateState == VcpuOps.RUNSTATE_blocked)
                Runstate.Change(v, VcpuOps.RUNSTATE_runnable, v.Domain.Machine.Host.SystemTimeNs());
            v.Domain.Machine.Scheduler.WokeUp(v);
            EndPoll(v);
        }
        else if (v.RunningOn >= 0 && v.RunningOn != v.Domain.Machine.Cpu) v.Domain.Machine.Scheduler.Notify(v);   // running elsewhere: kick it
    }

    /// <summary>The vCPU is no longer in SCHEDOP_poll (Xen clears its poll_mask bit and poll_evtchn).</summary>
    public static void EndPoll(Vcpu v)
    {
        v.Polling = false;
        v.PollPort = 0;
        v.PollDeadline = 0;
    }

    /// <summary>Xen's evtchn_check_pollers: a poller of this port (or of several ports) wakes.</summary>
    private void CheckPollers(int port)
    {
        bool still = false;
        for (int i = 0; i < Domain.MaxVcpus; i++)
        {
            Vcpu v = Domain.Vcpus[i];
            if (v.Polling && (v.PollPort <= 0 || v.PollPort == port)) Wake(v);
            still |= v.Polling;
        }
        Polling = still;
    }

    // ---- Binding ----

    /// <summary>EVTCHNOP_alloc_unbound in this domain, accepting a binding from <paramref name="remoteDomain"/>.</summary>
    public int AllocUnbound(ushort remoteDomain)
    {
        int port = FindFreePort();
        if (port < 0) return port;
        Bind(port, ChannelState.Unbound, remoteDomain, 0);
        return port;
    }

    /// <summary>
    /// EVTCHNOP_bind_interdomain from this domain to <paramref name="remote"/>'s unbound port, which
    /// must accept this domain. Both ends become interdomain; the new local port is set pending
    /// because notifications sent to the unbound end were dropped (Xen does the same).
    /// </summary>
    public int BindInterdomain(Domain remote, long remotePort)
    {
        int port = FindFreePort();
        if (port < 0) return port;
        EventChannels r = remote.EventChannels;
        if (!r.IsValidPort(remotePort)) return -(int)Errno.EINVAL;
        int rport = (int)remotePort;
        if (r._state[rport] != ChannelState.Unbound || r._remoteDomain[rport] != Domain.DomainId) return -(int)Errno.EINVAL;
        Bind(port, ChannelState.Interdomain, remote.DomainId, rport);
        r.Bind(rport, ChannelState.Interdomain, Domain.DomainId, port);
        SetPending(port);
        return port;
    }

    /// <summary>Global VIRQs go to vCPU 0 only; timer, debug, xenoprof and xenpmu are per vCPU (Xen's virq_is_global).</summary>
    public static bool VirqIsGlobal(uint virq) => virq != Xen.VIRQ_TIMER && virq != Xen.VIRQ_DEBUG && virq != 7 && virq != 13;

    public int BindVirq(uint virq, uint vcpu)
    {
        if (virq >= Xen.NR_VIRQS) return -(int)Errno.EINVAL;
        if (VirqIsGlobal(virq) && vcpu != 0) return -(int)Errno.EINVAL;
        if (Domain.VcpuById(vcpu) == null) return -(int)Errno.ENOENT;
        int slot = (int)vcpu * Xen.NR_VIRQS + (int)virq;
        if (_virqToPort[slot] != 0) return -(int)Errno.EEXIST;
        int port = FindFreePort();
        if (port < 0) return port;
        Bind(port, ChannelState.Virq, 0, (int)virq, (int)vcpu);
        _virqToPort[slot] = port;
        return port;
    }

    public int BindIpi(uint vcpu)
    {
        if (Domain.VcpuById(vcpu) == null) return -(int)Errno.ENOENT;
        int port = FindFreePort();
        if (port < 0) return port;
        Bind(port, ChannelState.Ipi, 0, 0, (int)vcpu);
        return port;
    }

    /// <summary>
    /// The port of the domain's console ring, bound to the hypervisor: a send on it drains
    /// the ring (<see cref="ConsoleRing.Drain"/>), and the hypervisor notifies the guest with <see cref="SetPending"/>.
    /// Records it in Domain.ConsoleEvtchn. Returns the port, or a negative errno.
    /// </summary>
    public int BindConsolePort()
    {
        int existing = Domain.ConsoleEvtchn;
        if (existing > 0 && existing < Capacity && _state[existing] == ChannelState.Hypervisor) return existing;
        int port = FindFreePort();
        if (port < 0) return port;
        Bind(port, ChannelState.Hypervisor, Xen.DOMID_XEN, 0);
        Domain.ConsoleEvtchn = port;
        return port;
    }

    /// <summary>
    /// EVTCHNOP_bind_pirq: a physical IRQ the domain mapped (Irq/Pirqs) is delivered on a new port;
    /// -EPERM for a domain with no IRQ access, -EEXIST when the pirq already has a port.
    /// </summary>
    public int BindPirq(uint pirq)
    {
        if (!Domain.IsHardwareDomain) return (int)Io.DeviceRefusal.Refuse(Domain, Io.DeviceRefusal.Pirqs, "bind physical IRQs");
        Irq.Pirqs pirqs = Domain.Pirqs;
        if (!pirqs.IsValid(pirq)) return -(int)Errno.EINVAL;
        if (pirqs.PortOf((int)pirq) != 0) return -(int)Errno.EEXIST;
        int port = FindFreePort();
        if (port < 0) return port;
        long rc = pirqs.Bind((int)pirq, port);
        if (rc != 0) return (int)rc;
        Bind(port, ChannelState.Pirq, Domain.DomainId, (int)pirq);
        return port;
    }

    /// <summary>EVTCHNOP_bind_vcpu: the port notifies another vCPU from now on (Xen's rules per state:
    /// a per-vCPU VIRQ and an IPI stay where they were bound).</summary>
    public long BindVcpu(long port, uint vcpu)
    {
        if (!IsValidPort(port)) return -Errno.EINVAL;
        if (Domain.VcpuById(vcpu) == null) return -Errno.ENOENT;
        switch (_state[port])
        {
            case ChannelState.Virq:
                if (!VirqIsGlobal((uint)_remotePort[port])) return -Errno.EINVAL;
                break;
            case ChannelState.Unbound:
            case ChannelState.Interdomain:
            case ChannelState.Pirq:
                break;
            default: return -Errno.EINVAL;
        }
        _notifyVcpu[port] = (byte)vcpu;
        return 0;
    }

    // ---- Sending, closing, status ----

    /// <summary>EVTCHNOP_send: interdomain → the peer's port; IPI → this port; unbound → dropped;
    /// console → the hypervisor drains the ring.</summary>
    public long Send(long port)
    {
        if ((ulong)port >= Capacity) return -Errno.EINVAL;
        int p = (int)port;
        switch (_state[p])
        {
            case ChannelState.Interdomain:
                Domain remote = Domain.Machine.FindDomain(_remoteDomain[p]);
                if (remote != null) remote.EventChannels.SetPending(_remotePort[p]);
                return 0;
            case ChannelState.Ipi:
                SetPending(p);
                return 0;
            case ChannelState.Unbound:
                return 0;
            case ChannelState.Hypervisor:
                ConsoleRing.Drain(Domain);
                return 0;
            default:
                return -Errno.EINVAL;
        }
    }

    /// <summary>
    /// EVTCHNOP_close: an interdomain peer goes back to unbound (accepting this domain again); a
    /// closed port loses its pending bit so a later binding starts clean. A guest cannot close the
    /// hypervisor's console port.
    /// </summary>
    public long Close(long port)
    {
        if (!IsValidPort(port)) return -Errno.EINVAL;
        int p = (int)port;
        switch (_state[p])
        {
            case ChannelState.Free:
            case ChannelState.Reserved:
            case ChannelState.Hypervisor:
                return -Errno.EINVAL;
            case ChannelState.Virq:
                int virq = _remotePort[p];
                _virqToPort[(VirqIsGlobal((uint)virq) ? 0 : _notifyVcpu[p]) * Xen.NR_VIRQS + virq] = 0;
                break;
            case ChannelState.Pirq:
                Domain.Pirqs.Unbind(_remotePort[p]);
                break;
            case ChannelState.Interdomain:
                Domain remote = Domain.Machine.FindDomain(_remoteDomain[p]);
                if (remote != null)
                {
                    EventChannels r = remote.EventChannels;
                    int rp = _remotePort[p];
                    if (r.IsValidPort(rp) && r._state[rp] == ChannelState.Interdomain && r._remoteDomain[rp] == Domain.DomainId && r._remotePort[rp] == p)
                        r.Bind(rp, ChannelState.Unbound, Domain.DomainId, 0);
                }
                break;
        }
        ClearPending(p);
        Bind(p, ChannelState.Free, 0, 0);
        return 0;
    }

    /// <summary>EVTCHNOP_reset and a dead domain's teardown: closes every port the guest bound (the console
    /// port stays) and, as Xen's evtchn_reset, a domain on the FIFO ABI goes back to 2-level, releasing its
    /// control blocks and event-array pages.</summary>
    public void Reset()
    {
        for (int p = 1; p < Capacity; p++)
            if (_state[p] != ChannelState.Free && _state[p] != ChannelState.Hypervisor) Close(p);
        if (Fifo.Active) Fifo.Destroy();
    }

    /// <summary>EVTCHNSTAT_* of a port (hypervisor-bound ports read as unbound, like Xen's own consumers).</summary>
    public int Status(int port)
    {
        switch (StateOf(port))
        {
            case ChannelState.Unbound:
            case ChannelState.Hypervisor: return EventChannel.EVTCHNSTAT_unbound;
            case ChannelState.Interdomain: return EventChannel.EVTCHNSTAT_interdomain;
            case ChannelState.Virq: return EventChannel.EVTCHNSTAT_virq;
            case ChannelState.Ipi: return EventChannel.EVTCHNSTAT_ipi;
            case ChannelState.Pirq: return EventChannel.EVTCHNSTAT_pirq;
            default: return EventChannel.EVTCHNSTAT_closed;
        }
    }
}
