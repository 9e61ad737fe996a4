using Microhv.HAL;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>
/// HYPERVISOR_iret (Xen's do_iret, pv/iret.c): a 64-bit PV kernel runs in ring 3 and cannot IRETQ
/// to its user space or restore its event mask itself, so it pushes an iret_context
/// {rax, r11, rcx, flags, rip, cs, rflags, rsp, ss} and asks the hypervisor to return through it.
/// </summary>
public static class Iret
{
    /// <summary>Replaces the whole frame (RAX included); a frame that cannot be read crashes the domain.</summary>
    public static void Do(Vcpu v, ref TrapFrame regs)
    {
        Domain d = v.Domain;
        ulong sp = regs.Rsp;
        ulong[] w = v.StackWords;
        if (!GuestMemory.ReadU64s(v, sp, w, ArchX86.iret_context_size / 8))
        {
            d.Crash("iret: fault reading the iret context from the guest stack");
            return;
        }
        ulong rax = w[ArchX86.iret_rax / 8], r11 = w[ArchX86.iret_r11 / 8], rcx = w[ArchX86.iret_rcx / 8];
        ulong flags = w[ArchX86.iret_flags / 8], rip = w[ArchX86.iret_rip / 8], cs = w[ArchX86.iret_cs / 8];
        ulong rflags = w[ArchX86.iret_rflags / 8], rsp = w[ArchX86.iret_rsp / 8], ss = w[ArchX86.iret_ss / 8];

        // RPL 3 in the saved CS means "back to guest user space": switch page tables and GS base.
        if ((cs & 3) == 3)
        {
            if (v.GuestTableUser == 0)
            {
                d.Crash("iret: switching to user mode with no user page tables");
                return;
            }
            if (v.KernelMode) TrapBounce.ToggleGuestMode(v);
        }

        if ((d.VmAssist & (1UL << Xen.VMASST_TYPE_architectural_iopl)) != 0)
            v.Iopl = (int)((rflags & ArchX86.X86_EFLAGS_IOPL) >> 12);

        regs.Rip = rip;
        regs.Cs = (cs | 3) & 0xFFFF;                // the selector only: bits 32+ carry the saved mask
        regs.Rflags = (rflags & ~(ArchX86.X86_EFLAGS_IOPL | ArchX86.X86_EFLAGS_VM)) | ArchX86.X86_EFLAGS_IF | ArchX86.X86_EFLAGS_MBS;
        regs.Rsp = rsp;
        regs.Ss = (ss | 3) & 0xFFFF;
        if ((flags & ArchX86.VGCF_in_syscall) == 0)
        {
            regs.R11 = r11;
            regs.Rcx = rcx;
        }
        else
        {
            // Xen leaves through SYSRET here, which reloads RIP from RCX and RFLAGS from R11.
            regs.Rcx = regs.Rip;
            regs.R11 = regs.Rflags;
        }

        // Events come back on exactly when the frame's RFLAGS.IF says so.
        ulong info = VcpuInfo.Address(v);
        if (info != 0) d.Machine.Memory.Write8(info + SharedInfo.evtchn_upcall_mask, (byte)((rflags & ArchX86.X86_EFLAGS_IF) != 0 ? 0 : 1));

        regs.Rax = rax;
    }
}
