using System.Runtime.InteropServices;

namespace Microhv.HAL;

/// <summary>
/// The register frame of an interrupted context, as Boot/traps.asm and Boot/entry.asm build it:
/// the general registers they push, the vector and error code, then what the CPU pushes
/// (RIP, CS, RFLAGS, RSP, SS). A paused guest vCPU keeps its registers in the same layout.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct TrapFrame
{
    public ulong R15, R14, R13, R12, R11, R10, R9, R8, Rbp, Rdi, Rsi, Rdx, Rcx, Rbx, Rax;
    public ulong Vector, ErrorCode;
    public ulong Rip, Cs, Rflags, Rsp, Ss;

    public const int Size = 22 * 8;
    /// <summary>Vector number the syscall entry stub records (not a hardware vector).</summary>
    public const ulong SyscallVector = 0x100;
    /// <summary>Set in <see cref="Vector"/> (beside the hardware vector) by the exit stub for a guest trap
    /// that the exit's own IRETQ raised (Boot/traps.asm exit_iretq_faulted; Hypervisor/Traps/ExitFault.cs).</summary>
    public const ulong ExitFaultFlag = 0x200;

    /// <summary>Requested privilege level of the interrupted code segment.</summary>
    public int Ring => (int)(Cs & 3);
}
