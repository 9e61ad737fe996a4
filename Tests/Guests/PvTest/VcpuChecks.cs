namespace Microhv.Guests.PvTest;

/// <summary>
/// A second vCPU, brought up as Linux brings up its secondary CPUs (arch/x86/xen/smp_pv.c): only when
/// the domain has a vCPU 1 (QEMU -smp 2 gives Xen's dom0 and Microhv's initial domain one vCPU per
/// CPU). vCPU 1 runs guest_vcpu1_loop (Common/guest.asm) with events masked: it polls one port and
/// answers each wake-up on another, so vCPU 0 can see IPIs (bind_ipi to each vCPU), a timer event on
/// vCPU 1's own VIRQ_TIMER port, a TLB flush naming both vCPUs, and VCPUOP_down.
/// </summary>
internal static unsafe class VcpuChecks
{
    internal const ulong VCPUOP_initialise = 0, VCPUOP_up = 1, VCPUOP_down = 2, VCPUOP_is_up = 3;
    private const ulong VCPUOP_set_periodic_timer = 6, VCPUOP_stop_periodic_timer = 7;
    private const ulong EVTCHNOP_bind_ipi = 7;
    internal const uint MMUEXT_TLB_FLUSH_MULTI = 8, MMUEXT_INVLPG_MULTI = 9;
    internal const ulong VGCF_in_kernel = 1 << 2;
    private const ushort FLAT_KERNEL_SS = 0xE02B;
    private const long EINVAL = 22, EEXIST = 17;

    // struct vcpu_guest_context (x86-64): the fields set here.
    internal const int CtxSize = 5168, CtxFlags = 512, CtxUserRegs = 520, CtxKernelSs = 4968, CtxKernelSp = 4976, CtxCr3 = 4984 + 3 * 8;
    internal const int RegRdi = 112, RegRip = 128, RegCs = 136, RegRflags = 144, RegRsp = 152, RegSs = 160;

    /// <summary>The block shared with vCPU 1 (guest_vcpu1_loop's layout): [0] wake-ups answered, +8 the port it
    /// polls, +12 the port it notifies, +24 its poll argument, +48 shared_info's pending bits.</summary>
    private static ulong* Block => (ulong*)Guest.Page(19);
    private static byte* Context => Guest.Page(17);          // pages 17 and 18
    private static byte* Stack => Guest.Page(16);
    private static uint s_toVcpu0, s_toVcpu1, s_timer1;
    private static bool s_up;

    public static void Run()
    {
        if (VcpuOp(VCPUOP_is_up, 1, null) < 0)
        {
            XenConsole.Line("pvtest: this domain has one vCPU: the secondary-vCPU checks need two (QEMU -smp 2)");
            return;
        }
        Checks.Run("vcpu_secondary_bring_up", &BringUp);
        Checks.Run("vcpu_secondary_ipi_round_trips", &IpiRoundTrips);
        Checks.Run("vcpu_secondary_timer_event", &TimerEvent);
        Checks.Run("vcpu_secondary_tlb_flush_mask", &TlbFlushMask);
        Checks.Run("vcpu_secondary_down", &Down);
    }

    private static long VcpuOp(ulong cmd, ulong vcpu, void* arg) => Hypercall.Call3(Xen.vcpu_op, cmd, vcpu, (ulong)arg);

    private static long BindIpi(uint vcpu, out uint port)
    {
        uint* a = stackalloc uint[2];
        a[0] = vcpu;
        long rc = Hypercall.EventChannelOp(EVTCHNOP_bind_ipi, a);
        port = a[1];
        return rc;
    }

    private static long BindVirq(uint virq, uint vcpu, out uint port)
    {
        uint* a = stackalloc uint[3];
        a[0] = virq;
        a[1] = vcpu;
        long rc = Hypercall.EventChannelOp(Xen.EVTCHNOP_bind_virq, a);
        port = a[2];
        return rc;
    }

    private static void Mask(uint port) => ((ulong*)(Guest.SharedInfo + Xen.SH_evtchn_mask))[port >> 6] |= 1UL << (int)(port & 63);

    /// <summary>Waits (SCHEDOP_poll with a timeout) until vCPU 1 has answered <paramref name="count"/> wake-ups.</summary>
    private static bool WaitForAnswers(ulong count)
    {
        ulong deadline = Guest.SystemTime(out _) + 2_000_000_000;
        ulong* pending = (ulong*)(Guest.SharedInfo + Xen.SH_evtchn_pending);
        uint port = s_toVcpu0;
        ulong* poll = stackalloc ulong[3];
        while (Cpu.Load64(Block) < count)
        {
            if (Guest.SystemTime(out _) > deadline) return false;
            poll[0] = (ulong)&port;
            poll[1] = 1;
            poll[2] = deadline;
            Hypercall.SchedOp(Xen.SCHEDOP_poll, poll);
            Cpu.TestAndClearBit(pending + (s_toVcpu0 >> 6), (int)(s_toVcpu0 & 63));
        }
        return true;
    }

    private static void BringUp()
    {
        if (!SetupChecks.NeedSharedInfo()) return;
        Checks.Expect("is_up(1) before it is started", VcpuOp(VCPUOP_is_up, 1, null), 0);
        Checks.ExpectRejected("up(1) before initialise", VcpuOp(VCPUOP_up, 1, null));
        if (!Checks.Expect("bind_ipi to vCPU 0", BindIpi(0, out s_toVcpu0), 0)
            || !Checks.Expect("bind_ipi to vCPU 1", BindIpi(1, out s_toVcpu1), 0)
            || !Checks.Expect("bind_virq VIRQ_TIMER on vCPU 1", BindVirq(Xen.VIRQ_TIMER, 1, out s_timer1), 0))
            return;
        // EVTCHNOP_status names the vCPU a port notifies: {dom, port, status, vcpu, ...}.
        uint* st = stackalloc uint[6];
        st[0] = Xen.DOMID_SELF;
        st[1] = s_toVcpu1;
        Checks.Expect("status of the IPI port", Hypercall.EventChannelOp(Xen.EVTCHNOP_status, st), 0);
        Checks.Expect("its vCPU", st[3], 1);
        // No upcalls for these: both vCPUs wait for them with SCHEDOP_poll.
        Mask(s_toVcpu0);
        Mask(s_toVcpu1);
        Mask(s_timer1);
        Cpu.Store8(Guest.SharedInfo + 64 + Xen.VI_upcall_mask, 1);    // vCPU 1's vcpu_info: events masked

        ulong* block = Block;
        block[0] = 0;
        ((uint*)block)[2] = s_toVcpu1;
        ((uint*)block)[3] = s_toVcpu0;
        block[6] = (ulong)(Guest.SharedInfo + Xen.SH_evtchn_pending);

        byte* c = Context;
        for (int i = 0; i < CtxSize; i++) c[i] = 0;
        *(ulong*)(c + CtxFlags) = VGCF_in_kernel;
        byte* r = c + CtxUserRegs;
        *(ulong*)(r + RegRip) = Cpu.Symbol(Cpu.SymVcpu1Loop);
        *(ulong*)(r + RegRsp) = (ulong)Stack + 4096;
        *(ulong*)(r + RegRdi) = (ulong)block;
        *(ushort*)(r + RegCs) = Xen.FLAT_KERNEL_CS;
        *(ushort*)(r + RegSs) = FLAT_KERNEL_SS;
        *(ulong*)(r + RegRflags) = 0x200;
        *(ulong*)(c + CtxKernelSs) = FLAT_KERNEL_SS;
        *(ulong*)(c + CtxKernelSp) = (ulong)Stack + 4096;
        *(ulong*)(c + CtxCr3) = Guest.TableMachineAddress(0, 4);      // the same page tables as vCPU 0

        if (!Checks.Expect("initialise(1)", VcpuOp(VCPUOP_initialise, 1, c), 0)) return;
        Checks.Expect("initialise(1) again", VcpuOp(VCPUOP_initialise, 1, c), -EEXIST);
        Checks.Expect("is_up(1) after initialise", VcpuOp(VCPUOP_is_up, 1, null), 0);
        if (!Checks.Expect("up(1)", VcpuOp(VCPUOP_up, 1, null), 0)) return;
        Checks.Expect("is_up(1) after up", VcpuOp(VCPUOP_is_up, 1, null), 1);
        s_up = true;
    }

    private static bool NeedUp() => s_up || Checks.Fail("needs vCPU 1 up");

    /// <summary>Three IPIs to vCPU 1, each answered by an IPI to vCPU 0.</summary>
    private static void IpiRoundTrips()
    {
        if (!NeedUp()) return;
        for (ulong i = 1; i <= 3; i++)
        {
            if (!Checks.Expect("send to vCPU 1", EventChecks.Send(s_toVcpu1), 0)) return;
            if (!WaitForAnswers(i)) { Checks.Fail("vCPU 1 did not answer within 2 s, round trip", (long)i); return; }
        }
        Checks.Expect("answers", (long)Cpu.Load64(Block), 3);
    }

    /// <summary>vCPU 1 waits on its own VIRQ_TIMER port; vCPU 0 sets vCPU 1's periodic timer (any vCPU's may be set).</summary>
    private static void TimerEvent()
    {
        if (!NeedUp()) return;
        ulong before = Cpu.Load64(Block);
        Cpu.Store32((uint*)Block + 2, s_timer1);                        // from its next poll on
        EventChecks.Send(s_toVcpu1);                                     // wake it from the IPI port's poll
        if (!WaitForAnswers(before + 1)) { Checks.Fail("vCPU 1 did not answer the IPI that moves it to its timer port"); return; }
        ulong* period = stackalloc ulong[1];
        period[0] = 1_000_000;
        if (!Checks.Expect("set_periodic_timer(1, 1 ms)", VcpuOp(VCPUOP_set_periodic_timer, 1, period), 0)) return;
        // Xen sends the event at once (the period has passed since the last one) and stops a periodic timer
        // while its vCPU is switched out, so a blocked vCPU sees one event: wait for that one.
        bool fired = WaitForAnswers(before + 2);
        Checks.Expect("stop_periodic_timer(1)", VcpuOp(VCPUOP_stop_periodic_timer, 1, null), 0);
        if (!fired) Checks.Fail("vCPU 1's timer event did not wake it within 2 s");
    }

    private static void TlbFlushMask()
    {
        ulong* mask = stackalloc ulong[1];
        mask[0] = 3;                                                     // vCPUs 0 and 1
        Checks.Expect("TLB_FLUSH_MULTI", Hypercall.MmuextOp(MMUEXT_TLB_FLUSH_MULTI, 0, (ulong)mask), 0);
        Checks.Expect("INVLPG_MULTI", Hypercall.MmuextOp(MMUEXT_INVLPG_MULTI, (ulong)Stack, (ulong)mask), 0);
        Checks.ExpectRejected("TLB_FLUSH_MULTI with an unmapped mask", Hypercall.MmuextOp(MMUEXT_TLB_FLUSH_MULTI, 0, 0x1000));
    }

    private static void Down()
    {
        if (!NeedUp()) return;
        Checks.Expect("down(1)", VcpuOp(VCPUOP_down, 1, null), 0);
        Checks.Expect("is_up(1) after down", VcpuOp(VCPUOP_is_up, 1, null), 0);
    }
}
