using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Microhv.Tests.Qemu;

/// <summary>
/// ./bench.sh --quick runs every configuration and writes a complete table: every agreed row and
/// every column, each cell a number, an explained n/a or (for no configuration that must work) a
/// failure, and the ratios in the Microhv cells agree with the Xen and native figures. No timing
/// is asserted: the figures are whatever the guest measured.
/// </summary>
[Trait("Category", "Qemu")]
public class BenchSmokeTests
{
    private static readonly string[] Rows =
    {
        "null_hypercall", "console_write_64", "update_va_mapping", "mmu_update_1", "mmu_update_512", "pin_unpin_l4",
        "new_baseptr", "irq_disable_enable", "trap_bounce", "evtchn_send_self", "timer_latency", "domain_switch",
    };
    private static readonly string[] Columns = { "Native", "Microhv hypercall API", "Microhv ABI ROM", "Xen 4.17" };

    private static readonly Regex Number = new(@"^(\d+)(?: \((.*)\))?$");
    private static readonly Regex RatioPart = new(@"^(\d+(?:\.\d+)?)x (Xen|native)$");
    private static readonly Regex NotApplicable = new(@"^n/a \[(\d+)\]$");
    private static readonly Regex Footnote = new(@"^\[(\d+)\] (\S.*)$");

    private readonly ITestOutputHelper _output;

    public BenchSmokeTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void QuickRunWritesACompleteTable()
    {
        string report = Path.Combine(KernelImages.WorkDir, "BENCHMARKS-smoke.md");
        var (exit, output) = RunBench("--quick", "--out", report);
        _output.WriteLine(output);
        Assert.True(exit == 0, $"bench.sh exited with {exit}\n{output}");
        Assert.True(File.Exists(report), $"bench.sh wrote no {report}\n{output}");

        string[] lines = File.ReadAllLines(report);
        int header = Array.FindIndex(lines, l => l.StartsWith("| Operation |"));
        Assert.True(header >= 0, "no per-operation table in the report\n" + string.Join("\n", lines));
        Assert.Equal(Columns, Cells(lines[header]).Skip(1).ToArray());

        var table = lines.Skip(header + 2).TakeWhile(l => l.StartsWith("|")).Select(Cells).ToDictionary(c => c[0], c => c.Skip(1).ToArray());
        var notes = lines.Select(l => Footnote.Match(l.TrimEnd())).Where(m => m.Success)
                         .ToDictionary(m => int.Parse(m.Groups[1].Value), m => m.Groups[2].Value);

        // The hardware-dom0 section is there, its runs skipped by --quick (each boots Linux under icount).
        int dom0 = Array.FindIndex(lines, l => l.StartsWith("| Figure | Microhv | Xen 4.17 |"));
        Assert.True(dom0 >= 0, "no hardware-dom0 table in the report\n" + string.Join("\n", lines));
        Assert.Contains("skipped by --quick", lines[dom0 + 2]);

        foreach (string row in Rows)
        {
            Assert.True(table.ContainsKey(row), $"row {row} missing\n{string.Join("\n", lines)}");
            string[] cells = table[row];
            Assert.Equal(Columns.Length, cells.Length);
            long? native = Value(cells[0]), xen = Value(cells[3]);
            for (int c = 0; c < Columns.Length; c++)
            {
                string cell = cells[c], where = $"{row} / {Columns[c]}: '{cell}'";
                Assert.False(cell.StartsWith("failed"), "a configuration that must work failed: " + where);
                Match na = NotApplicable.Match(cell);
                if (na.Success)
                {
                    Assert.True(notes.ContainsKey(int.Parse(na.Groups[1].Value)), "n/a without its footnote: " + where);
                    // Only what cannot exist may be missing: native operations of a hypervisor, and the
                    // domain switch outside Microhv (Microhv's needs the guest's ping-pong mode).
                    Assert.True(c == 0 || row == "domain_switch", "missing figure: " + where);
                    continue;
                }
                Match m = Number.Match(cell);
                Assert.True(m.Success, "not a number: " + where);
                long ticks = long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
                if (c == 1 || c == 2) CheckRatios(m.Groups[2].Value, ticks, xen, native, where);
                else Assert.False(m.Groups[2].Success, "only Microhv cells carry ratios: " + where);
            }
        }
    }

    /// <summary>The ratios printed must be the figures' own: present exactly when the base figure is (and not 0), and equal to the quotient within rounding.</summary>
    private static void CheckRatios(string ratios, long ticks, long? xen, long? native, string where)
    {
        var parts = ratios.Length == 0 ? new List<Match>() : ratios.Split(", ").Select(p => RatioPart.Match(p)).ToList();
        Assert.All(parts, p => Assert.True(p.Success, "malformed ratio: " + where));
        foreach (var (name, baseTicks) in new[] { ("Xen", xen), ("native", native) })
        {
            Match p = parts.FirstOrDefault(x => x.Groups[2].Value == name);
            Assert.True((p != null) == (baseTicks > 0), $"ratio to {name} present iff {name} has a non-zero figure: " + where);
            if (p == null) continue;
            double printed = double.Parse(p.Groups[1].Value, CultureInfo.InvariantCulture);
            double actual = (double)ticks / baseTicks.Value;
            Assert.True(Math.Abs(printed - actual) <= Math.Max(0.006, actual * 0.06), $"ratio to {name} is {actual:0.###}: " + where);
        }
    }

    private static long? Value(string cell)
    {
        Match m = Number.Match(cell);
        return m.Success ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : null;
    }

    private static string[] Cells(string line) => line.Trim().Trim('|').Split('|').Select(c => c.Trim()).ToArray();

    private static (int, string) RunBench(params string[] args)
    {
        var psi = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = KernelImages.RepoRoot,
        };
        psi.ArgumentList.Add(Path.Combine(KernelImages.RepoRoot, "bench.sh"));
        foreach (string a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit((int)TimeSpan.FromMinutes(15).TotalMilliseconds))
        {
            p.Kill(entireProcessTree: true);
            return (-1, "bench.sh did not finish within 15 minutes\n" + stdout.Result + stderr.Result);
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
