using System.Runtime;
using System.Runtime.CompilerServices;
using Microhv.Kernel.Memory;

namespace Microhv.Kernel.Smp;

/// <summary>
/// The real-mode trampoline of Boot/smp.asm, copied to a page below 1 MiB, and its parameter block
/// (offsets as in smp.asm: keep the two in step). One processor starts at a time, so one page serves all.
/// </summary>
internal static unsafe class ApTrampoline
{
    private const int BootCr3 = 0x08, Efer = 0x0C, Cr3 = 0x10, Cr4 = 0x18, Cr0 = 0x20, Stack = 0x28, CpuIndex = 0x30;
    private const uint Ia32Efer = 0xC0000080;
    private const ulong EferLma = 1 << 10, Cr0Ts = 1 << 3;

    [RuntimeImport("*", "ap_trampoline_address")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern byte* Code();
    [RuntimeImport("*", "ap_trampoline_size")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern uint Size();

    public static ulong Page;

    /// <summary>Copies the trampoline to <paramref name="page"/> with this (the boot) processor's control registers.</summary>
    public static void Install(ulong page, ulong bootPml4Physical)
    {
        Page = page;
        byte* p = DirectMap.ToVirtual(page);
        Internal.Runtime.Memory.Move(p, Code(), Size());
        *(uint*)(p + BootCr3) = (uint)bootPml4Physical;
        *(uint*)(p + Efer) = (uint)(Cpu.ReadMsr(Ia32Efer) & ~EferLma);
        *(ulong*)(p + Cr3) = Cpu.ReadCr3();
        *(ulong*)(p + Cr4) = Cpu.ReadCr4();
        *(ulong*)(p + Cr0) = Cpu.ReadCr0() & ~Cr0Ts;
    }

    /// <summary>The next processor to start runs ap_main(<paramref name="cpu"/>) on <paramref name="stackTop"/>.</summary>
    public static void Prepare(ulong cpu, ulong stackTop)
    {
        byte* p = DirectMap.ToVirtual(Page);
        *(ulong*)(p + Stack) = stackTop;
        *(ulong*)(p + CpuIndex) = cpu;
    }
}
