using System.Runtime.InteropServices;

namespace Microhv.Kernel.Traps;

/// <summary>The frame Boot/traps.asm builds on every interrupt or exception: the general registers
/// it pushes, the vector and error code, then what the CPU pushed.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TrapFrame
{
    public ulong R15, R14, R13, R12, R11, R10, R9, R8, Rbp, Rdi, Rsi, Rdx, Rcx, Rbx, Rax;
    public ulong Vector, ErrorCode;
    public ulong Rip, Cs, Rflags, Rsp, Ss;
}
