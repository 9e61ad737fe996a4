using System;
using System.Diagnostics;
using System.Linq;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The PV test guest (Tests/Guests/PvTest) passes every check on the real Xen 4.17: the suite is
/// proven against the reference hypervisor before it is used to judge Microhv's PV ABI.
/// </summary>
[Trait("Category", "Qemu")]
public class XenGuestTests
{
    /// <summary>Xen boots and runs the suite in about 5 s under TCG; the rest is slack for a loaded machine.</summary>
    public static readonly TimeSpan SuiteTimeout = TimeSpan.FromSeconds(120);

    private static readonly Regex Summary = new(@"^pvtest: (\d+) passed, (\d+) failed$");
    private static readonly Regex CheckLine = new(@"^check ([a-z0-9_]+): (PASS( \(differs: [^)]*\))?|FAIL \(.*\))$");

    private readonly ITestOutputHelper _output;

    public XenGuestTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void PvTestPassesEveryCheckOnXen()
    {
        string guest = XenHypervisor.EnsurePvTest();
        // Two CPUs: Xen's dom0 gets a vCPU per CPU, so pvtest runs its secondary-vCPU checks (as on Microhv).
        var args = XenHypervisor.Args(guest).Concat(new[] { "-smp", "2" }).ToList();
        var clock = Stopwatch.StartNew();
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, args, SuiteTimeout + TimeSpan.FromSeconds(30));
        qemu.WaitForLine("pvtest: Xen PV ABI checks", SuiteTimeout);
        Match summary = qemu.WaitForLine(Summary, SuiteTimeout);
        _output.WriteLine($"Xen 4.17 + pvtest: summary after {clock.Elapsed.TotalSeconds:0.0} s");

        var checks = qemu.Lines.Where(l => l.StartsWith("check ", StringComparison.Ordinal)).ToList();
        foreach (string line in checks) _output.WriteLine(line);
        var malformed = checks.Where(l => !CheckLine.IsMatch(l)).ToList();
        var failed = checks.Where(l => CheckLine.Match(l).Groups[2].Value.StartsWith("FAIL", StringComparison.Ordinal)).ToList();

        Assert.True(malformed.Count == 0, "malformed check lines:\n" + string.Join("\n", malformed) + "\n" + qemu.Describe());
        Assert.True(failed.Count == 0, "checks failed on Xen:\n" + string.Join("\n", failed) + "\n" + qemu.Describe());
        Assert.Equal("0", summary.Groups[2].Value);
        Assert.Equal(checks.Count.ToString(), summary.Groups[1].Value);
        Assert.True(checks.Count >= 40, $"only {checks.Count} check lines\n" + qemu.Describe());
        Assert.Equal(checks.Count, checks.Select(l => CheckLine.Match(l).Groups[1].Value).Distinct().Count());
        Assert.Equal(5, checks.Count(l => CheckLine.Match(l).Groups[1].Value.StartsWith("vcpu_secondary_", StringComparison.Ordinal)));
    }
}
