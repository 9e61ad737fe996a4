using Microhv.Hypervisor;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;
using Microhv.Tests.Hypervisor.Mm;

namespace Microhv.Tests.Hypervisor.Events;

/// <summary>
/// A domain for the event tests: MmGuest's hand-built address space (argument page at
/// MmGuest.Va(ArgsSlot)) plus a zeroed shared_info frame owned by Xen, as the domain builder gives
/// it. Helpers read the 2-level bits straight from shared_info, the way the guest sees them.
/// </summary>
public sealed class EventsGuest
{
    public readonly MmGuest G;
    public readonly Domain D;
    public readonly Vcpu V;
    public readonly ulong SharedInfoMfn;
    public static readonly ulong ArgVa = MmGuest.Va(MmGuest.ArgsSlot);

    public EventsGuest(TestMachine t, ushort id, bool initial = false)
    {
        G = new MmGuest(t, id, initial, adopt: false);
        D = G.Dom;
        V = G.V;
        V.GuestTable = G.L4 * 4096;
        SharedInfoMfn = t.NewFrame(FrameTable.OwnerXen);
        D.SharedInfoMfn = SharedInfoMfn;
    }

    public TestMachine T => G.T;
    private ulong Si => SharedInfoMfn * 4096;
    private ulong ArgMa => G.Args * 4096;

    public void Arg16(int offset, ushort value) => T.Memory.Write16(ArgMa + (ulong)offset, value);
    public void Arg32(int offset, uint value) => T.Memory.Write32(ArgMa + (ulong)offset, value);
    public void Arg64(int offset, ulong value) => T.Memory.Write64(ArgMa + (ulong)offset, value);
    public uint Out32(int offset) => T.Memory.Read32(ArgMa + (ulong)offset);
    public ushort Out16(int offset) => T.Memory.Read16(ArgMa + (ulong)offset);

    public long Evtchn(int cmd) => EventChannelOp.Do(V, (ulong)cmd, ArgVa);
    public long Sched(int cmd) => SchedOp.Do(V, (ulong)cmd, ArgVa);
    public long VcpuOp(int cmd, uint vcpu = 0) => Microhv.Hypervisor.Events.VcpuOp.Do(V, (ulong)cmd, vcpu, ArgVa);

    /// <summary>EVTCHNOP_alloc_unbound {dom, remote_dom} → the port, or the error.</summary>
    public long AllocUnbound(ushort remoteDom, ushort dom = Xen.DOMID_SELF)
    {
        Arg16(EventChannel.alloc_unbound_dom, dom);
        Arg16(EventChannel.alloc_unbound_remote_dom, remoteDom);
        long rc = Evtchn(EventChannel.EVTCHNOP_alloc_unbound);
        return rc != 0 ? rc : Out32(EventChannel.alloc_unbound_port);
    }

    public long BindInterdomain(ushort remoteDom, uint remotePort)
    {
        Arg16(EventChannel.bind_interdomain_remote_dom, remoteDom);
        Arg32(EventChannel.bind_interdomain_remote_port, remotePort);
        long rc = Evtchn(EventChannel.EVTCHNOP_bind_interdomain);
        return rc != 0 ? rc : Out32(EventChannel.bind_interdomain_local_port);
    }

    public long BindVirq(uint virq, uint vcpu = 0)
    {
        Arg32(EventChannel.bind_virq_virq, virq);
        Arg32(EventChannel.bind_virq_vcpu, vcpu);
        long rc = Evtchn(EventChannel.EVTCHNOP_bind_virq);
        return rc != 0 ? rc : Out32(EventChannel.bind_virq_port);
    }

    public long BindIpi(uint vcpu = 0)
    {
        Arg32(EventChannel.bind_ipi_vcpu, vcpu);
        long rc = Evtchn(EventChannel.EVTCHNOP_bind_ipi);
        return rc != 0 ? rc : Out32(EventChannel.bind_ipi_port);
    }

    public long PortOp(int cmd, uint port)
    {
        Arg32(EventChannel.port, port);
        return Evtchn(cmd);
    }

    public long Send(uint port) => PortOp(EventChannel.EVTCHNOP_send, port);
    public long Close(uint port) => PortOp(EventChannel.EVTCHNOP_close, port);
    public long Unmask(uint port) => PortOp(EventChannel.EVTCHNOP_unmask, port);

    public long Status(uint port, ushort dom = Xen.DOMID_SELF)
    {
        T.Memory.Fill(ArgMa, 0xEE, 24);
        Arg16(EventChannel.status_dom, dom);
        Arg32(EventChannel.status_port, port);
        return Evtchn(EventChannel.EVTCHNOP_status);
    }

    // The guest's view of shared_info.
    public bool Pending(long port) => (T.Memory.Read64(Si + (ulong)SharedInfo.evtchn_pending + (ulong)(port >> 6) * 8) & (1UL << (int)(port & 63))) != 0;
    public void SetMask(long port, bool masked)
    {
        ulong a = Si + (ulong)SharedInfo.evtchn_mask + (ulong)(port >> 6) * 8;
        ulong w = T.Memory.Read64(a);
        T.Memory.Write64(a, masked ? w | (1UL << (int)(port & 63)) : w & ~(1UL << (int)(port & 63)));
    }
    public ulong VcpuInfoMa => V.VcpuInfoAddress != 0 ? V.VcpuInfoAddress : Si;
    public ulong Selector => T.Memory.Read64(VcpuInfoMa + SharedInfo.evtchn_pending_sel);
    public byte UpcallPending => T.Memory.Read8(VcpuInfoMa + SharedInfo.evtchn_upcall_pending);
    public byte UpcallMask
    {
        get => T.Memory.Read8(VcpuInfoMa + SharedInfo.evtchn_upcall_mask);
        set => T.Memory.Write8(VcpuInfoMa + SharedInfo.evtchn_upcall_mask, value);
    }

    /// <summary>What a guest's upcall handler does: consume every pending bit and the flags.</summary>
    public void ClearAllEvents()
    {
        T.Memory.Fill(Si + SharedInfo.evtchn_pending, 0, 64 * 8);
        T.Memory.Write64(VcpuInfoMa + SharedInfo.evtchn_pending_sel, 0);
        T.Memory.Write8(VcpuInfoMa + SharedInfo.evtchn_upcall_pending, 0);
    }
}
