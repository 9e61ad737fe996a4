using System.Runtime.CompilerServices;
using Microhv.Kernel.Memory;

namespace Microhv.Kernel.Timer;

/// <summary>The local APIC (xAPIC, MMIO): its timer is the kernel's tick; its interrupt command register
/// starts the other processors. Every CPU sees its own APIC at the same address.</summary>
internal static unsafe class LocalApic
{
    private const uint Ia32ApicBase = 0x1B;
    private const uint Eoi = 0xB0, SpuriousVector = 0xF0, LvtTimer = 0x320, TimerInitialCount = 0x380,
                       TimerCurrentCount = 0x390, TimerDivide = 0x3E0, Id = 0x20, Version = 0x30,
                       LvtLint0 = 0x350, IcrLow = 0x300, IcrHigh = 0x310;
    private const uint IcrDeliveryPending = 1 << 12, IcrAssert = 1 << 14, IcrInit = 5 << 8, IcrStartup = 6 << 8;
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
        s_registers = DirectMap.ToVirtual(PhysicalBase);
        EnableThisCpu();
    }

    /// <summary>Enables the calling processor's APIC (global enable, software enable with the spurious vector);
    /// an application processor calls it once the boot processor has found the registers.</summary>
    public static void EnableThisCpu()
    {
        Cpu.WriteMsr(Ia32ApicBase, Cpu.ReadMsr(Ia32ApicBase) | (1 << 11));
        Write(SpuriousVector, 0x100 | SpuriousInterruptVector);
    }

    /// <summary>INIT to the processor with <paramref name="apicId"/> (the SDM's MP initialization, 8.4.4).</summary>
    public static bool SendInit(uint apicId) => SendIpi(apicId, IcrInit | IcrAssert);

    /// <summary>STARTUP: the processor begins in real mode at <paramref name="page"/> * 4096.</summary>
    public static bool SendStartup(uint apicId, uint page) => SendIpi(apicId, IcrStartup | IcrAssert | (page & 0xFF));

    /// <summary>A fixed interrupt with <paramref name="vector"/> to the processor with <paramref name="apicId"/>.</summary>
    public static bool SendFixed(uint apicId, byte vector) => SendIpi(apicId, IcrAssert | vector);

    private static bool SendIpi(uint apicId, uint command)
    {
        Write(IcrHigh, apicId << 24);
        Write(IcrLow, command);
        for (int i = 0; i < 1000000; i++)
        {
            if ((Read(IcrLow) & IcrDeliveryPending) == 0) return true;
            Cpu.Pause();
        }
        return false;
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

    /// <summary>The timer counts the bus clock divided by 16 (each processor's timer has its own divider).</summary>
    public static void SetDivideBy16() => Write(TimerDivide, 0x3);

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
