using Microhv.Kernel.Console;

namespace Microhv.Kernel.Timer;

/// <summary>The kernel's periodic tick: the local APIC timer, or the PIT through the PIC when there is no APIC.</summary>
internal static class Clock
{
    public const uint Hz = 100;
    public const byte ApicTimerVector = 0x30;
    public const byte PitVector = Pic.VectorBase + 0;

    public static ulong Ticks;
    public static bool UsingApic;
    public static uint ApicCountsPerTick;
    /// <summary>TSC frequency, measured against the PIT at boot.</summary>
    public static ulong TscHz;
    /// <summary>Set by the FPU self-test: the tick handler then destroys the SSE/x87 registers.</summary>
    public static bool ClobberFpuOnTick;

    public static void Start()
    {
        Pic.RemapAndMask();
        TscHz = MeasureTscHz();
        if (LocalApic.Present())
        {
            LocalApic.Enable();
            uint per10ms = LocalApic.CalibrateCountsPer10ms();
            ApicCountsPerTick = per10ms * (1000 / Hz) / 10;
            if (ApicCountsPerTick == 0) ApicCountsPerTick = 1;
            LocalApic.StartPeriodic(ApicTimerVector, ApicCountsPerTick);
            UsingApic = true;
            if (Log.ShowInfo)
            {
                Log.Write("timer: local APIC timer at "); Log.Dec(Hz); Log.Write(" Hz (");
                Log.Dec(per10ms); Log.Write(" bus/16 counts per 10 ms, calibrated by PIT), legacy PIC masked");
                Log.Line();
            }
        }
        else
        {
            Pit.StartPeriodic(Hz);
            Pic.Unmask(0);
            if (Log.ShowInfo) { Log.Write("timer: no local APIC; PIT at "); Log.Dec(Hz); Log.Line(" Hz on IRQ0"); }
        }
    }

    private static ulong MeasureTscHz()
    {
        Pit.StartOneShot(10000);
        ulong t0 = Cpu.ReadTsc();
        while (!Pit.OneShotExpired) Cpu.Pause();
        return (Cpu.ReadTsc() - t0) * 100;
    }

    /// <summary>Called from the trap dispatcher on the timer vector.</summary>
    public static void OnTick()
    {
        Ticks++;
        if (ClobberFpuOnTick) Cpu.ClobberFpu();
        if (UsingApic) LocalApic.EndOfInterrupt(); else Pic.EndOfInterrupt(0);
    }
}
