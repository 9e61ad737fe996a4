namespace Microhv.Kernel.Timer;

/// <summary>The CMOS real-time clock: read once at boot for the guests' wallclock.</summary>
internal static class Rtc
{
    private static byte Read(byte reg)
    {
        Cpu.OutB(0x70, reg);
        return Cpu.InB(0x71);
    }

    private static uint FromBcd(byte v, bool bcd) => bcd ? (uint)((v >> 4) * 10 + (v & 0xF)) : v;

    /// <summary>Seconds since 1970-01-01 UTC (the RTC is assumed to run in UTC, as QEMU's does).</summary>
    public static ulong SecondsSinceEpoch()
    {
        while ((Read(0x0A) & 0x80) != 0) Cpu.Pause();     // wait out an update in progress
        byte regB = Read(0x0B);
        bool bcd = (regB & 0x04) == 0, twelveHour = (regB & 0x02) == 0;
        uint sec = FromBcd(Read(0x00), bcd), min = FromBcd(Read(0x02), bcd);
        byte rawHour = Read(0x04);
        uint hour = FromBcd((byte)(rawHour & 0x7F), bcd);
        if (twelveHour && (rawHour & 0x80) != 0) hour = (hour % 12) + 12;
        uint day = FromBcd(Read(0x07), bcd), month = FromBcd(Read(0x08), bcd), year = FromBcd(Read(0x09), bcd) + 2000;
        return DaysFromCivil(year, month, day) * 86400UL + hour * 3600UL + min * 60UL + sec;
    }

    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    private static ulong DaysFromCivil(uint y, uint m, uint d)
    {
        long yy = m <= 2 ? y - 1 : y;
        long era = yy / 400;
        long yoe = yy - era * 400;
        long mp = m > 2 ? m - 3 : m + 9;
        long doy = (153 * mp + 2) / 5 + d - 1;
        long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return (ulong)(era * 146097 + doe - 719468);
    }
}
