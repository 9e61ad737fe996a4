namespace Microhv.HAL;

/// <summary>
/// The local APIC timer and TSC rates from windows of the PIT (1.193182 MHz). A window is not timed
/// by waiting for the PIT to expire (a virtual CPU preempted while it waits overshoots by the whole
/// preemption, which is how issue 14 saw 1,129,091 counts instead of ≈626,000): the three counters are
/// sampled together at both ends and their differences compared, so a preemption in between changes
/// nothing. Several windows are measured all the same; the median is the reference, windows further
/// than <see cref="TolerancePerMille"/> from it (in either rate) are rejected, the rest averaged, and
/// the result counts only when a majority agree.
/// </summary>
public static class ClockCalibration
{
    public const int Windows = 5;
    public const ulong PitHz = 1193182;
    /// <summary>PIT ticks a window lasts at least: 10 ms.</summary>
    public const uint PitTicksPerWindow = 11932;

    /// <summary>
    /// One window from its two samples: the PIT channel's count (16 bits, counting down), the APIC timer's
    /// current count (counting down) and the TSC. Gives both rates per 10 ms; false when the PIT did not
    /// advance or went past zero (the window is unusable).
    /// </summary>
    public static bool Window(uint pitStart, uint pitEnd, bool pitWrapped, uint apicStart, uint apicEnd, ulong tscStart, ulong tscEnd,
                              out ulong apicPer10ms, out ulong tscPer10ms)
    {
        apicPer10ms = tscPer10ms = 0;
        if (pitWrapped || pitEnd >= pitStart || tscEnd <= tscStart || apicEnd > apicStart) return false;
        ulong pitTicks = pitStart - pitEnd;
        apicPer10ms = ((ulong)(apicStart - apicEnd) * PitHz + pitTicks * 50) / (pitTicks * 100);
        tscPer10ms = ((tscEnd - tscStart) * PitHz + pitTicks * 50) / (pitTicks * 100);
        return true;
    }
    /// <summary>How far (in thousandths) a window may lie from the median and still count.</summary>
    public const ulong TolerancePerMille = 20;

    /// <summary>
    /// Selects from <paramref name="count"/> paired windows (<paramref name="apic"/>[i] timer counts and
    /// <paramref name="tsc"/>[i] TSC ticks measured over the same window). Returns how many windows were kept;
    /// the result is trustworthy when that is more than half of <paramref name="count"/>.
    /// </summary>
    public static int Select(ulong[] apic, ulong[] tsc, int count, out ulong apicPerWindow, out ulong tscPerWindow)
    {
        apicPerWindow = tscPerWindow = 0;
        if (count <= 0) return 0;
        ulong apicMedian = Median(apic, count), tscMedian = Median(tsc, count);
        ulong apicSum = 0, tscSum = 0;
        int kept = 0;
        for (int i = 0; i < count; i++)
        {
            if (!Near(apic[i], apicMedian) || !Near(tsc[i], tscMedian)) continue;
            apicSum += apic[i];
            tscSum += tsc[i];
            kept++;
        }
        if (kept == 0) { apicPerWindow = apicMedian; tscPerWindow = tscMedian; return 0; }
        apicPerWindow = (apicSum + (ulong)kept / 2) / (ulong)kept;
        tscPerWindow = (tscSum + (ulong)kept / 2) / (ulong)kept;
        return kept;
    }

    /// <summary>True when <paramref name="kept"/> of <paramref name="count"/> windows are a majority.</summary>
    public static bool Agreed(int kept, int count) => kept * 2 > count;

    private static bool Near(ulong value, ulong median)
    {
        ulong difference = value > median ? value - median : median - value;
        return difference * 1000 <= median * TolerancePerMille;
    }

    /// <summary>The lower median of the first <paramref name="count"/> values, without reordering them.</summary>
    public static ulong Median(ulong[] values, int count)
    {
        int rank = (count - 1) / 2;
        for (int i = 0; i < count; i++)
        {
            int below = 0, equal = 0;
            for (int j = 0; j < count; j++)
            {
                if (values[j] < values[i]) below++;
                else if (values[j] == values[i]) equal++;
            }
            if (below <= rank && rank < below + equal) return values[i];
        }
        return values[0];
    }
}
