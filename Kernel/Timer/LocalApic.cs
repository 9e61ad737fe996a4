using System.Runtime.CompilerServices;
using Microhv.Kernel.Memory;

namespace Microhv.Kernel.Timer;

/// <summary>The local APIC (xAPIC, MMIO): its timer in periodic mode is the kernel's tick.</summary>
internal static unsafe class LocalApic
{
    private const uint Ia32ApicBase = 0x1B;
    private const uint Eoi = 0xB0, SpuriousVector = 0xF0, LvtTimer = 0x320, TimerInitialCount = 0x380,
                       TimerCurrentCount = 0x390, TimerDivide = 0x3E0, Id = 0x20, Version = 0x30,
                       LvtLint0 = 0x350;
    private const uint LvtMasked = 1 << 16, LvtPeriodic = 1 << 17;
    public const byte SpuriousInterruptVector = 0xFF;

    public static ulong PhysicalBase;
    private static byte* s_registers;

    // Not inlined: each register access stays a real memory access the compiler cannot merge or hoist.
    [MethodImpl(MethodImplOptions.NoInlining)] private static uint Read(uint reg) => *(uint*)(s_registers + reg);
    [MethodImpl(MethodImplOptions.NoInlining)] private static void Write(uint reg, uint value) => *(uint*)(s_registers + reg) = value;

    public static void Enable()
    {
        ulong msr = Cpu.ReadMsr(Ia32ApicBase);
        PhysicalBase = msr & 0x000F_FFFF_FFFF_F000;
        Cpu.WriteMsr(Ia32ApicBase, msr | (1 << 11));      // global enable
        s_registers = DirectMap.ToVirtual(PhysicalBase);
        Write(SpuriousVector, 0x100 | SpuriousInterruptVector);
    }

    /// <summary>Starts the timer counting down from 2^32-1 (divide by 16, masked): a free-running reference to sample.</summary>
    public static void StartFreeRunning()
    {
        Write(TimerDivide, 0x3);                            // divide by 16
        Write(LvtTimer, LvtMasked);
        Write(TimerInitialCount, 0xFFFFFFFF);
    }

    public static uint CurrentCount() => Read(TimerCurrentCount);

    public static void StopTimer() => Write(TimerInitialCount, 0);

    public static void StartPeriodic(byte vector, uint initialCount)
    {
        Write(TimerDivide, 0x3);
        Write(LvtTimer, LvtPeriodic | vector);
        Write(TimerInitialCount, initialCount);
    }

    /// <summary>One interrupt after <paramref name="count"/> timer counts (divide by 16); replaces whatever was armed.</summary>
    public static void StartOneShot(byte vector, uint count)
    {
        Write(LvtTimer, vector);
        Write(TimerInitialCount, count);
    }

    /// <summary>This CPU's local APIC ID (xAPIC: bits 24-31 of the ID register).</summary>
    public static uint ApicId => Read(Id) >> 24;

    public static void EndOfInterrupt() => Write(Eoi, 0);

    /// <summary>LINT0 as ExtINT (the SDM's virtual wire mode, as firmware leaves it): the 8259's
    /// interrupts reach the CPU through the local APIC, with the 8259 supplying the vector.</summary>
    public static void RouteLegacyPicThroughLint0()
    {
        if (s_registers != null) Write(LvtLint0, 0x700);
    }
}
