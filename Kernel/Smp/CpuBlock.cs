using System.Runtime.InteropServices;

namespace Microhv.Kernel.Smp;

/// <summary>
/// One processor's block for the entry and exit paths of Boot/traps.asm (the same offsets: keep the
/// two in step), reached through GS in ring 0 and through KERNEL_GS_BASE while a guest runs, as Xen's
/// per-CPU area is. CPU 0's is traps.asm's <c>cpu0_block</c>; an application processor's is allocated
/// by the boot processor with its stacks.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct CpuBlock
{
    /// <summary>The guest RSP while SYSCALL builds its frame.</summary>
    [FieldOffset(0)] public ulong ScratchRsp;
    /// <summary>Where a SYSCALL frame starts: TSS.RSP0's value.</summary>
    [FieldOffset(8)] public ulong StackTop;
    /// <summary>An FXSAVE image the exit path loads (a vCPU switch), or 0.</summary>
    [FieldOffset(16)] public ulong FpuLoad;
    /// <summary>CR0.TS is set now (the exit path left to a guest with it set).</summary>
    [FieldOffset(24)] public byte Cr0Ts;
    /// <summary>This CPU's index in Processors.Cpus.</summary>
    [FieldOffset(32)] public ulong Index;
    /// <summary>The idle loop's stack top.</summary>
    [FieldOffset(40)] public ulong IdleStackTop;
    /// <summary>Non-zero: another processor asks this one to flush its whole TLB and waits until it reads 0
    /// (Boot/smp.asm hv_flush_answer; answered from the flush IPI or while waiting for the hypervisor's lock).</summary>
    [FieldOffset(48)] public ulong FlushRequest;
    /// <summary>Entries that found the hypervisor's lock taken and waited, and the wait loop's turns (Boot/smp.asm).</summary>
    [FieldOffset(56)] public ulong LockWaits;
    [FieldOffset(64)] public ulong LockSpins;

    public const uint GsBaseMsr = 0xC0000101, KernelGsBaseMsr = 0xC0000102;
}
