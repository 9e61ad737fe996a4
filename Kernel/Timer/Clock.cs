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
        if (CpuFeatures.Apic)
        {
            LocalApic.Enable();
            ClockSources.Calibrate(true, out ulong per10ms, out ulong tscPer10ms);
            TscHz = tscPer10ms * 100;
            ApicCountsPerTick = (uint)(per10ms * (1000 / Hz) / 10);
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
            ClockSources.Calibrate(false, out _, out ulong tscPer10ms);
            TscHz = tscPer10ms * 100;
            Pit.StartPeriodic(Hz);
            Pic.Unmask(0);
            if (Log.ShowInfo) { Log.Write("timer: no local APIC; PIT at "); Log.Dec(Hz); Log.Line(" Hz on IRQ0"); }
        }
        if (Log.ShowInfo) ClockSources.Report(TscHz);
    }

    // Deadline mode (hypervisor running guests on the local APIC): each processor's timer is one-shot,
    // armed for the earlier of its next 10 ms scheduler tick and the earliest guest timer, so a guest's
    // set_timer_op deadline is met to the APIC's resolution instead of the next tick. Every processor
    // has its own timer, so its tick and armed deadline are its own (indexed by processor).
    public static bool DeadlineMode;
    private static readonly ulong[] s_nextTickNs = new ulong[Smp.Processors.MaxCpus];
    private static readonly ulong[] s_armedNs = new ulong[Smp.Processors.MaxCpus];

    /// <summary>The calling processor's timer becomes one-shot, first armed for its next tick (the boot
    /// processor when guests start, each other one when it joins; the calibration is shared).</summary>
    public static void EnterDeadlineMode(ulong nowNs)
    {
        if (!UsingApic) return;
        DeadlineMode = true;
        int cpu = Smp.Processors.Current;
        LocalApic.SetDivideBy16();
        s_nextTickNs[cpu] = nowNs + 1000000000UL / Hz;
        Arm(cpu, s_nextTickNs[cpu], nowNs);
    }

    /// <summary>A timer interrupt in deadline mode: true when a scheduler tick of this processor has elapsed.</summary>
    public static bool OnDeadlineInterrupt(ulong nowNs)
    {
        LocalApic.EndOfInterrupt();
        int cpu = Smp.Processors.Current;
        s_armedNs[cpu] = 0;
        if (nowNs < s_nextTickNs[cpu]) return false;
        if (cpu == 0) Ticks++;
        ulong next = s_nextTickNs[cpu] + 1000000000UL / Hz;
        if (next <= nowNs) next = nowNs + 1000000000UL / Hz;   // fell behind: skip, don't burst
        s_nextTickNs[cpu] = next;
        return true;
    }

    /// <summary>Arms this processor's one-shot for <paramref name="deadlineNs"/> unless an earlier interrupt is already armed.</summary>
    public static void ArmFor(ulong deadlineNs, ulong nowNs)
    {
        int cpu = Smp.Processors.Current;
        ulong tick = s_nextTickNs[cpu];
        if (deadlineNs == 0 || deadlineNs > tick) deadlineNs = tick;
        if (s_armedNs[cpu] != 0 && s_armedNs[cpu] <= deadlineNs) return;
        Arm(cpu, deadlineNs, nowNs);
    }

    private static void Arm(int cpu, ulong deadlineNs, ulong nowNs)
    {
        ulong deltaNs = deadlineNs > nowNs ? deadlineNs - nowNs : 0;
        ulong count = deltaNs * ApicCountsPerTick / (1000000000UL / Hz);
        if (count == 0) count = 1;
        if (count > 0xFFFFFFFFUL) count = 0xFFFFFFFFUL;
        s_armedNs[cpu] = deadlineNs;
        LocalApic.StartOneShot(ApicTimerVector, (uint)count);
    }

    /// <summary>Called from the trap dispatcher on the timer vector.</summary>
    public static void OnTick()
    {
        Ticks++;
        if (ClobberFpuOnTick) Cpu.ClobberFpu();
        if (UsingApic) LocalApic.EndOfInterrupt(); else Pic.EndOfInterrupt(0);
    }
}
