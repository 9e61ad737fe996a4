using Microhv.HAL;
using Microhv.Kernel.Console;

namespace Microhv.Kernel.Timer;

/// <summary>
/// Measures the local APIC timer's and the TSC's rates against the PIT at boot, in windows whose ends
/// are sampled tightly (see <see cref="ClockCalibration"/>): a busy host that preempts the CPU during
/// a window cannot skew them.
/// </summary>
internal static class ClockSources
{
    private const int MaxBatches = 3, AttemptsPerWindow = 3, ReadsPerSample = 4;
    private static readonly ulong[] s_apic = new ulong[ClockCalibration.Windows];
    private static readonly ulong[] s_tsc = new ulong[ClockCalibration.Windows];
    private static int s_kept, s_batches, s_badWindows;

    /// <summary>The rates per 10 ms: a batch of windows, measured again (up to three batches) when no majority agrees.</summary>
    public static void Calibrate(bool apic, out ulong apicPer10ms, out ulong tscPer10ms)
    {
        apicPer10ms = tscPer10ms = 0;
        for (s_batches = 1; ; s_batches++)
        {
            for (int i = 0; i < ClockCalibration.Windows; i++)
            {
                s_apic[i] = s_tsc[i] = 0;
                for (int attempt = 0; attempt < AttemptsPerWindow; attempt++)
                {
                    if (MeasureWindow(apic, out s_apic[i], out s_tsc[i])) break;
                    s_badWindows++;
                }
            }
            s_kept = ClockCalibration.Select(s_apic, s_tsc, ClockCalibration.Windows, out apicPer10ms, out tscPer10ms);
            if (ClockCalibration.Agreed(s_kept, ClockCalibration.Windows) || s_batches == MaxBatches) break;
        }
        if (apic) LocalApic.StopTimer();
    }

    private static bool MeasureWindow(bool apic, out ulong apicPer10ms, out ulong tscPer10ms)
    {
        Pit.StartFreeRunning();
        if (apic) LocalApic.StartFreeRunning();
        Sample(apic, out uint pit0, out uint apic0, out ulong tsc0);
        while (!Pit.OneShotExpired)
        {
            uint now = Pit.ReadChannel2();
            if (now <= pit0 && pit0 - now >= ClockCalibration.PitTicksPerWindow) break;
            Cpu.Pause();
        }
        Sample(apic, out uint pit1, out uint apic1, out ulong tsc1);
        return ClockCalibration.Window(pit0, pit1, Pit.OneShotExpired, apic0, apic1, tsc0, tsc1, out apicPer10ms, out tscPer10ms);
    }

    // The three counters read together; of a few tries the one that took the fewest TSC ticks, so that
    // a preemption in the middle of a read does not separate the PIT's moment from the others'.
    private static void Sample(bool apic, out uint pit, out uint apicCount, out ulong tsc)
    {
        pit = apicCount = 0;
        tsc = 0;
        ulong best = ulong.MaxValue;
        for (int i = 0; i < ReadsPerSample; i++)
        {
            ulong t0 = Cpu.ReadTsc();
            uint p = Pit.ReadChannel2();
            uint a = apic ? LocalApic.CurrentCount() : 0;
            ulong t1 = Cpu.ReadTsc();
            if (t1 - t0 >= best) continue;
            best = t1 - t0;
            pit = p; apicCount = a; tsc = t0 + (t1 - t0) / 2;
        }
    }

    public static void Report(ulong tscHz)
    {
        Log.Write("timer: TSC "); Log.Dec(tscHz / 1000); Log.Write(" kHz; calibration kept ");
        Log.Dec((ulong)s_kept); Log.Write(" of "); Log.Dec((ulong)ClockCalibration.Windows); Log.Write(" PIT windows");
        if (s_batches > 1) { Log.Write(" in batch "); Log.Dec((ulong)s_batches); }
        if (s_badWindows > 0) { Log.Write(", "); Log.Dec((ulong)s_badWindows); Log.Write(" unusable windows measured again"); }
        if (!ClockCalibration.Agreed(s_kept, ClockCalibration.Windows)) Log.Write("; no majority agreed: the host is too busy, the clock may be off");
        Log.Line();
        if (!Log.ShowDebug) return;
        Log.Write("timer: windows (APIC/TSC per 10 ms):");
        for (int i = 0; i < ClockCalibration.Windows; i++) { Log.Write(" "); Log.Dec(s_apic[i]); Log.Write("/"); Log.Dec(s_tsc[i]); }
        Log.Line();
    }
}
