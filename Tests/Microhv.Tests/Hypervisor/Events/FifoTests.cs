using Microhv.Hypervisor;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;
using Xunit;
using static Microhv.Hypervisor.Public.EventChannel;

namespace Microhv.Tests.Hypervisor.Events;

/// <summary>The FIFO event ABI (Xen 4.17's event_fifo.c): the commands' checks, the switch from 2-level,
/// queue linking as the guest sees it in its event words and control block, and the release of the mapped pages.</summary>
public sealed class FifoTests
{
    private const uint Pending = 1u << EVTCHN_FIFO_PENDING, Masked = 1u << EVTCHN_FIFO_MASKED,
        Linked = 1u << EVTCHN_FIFO_LINKED, Busy = 1u << EVTCHN_FIFO_BUSY;
    private readonly TestMachine _t = new();
    private readonly EventsGuest _a, _b;
    private ulong _control, _array;

    public FifoTests()
    {
        _a = new EventsGuest(_t, 1);
        _b = new EventsGuest(_t, 2);
    }

    private long InitControl(ulong gfn, uint offset, uint vcpu)
    {
        _a.Arg64(init_control_control_gfn, gfn);
        _a.Arg32(init_control_offset, offset);
        _a.Arg32(init_control_vcpu, vcpu);
        _a.Arg64(init_control_link_bits, 0);
        return _a.Evtchn(EVTCHNOP_init_control);
    }

    private long ExpandArray(ulong gfn)
    {
        _a.Arg64(expand_array_array_gfn, gfn);
        return _a.Evtchn(EVTCHNOP_expand_array);
    }

    private long SetPriority(uint port, uint priority)
    {
        _a.Arg32(set_priority_port, port);
        _a.Arg32(set_priority_priority, priority);
        return _a.Evtchn(EVTCHNOP_set_priority);
    }

    /// <summary>Switches A to FIFO: control block at offset 64 of Data[1], one event-array page (Data[2]).</summary>
    private void SwitchToFifo(bool withArray = true)
    {
        _control = _a.G.Data[1];
        _array = _a.G.Data[2];
        Assert.Equal(0, InitControl(_control, 64, 0));
        if (withArray) Assert.Equal(0, ExpandArray(_array));
    }

    /// <summary>Data[0] as a validated L1 table (all entries empty): a frame that cannot take a writable type.</summary>
    private ulong PageTable()
    {
        ulong mfn = _a.G.Data[0];
        _t.Memory.Fill(mfn * 4096, 0, 4096);
        Assert.Equal(0, Microhv.Hypervisor.Mm.PageTypes.GetPageAndType(_t.Machine, _a.D, mfn, FrameType.L1PageTable));
        return mfn;
    }

    private ulong BlockMa => _control * 4096 + 64;
    private uint Ready => _t.Memory.Read32(BlockMa + (ulong)evtchn_fifo_control_block_ready);
    private uint Head(int priority) => _t.Memory.Read32(BlockMa + (ulong)evtchn_fifo_control_block_head + (ulong)priority * 4);
    private uint Word(long port) => _t.Memory.Read32(_array * 4096 + (ulong)port * 4);
    private void SetWord(long port, uint value) => _t.Memory.Write32(_array * 4096 + (ulong)port * 4, value);

    /// <summary>What Linux's consume_one_event does to the head of a queue: clear LINKED (and PENDING, as its handler does).</summary>
    private void Consume(long port) => SetWord(port, Word(port) & ~(Linked | Pending | EVTCHN_FIFO_LINK_MASK));

    [Fact]
    public void Init_control_checks_its_arguments_in_Xens_order()
    {
        ulong own = _a.G.Data[0];
        Assert.Equal(-Errno.ENOENT, InitControl(own, 0, 1));                            // no such vCPU, before the offset
        Assert.Equal(-Errno.ENOENT, InitControl(~0UL, 4095, 0x7FFF));
        Assert.Equal(-Errno.EINVAL, InitControl(own, 4096 - 72 + 8, 0));                // the block would cross the page
        Assert.Equal(-Errno.EINVAL, InitControl(own, 0xFFFF_FFF8, 0));
        Assert.Equal(-Errno.EINVAL, InitControl(own, 4, 0));                            // not 8-byte aligned
        Assert.Equal(-Errno.EINVAL, InitControl(_b.G.Data[0], 0, 0));                   // another domain's frame
        Assert.Equal(-Errno.EINVAL, InitControl(_a.SharedInfoMfn, 0, 0));               // Xen's frame
        Assert.Equal(-Errno.EINVAL, InitControl(PageTable(), 0, 0));                    // a page table cannot be writable
        Assert.Equal(-Errno.EINVAL, InitControl(~0UL, 0, 0));
        Assert.Equal(0u, _a.Out32(init_control_link_bits));                              // link_bits only on success
        Assert.False(_a.D.EventChannels.Fifo.Active);                                    // still 2-level
        Assert.Equal(-Errno.EOPNOTSUPP, ExpandArray(own));
    }

    [Fact]
    public void A_valid_init_control_switches_to_fifo_and_holds_a_writable_reference()
    {
        ulong own = _a.G.Data[1];
        uint refs = _a.G.RefCount(own), types = _a.G.TypeCount(own);
        Assert.Equal(0, InitControl(own, 4096 - 72, 0));
        Assert.True(_a.D.EventChannels.Fifo.Active);
        Assert.Equal((uint)EVTCHN_FIFO_LINK_BITS, _a.Out32(init_control_link_bits) & 0xFF);
        Assert.Equal(refs + 1, _a.G.RefCount(own));
        Assert.Equal(types + 1, _a.G.TypeCount(own));
        Assert.Equal(FrameType.Writable, _a.G.Type(own));
        Assert.Equal(-Errno.EINVAL, InitControl(_a.G.Data[0], 0, 0));                   // vCPU 0 has its block
        Assert.Equal(refs + 1, _a.G.RefCount(own));
    }

    [Fact]
    public void Set_priority_answers_by_abi()
    {
        Assert.Equal(-Errno.ENOSYS, SetPriority(0, 7));                                   // 2-level: no priorities
        Assert.Equal(-Errno.EINVAL, SetPriority(0x10000000, 7));
        SwitchToFifo();
        Assert.Equal(-Errno.EINVAL, SetPriority(0x10000000, 7));                          // port first
        Assert.Equal(-Errno.EINVAL, SetPriority(1, 16));
        Assert.Equal(0, SetPriority(1, 15));
        Assert.Equal(0, SetPriority(0, 0));                                              // any valid port, bound or not
        Assert.Equal(15, _a.D.EventChannels.Fifo.PriorityOf(1));
    }

    [Fact]
    public void Expand_array_maps_up_to_128_pages_then_enospc_and_reset_releases_them_all()
    {
        ulong page = _a.G.Data[3];
        uint refs = _a.G.RefCount(page), types = _a.G.TypeCount(page);
        SwitchToFifo(withArray: false);
        uint blockRefs = _a.G.RefCount(_control);
        Assert.Equal(-Errno.EINVAL, ExpandArray(_b.G.Data[0]));
        Assert.Equal(-Errno.EINVAL, ExpandArray(PageTable()));
        for (int i = 0; i < EvtchnFifo.MaxEventArrayPages; i++) Assert.Equal(0, ExpandArray(page));
        Assert.Equal(EVTCHN_FIFO_NR_CHANNELS, _a.D.EventChannels.Fifo.NumEvtchns);
        Assert.Equal(-Errno.ENOSPC, ExpandArray(page));
        Assert.Equal(refs + 128, _a.G.RefCount(page));
        Assert.Equal(types + 128, _a.G.TypeCount(page));

        _a.Arg16(reset_dom, Xen.DOMID_SELF);
        Assert.Equal(0, _a.Evtchn(EVTCHNOP_reset));
        Assert.False(_a.D.EventChannels.Fifo.Active);                                    // back to 2-level
        Assert.Equal(refs, _a.G.RefCount(page));
        Assert.Equal(types, _a.G.TypeCount(page));
        Assert.Equal(blockRefs - 1, _a.G.RefCount(_control));
        Assert.Equal(-Errno.EOPNOTSUPP, ExpandArray(page));
        Assert.Equal(-Errno.ENOSYS, SetPriority(1, 3));
        Assert.Equal(0, InitControl(_control, 0, 0));                                    // and may switch again
    }

    [Fact]
    public void A_sent_event_is_linked_on_its_queue_and_raises_ready_and_the_upcall()
    {
        SwitchToFifo();
        long p = _a.BindIpi(), q = _a.BindIpi();
        Assert.Equal(0, _a.Send((uint)p));
        Assert.Equal(Pending | Linked, Word(p));
        Assert.Equal((uint)p, Head(EVTCHN_FIFO_PRIORITY_DEFAULT));
        Assert.Equal(1u << EVTCHN_FIFO_PRIORITY_DEFAULT, Ready);
        Assert.Equal(1, _a.UpcallPending);
        Assert.False(_a.Pending(p));                                                     // nothing in shared_info
        Assert.Equal(0UL, _a.Selector);
        Assert.True(_a.D.EventChannels.IsPending((int)p));

        _a.ClearAllEvents();
        Assert.Equal(0, _a.Send((uint)q));                                               // behind p: p's LINK, no new upcall
        Assert.Equal(Pending | Linked | (uint)q, Word(p));
        Assert.Equal(Pending | Linked, Word(q));
        Assert.Equal((uint)p, Head(EVTCHN_FIFO_PRIORITY_DEFAULT));
        Assert.Equal(0, _a.UpcallPending);

        Assert.Equal(0, _a.Send((uint)q));                                               // pending already: no change
        Assert.Equal(Pending | Linked, Word(q));
    }

    [Fact]
    public void A_new_port_starts_at_the_default_priority_and_a_bound_peer_keeps_its_own()
    {
        SwitchToFifo();
        long p = _a.AllocUnbound(1);
        Assert.Equal(0, SetPriority((uint)p, 2));
        long local = _a.BindInterdomain(Xen.DOMID_SELF, (uint)p);                        // p becomes interdomain: still 2
        Assert.True(local > 0);
        Assert.Equal(2, _a.D.EventChannels.Fifo.PriorityOf((int)p));
        Assert.Equal(EVTCHN_FIFO_PRIORITY_DEFAULT, _a.D.EventChannels.Fifo.PriorityOf((int)local));
        Assert.Equal(0, SetPriority((uint)local, 9));
        Assert.Equal(0, _a.Close((uint)local));
        Consume(local);
        Assert.Equal(local, _a.BindIpi());                                              // the same port, taken anew
        Assert.Equal(EVTCHN_FIFO_PRIORITY_DEFAULT, _a.D.EventChannels.Fifo.PriorityOf((int)local));
    }

    [Fact]
    public void Priorities_have_queues_of_their_own()
    {
        SwitchToFifo();
        long p = _a.BindIpi(), q = _a.BindIpi();
        Assert.Equal(0, SetPriority((uint)q, 2));
        _a.Send((uint)p);
        _a.Send((uint)q);
        Assert.Equal((uint)p, Head(7));
        Assert.Equal((uint)q, Head(2));
        Assert.Equal((1u << 7) | (1u << 2), Ready);
        Assert.Equal(Pending | Linked, Word(p));                                         // not linked to q
    }

    [Fact]
    public void A_consumed_tail_makes_the_next_event_a_new_head()
    {
        SwitchToFifo();
        long p = _a.BindIpi(), q = _a.BindIpi();
        _a.Send((uint)p);
        Consume(p);                                                                      // the guest took p off the queue
        _t.Memory.Write32(BlockMa, 0);                                                   // and cleared READY
        _a.ClearAllEvents();
        _a.Send((uint)q);
        Assert.Equal(0u, Word(p) & EVTCHN_FIFO_LINK_MASK);
        Assert.Equal((uint)q, Head(7));
        Assert.Equal(1u << 7, Ready);
        Assert.Equal(1, _a.UpcallPending);
    }

    [Fact]
    public void A_masked_port_is_pending_but_unlinked_until_unmask_links_it()
    {
        SwitchToFifo();
        long p = _a.BindIpi();
        SetWord(p, Masked);
        _a.Send((uint)p);
        Assert.Equal(Pending | Masked, Word(p));
        Assert.Equal(0u, Ready);
        Assert.Equal(0, _a.UpcallPending);
        Assert.True(_a.D.EventChannels.IsMasked((int)p));
        Assert.Equal(0, _a.Unmask((uint)p));
        Assert.Equal(Pending | Linked, Word(p));
        Assert.Equal((uint)p, Head(7));
        Assert.Equal(1, _a.UpcallPending);
        Assert.Equal(-Errno.EINVAL, _a.Unmask(0x10000000));
        Consume(p);
        SetWord(p, Masked);
        Assert.Equal(0, _a.Unmask((uint)p));                                             // not pending: only unmasked
        Assert.Equal(0u, Word(p));
    }

    [Fact]
    public void A_port_moved_to_another_queue_leaves_its_old_queue_empty()
    {
        SwitchToFifo();
        long p = _a.BindIpi(), r = _a.BindIpi();
        _a.Send((uint)p);                                                                // p: head and tail of queue 7
        Consume(p);
        Assert.Equal(0, SetPriority((uint)p, 3));
        _a.Send((uint)p);                                                                // now on queue 3
        Assert.Equal((uint)p, Head(3));
        _a.Send((uint)r);                                                                // queue 7 is empty: r is its head
        Assert.Equal((uint)r, Head(7));
        Assert.Equal(0u, Word(p) & EVTCHN_FIFO_LINK_MASK);
    }

    [Fact]
    public void Events_before_the_array_page_and_2_level_pending_ports_are_raised_when_it_arrives()
    {
        long old = _a.BindIpi();
        _a.Send((uint)old);                                                              // pending on 2-level
        Assert.True(_a.Pending(old));
        SwitchToFifo(withArray: false);
        long p = _a.BindIpi();
        _a.ClearAllEvents();
        _a.Send((uint)p);                                                                // no word yet: remembered
        Assert.Equal(0, _a.UpcallPending);
        Assert.False(_a.D.EventChannels.IsPending((int)p));
        Assert.True(_a.D.EventChannels.IsMasked((int)p));
        Assert.Equal(0, ExpandArray(_array = _a.G.Data[2]));
        Assert.Equal(Pending | Linked | (uint)p, Word(old));
        Assert.Equal(Pending | Linked, Word(p));
        Assert.Equal((uint)old, Head(7));
        Assert.Equal(1, _a.UpcallPending);
    }

    [Fact]
    public void An_event_for_a_vcpu_without_a_control_block_is_dropped()
    {
        _a.D.MaxVcpus = 2;
        SwitchToFifo();
        long p = _a.BindIpi(1);
        _a.Send((uint)p);
        Assert.Equal(0u, Word(p));
        Assert.Equal(0u, Ready);
        Assert.Equal(0, InitControl(_control, 2048, 1));                                 // vCPU 1's block in the same page
        Assert.Equal(0, _a.Send((uint)p));
        Assert.Equal(Pending | Linked, Word(p));
        Assert.Equal((uint)p, _t.Memory.Read32(_control * 4096 + 2048 + (ulong)evtchn_fifo_control_block_head + 7 * 4));
        Assert.Equal(0u, Ready);                                                         // vCPU 0's block untouched
    }

    [Fact]
    public void Close_clears_pending_and_a_linked_port_is_not_reused()
    {
        SwitchToFifo();
        long p = _a.BindIpi();
        _a.Send((uint)p);
        Assert.Equal(0, _a.Close((uint)p));
        Assert.Equal(Linked, Word(p));                                                   // the guest unlinks it and skips it
        Assert.NotEqual(p, _a.BindIpi());                                                // still on a queue: busy
        Consume(p);
        Assert.Equal(p, _a.AllocUnbound(2));
    }

    [Fact]
    public void Teardown_releases_the_mapped_pages()
    {
        SwitchToFifo();
        _a.D.State = DomainState.Shutdown;
        DomainRelinquish.Relinquish(_a.D);
        Assert.False(_a.D.EventChannels.Fifo.Active);
        foreach (ulong mfn in new[] { _control, _array })
        {
            Assert.Equal(0u, _a.G.RefCount(mfn));
            Assert.Equal(0u, _a.G.TypeCount(mfn));
            Assert.Equal(FrameTable.OwnerNone, _t.Machine.FrameTable.OwnerOf(mfn));
        }
    }

    [Fact]
    public void The_e_debug_key_shows_the_fifo_state()
    {
        SwitchToFifo();
        long p = _a.BindIpi(), q = _a.BindIpi();
        _a.Send((uint)p);
        _a.Send((uint)q);
        _t.Host.Console.Clear();
        DebugKeys.Handle(_t.Machine, (byte)'e');
        string text = System.Text.Encoding.ASCII.GetString(_t.Host.Console.ToArray());
        Assert.Contains("  FIFO ABI: 1024 event words", text);
        Assert.Contains($"    {p} [1/0]: ipi, prio 7, linked -> {q}", text);
        Assert.Contains($"    {q} [1/0]: ipi, prio 7, linked -> 0", text);
    }

    [Fact]
    public void Bad_argument_pointers_are_efault()
    {
        foreach (int cmd in new[] { EVTCHNOP_init_control, EVTCHNOP_expand_array, EVTCHNOP_set_priority })
            Assert.Equal(-Errno.EFAULT, EventChannelOp.Do(_a.V, (ulong)cmd, 0x10));
    }

    [Fact]
    public void Reset_cont_is_reset()
    {
        Assert.True(_a.BindIpi() > 0);
        _a.Arg16(reset_dom, Xen.DOMID_SELF);
        Assert.Equal(0, _a.Evtchn(EVTCHNOP_reset_cont));
        Assert.Equal(1, _a.BindIpi());                                                 // every port was closed
    }
}
