using Microhv.Hypervisor;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;
using Xunit;
using static Microhv.Hypervisor.Public.EventChannel;

namespace Microhv.Tests.Hypervisor.Events;

public sealed class EventChannelTests
{
    private readonly TestMachine _t = new();
    private readonly EventsGuest _a, _b;

    public EventChannelTests()
    {
        _a = new EventsGuest(_t, 1);
        _b = new EventsGuest(_t, 2);
    }

    /// <summary>Connects a port of A (accepting B) with a fresh port of B; returns (A's, B's) with every event cleared.</summary>
    private (uint a, uint b) Connect()
    {
        long pa = _a.AllocUnbound(2);
        Assert.True(pa > 0);
        long pb = _b.BindInterdomain(1, (uint)pa);
        Assert.True(pb > 0);
        _a.ClearAllEvents();
        _b.ClearAllEvents();
        return ((uint)pa, (uint)pb);
    }

    [Fact]
    public void Port0IsNeverAllocated()
    {
        Assert.Equal(1, _a.AllocUnbound(2));
        Assert.Equal(2, _a.BindIpi());
        Assert.Equal(0, _a.Status(0));
        Assert.Equal((uint)EVTCHNSTAT_closed, _a.Out32(status_status));
        Assert.Equal(-Errno.EINVAL, _a.Close(0));
    }

    [Fact]
    public void SendOnInterdomainSetsRemotePendingSelectorAndUpcall()
    {
        var (pa, pb) = Connect();
        Assert.Equal(0, _b.Send(pb));
        Assert.True(_a.Pending(pa));
        Assert.Equal(1UL << (int)(pa >> 6), _a.Selector);
        Assert.Equal(1, _a.UpcallPending);
        Assert.True(EventChannels.UpcallPending(_a.V));
        Assert.False(_b.Pending(pb));
        Assert.Equal(0, _b.UpcallPending);

        Assert.Equal(0, _a.Send(pa));
        Assert.True(_b.Pending(pb));
        Assert.Equal(1, _b.UpcallPending);
    }

    [Fact]
    public void BindInterdomainSetsTheNewLocalPortPending()
    {
        long pa = _a.AllocUnbound(2);
        long pb = _b.BindInterdomain(1, (uint)pa);
        Assert.True(_b.Pending(pb));                         // Xen: notifications to the unbound end may have been lost
        Assert.False(_a.Pending(pa));
    }

    [Fact]
    public void SelectorBitFollowsThePortsWord()
    {
        for (int i = 0; i < 70; i++) Assert.True(_a.BindIpi() > 0);   // ports 1..70
        _a.ClearAllEvents();
        Assert.Equal(0, _a.Send(66));
        Assert.Equal(1UL << 1, _a.Selector);
        Assert.True(_a.Pending(66));
    }

    [Fact]
    public void MaskedPortDoesNotRaiseUpcallUntilUnmasked()
    {
        var (pa, pb) = Connect();
        _a.SetMask(pa, true);
        Assert.Equal(0, _b.Send(pb));
        Assert.True(_a.Pending(pa));
        Assert.Equal(0UL, _a.Selector);
        Assert.Equal(0, _a.UpcallPending);

        Assert.Equal(0, _a.Unmask(pa));
        Assert.Equal(1UL << (int)(pa >> 6), _a.Selector);
        Assert.Equal(1, _a.UpcallPending);
        Assert.False(IsMaskedInSharedInfo(_a, pa));
    }

    [Fact]
    public void UnmaskWithoutPendingRaisesNothing()
    {
        var (pa, _) = Connect();
        _a.SetMask(pa, true);
        Assert.Equal(0, _a.Unmask(pa));
        Assert.Equal(0, _a.UpcallPending);
        Assert.Equal(0UL, _a.Selector);
    }

    [Fact]
    public void UpcallPendingRespectsTheVcpuMask()
    {
        var (pa, pb) = Connect();
        _a.UpcallMask = 1;
        _b.Send(pb);
        Assert.Equal(1, _a.UpcallPending);
        Assert.False(EventChannels.UpcallPending(_a.V));
        _a.UpcallMask = 0;
        Assert.True(EventChannels.UpcallPending(_a.V));
    }

    [Fact]
    public void AlreadyPendingPortDoesNotRaiseAgain()
    {
        var (pa, pb) = Connect();
        _b.Send(pb);
        _a.T.Memory.Write8(_a.VcpuInfoMa + SharedInfo.evtchn_upcall_pending, 0);   // guest took the upcall but not the port
        _b.Send(pb);
        Assert.Equal(0, _a.UpcallPending);
    }

    [Fact]
    public void CloseReturnsThePeerToUnbound()
    {
        var (pa, pb) = Connect();
        _b.Send(pb);
        Assert.Equal(0, _a.Close(pa));
        Assert.False(_a.Pending(pa));                         // a closed port forgets its pending event

        Assert.Equal(0, _b.Status(pb));
        Assert.Equal((uint)EVTCHNSTAT_unbound, _b.Out32(status_status));
        Assert.Equal((ushort)1, _b.Out16(status_unbound_dom));
        Assert.Equal(0, _a.Status(pa));
        Assert.Equal((uint)EVTCHNSTAT_closed, _a.Out32(status_status));

        Assert.Equal(-Errno.EINVAL, _a.Send(pa));
        Assert.Equal(-Errno.EINVAL, _a.Close(pa));
        Assert.Equal(0, _b.Send(pb));                          // unbound: dropped silently
        long again = _a.BindInterdomain(2, pb);                // B's port now accepts A again
        Assert.True(again > 0);
    }

    [Fact]
    public void StatusReportsInterdomainVirqAndIpi()
    {
        var (pa, pb) = Connect();
        Assert.Equal(0, _a.Status(pa));
        Assert.Equal((uint)EVTCHNSTAT_interdomain, _a.Out32(status_status));
        Assert.Equal(0u, _a.Out32(status_vcpu));
        Assert.Equal((ushort)2, _a.Out16(status_interdomain_dom));
        Assert.Equal(pb, _a.Out32(status_interdomain_port));

        long timer = _a.BindVirq(Xen.VIRQ_TIMER);
        Assert.Equal(0, _a.Status((uint)timer));
        Assert.Equal((uint)EVTCHNSTAT_virq, _a.Out32(status_status));
        Assert.Equal((uint)Xen.VIRQ_TIMER, _a.Out32(status_virq));

        long ipi = _a.BindIpi();
        Assert.Equal(0, _a.Status((uint)ipi));
        Assert.Equal((uint)EVTCHNSTAT_ipi, _a.Out32(status_status));

        long unbound = _a.AllocUnbound(Xen.DOMID_SELF);
        Assert.Equal(0, _a.Status((uint)unbound));
        Assert.Equal((uint)EVTCHNSTAT_unbound, _a.Out32(status_status));
        Assert.Equal((ushort)1, _a.Out16(status_unbound_dom));  // DOMID_SELF means the caller
    }

    [Fact]
    public void StatusOfAnotherDomainNeedsPrivilege()
    {
        var (pa, _) = Connect();
        Assert.Equal(-Errno.EPERM, _b.Status(pa, dom: 1));
        Assert.Equal(-Errno.ESRCH, _b.Status(pa, dom: 9));
        Assert.Equal(0, _b.Status(pa, dom: 2));                 // its own id works like DOMID_SELF
    }

    [Fact]
    public void BindVirqTwiceIsEexistAndBadArgumentsAreRefused()
    {
        long p = _a.BindVirq(Xen.VIRQ_TIMER);
        Assert.True(p > 0);
        Assert.Equal(p, _a.D.EventChannels.PortOfVirq(Xen.VIRQ_TIMER));
        Assert.Equal(-Errno.EEXIST, _a.BindVirq(Xen.VIRQ_TIMER));
        Assert.Equal(-Errno.EINVAL, _a.BindVirq(Xen.NR_VIRQS));
        Assert.Equal(-Errno.ENOENT, _a.BindVirq(Xen.VIRQ_TIMER, vcpu: 1));  // per-vCPU VIRQ, no such vCPU
        Assert.Equal(-Errno.EINVAL, _a.BindVirq(Xen.VIRQ_CONSOLE, vcpu: 1)); // global VIRQs only on vCPU 0
        Assert.Equal(-Errno.ENOENT, _a.BindIpi(vcpu: 3));

        Assert.Equal(0, _a.Close((uint)p));
        Assert.Equal(0, _a.D.EventChannels.PortOfVirq(Xen.VIRQ_TIMER));
        Assert.True(_a.BindVirq(Xen.VIRQ_TIMER) > 0);
    }

    [Fact]
    public void SendVirqRaisesTheBoundPort()
    {
        Assert.False(_a.D.EventChannels.SendVirq(Xen.VIRQ_DEBUG));
        long p = _a.BindVirq(Xen.VIRQ_DEBUG);
        Assert.True(_a.D.EventChannels.SendVirq(Xen.VIRQ_DEBUG));
        Assert.True(_a.Pending(p));
        Assert.Equal(1, _a.UpcallPending);
    }

    [Fact]
    public void IpiSendsToItself()
    {
        long p = _a.BindIpi();
        Assert.Equal(0, _a.Send((uint)p));
        Assert.True(_a.Pending(p));
        Assert.Equal(1, _a.UpcallPending);
    }

    [Fact]
    public void BadPortsAreEinval()
    {
        uint big = EventChannels.Capacity;
        Assert.Equal(-Errno.EINVAL, _a.Send(big));
        Assert.Equal(-Errno.EINVAL, _a.Close(big));
        Assert.Equal(-Errno.EINVAL, _a.Unmask(big));
        Assert.Equal(-Errno.EINVAL, _a.Status(big));
        Assert.Equal(-Errno.EINVAL, _a.Send(0xFFFF_FFFF));
        Assert.Equal(-Errno.EINVAL, _a.Send(5));               // free port
        Assert.Equal(-Errno.EINVAL, _a.Close(5));
    }

    [Fact]
    public void BadArgumentPointerIsEfault()
    {
        Assert.Equal(-Errno.EFAULT, EventChannelOp.Do(_a.V, EVTCHNOP_send, 0x1000_0000));
        Assert.Equal(-Errno.EFAULT, EventChannelOp.Do(_a.V, EVTCHNOP_alloc_unbound, 0xFFFF_8000_0000_0000));
        // Read-only page (the "code" page): the out field cannot be written, and no port is leaked.
        ulong ro = Microhv.Tests.Hypervisor.Mm.MmGuest.Va(Microhv.Tests.Hypervisor.Mm.MmGuest.CodeSlot);
        Assert.Equal(-Errno.EFAULT, EventChannelOp.Do(_a.V, EVTCHNOP_bind_ipi, ro));
        Assert.Equal(ChannelState.Free, _a.D.EventChannels.StateOf(1));
    }

    [Fact]
    public void ForeignAllocUnboundNeedsPrivilege()
    {
        Assert.Equal(-Errno.EPERM, _a.AllocUnbound(1, dom: 2));
        Assert.Equal(-Errno.ESRCH, _a.AllocUnbound(1, dom: 7));
        var t = new TestMachine();
        var dom0 = new EventsGuest(t, 0, initial: true);
        var domU = new EventsGuest(t, 5);
        long p = dom0.AllocUnbound(Xen.DOMID_SELF, dom: 5);    // in domU's table, accepting dom0
        Assert.True(p > 0);
        Assert.Equal(ChannelState.Unbound, domU.D.EventChannels.StateOf((int)p));
        Assert.Equal((ushort)0, domU.D.EventChannels.RemoteDomainOf((int)p));
    }

    [Fact]
    public void BindInterdomainChecksTheRemotePort()
    {
        long notForB = _a.AllocUnbound(7);
        Assert.Equal(-Errno.EINVAL, _b.BindInterdomain(1, (uint)notForB));
        Assert.Equal(-Errno.EINVAL, _b.BindInterdomain(1, 40));             // free port
        Assert.Equal(-Errno.EINVAL, _b.BindInterdomain(1, 5000));           // out of range
        Assert.Equal(-Errno.ESRCH, _b.BindInterdomain(9, 1));
        var (pa, _) = Connect();
        Assert.Equal(-Errno.EINVAL, _b.BindInterdomain(1, pa));             // already connected
    }

    [Fact]
    public void LoopbackInterdomainWorks()
    {
        long p1 = _a.AllocUnbound(Xen.DOMID_SELF);
        long p2 = _a.BindInterdomain(Xen.DOMID_SELF, (uint)p1);
        Assert.True(p2 > 0);
        _a.ClearAllEvents();
        _a.Send((uint)p2);
        Assert.True(_a.Pending(p1));
        Assert.False(_a.Pending(p2));
    }

    [Fact]
    public void UnknownCommandIsEnosys()
    {
        Assert.Equal(-Errno.ENOSYS, _a.Evtchn(99));
    }

    [Fact]
    public void BindVcpuFollowsXensRules()
    {
        var (pa, _) = Connect();
        long timer = _a.BindVirq(Xen.VIRQ_TIMER);
        long console = _a.BindVirq(Xen.VIRQ_CONSOLE);
        Assert.Equal(0, BindVcpu(pa, 0));
        Assert.Equal(-Errno.ENOENT, BindVcpu(pa, 1));
        Assert.Equal(-Errno.EINVAL, BindVcpu((uint)timer, 0));  // per-vCPU VIRQ cannot move
        Assert.Equal(0, BindVcpu((uint)console, 0));
        Assert.Equal(-Errno.EINVAL, BindVcpu(900, 0));
    }

    private long BindVcpu(uint port, uint vcpu)
    {
        _a.Arg32(bind_vcpu_port, port);
        _a.Arg32(bind_vcpu_vcpu, vcpu);
        return _a.Evtchn(EVTCHNOP_bind_vcpu);
    }

    [Fact]
    public void ResetClosesGuestPortsButKeepsTheConsole()
    {
        var (pa, pb) = Connect();
        long ipi = _a.BindIpi();
        int console = _a.D.EventChannels.BindConsolePort();
        _a.Arg16(reset_dom, Xen.DOMID_SELF);
        Assert.Equal(0, _a.Evtchn(EVTCHNOP_reset));
        Assert.Equal(ChannelState.Free, _a.D.EventChannels.StateOf((int)pa));
        Assert.Equal(ChannelState.Free, _a.D.EventChannels.StateOf((int)ipi));
        Assert.Equal(ChannelState.Hypervisor, _a.D.EventChannels.StateOf(console));
        Assert.Equal(ChannelState.Unbound, _b.D.EventChannels.StateOf((int)pb));
        _b.Arg16(reset_dom, 1);
        Assert.Equal(-Errno.EPERM, _b.Evtchn(EVTCHNOP_reset));
    }

    [Fact]
    public void ConsolePortDrainsTheRingAndCannotBeClosed()
    {
        int port = _a.D.EventChannels.BindConsolePort();
        Assert.True(port > 0);
        Assert.Equal(port, _a.D.ConsoleEvtchn);
        Assert.Equal(port, _a.D.EventChannels.BindConsolePort());   // idempotent
        // A ring with "hi\n" produced: the send drains it into the hypervisor console (xencons out[] at 1024, out_cons/out_prod at 3080/3084).
        ulong mfn = _t.NewFrame(_a.D.DomainId);
        _a.D.ConsoleRingMfn = mfn;
        _t.Memory.Write8(mfn * 4096 + 1024, (byte)'h');
        _t.Memory.Write8(mfn * 4096 + 1025, (byte)'i');
        _t.Memory.Write8(mfn * 4096 + 1026, (byte)'\n');
        _t.Memory.Write32(mfn * 4096 + 3084, 3);
        _a.ClearAllEvents();
        Assert.Equal(0, _a.Send((uint)port));
        Assert.EndsWith("hi\n", System.Text.Encoding.ASCII.GetString(_t.Host.Console.ToArray()));
        Assert.Equal(3u, _t.Memory.Read32(mfn * 4096 + 3080));
        Assert.True(_a.Pending(port));                        // the hypervisor notified the guest: room again
        Assert.Equal(-Errno.EINVAL, _a.Close((uint)port));
    }

    [Fact]
    public void CompatFormReadsTheCommandFromTheStruct()
    {
        long p = _a.BindIpi();
        _a.ClearAllEvents();
        _a.Arg32(op_cmd, EVTCHNOP_send);
        _a.Arg32(op_u + EventChannel.port, (uint)p);
        Assert.Equal(0, EventChannelOp.Compat(_a.V, EventsGuest.ArgVa));
        Assert.True(_a.Pending(p));
    }

    [Fact]
    public void PortsRunOutWithEnospc()
    {
        for (int i = 1; i < EventChannels.Capacity; i++) Assert.Equal(i, _a.BindIpi());
        Assert.Equal(-Errno.ENOSPC, _a.BindIpi());
    }

    private static bool IsMaskedInSharedInfo(EventsGuest g, long port) => g.D.EventChannels.IsMasked((int)port);
}
