namespace Microhv.HAL;

/// <summary>
/// A list of processors as Xen's tools write one (`cpus=` in xl.cfg, here on a boot module's line): numbers and
/// ranges separated by commas, "0-1", "2", "0,2-3", each processor below 64. Parsed into a mask, bit n =
/// processor n.
/// </summary>
public static class CpuList
{
    public const int MaxCpu = 63;

    /// <summary>The mask <paramref name="b"/>[start..start+length) names; false for an empty list, a range whose end
    /// is below its start, a number above <see cref="MaxCpu"/> or any other character.</summary>
    public static bool TryParse(byte[] b, int start, int length, out ulong mask)
    {
        mask = 0;
        int i = start, end = start + length;
        if (length <= 0) return false;
        while (true)
        {
            if (!Number(b, ref i, end, out int first)) return false;
            int last = first;
            if (i < end && b[i] == (byte)'-')
            {
                i++;
                if (!Number(b, ref i, end, out last) || last < first) return false;
            }
            for (int c = first; c <= last; c++) mask |= 1UL << c;
            if (i == end) return true;
            if (b[i] != (byte)',') return false;
            i++;
        }
    }

    private static bool Number(byte[] b, ref int i, int end, out int value)
    {
        value = 0;
        int digits = 0;
        while (i < end && b[i] >= (byte)'0' && b[i] <= (byte)'9')
        {
            value = value * 10 + (b[i] - '0');
            if (value > MaxCpu) return false;
            i++;
            digits++;
        }
        return digits > 0;
    }
}
