using System.Runtime.InteropServices;

namespace Microhv.Guests.PvOps;

/// <summary>
/// Backend 4, the native shim: on bare metal, the Xen hypercall API implemented in ring 0 inside
/// the guest image, so the hypercall backend runs unchanged with its hypercall page pointing here.
/// It trusts its one guest (no validation): machine addresses are physical, pinning is a no-op,
/// mmu_update writes through the direct map, events are the PIT's IRQ 0 reflected as VIRQ_TIMER
/// upcalls in Xen's bounce-frame format.
/// </summary>
public static unsafe class Shim
{
    public const uint TimerPort = 1;
    private const ulong Shared = 159, StartInfoPage = 158;   // pool pages the shim owns
    private static byte* s_sharedInfo;
    private static ulong s_eventCallback;
    private struct Handlers { public fixed ulong Address[32]; }
    private static Handlers s_traps;

    /// <summary>Builds a start_info as a Xen loader would and fills the hypercall page; returns the start_info.</summary>
    public static byte* Start(GuestLayout* layout, byte* cmdline)
    {
        byte* si = (byte*)(layout->PagesStart + StartInfoPage * 4096);
        s_sharedInfo = (byte*)(layout->PagesStart + Shared * 4096);
        string magic = "xen-3.0-x86_64";
        for (int i = 0; i < magic.Length; i++) si[i] = (byte)magic[i];
        *(ulong*)(si + Xen.SI_nr_pages) = 4096;
        *(ulong*)(si + Xen.SI_shared_info) = NativeBackend.VirtToMachine((ulong)s_sharedInfo);
        *(uint*)(si + Xen.SI_flags) = Xen.SIF_PRIVILEGED | Xen.SIF_INITDOMAIN;
        *(ulong*)(si + Xen.SI_pt_base) = NativeCpu.VirtBase + NativeCpu.ReadCr3();
        *(ulong*)(si + Xen.SI_mfn_list) = NativeCpu.VirtBase + NativeCpu.BootM2p();   // identity
        for (int i = 0; i < 1023 && cmdline != null && cmdline[i] != 0; i++) si[Xen.SI_cmd_line + i] = cmdline[i];
        // vcpu_time_info: ns = (tsc << shift) * mul >> 32, system time 0 at TSC 0.
        byte* t = s_sharedInfo + Xen.VI_time;
        ulong hz = Hardware.TscPerMs * 1000;
        int shift = 0;
        ulong mul = (1000000000UL << 32) / hz;
        while (mul > 0xFFFFFFFF && shift < 31) { shift++; mul = (1000000000UL << 32) / (hz << shift); }
        *(uint*)(t + Xen.TI_version) = 2;
        *(uint*)(t + Xen.TI_mul) = (uint)mul;
        *(sbyte*)(t + Xen.TI_shift) = (sbyte)shift;
        *(s_sharedInfo + Xen.VI_upcall_mask) = 1;
        NativeCpu.SetShimVcpuInfo((ulong)s_sharedInfo);
        NativeCpu.FillHypercallPage();
        NativeTraps.ShimMode = true;
        return si;
    }

    [UnmanagedCallersOnly(EntryPoint = "pvops_shim_dispatch")]
    private static long Entry(ulong nr, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => Dispatch(nr, a1, a2, a3, a4, a5);

    public static long Dispatch(ulong nr, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5)
    {
        switch (nr)
        {
            case Xen.xen_version: return a1 == Xen.XENVER_version ? (4L << 16) | 17 : 0;
            case Xen.console_io: Hardware.SerialWrite((byte*)a3, a2); return 0;
            case Xen.set_trap_table: return SetTrapTable((ulong*)a1);
            case Xen.callback_op: return CallbackOp(a1, (ulong*)a2);
            case Xen.event_channel_op: return EventChannelOp(a1, (uint*)a2);
            case Xen.set_timer_op: return Hardware.SetTimer(a1);
            case Xen.sched_op: return SchedOp(a1, (uint*)a2);
            case Xen.update_va_mapping: return NativeBackend.UpdateVa(a1, a2);
            case Xen.mmu_update: return MmuUpdate((ulong*)a1, (uint)a2, (uint*)a3);
            case Xen.mmuext_op: return MmuextOp((ulong*)a1, (uint)a2, (uint*)a3);
            default: return -Xen.ENOSYS;
        }
    }

    /// <summary>The L1 entry that maps <paramref name="va"/> in the current tables, through the direct map; null for a large page.</summary>
    public static ulong* WalkToPte(ulong va)
    {
        ulong table = NativeCpu.ReadCr3() & Xen.PTE_MFN_MASK;
        for (int level = 4; level > 1; level--)
        {
            ulong e = NativeCpu.Direct(table)[(va >> (12 + 9 * (level - 1))) & 511];
            if ((e & Xen._PAGE_PRESENT) == 0 || (e & Xen._PAGE_PSE) != 0) return null;
            table = e & Xen.PTE_MFN_MASK;
        }
        return NativeCpu.Direct(table) + ((va >> 12) & 511);
    }

    private static long MmuUpdate(ulong* req, uint count, uint* done)
    {
        uint i = 0;
        for (; i < count; i++)
        {
            if ((req[2 * i] & 3) != Xen.MMU_NORMAL_PT_UPDATE) return -Xen.ENOSYS;
            *NativeCpu.Direct(req[2 * i] & ~7UL) = req[2 * i + 1];
        }
        if (done != null) *done = i;
        return 0;
    }

    private static long MmuextOp(ulong* ops, uint count, uint* done)
    {
        for (uint i = 0; i < count; i++)
        {
            ulong* op = ops + 3 * i;
            switch ((uint)op[0])
            {
                case Xen.MMUEXT_PIN_L1_TABLE: case Xen.MMUEXT_PIN_L2_TABLE: case Xen.MMUEXT_PIN_L3_TABLE:
                case Xen.MMUEXT_PIN_L4_TABLE: case Xen.MMUEXT_UNPIN_TABLE: break;   // nothing to validate
                case Xen.MMUEXT_NEW_BASEPTR: NativeCpu.WriteCr3(op[1] << 12); break;
                case Xen.MMUEXT_TLB_FLUSH_LOCAL: case Xen.MMUEXT_TLB_FLUSH_ALL: NativeCpu.WriteCr3(NativeCpu.ReadCr3()); break;
                case Xen.MMUEXT_INVLPG_LOCAL: case Xen.MMUEXT_INVLPG_ALL: NativeCpu.Invlpg(op[1]); break;
                default: return -Xen.ENOSYS;
            }
        }
        if (done != null) *done = count;
        return 0;
    }

    private static long SetTrapTable(ulong* table)
    {
        fixed (ulong* h = s_traps.Address)
        {
            for (int v = 0; v < 32; v++) h[v] = 0;
            for (int i = 0; table != null && i < 256 && table[2 * i + 1] != 0; i++)
            {
                ulong vector = table[2 * i] & 0xFF;
                if (vector < 32) h[vector] = table[2 * i + 1];
            }
        }
        return 0;
    }

    private static long CallbackOp(ulong cmd, ulong* reg)
    {
        if (cmd != Xen.CALLBACKOP_register) return -Xen.ENOSYS;
        if ((reg[0] & 0xFFFF) == Xen.CALLBACKTYPE_event) s_eventCallback = reg[1];
        return 0;
    }

    private static long EventChannelOp(ulong cmd, uint* arg)
    {
        if (cmd == Xen.EVTCHNOP_bind_virq && arg[0] == Xen.VIRQ_TIMER) { arg[2] = TimerPort; return 0; }
        if (cmd == Xen.EVTCHNOP_send) return 0;
        return -Xen.ENOSYS;
    }

    private static long SchedOp(ulong cmd, uint* arg)
    {
        if (cmd == Xen.SCHEDOP_shutdown) { Hardware.Exit(arg[0] == Xen.SHUTDOWN_poweroff ? 0U : 1U); return 0; }
        if (cmd == Xen.SCHEDOP_yield) return 0;
        if (cmd != Xen.SCHEDOP_block) return -Xen.ENOSYS;
        // Unmask and sleep until an event is pending; the IRQ delivers the upcall from inside hlt.
        *(s_sharedInfo + Xen.VI_upcall_mask) = 0;
        if (Cpu.Load8(s_sharedInfo + Xen.VI_upcall_pending) == 0) { NativeCpu.SafeHalt(); NativeCpu.Cli(); }
        return 0;
    }

    /// <summary>IRQ 0 under the shim: VIRQ_TIMER becomes pending; unmasked, the upcall runs now.</summary>
    public static void RaiseTimerEvent(TrapFrame* f)
    {
        ((ulong*)(s_sharedInfo + Xen.SH_evtchn_pending))[0] |= 1UL << (int)TimerPort;
        *(ulong*)(s_sharedInfo + Xen.VI_pending_sel) |= 1;
        *(s_sharedInfo + Xen.VI_upcall_pending) = 1;
        DeliverEvent(f);
    }

    private static void DeliverEvent(TrapFrame* f)
    {
        if (s_eventCallback == 0 || *(s_sharedInfo + Xen.VI_upcall_mask) != 0 || *(s_sharedInfo + Xen.VI_upcall_pending) == 0) return;
        *(s_sharedInfo + Xen.VI_upcall_mask) = 1;
        f->Rflags |= 0x200;     // the guest's virtual IF was set: its iret unmasks again
        NativeCpu.SetBounce(s_eventCallback, 0);
    }

    /// <summary>An exception or the event vector (0x81, raised on hypercall return) for the guest; false if it has no handler.</summary>
    public static bool DeliverTrap(TrapFrame* f)
    {
        if (f->Vector == 0x81) { DeliverEvent(f); return true; }
        if (f->Vector >= 32) return false;
        ulong handler;
        fixed (ulong* h = s_traps.Address) handler = h[f->Vector];
        if (handler == 0) return false;
        ulong v = f->Vector;
        bool hasError = v == 8 || (v >= 10 && v <= 14) || v == 17;
        NativeCpu.SetBounce(handler, hasError ? 1UL : 0UL);
        return true;
    }
}
