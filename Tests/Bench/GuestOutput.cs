using System.Collections.Generic;
using System.Text.RegularExpressions;

namespace Microhv.Bench;

/// <summary>One figure the guest printed: a benchmark row (median ticks over reps) or a workload phase (total ticks over ops).</summary>
public sealed record Figure(string Row, long Ticks, long Count, int Domain);

/// <summary>
/// The pvops guest's benchmark lines, as agreed with its author:
/// <c>bench: &lt;row&gt; &lt;median_ticks&gt; &lt;reps&gt;</c>, <c>pvops: phase &lt;name&gt;: &lt;ops&gt; ops, &lt;ticks&gt; tsc</c>
/// and <c>pvops: done</c>. Under Microhv every guest line but the hardware domain's carries its domain, <c>(d1) </c>; natively and
/// as Xen's dom0 it does not; Xen's own lines start with <c>(XEN)</c> and are never the guest's.
/// </summary>
public static class GuestOutput
{
    public const string PhasePrefix = "phase ";

    private static readonly Regex DomainPrefix = new(@"^\(d(\d+)\) ");
    private static readonly Regex BenchLine = new(@"^bench: ([A-Za-z0-9_.\-]+) (\d+) (\d+)\s*$");
    private static readonly Regex PhaseLine = new(@"^pvops: phase ([^:]+): (\d+) ops, (\d+) tsc\s*$");

    /// <summary>The guest's text of a serial line and the domain that printed it (-1: no prefix), or null for a line that is not the guest's.</summary>
    public static string GuestText(string line, out int domain)
    {
        domain = -1;
        Match m = DomainPrefix.Match(line);
        if (m.Success)
        {
            domain = int.Parse(m.Groups[1].Value);
            return line.Substring(m.Length);
        }
        return line.StartsWith("(XEN)") ? null : line;
    }

    /// <summary>True for the guest's own lines (pvops: or bench:), the first of which ends the wall-clock boot measurement.</summary>
    public static bool IsGuestLine(string line)
    {
        string text = GuestText(line, out _);
        return text != null && (text.StartsWith("pvops:") || text.StartsWith("bench:"));
    }

    /// <summary>The backend the guest bound, from its first "pvops: backend NAME ..." line, or null.</summary>
    public static string Backend(IEnumerable<string> lines)
    {
        foreach (string line in lines)
        {
            string text = GuestText(line, out _);
            if (text == null || !text.StartsWith("pvops: backend ")) continue;
            string rest = text.Substring("pvops: backend ".Length);
            int space = rest.IndexOf(' ');
            return space < 0 ? rest : rest.Substring(0, space);
        }
        return null;
    }

    public static bool IsDone(string line)
    {
        string text = GuestText(line, out _);
        return text != null && text.TrimEnd() == "pvops: done";
    }

    /// <summary>Every figure in a run's lines; phases become rows named "phase &lt;name&gt;".</summary>
    public static List<Figure> Parse(IEnumerable<string> lines)
    {
        var figures = new List<Figure>();
        foreach (string line in lines)
        {
            string text = GuestText(line, out int domain);
            if (text == null) continue;
            Match b = BenchLine.Match(text);
            if (b.Success && long.TryParse(b.Groups[2].Value, out long ticks) && long.TryParse(b.Groups[3].Value, out long reps))
            {
                figures.Add(new Figure(b.Groups[1].Value, ticks, reps, domain));
                continue;
            }
            Match p = PhaseLine.Match(text);
            if (p.Success && long.TryParse(p.Groups[2].Value, out long ops) && long.TryParse(p.Groups[3].Value, out long total))
                figures.Add(new Figure(PhasePrefix + p.Groups[1].Value.Trim(), total, ops, domain));
        }
        return figures;
    }
}
