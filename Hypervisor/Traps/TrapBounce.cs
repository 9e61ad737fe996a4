using Microhv.HAL;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>
/// Xen's create_bounce_frame (xen/arch/x86/x86_64/entry.S) and pv_inject_event (pv/traps.c): an
/// exception, software interrupt, event upcall or user-mode SYSCALL is delivered to the guest
/// kernel by writing an exception frame on its stack and resuming it at the handler. The 64-bit
/// frame, from the new stack pointer up, is { RCX, R11, [error code], RIP, CS, RFLAGS, RSP, SS }:
/// CS carries the saved evtchn_upcall_mask in bits 32-39 and RFLAGS.IF reports !mask, so the
/// guest's iret can restore both.
/// </summary>
public static class TrapBounce
{
    // Xen's TBF_* (asm/domain.h): what kind of bounce this is.
    public const int TBF_EXCEPTION = 1;
    public const int TBF_EXCEPTION_ERRCODE = 2;
    public const int TBF_INTERRUPT = 8;

    public const int VectorDE = 0, VectorDB = 1, VectorNMI = 2, VectorBP = 3, VectorOF = 4, VectorBR = 5,
        VectorUD = 6, VectorNM = 7, VectorDF = 8, VectorTS = 10, VectorNP = 11, VectorSS = 12, VectorGP = 13,
        VectorPF = 14, VectorMF = 16, VectorAC = 17, VectorMC = 18, VectorXM = 19, VectorVE = 20, VectorCP = 21;

    /// <summary>Vectors whose hardware exception pushes an error code (Xen's X86_EXC_HAVE_EC).</summary>
    public const uint ExceptionsWithErrorCode = (1u << 8) | (1u << 10) | (1u << 11) | (1u << 12) | (1u << 13) |
        (1u << 14) | (1u << 17) | (1u << 21) | (1u << 29) | (1u << 30);

    /// <summary>
    /// The frame create_bounce_frame writes, lowest address first, built on the hypervisor's stack and
    /// copied to the guest's in one go. The top five words are fixed; below them come RCX, R11 and the
    /// error code, or, without an error code, RCX and R11 one slot higher (the frame is then the last
    /// seven words and Low0 is not written).
    /// </summary>
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    public struct BounceFrame
    {
        public ulong Low0, Low1, Low2, Rip, Cs, Rflags, Rsp, Ss;
    }

    /// <summary>Page-fault error code bit "the access came from user mode".</summary>
    private const ulong PfecUserMode = 1UL << 2;

    /// <summary>
    /// Delivers exception <paramref name="vector"/> to the guest's trap-table handler (pv_inject_event
    /// for a hardware exception). For #PF, <paramref name="cr2"/> goes to vcpu_info.arch.cr2 and the
    /// error code's user bit is rewritten to say guest user vs guest kernel. False when the domain was
    /// crashed instead (no handler, or the frame could not be written). Inlined into its callers; the
    /// frame itself is built by CreateBounceFrame's call.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static bool Bounce(Vcpu v, ref TrapFrame regs, int vector, bool hasErrorCode, ulong errorCode, ulong cr2)
    {
        if (vector == VectorPF) errorCode = PageFaultErrorCode(v, errorCode, cr2);
        return BounceThroughTrapTable(v, ref regs, vector, hasErrorCode, errorCode, false);
    }

    /// <summary>The trap entry's plain bounce (an exception with nothing to emulate, never #PF): as
    /// <see cref="Bounce"/>, with the frame built in the caller's own frame (the hot path of a guest
    /// exception is then one C# frame, the trap entry's).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static bool BounceException(Vcpu v, ref TrapFrame regs, int vector, bool hasErrorCode, ulong errorCode)
        => BounceThroughTrapTable(v, ref regs, vector, hasErrorCode, errorCode, true);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static bool BounceThroughTrapTable(Vcpu v, ref TrapFrame regs, int vector, bool hasErrorCode, ulong errorCode, bool frameInline)
    {
        if ((uint)vector > 255) { v.Domain.Crash("bounce of an invalid vector"); return false; }
        ref TrapInfo ti = ref v.TrapTable[vector];
        ulong handler = ti.Address;
        if (handler == 0)
        {
            CrashNoHandler(v, ref regs, vector);
            return false;
        }
        int flags = TBF_EXCEPTION;
        if (hasErrorCode) flags |= TBF_EXCEPTION_ERRCODE;
        if (ArchX86.TI_GET_IF(ti.Flags)) flags |= TBF_INTERRUPT;
        return frameInline ? PushBounceFrame(v, ref regs, handler, flags, errorCode) : CreateBounceFrame(v, ref regs, handler, flags, errorCode);
    }

    /// <summary>#PF: the faulting address goes to vcpu_info.arch.cr2 and the error code's user bit says
    /// guest user vs guest kernel (the CPU saw ring 3 for both).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static ulong PageFaultErrorCode(Vcpu v, ulong errorCode, ulong cr2)
    {
        SetCr2(v, cr2);
        errorCode &= ~PfecUserMode;
        return v.KernelMode ? errorCode : errorCode | PfecUserMode;
    }

    /// <summary>A software interrupt (INT n allowed by the trap table's DPL): no error code; regs.Rip
    /// must already point past the INT instruction.</summary>
    public static bool BounceSoftwareInterrupt(Vcpu v, ref TrapFrame regs, int vector)
    {
        TrapInfo ti = v.TrapTable[vector & 255];
        if (ti.Address == 0)
        {
            CrashNoHandler(v, ref regs, vector);
            return false;
        }
        int flags = TBF_EXCEPTION;
        if (ArchX86.TI_GET_IF(ti.Flags)) flags |= TBF_INTERRUPT;
        return CreateBounceFrame(v, ref regs, ti.Address, flags, 0);
    }

    /// <summary>
    /// Xen's test_guest_events: the kernel calls this before every return to the guest. When an event
    /// is pending in vcpu_info and delivery is not masked, the guest is bounced to its event callback
    /// with events masked. True when an upcall was delivered.
    /// </summary>
    public static bool DeliverEventUpcall(Vcpu v, ref TrapFrame regs)
        => UpcallDeliverable(v) && CreateBounceFrame(v, ref regs, v.EventCallback, TBF_INTERRUPT, 0);

    /// <summary>The common exit's upcall to a vCPU in guest kernel mode (GuestEntry.Exit): the frame is
    /// built in the exit's own frame.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static bool DeliverEventUpcallInline(Vcpu v, ref TrapFrame regs)
        => PushBounceFrame(v, ref regs, v.EventCallback, TBF_INTERRUPT, 0);

    /// <summary>An event is pending in vcpu_info, delivery is not masked and the guest has a callback.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static bool UpcallDeliverable(Vcpu v)
    {
        if (!v.Domain.IsAlive || v.EventCallback == 0) return false;
        ulong info = VcpuInfo.Address(v);
        if (info == 0) return false;
        // evtchn_upcall_pending and evtchn_upcall_mask are adjacent bytes: one read.
        ushort w = v.Domain.Machine.Memory.Read16(info + SharedInfo.evtchn_upcall_pending);
        return (w & 0xFF) != 0 && (w >> 8) == 0;
    }

    /// <summary>
    /// Xen's switch_to_kernel: a SYSCALL from guest user space goes to the guest kernel's syscall
    /// callback (masking events if it was registered with CALLBACKF_mask_events), with RFLAGS.DF cleared.
    /// </summary>
    public static bool SyscallFromUser(Vcpu v, ref TrapFrame regs)
    {
        if (v.SyscallCallback == 0)
        {
            // Xen turns a SYSCALL with no callback into #UD at the SYSCALL instruction (2 bytes back).
            regs.Rip -= 2;
            return Bounce(v, ref regs, VectorUD, false, 0, 0);
        }
        int flags = v.SyscallMasksEvents ? TBF_INTERRUPT : 0;
        if (!CreateBounceFrame(v, ref regs, v.SyscallCallback, flags, 0)) return false;
        regs.Rflags &= ~ArchX86.X86_EFLAGS_DF;
        return true;
    }

    /// <summary>
    /// create_bounce_frame: switch to guest kernel mode (and its stack) if the guest was in user mode,
    /// push the frame, and point the registers at <paramref name="handler"/> on FLAT_KERNEL_CS. A stack
    /// in the hypervisor's hole or a frame that faults crashes the domain, as Xen does.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    public static bool CreateBounceFrame(Vcpu v, ref TrapFrame regs, ulong handler, int flags, ulong errorCode)
        => PushBounceFrame(v, ref regs, handler, flags, errorCode);

    /// <summary>CreateBounceFrame's body, inlined where the bounce is the hot path (a plain exception,
    /// an upcall on the common exit).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    [System.Runtime.CompilerServices.SkipLocalsInit]        // the frame struct is filled before it is copied
    private static bool PushBounceFrame(Vcpu v, ref TrapFrame regs, ulong handler, int flags, ulong errorCode)
    {
        Domain d = v.Domain;
        if (handler == 0) { d.Crash("bounce to a null handler"); return false; }
        ulong cs = regs.Cs & 0xFFFF;
        ulong sp;
        bool toggled = !v.KernelMode;
        if (toggled)
        {
            ToggleGuestMode(v);
            sp = v.KernelSp;
        }
        else
        {
            sp = regs.Rsp;
            cs &= ~3UL;                          // RPL 0 in the saved CS tells the guest "from kernel"
        }
        sp &= ~0xFUL;                            // frames are 16-byte aligned
        // The stack must lie in the lower half, or above the hypervisor's range plus a frame.
        if (sp > Xen.HYPERVISOR_VIRT_START && sp < Xen.HYPERVISOR_VIRT_END + 8 * 8)
        {
            if (toggled) ToggleGuestMode(v);
            d.Crash("bounce frame: guest stack pointer in the hypervisor's range");
            return false;
        }

        ulong info = VcpuInfo.Address(v);
        PhysicalMemory mem = d.Machine.Memory;
        ulong savedMask = info == 0 ? 1UL : mem.Read8(info + SharedInfo.evtchn_upcall_mask);

        BounceFrame f;
        f.Rip = regs.Rip;
        f.Cs = cs | (savedMask << 32);
        ulong rflags = regs.Rflags & ~(ArchX86.X86_EFLAGS_IF | ArchX86.X86_EFLAGS_IOPL);
        if (savedMask == 0) rflags |= ArchX86.X86_EFLAGS_IF;
        if ((d.VmAssist & (1UL << Xen.VMASST_TYPE_architectural_iopl)) != 0) rflags |= ((ulong)v.Iopl & 3) << 12;
        f.Rflags = rflags;
        f.Rsp = regs.Rsp;
        f.Ss = regs.Ss & 0xFFFF;
        ulong frame;
        bool ok;
        if ((flags & TBF_EXCEPTION_ERRCODE) != 0)
        {
            f.Low0 = regs.Rcx;
            f.Low1 = regs.R11;
            f.Low2 = errorCode & 0xFFFF_FFFF;
            frame = sp - 8 * 8;
            ok = GuestMemory.WriteU64s(v, frame, ref f.Low0, 8);
        }
        else
        {
            f.Low1 = regs.Rcx;
            f.Low2 = regs.R11;
            frame = sp - 7 * 8;
            ok = GuestMemory.WriteU64s(v, frame, ref f.Low1, 7);
        }
        if (!ok)
        {
            d.Crash("bounce frame: fault writing the guest kernel stack");
            return false;
        }

        if ((flags & TBF_INTERRUPT) != 0 && info != 0) mem.Write8(info + SharedInfo.evtchn_upcall_mask, 1);

        // IA32 semantics of a trap: TF, VM, RF, NT cleared; AC too, so the kernel is not alignment-checked.
        regs.Rflags = (regs.Rflags & ~(ArchX86.X86_EFLAGS_AC | ArchX86.X86_EFLAGS_VM | ArchX86.X86_EFLAGS_RF |
                         ArchX86.X86_EFLAGS_NT | ArchX86.X86_EFLAGS_TF)) | ArchX86.X86_EFLAGS_IF | ArchX86.X86_EFLAGS_MBS;
        regs.Ss = Xen.FLAT_KERNEL_SS64;
        regs.Rsp = frame;
        regs.Cs = Xen.FLAT_KERNEL_CS64;
        regs.Rip = handler;
        return true;
    }

    /// <summary>
    /// Xen's toggle_guest_mode: flips between guest kernel and guest user, which swaps the active GS
    /// base (the one being left is read back from the CPU first; the exit loads the other) and the
    /// page-table base. The FS base is left as it is.
    /// </summary>
    public static void ToggleGuestMode(Vcpu v)
    {
        SegmentBases.LeaveMode(v);
        v.KernelMode = !v.KernelMode;
        ulong root = v.KernelMode || v.GuestTableUser == 0 ? v.GuestTable : v.GuestTableUser;
        if (root != 0) v.Domain.Machine.Host.LoadPageTableBase(root);
    }

    /// <summary>vcpu_info.arch.cr2: where a PV guest reads the faulting address of its last #PF.</summary>
    public static void SetCr2(Vcpu v, ulong cr2)
    {
        ulong info = VcpuInfo.Address(v);
        if (info != 0) v.Domain.Machine.Memory.Write64(info + SharedInfo.arch_cr2, cr2);
    }

    public static ulong GetCr2(Vcpu v)
    {
        ulong info = VcpuInfo.Address(v);
        return info == 0 ? 0 : v.Domain.Machine.Memory.Read64(info + SharedInfo.arch_cr2);
    }

    private static void CrashNoHandler(Vcpu v, ref TrapFrame regs, int vector)
    {
        // A fixed message: no string building is allowed here; the kernel's crash report prints rip.
        v.Domain.Crash(NoHandlerReason(vector));
    }

    /// <summary>A constant reason per common vector so the crash report names it without formatting.</summary>
    private static string NoHandlerReason(int vector)
    {
        switch (vector)
        {
            case VectorDE: return "fatal #DE (vector 0): no guest handler";
            case VectorDB: return "fatal #DB (vector 1): no guest handler";
            case VectorBP: return "fatal #BP (vector 3): no guest handler";
            case VectorOF: return "fatal #OF (vector 4): no guest handler";
            case VectorUD: return "fatal #UD (vector 6): no guest handler";
            case VectorNM: return "fatal #NM (vector 7): no guest handler";
            case VectorGP: return "fatal #GP (vector 13): no guest handler";
            case VectorPF: return "fatal #PF (vector 14): no guest handler";
            case VectorMF: return "fatal #MF (vector 16): no guest handler";
            case VectorAC: return "fatal #AC (vector 17): no guest handler";
            case VectorXM: return "fatal #XM (vector 19): no guest handler";
        }
        return "fatal trap or INT n: no guest handler for the vector";
    }
}
