using Microhv.HAL;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;

namespace Microhv.Hypervisor;

/// <summary>
/// The hypercall dispatcher: number in RAX, arguments in RDI, RSI, RDX, R10, R8 (Xen's x86-64
/// convention), result back in RAX, a negative errno on failure. Every call is counted per domain.
/// A number Microhv does not implement returns -ENOSYS, like Xen does.
/// </summary>
public static class Hypercalls
{
    public static void Dispatch(Vcpu v, ref TrapFrame regs)
    {
        ulong nr = regs.Rax;
        Domain d = v.Domain;
        if (nr < Xen.NR_hypercalls) d.HypercallCounts[nr]++; else d.UnknownHypercalls++;
        if (nr == Xen.__HYPERVISOR_iret)
        {
            Iret.Do(v, ref regs);            // replaces the whole frame, RAX included
            return;
        }
        regs.Rax = (ulong)Call(v, ref regs, nr, regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8);
    }

    /// <summary>One hypercall; multicall calls this for each of its entries.</summary>
    public static long Call(Vcpu v, ref TrapFrame regs, ulong nr, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5)
    {
        switch (nr)
        {
            case Xen.__HYPERVISOR_set_trap_table: return SetTrapTable.Do(v, a1);
            case Xen.__HYPERVISOR_mmu_update: return MmuUpdate.Do(v, a1, a2, a3, a4);
            case Xen.__HYPERVISOR_set_gdt: return SetGdt.Do(v, a1, a2);
            case Xen.__HYPERVISOR_stack_switch: return StackSwitch.Do(v, a1, a2);
            case Xen.__HYPERVISOR_set_callbacks: return CallbackOp.SetCallbacks(v, a1, a2, a3);
            case Xen.__HYPERVISOR_fpu_taskswitch: return FpuTaskswitch.Do(v, a1);
            case Xen.__HYPERVISOR_sched_op_compat: return SchedOp.Compat(v, a1, a2);
            case Xen.__HYPERVISOR_update_descriptor: return UpdateDescriptor.Do(v, a1, a2);
            case Xen.__HYPERVISOR_memory_op: return MemoryOp.Do(v, a1, a2);
            case Xen.__HYPERVISOR_multicall: return Multicall.Do(v, ref regs, a1, a2);
            case Xen.__HYPERVISOR_update_va_mapping: return UpdateVaMapping.Do(v, a1, a2, a3);
            case Xen.__HYPERVISOR_set_timer_op: return Timers.SetTimerOp(v, a1);
            case Xen.__HYPERVISOR_event_channel_op_compat: return EventChannelOp.Compat(v, a1);
            case Xen.__HYPERVISOR_xen_version: return XenVersion.Do(v, a1, a2);
            case Xen.__HYPERVISOR_console_io: return ConsoleIo.Do(v, a1, a2, a3);
            case Xen.__HYPERVISOR_grant_table_op: return GrantTableOp.Do(v, a1, a2, a3);
            case Xen.__HYPERVISOR_vm_assist: return VmAssist.Do(v, a1, a2);
            case Xen.__HYPERVISOR_update_va_mapping_otherdomain: return UpdateVaMapping.OtherDomain(v, a1, a2, a3, a4);
            case Xen.__HYPERVISOR_vcpu_op: return VcpuOp.Do(v, a1, a2, a3);
            case Xen.__HYPERVISOR_set_segment_base: return SetSegmentBase.Do(v, a1, a2);
            case Xen.__HYPERVISOR_mmuext_op: return MmuExtOp.Do(v, a1, a2, a3, a4);
            case Xen.__HYPERVISOR_sched_op: return SchedOp.Do(v, a1, a2);
            case Xen.__HYPERVISOR_callback_op: return CallbackOp.Do(v, a1, a2);
            case Xen.__HYPERVISOR_event_channel_op: return EventChannelOp.Do(v, a1, a2);
            case Xen.__HYPERVISOR_physdev_op: return PhysdevOp.Do(v, a1, a2);
            default: return -Errno.ENOSYS;
        }
    }
}
