namespace Microhv.Guests.PvOps;

/// <summary>
/// The Xen hypercall API backend (a ring-3 PV guest): events masked in vcpu_info, page tables
/// read-only and pinned, PTE writes through mmu_update, CR3 through mmuext_op, the timer through
/// set_timer_op and VIRQ_TIMER upcalls. Under the native shim the same code runs with its
/// hypercall page pointing into Shim.cs instead of at `syscall`.
/// </summary>
public static unsafe class HypercallBackend
{
    public static uint TimerPort;
    private const ulong VCPUOP_stop_periodic_timer = 7;

    // Lazy MMU mode: page-table writes queue here and go to the hypervisor in one mmu_update on
    // leaving (or when full), as Linux's Xen backend batches them into a multicall.
    private const int QueueSize = 512;
    private struct Queue { public fixed ulong Requests[QueueSize * 2]; }
    private static Queue s_queue;
    private static int s_queued;
    private static bool s_lazy;

    public static void Bind()
    {
        Paravirt.Bind(VmiCall.DisableInterrupts, (delegate*<void>)&IrqDisable, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.EnableInterrupts, (delegate*<void>)&IrqEnable, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.GetInterruptMask, (delegate*<ulong>)&SaveFl, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.Halt, (delegate*<void>)&SafeHalt, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.AllocatePage, (delegate*<ulong, ulong, long>)&AllocPt, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.ReleasePage, (delegate*<ulong, ulong, long>)&ReleasePt, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.SetPTE, (delegate*<ulong, ulong, long>)&SetEntry, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.SetPDE, (delegate*<ulong, ulong, long>)&SetEntry, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.SetPDPTE, (delegate*<ulong, ulong, long>)&SetEntry, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.SetPML4E, (delegate*<ulong, ulong, long>)&SetEntry, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.SetCR3, (delegate*<ulong, long>)&WriteCr3, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.InvalPage, (delegate*<ulong, long>)&FlushTlbOne, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.FlushTLB, (delegate*<ulong, long>)&FlushTlb, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.SetLazyMode, (delegate*<ulong, long>)&LazyMmu, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.GetTime, (delegate*<ulong>)&TimeNs, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.SetTimer, (delegate*<ulong, long>)&SetTimer, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.ConsoleWrite, (delegate*<byte*, ulong, void>)&ConsoleWrite, Paravirt.HowCall);
        PvOps.UpdateVaOp = &UpdateVa;
        PvOps.NullCallOp = &NullCall;
        PvOps.ShutdownOp = &Shutdown;
        PvOps.VirtToMachineOp = &VirtToMachine;
        PvOps.TimerTicksOp = &TimerTicks;
        if (Guest.SharedInfo != null) PvOps.TscPerMs = TscPerMsFromTimeInfo();
    }

    /// <summary>The TSC rate the hypervisor publishes: ns = ((tsc shifted by tsc_shift) * mul) >> 32, solved for one ms.</summary>
    private static ulong TscPerMsFromTimeInfo()
    {
        byte* t = Guest.VcpuInfo + Xen.VI_time;
        ulong mul = Cpu.Load32(t + Xen.TI_mul);
        sbyte shift = (sbyte)Cpu.Load8(t + Xen.TI_shift);
        if (mul == 0) return 1;
        ulong perMs = (1000000UL << 32) / mul;
        perMs = shift >= 0 ? perMs >> shift : perMs << -shift;
        return perMs == 0 ? 1 : perMs;
    }

    /// <summary>Event delivery for the timer: bind VIRQ_TIMER and register the upcall (Common/guest.asm).</summary>
    public static long SetUpEvents()
    {
        uint* bind = stackalloc uint[3];
        bind[0] = Xen.VIRQ_TIMER; bind[1] = 0; bind[2] = 0;
        long rc = Hypercall.EventChannelOp(Xen.EVTCHNOP_bind_virq, bind);
        if (rc != 0) return rc;
        TimerPort = bind[2];
        // Xen gives a PV vCPU a 10 ms periodic VIRQ_TIMER by default; the workload wants only the
        // one-shot timer it sets (as Linux stops it). The shim has no periodic timer to stop.
        Hypercall.Call3(Xen.vcpu_op, VCPUOP_stop_periodic_timer, 0, 0);
        // struct callback_register { u16 type; u16 flags; u32 pad; unsigned long address; }
        ulong* reg = stackalloc ulong[2];
        reg[0] = Xen.CALLBACKTYPE_event;
        reg[1] = Cpu.Symbol(Cpu.SymEventCallback);
        rc = Hypercall.Call2(Xen.callback_op, Xen.CALLBACKOP_register, (ulong)reg);
        if (rc != 0) return rc;
        reg[0] = Xen.CALLBACKTYPE_failsafe;
        reg[1] = Cpu.Symbol(Cpu.SymFailsafeCallback);
        return Hypercall.Call2(Xen.callback_op, Xen.CALLBACKOP_register, (ulong)reg);
    }

    private static void IrqDisable() => Cpu.Store8(Guest.VcpuInfo + Xen.VI_upcall_mask, 1);
    private static void IrqEnable() => Events.SetUpcallMask(false);
    private static ulong SaveFl() => Cpu.Load8(Guest.VcpuInfo + Xen.VI_upcall_mask) == 0 ? 0x200UL : 0;

    /// <summary>SCHEDOP_block unmasks events and sleeps until one is pending, like sti;hlt.</summary>
    private static void SafeHalt() => Hypercall.SchedOp(Xen.SCHEDOP_block, null);

    public static ulong VirtToMachine(ulong va) => Guest.MfnOf((void*)va) << 12;

    /// <summary>A page table may have no writable mapping: make it read-only, then pin it at its level.</summary>
    private static long AllocPt(ulong level, ulong va)
    {
        long rc = FlushQueue();
        if (rc == 0) rc = Guest.MakeReadOnly((void*)va);
        if (rc != 0) return rc;
        return Hypercall.MmuextOp(Xen.MMUEXT_PIN_L1_TABLE + (uint)level - 1, Guest.MfnOf((void*)va), 0);
    }

    private static long ReleasePt(ulong level, ulong va)
    {
        long rc = FlushQueue();
        if (rc == 0) rc = Hypercall.MmuextOp(Xen.MMUEXT_UNPIN_TABLE, Guest.MfnOf((void*)va), 0);
        if (rc != 0) return rc;
        return Guest.MakeWritable((void*)va);
    }

    private static long SetEntry(ulong maddr, ulong v)
    {
        ulong ptr = maddr | Xen.MMU_NORMAL_PT_UPDATE;
        if (s_lazy)
        {
            if (s_queued == QueueSize)
            {
                long rc = FlushQueue();
                if (rc != 0) return rc;
            }
            fixed (ulong* q = s_queue.Requests) { q[2 * s_queued] = ptr; q[2 * s_queued + 1] = v; }
            s_queued++;
            return 0;
        }
        ulong* req = stackalloc ulong[2];
        req[0] = ptr;
        req[1] = v;
        uint done = 0;
        return Hypercall.MmuUpdate(req, 1, &done);
    }

    /// <summary>Leaving lazy mode returns the flush's result: the queued writes' only error report.</summary>
    private static long LazyMmu(ulong mode)
    {
        if (mode != 0) { s_lazy = true; return 0; }
        s_lazy = false;
        return FlushQueue();
    }

    /// <summary>One mmu_update for everything queued; the queue is empty afterwards even if it failed.</summary>
    private static long FlushQueue()
    {
        if (s_queued == 0) return 0;
        uint count = (uint)s_queued, done = 0;
        s_queued = 0;
        fixed (ulong* q = s_queue.Requests) return Hypercall.MmuUpdate(q, count, &done);
    }

    // Operations that depend on earlier page-table writes see the queue flushed first.
    private static long WriteCr3(ulong maddr)
    {
        long rc = FlushQueue();
        return rc != 0 ? rc : Hypercall.MmuextOp(Xen.MMUEXT_NEW_BASEPTR, maddr >> 12, 0);
    }

    private static long FlushTlbOne(ulong va)
    {
        long rc = FlushQueue();
        return rc != 0 ? rc : Hypercall.MmuextOp(Xen.MMUEXT_INVLPG_LOCAL, va, 0);
    }

    private static long FlushTlb(ulong flags)
    {
        long rc = FlushQueue();
        return rc != 0 ? rc : Hypercall.MmuextOp(Xen.MMUEXT_TLB_FLUSH_LOCAL, 0, 0);
    }
    private static long UpdateVa(ulong va, ulong pte) => Hypercall.UpdateVaMapping(va, pte, Xen.UVMF_INVLPG);
    private static ulong TimeNs() => Guest.SystemTime(out _);
    private static long SetTimer(ulong deadline) => Hypercall.Call1(Xen.set_timer_op, deadline);
    private static long NullCall() => Hypercall.XenVersion(Xen.XENVER_version, null);
    private static ulong TimerTicks() => Events.CountOf(TimerPort);

    private static void ConsoleWrite(byte* text, ulong count)
    {
        for (ulong i = 0; i < count; i++) XenConsole.Put(text[i]);
    }

    private static void Shutdown(uint reason) => Hypercall.Shutdown(reason);
}
