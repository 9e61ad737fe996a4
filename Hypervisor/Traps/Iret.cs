using Microhv.HAL;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>
/// HYPERVISOR_iret (Xen's do_iret, pv/iret.c): a 64-bit PV kernel runs in ring 3 and cannot IRETQ
/// to its user space or restore its event mask itself, so it pushes an iret_context
/// {rax, r11, rcx, flags, rip, cs, rflags, rsp, ss} and asks the hypervisor to return through it.
/// Like Xen's, it does not check the CS, SS or RIP it is given: a frame the CPU refuses makes the exit's
/// IRETQ fault, and that fault is the guest's own exception at the target (ExitFault).
/// </summary>
public static class Iret
{
    /// <summary>Xen's struct iret_context (xen-x86_64.h), field for field: read from the guest stack in one copy.</summary>
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    public struct IretContext
    {
        public ulong Rax, R11, Rcx, Flags, Rip, Cs, Rflags, Rsp, Ss;
    }

    /// <summary>Replaces the whole frame (RAX included); a frame that cannot be read crashes the domain.
    /// Inlined into the hypercall table's entry; the context is not zeroed first (the copy fills it).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    [System.Runtime.CompilerServices.SkipLocalsInit]
    public static void Do(Vcpu v, ref TrapFrame regs)
    {
        Domain d = v.Domain;
        ulong sp = regs.Rsp;
        System.Runtime.CompilerServices.Unsafe.SkipInit(out IretContext c);
        if (!GuestMemory.ReadU64s(v, sp, ref c.Rax, ArchX86.iret_context_size / 8))
        {
            d.Crash("iret: fault reading the iret context from the guest stack");
            return;
        }
        ulong cs = c.Cs, rflags = c.Rflags;

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

        regs.Rip = c.Rip;
        regs.Cs = (cs | 3) & 0xFFFF;                // the selector only: bits 32+ carry the saved mask
        regs.Rflags = (rflags & ~(ArchX86.X86_EFLAGS_IOPL | ArchX86.X86_EFLAGS_VM)) | ArchX86.X86_EFLAGS_IF | ArchX86.X86_EFLAGS_MBS;
        regs.Rsp = c.Rsp;
        regs.Ss = (c.Ss | 3) & 0xFFFF;
        if ((c.Flags & ArchX86.VGCF_in_syscall) == 0)
        {
            regs.R11 = c.R11;
            regs.Rcx = c.Rcx;
        }
        else
        {
            // Xen leaves through SYSRET here when the RIP is canonical (restore_all_guest), which reloads
            // RIP from RCX, RFLAGS from R11 and the flat ring-3 selectors whatever the context said
            // (SYSRETL, to 32-bit code at RIP's low half, when its CS was FLAT_RING3_CS32): the frame
            // says the same. With a non-canonical RIP Xen's IRETQ faults (ExitFault), as ours does.
            regs.Rcx = c.Rip;
            if (PageTableEntry.IsCanonical(c.Rip))
            {
                if (regs.Cs == Xen.FLAT_RING3_CS32) regs.Rip = (uint)c.Rip;
                else regs.Cs = Xen.FLAT_RING3_CS64;
                regs.Ss = Xen.FLAT_RING3_SS64;
            }
            regs.R11 = regs.Rflags;
        }

        // Events come back on exactly when the frame's RFLAGS.IF says so.
        ulong info = VcpuInfo.Address(v);
        if (info != 0) d.Machine.Memory.Write8(info + SharedInfo.evtchn_upcall_mask, (byte)((rflags & ArchX86.X86_EFLAGS_IF) != 0 ? 0 : 1));

        regs.Rax = c.Rax;
    }
}
