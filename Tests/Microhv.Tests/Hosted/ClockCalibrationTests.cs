using Microhv.HAL;
using Xunit;

namespace Microhv.Tests.Hosted;

/// <summary>Choosing the APIC timer and TSC rates from several PIT windows when some were preempted.</summary>
public class ClockCalibrationTests
{
    [Fact]
    public void AgreeingWindowsAreAveraged()
    {
        ulong[] apic = { 626_000, 626_100, 625_900, 626_050, 625_950 };
        ulong[] tsc = { 25_000_000, 25_001_000, 24_999_000, 25_000_500, 24_999_500 };
        int kept = ClockCalibration.Select(apic, tsc, 5, out ulong a, out ulong t);
        Assert.Equal(5, kept);
        Assert.Equal(626_000UL, a);
        Assert.Equal(25_000_000UL, t);
    }

    [Fact]
    public void OnePreemptedWindowDoesNotSkewTheResult()
    {
        // The measurement issue 14 saw: one window stretched to 1,129,091 counts by a busy host.
        ulong[] apic = { 626_000, 1_129_091, 626_200, 625_800, 626_000 };
        ulong[] tsc = { 25_000_000, 45_100_000, 25_008_000, 24_992_000, 25_000_000 };
        int kept = ClockCalibration.Select(apic, tsc, 5, out ulong a, out ulong t);
        Assert.Equal(4, kept);
        Assert.True(ClockCalibration.Agreed(kept, 5));
        Assert.Equal(626_000UL, a);
        Assert.Equal(25_000_000UL, t);
    }

    [Fact]
    public void TwoBadWindowsInOppositeDirectionsAreRejected()
    {
        // One window cut short (preempted before the APIC count started), one stretched.
        ulong[] apic = { 300_000, 626_000, 900_000, 626_100, 625_900 };
        ulong[] tsc = { 12_000_000, 25_000_000, 36_000_000, 25_004_000, 24_996_000 };
        int kept = ClockCalibration.Select(apic, tsc, 5, out ulong a, out ulong t);
        Assert.Equal(3, kept);
        Assert.True(ClockCalibration.Agreed(kept, 5));
        Assert.Equal(626_000UL, a);
        Assert.Equal(25_000_000UL, t);
    }

    [Fact]
    public void AWindowWhoseTscDisagreesIsRejectedEvenIfItsApicCountLooksRight()
    {
        ulong[] apic = { 626_000, 626_000, 626_000 };
        ulong[] tsc = { 25_000_000, 30_000_000, 25_000_000 };
        Assert.Equal(2, ClockCalibration.Select(apic, tsc, 3, out _, out ulong t));
        Assert.Equal(25_000_000UL, t);
    }

    [Fact]
    public void NoMajorityIsReported()
    {
        ulong[] apic = { 100_000, 300_000, 626_000, 900_000, 1_200_000 };
        ulong[] tsc = { 4_000_000, 12_000_000, 25_000_000, 36_000_000, 48_000_000 };
        int kept = ClockCalibration.Select(apic, tsc, 5, out ulong a, out _);
        Assert.Equal(1, kept);
        Assert.False(ClockCalibration.Agreed(kept, 5));
        Assert.Equal(626_000UL, a);
    }

    [Fact]
    public void MedianIsTheLowerMiddleAndHandlesRepeats()
    {
        Assert.Equal(3UL, ClockCalibration.Median(new ulong[] { 5, 1, 3, 9, 2 }, 5));
        Assert.Equal(2UL, ClockCalibration.Median(new ulong[] { 4, 1, 2, 9 }, 4));
        Assert.Equal(7UL, ClockCalibration.Median(new ulong[] { 7, 7, 7, 1, 9 }, 5));
        Assert.Equal(8UL, ClockCalibration.Median(new ulong[] { 8, 100 }, 1));
    }

    [Fact]
    public void AWindowGivesRatesPer10msFromItsTwoSamples()
    {
        // 11932 PIT ticks (10.00015 ms) during which the APIC timer counted 625,009 and the TSC 25,962,000.
        Assert.True(ClockCalibration.Window(65_000, 65_000 - 11_932, false, 4_000_000_000, 4_000_000_000 - 625_009, 1_000, 1_000 + 25_962_000,
                                            out ulong apic, out ulong tsc));
        Assert.Equal(625_000UL, apic);
        Assert.Equal(25_961_608UL, tsc);
    }

    [Fact]
    public void APreemptedWindowIsLongerButGivesTheSameRates()
    {
        // The CPU lost 3 ms in the middle of the window: every counter advanced by 3 ms more.
        uint pitTicks = 15_512;                                  // 13 ms
        Assert.True(ClockCalibration.Window(65_400, 65_400 - pitTicks, false, 900_000_000, 900_000_000 - 812_500, 0, 33_750_080,
                                            out ulong apic, out ulong tsc));
        Assert.Equal(624_974UL, apic);
        Assert.Equal(25_960_539UL, tsc);
    }

    [Fact]
    public void AWrappedOrStalledPitIsRefused()
    {
        Assert.False(ClockCalibration.Window(0, 0, false, 1_000_000, 1_000_000, 0, 61, out _, out _));           // read before it moved
        Assert.False(ClockCalibration.Window(60_000, 50_000, true, 1_000_000, 0, 0, 25_000_000, out _, out _));   // went past zero
        Assert.False(ClockCalibration.Window(60_000, 60_000, false, 1_000_000, 0, 0, 25_000_000, out _, out _));  // did not move
        Assert.False(ClockCalibration.Window(60_000, 48_000, false, 1_000, 2_000, 0, 25_000_000, out _, out _));  // APIC went up
    }
}
