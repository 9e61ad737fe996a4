namespace Microhv.Guests.PvTest;

/// <summary>Event channels: loopback interdomain pair, errors on bad ports, VIRQ_TIMER with both timer calls.</summary>
internal static unsafe class EventChecks
{
    private static bool s_callbacks;

    public static void Run()
    {
        Checks.Run("callback_op_register", &RegisterCallbacks);
        Checks.Run("evtchn_loopback_pending_and_upcall", &Loopback);
        Checks.Run("evtchn_bad_port_rejected", &BadPort);
        Checks.Run("evtchn_fifo_bad_arguments", &FifoArguments);
        Checks.Run("timer_set_timer_op", &TimerOp);
        Checks.Run("timer_vcpu_singleshot", &SingleShot);
    }

    private static void RegisterCallbacks()
    {
        // struct callback_register { uint16_t type; uint16_t flags; xen_callback_t address; }
        ulong* cb = stackalloc ulong[2];
        cb[0] = Xen.CALLBACKTYPE_event;
        cb[1] = Cpu.Symbol(Cpu.SymEventCallback);
        long rc = Hypercall.Call2(Xen.callback_op, Xen.CALLBACKOP_register, (ulong)cb);
        Checks.Expect("register event callback", rc, 0);
        cb[0] = Xen.CALLBACKTYPE_failsafe;
        cb[1] = Cpu.Symbol(Cpu.SymFailsafeCallback);
        Checks.Expect("register failsafe callback", Hypercall.Call2(Xen.callback_op, Xen.CALLBACKOP_register, (ulong)cb), 0);
        s_callbacks = rc == 0;
    }

    private static bool NeedCallbacks()
    {
        if (!SetupChecks.NeedSharedInfo()) return false;
        if (s_callbacks) return true;
        return Checks.Fail("needs the event callback");
    }

    private static long AllocUnbound(out uint port)
    {
        // struct evtchn_alloc_unbound { domid_t dom, remote_dom; evtchn_port_t port; }
        uint* a = stackalloc uint[2];
        a[0] = Xen.DOMID_SELF | ((uint)Xen.DOMID_SELF << 16);
        a[1] = 0;
        long rc = Hypercall.EventChannelOp(Xen.EVTCHNOP_alloc_unbound, a);
        port = a[1];
        return rc;
    }

    private static long Close(uint port)
    {
        uint p = port;
        return Hypercall.EventChannelOp(Xen.EVTCHNOP_close, &p);
    }

    internal static long Send(uint port)
    {
        uint p = port;
        return Hypercall.EventChannelOp(Xen.EVTCHNOP_send, &p);
    }

    private static void Loopback()
    {
        if (!NeedCallbacks()) return;
        Events.SetUpcallMask(true);
        if (!Checks.Expect("alloc_unbound(self, self)", AllocUnbound(out uint a), 0)) return;
        // struct evtchn_bind_interdomain { domid_t remote_dom; evtchn_port_t remote_port; evtchn_port_t local_port; }
        uint* b = stackalloc uint[3];
        b[0] = Xen.DOMID_SELF;
        b[1] = a;
        b[2] = 0;
        long rc = Hypercall.EventChannelOp(Xen.EVTCHNOP_bind_interdomain, b);
        uint local = b[2];
        if (!Checks.Expect("bind_interdomain(self, port)", rc, 0)) { Close(a); return; }
        if (local == a || local == 0) Checks.Fail("local port ", local);
        Events.SetMasked(a, false);
        Events.ResetCount(a);
        if (Checks.Expect("send(local)", Send(local), 0))
        {
            if (!Events.IsPending(a)) Checks.Fail("remote port not pending in shared_info: ", a);
            if (Cpu.Load8(Guest.VcpuInfo + Xen.VI_upcall_pending) == 0) Checks.Fail("evtchn_upcall_pending not set");
            if (Events.CountOf(a) != 0) Checks.Fail("upcall delivered while masked");
            Events.SetUpcallMask(false);
            Events.SetUpcallMask(true);
            Checks.Expect("upcalls for the port", Events.CountOf(a), 1);
            if (Events.IsPending(a)) Checks.Fail("still pending after the upcall");
            // The other direction.
            Events.ResetCount(local);
            Events.SetMasked(local, false);
            Send(a);
            Events.SetUpcallMask(false);
            Events.SetUpcallMask(true);
            Checks.Expect("upcalls for the other end", Events.CountOf(local), 1);
        }
        Checks.Expect("close(local)", Close(local), 0);
        Checks.Expect("close(remote)", Close(a), 0);
    }

    private static void BadPort()
    {
        Checks.Expect("send(4095) unbound", Send(4095), -Xen.EINVAL);
        Checks.Expect("send(1000000) invalid", Send(1000000), -Xen.EINVAL);
        Checks.Expect("close(1000000)", Close(1000000), -Xen.EINVAL);
        uint* b = stackalloc uint[3];
        b[0] = Xen.DOMID_SELF;
        b[1] = 1000000;
        b[2] = 0;
        Checks.Expect("bind_interdomain to an invalid port", Hypercall.EventChannelOp(Xen.EVTCHNOP_bind_interdomain, b), -Xen.EINVAL);
        Checks.Expect("unknown event_channel_op", Hypercall.EventChannelOp(1000, b), -Xen.ENOSYS);
    }

    /// <summary>init_control, expand_array and set_priority with arguments Xen refuses before a domain has
    /// switched to FIFO (every request here fails, so the domain stays on the 2-level ABI on Xen too).</summary>
    private static void FifoArguments()
    {
        // struct evtchn_init_control { uint64_t control_gfn; uint32_t offset, vcpu; uint8_t link_bits; uint8_t _pad[7]; }
        ulong* init = stackalloc ulong[3];
        ulong own = Guest.MfnOf(Guest.Page(9)), l4 = Guest.TableMachineAddress(0, 4) >> 12;
        Checks.Expect("init_control on vcpu 0x7fff", InitControl(init, own, 0, 0x7FFF), -Xen.ENOENT);
        Checks.Expect("init_control offset 4 (unaligned)", InitControl(init, own, 4, 0), -Xen.EINVAL);
        Checks.Expect("init_control offset 4032 (crosses the page)", InitControl(init, own, 4032, 0), -Xen.EINVAL);
        Checks.Expect("init_control on our L4", InitControl(init, l4, 0, 0), -Xen.EINVAL);
        Checks.Expect("init_control on frame ~0", InitControl(init, ~0UL, 0, 0), -Xen.EINVAL);
        Checks.Expect("init_control from 0x1000", Hypercall.EventChannelOp(Xen.EVTCHNOP_init_control, (void*)0x1000), -Xen.EFAULT);
        ulong* gfn = stackalloc ulong[1];
        gfn[0] = own;
        Checks.Expect("expand_array before init_control", Hypercall.EventChannelOp(Xen.EVTCHNOP_expand_array, gfn), -Xen.EOPNOTSUPP);
        uint* prio = stackalloc uint[2];
        prio[0] = 0x10000000; prio[1] = 1;
        Checks.Expect("set_priority on an invalid port", Hypercall.EventChannelOp(Xen.EVTCHNOP_set_priority, prio), -Xen.EINVAL);
        prio[0] = 0;
        Checks.Expect("set_priority on 2-level", Hypercall.EventChannelOp(Xen.EVTCHNOP_set_priority, prio), -Xen.ENOSYS);
    }

    private static long InitControl(ulong* init, ulong gfn, uint offset, uint vcpu)
    {
        init[0] = gfn;
        init[1] = offset | (ulong)vcpu << 32;
        init[2] = 0;
        return Hypercall.EventChannelOp(Xen.EVTCHNOP_init_control, init);
    }

    private static uint s_timerPort;
    private static bool s_timerBound;

    private static bool BindTimer()
    {
        if (s_timerBound) return true;
        // struct evtchn_bind_virq { uint32_t virq, vcpu; evtchn_port_t port; }
        uint* v = stackalloc uint[3];
        v[0] = Xen.VIRQ_TIMER;
        v[1] = 0;
        v[2] = 0;
        if (!Checks.Expect("bind_virq(VIRQ_TIMER)", Hypercall.EventChannelOp(Xen.EVTCHNOP_bind_virq, v), 0)) return false;
        s_timerPort = v[2];
        s_timerBound = true;
        Checks.ExpectRejected("bind_virq(VIRQ_TIMER) twice", Hypercall.EventChannelOp(Xen.EVTCHNOP_bind_virq, v));
        Events.SetMasked(s_timerPort, false);
        return true;
    }

    /// <summary>Waits with events enabled until the timer port fires or 2 s of system time pass.</summary>
    private static bool WaitForTimer(ulong start)
    {
        Events.SetUpcallMask(false);
        while (Events.CountOf(s_timerPort) == 0 && Guest.SystemTime(out _) - start < 2000000000UL)
            Hypercall.SchedOp(Xen.SCHEDOP_yield, null);
        Events.SetUpcallMask(true);
        return Events.CountOf(s_timerPort) != 0;
    }

    private static void TimerOp()
    {
        if (!NeedCallbacks() || !BindTimer()) return;
        Events.ResetCount(s_timerPort);
        ulong now = Guest.SystemTime(out _);
        if (!Checks.Expect("set_timer_op(now + 1 ms)", Hypercall.Call1(Xen.set_timer_op, now + 1000000), 0)) return;
        if (!WaitForTimer(now)) Checks.Fail("no VIRQ_TIMER event within 2 s");
    }

    private static void SingleShot()
    {
        if (!NeedCallbacks() || !BindTimer()) return;
        Events.ResetCount(s_timerPort);
        ulong now = Guest.SystemTime(out _);
        // struct vcpu_set_singleshot_timer { uint64_t timeout_abs_ns; uint32_t flags; }
        ulong* t = stackalloc ulong[2];
        t[0] = now + 1000000;
        t[1] = 0;
        if (!Checks.Expect("vcpu_op(set_singleshot_timer)", Hypercall.Call3(Xen.vcpu_op, Xen.VCPUOP_set_singleshot_timer, 0, (ulong)t), 0)) return;
        if (!WaitForTimer(now)) Checks.Fail("no VIRQ_TIMER event within 2 s");
    }
}
