namespace Microhv.Guests.PvTest;

/// <summary>
/// The FIFO event ABI, run last: the domain switches to it with init_control (vCPU 0's control block in
/// page 20, one event-array page, page 21, every word MASKED as Linux sets them), two IPI ports are
/// linked on a queue, delivered by the upcall in queue order and by priority, a masked port is re-linked
/// by EVTCHNOP_unmask, and EVTCHNOP_reset takes the domain back to 2-level (releasing both pages).
/// </summary>
internal static unsafe class FifoChecks
{
    private const uint Pending = 1u << 31, Masked = 1u << 30, Linked = 1u << 29, LinkMask = (1u << 17) - 1;
    private static bool s_fifo;
    private static uint s_p, s_q;

    private static uint* Control => (uint*)Guest.Page(20);     // struct evtchn_fifo_control_block { ready; _rsvd; head[16]; }
    private static uint* Words => (uint*)Guest.Page(21);
    private static uint Head(int priority) => Cpu.Load32(Control + 2 + priority);
    private static uint Word(uint port) => Cpu.Load32(Words + port);

    public static void Run()
    {
        Checks.Run("evtchn_fifo_init_control_expand_array", &Switch);
        Checks.Run("evtchn_fifo_queue_delivery", &Delivery);
        Checks.Run("evtchn_fifo_unmask_relinks", &UnmaskRelinks);
        Checks.Run("evtchn_fifo_reset_to_2_level", &Reset);
        Checks.Run("evtchn_fifo_ballooned_array_page_kept_until_reset", &BalloonedArrayPage);
    }

    private static long InitControl(ulong gfn, uint offset, uint vcpu, out byte linkBits)
    {
        // struct evtchn_init_control { uint64_t control_gfn; uint32_t offset, vcpu; uint8_t link_bits; uint8_t _pad[7]; }
        ulong* init = stackalloc ulong[3];
        init[0] = gfn;
        init[1] = offset | (ulong)vcpu << 32;
        init[2] = 0;
        long rc = Hypercall.EventChannelOp(Xen.EVTCHNOP_init_control, init);
        linkBits = (byte)init[2];
        return rc;
    }

    private static long ExpandArray(ulong gfn)
    {
        ulong* a = stackalloc ulong[1];
        a[0] = gfn;
        return Hypercall.EventChannelOp(Xen.EVTCHNOP_expand_array, a);
    }

    private static long SetPriority(uint port, uint priority)
    {
        uint* a = stackalloc uint[2];
        a[0] = port; a[1] = priority;
        return Hypercall.EventChannelOp(Xen.EVTCHNOP_set_priority, a);
    }

    private static long BindIpi(out uint port)
    {
        uint* a = stackalloc uint[2];
        a[0] = 0; a[1] = 0;
        long rc = Hypercall.EventChannelOp(Xen.EVTCHNOP_bind_ipi, a);
        port = a[1];
        return rc;
    }

    private static long PortOp(ulong cmd, uint port)
    {
        uint p = port;
        return Hypercall.EventChannelOp(cmd, &p);
    }

    /// <summary>Lets the upcall run (events unmasked for a moment), as the other event checks do.</summary>
    private static void Deliver()
    {
        Events.SetUpcallMask(false);
        Events.SetUpcallMask(true);
    }

    private static long CurrentReservation()
    {
        ushort domid = Xen.DOMID_SELF;
        return Hypercall.MemoryOp(Xen.XENMEM_current_reservation, &domid);
    }

    /// <summary>
    /// FIFO again on two pages of our heap, then the event-array page given back with decrease_reservation
    /// after we unmapped it, as a balloon driver gives pages back: the hypervisor still maps it (Xen's
    /// map_guest_page reference), so the extent is done but the frame stays ours in the reservation and
    /// events are still linked through it (the control block we kept shows a sent port at the head of its
    /// queue) until EVTCHNOP_reset lets it go; then the reservation is one page less.
    /// </summary>
    private static void BalloonedArrayPage()
    {
        if (!SetupChecks.NeedSharedInfo()) return;
        Events.SetUpcallMask(true);
        uint* control = (uint*)Internal.Runtime.KernelHeap.AllocateAligned(4096, 4096);
        uint* words = (uint*)Internal.Runtime.KernelHeap.AllocateAligned(4096, 4096);
        for (int i = 0; i < 18; i++) control[i] = 0;
        for (int i = 0; i < 1024; i++) words[i] = Masked;
        ulong array = Guest.MfnOf(words), pfn = Guest.PfnOf(words);
        if (!Checks.Expect("init_control(heap page)", InitControl(Guest.MfnOf(control), 0, 0, out _), 0)) return;
        uint port = 0;
        bool ok = Checks.Expect("expand_array(heap page)", ExpandArray(array), 0)
            && Checks.Expect("bind_ipi", BindIpi(out port), 0);
        long before = CurrentReservation();
        if (ok)
        {
            words[port] = 0;                                         // unmasked, before the page goes
            ulong* list = stackalloc ulong[1];
            list[0] = array;
            ulong* r = stackalloc ulong[4];                          // struct xen_memory_reservation
            r[0] = (ulong)list; r[1] = 1; r[2] = 0; r[3] = Xen.DOMID_SELF;
            ok = Checks.Expect("unmap the array page", Hypercall.UpdateVaMapping((ulong)words, 0, Xen.UVMF_INVLPG), 0)
                && Checks.Expect("decrease_reservation(array page)", Hypercall.MemoryOp(Xen.XENMEM_decrease_reservation, r), 1);
            if (ok)
            {
                Guest.P2m[pfn] = ~0UL;
                Checks.Expect("current_reservation while the hypervisor maps it", CurrentReservation(), before);
                Checks.Expect("send(port)", PortOp(Xen.EVTCHNOP_send, port), 0);
                Checks.ExpectHex("READY after the send", Cpu.Load32(control) & (1u << 7), 1u << 7);
                Checks.Expect("head of queue 7", Cpu.Load32(control + 2 + 7), port);
            }
        }
        ushort* reset = stackalloc ushort[1];
        reset[0] = Xen.DOMID_SELF;
        if (Checks.Expect("reset(self)", Hypercall.EventChannelOp(Xen.EVTCHNOP_reset, reset), 0) && ok)
            Checks.Expect("current_reservation after reset", CurrentReservation(), before - 1);
    }

    private static void Switch()
    {
        if (!SetupChecks.NeedSharedInfo()) return;
        Events.SetUpcallMask(true);
        for (int i = 0; i < 18; i++) Control[i] = 0;
        for (int i = 0; i < 1024; i++) Words[i] = Masked;
        ulong control = Guest.MfnOf(Control), array = Guest.MfnOf(Words), l4 = Guest.TableMachineAddress(0, 4) >> 12;
        Checks.Expect("expand_array before init_control", ExpandArray(array), -Xen.EOPNOTSUPP);
        if (!Checks.Expect("init_control(vcpu 0, offset 0)", InitControl(control, 0, 0, out byte bits), 0)) return;
        s_fifo = true;
        Checks.Expect("link_bits", bits, 17);
        Checks.Expect("init_control(vcpu 0) again", InitControl(control, 0, 0, out _), -Xen.EINVAL);
        Checks.Expect("expand_array(our L4)", ExpandArray(l4), -Xen.EINVAL);
        Checks.Expect("expand_array(frame ~0)", ExpandArray(~0UL), -Xen.EINVAL);
        if (!Checks.Expect("expand_array(page)", ExpandArray(array), 0)) { s_fifo = false; return; }
        Events.UseFifo(Control, Words);
        if (!Checks.Expect("bind_ipi", BindIpi(out s_p), 0) || !Checks.Expect("bind_ipi", BindIpi(out s_q), 0)) { s_fifo = false; return; }
        Checks.Expect("set_priority(port, 16)", SetPriority(s_p, 16), -Xen.EINVAL);
        Checks.Expect("set_priority(1000000, 3)", SetPriority(1000000, 3), -Xen.EINVAL);
        Checks.Expect("set_priority(p, 3)", SetPriority(s_p, 3), 0);
        Checks.Expect("set_priority(q, 3)", SetPriority(s_q, 3), 0);
        Words[s_p] = 0;                                              // the guest unmasks its new ports
        Words[s_q] = 0;
    }

    private static bool NeedFifo() => s_fifo || Checks.Fail("needs the FIFO switch");

    private static void Delivery()
    {
        if (!NeedFifo()) return;
        Events.ResetCount(s_p); Events.ResetCount(s_q); Events.ResetOrder();
        Checks.Expect("send(p)", PortOp(Xen.EVTCHNOP_send, s_p), 0);
        Checks.ExpectHex("p's word: PENDING|LINKED", Word(s_p), Pending | Linked);
        Checks.Expect("queue 3's head", Head(3), s_p);
        if ((Cpu.Load32(Control) & (1u << 3)) == 0) Checks.Fail("READY bit 3 not set");
        if (Cpu.Load8(Guest.VcpuInfo + Xen.VI_upcall_pending) == 0) Checks.Fail("evtchn_upcall_pending not set");
        if (Events.IsPending(s_p)) Checks.Fail("pending in shared_info's 2-level bits");
        Checks.Expect("send(q)", PortOp(Xen.EVTCHNOP_send, s_q), 0);
        Checks.ExpectHex("p's word links q", Word(s_p), Pending | Linked | s_q);
        Checks.Expect("queue 3's head still p", Head(3), s_p);
        Deliver();
        Checks.Expect("upcalls for p", Events.CountOf(s_p), 1);
        Checks.Expect("upcalls for q", Events.CountOf(s_q), 1);
        Checks.Expect("first delivered", Events.OrderAt(0), s_p);
        Checks.Expect("second delivered", Events.OrderAt(1), s_q);
        Checks.ExpectHex("q's word after delivery", Word(s_q), 0);
        // Another priority: q moves to queue 1, which the handler empties before queue 3.
        Checks.Expect("set_priority(q, 1)", SetPriority(s_q, 1), 0);
        Events.ResetOrder();
        PortOp(Xen.EVTCHNOP_send, s_p);
        PortOp(Xen.EVTCHNOP_send, s_q);
        Checks.Expect("queue 3's new head", Head(3), s_p);
        Checks.Expect("queue 1's head", Head(1), s_q);
        Deliver();
        Checks.Expect("delivered first (priority 1)", Events.OrderAt(0), s_q);
        Checks.Expect("delivered second (priority 3)", Events.OrderAt(1), s_p);
        Checks.Expect("events delivered", Events.OrderCount, 2);
    }

    private static void UnmaskRelinks()
    {
        if (!NeedFifo()) return;
        Events.ResetCount(s_p); Events.ResetOrder();
        Words[s_p] = Masked;
        PortOp(Xen.EVTCHNOP_send, s_p);
        Checks.ExpectHex("masked p's word: PENDING|MASKED", Word(s_p), Pending | Masked);
        Deliver();
        Checks.Expect("upcalls for masked p", Events.CountOf(s_p), 0);
        Checks.Expect("unmask(p)", PortOp(Xen.EVTCHNOP_unmask, s_p), 0);
        Checks.ExpectHex("p's word after unmask", Word(s_p) & ~LinkMask, Pending | Linked);
        Deliver();
        Checks.Expect("upcalls for p after unmask", Events.CountOf(s_p), 1);
        Checks.Expect("unmask(1000000)", PortOp(Xen.EVTCHNOP_unmask, 1000000), -Xen.EINVAL);
    }

    private static void Reset()
    {
        if (!NeedFifo()) return;
        ushort* r = stackalloc ushort[1];
        r[0] = Xen.DOMID_SELF;
        long rc = Hypercall.EventChannelOp(Xen.EVTCHNOP_reset, r);
        Checks.Expect("reset(self)", rc, 0);
        if (rc != 0) return;
        Events.UseFifo(null, null);
        s_fifo = false;
        Checks.Expect("expand_array on 2-level again", ExpandArray(Guest.MfnOf(Words)), -Xen.EOPNOTSUPP);
        Checks.Expect("set_priority on 2-level again", SetPriority(0, 3), -Xen.ENOSYS);
        Checks.Expect("send(p) after reset", PortOp(Xen.EVTCHNOP_send, s_p), -Xen.EINVAL);
        // The 2-level ABI works again: a loopback IPI shows in shared_info.
        if (!Checks.Expect("bind_ipi on 2-level", BindIpi(out uint port), 0)) return;
        Events.SetMasked(port, false);
        PortOp(Xen.EVTCHNOP_send, port);
        if (!Events.IsPending(port)) Checks.Fail("2-level port not pending in shared_info: ", port);
        Checks.Expect("close", PortOp(Xen.EVTCHNOP_close, port), 0);
    }
}
