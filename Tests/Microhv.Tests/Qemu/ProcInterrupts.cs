using System;
using System.Collections.Generic;
using System.Linq;

namespace Microhv.Tests.Qemu;

/// <summary>Linux's /proc/interrupts as dom0 prints it; shared by the dom0 scenario and ./bench.sh (Tests/Bench links this file).</summary>
public static class ProcInterrupts
{
    /// <summary>Device name (the line's last word) -> count summed over all CPUs, for the numbered lines.</summary>
    public static Dictionary<string, long> Counts(IEnumerable<string> lines)
    {
        var counts = new Dictionary<string, long>();
        foreach (string line in lines)
        {
            string[] w = line.Split((char[])null, StringSplitOptions.RemoveEmptyEntries);
            if (w.Length < 3 || !w[0].EndsWith(':') || !w[0].TrimEnd(':').All(char.IsDigit)) continue;
            long sum = 0;
            for (int i = 1; i < w.Length && w[i].All(char.IsDigit); i++) sum += long.Parse(w[i]);
            counts[w[^1]] = sum;
        }
        return counts;
    }
}
