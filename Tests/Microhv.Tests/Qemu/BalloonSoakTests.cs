using System;
using System.Diagnostics;
using System.Linq;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The frame-accounting soak of issue 14: four domains balloon at once (pvtest workload=balloon:
/// decrease_reservation then populate_physmap of 16 frames, round after round, every new frame checked
/// zero and then dirtied), so frames pass from domain to domain through Microhv's pool; one of them
/// crashes halfway with its frames ballooned. Every new frame must be zero (nothing of its last owner),
/// and every frame free again after the last domain ended.
/// </summary>
[Trait("Category", "Qemu")]
public class BalloonSoakTests
{
    private const string Cmdline = "microhv.log=info microhv.exit=isa-debug-exit";
    private const int Rounds = 30000;
    private static readonly TimeSpan Run = TimeSpan.FromMinutes(10);
    private static readonly Regex FramesBalanced = new(@"^summary: frames: (\d+) free before the domains were built, \1 after the last one ended$");

    private readonly ITestOutputHelper _output;
    public BalloonSoakTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void FourBallooningDomainsOneCrashingLeaveEveryFrameFreeAndNoFrameDirty()
    {
        string guest = XenHypervisor.EnsurePvTest();
        string words = $"workload=balloon rounds={Rounds}";
        var clock = Stopwatch.StartNew();
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, BootConfig.Args(KernelImages.IsoWithModules(Cmdline,
            (guest, "name=b0 initial -- " + words), (guest, "name=b1 -- " + words), (guest, "name=b2 -- " + words),
            (guest, $"name=crash -- workload=balloon-crash rounds={Rounds}")), memoryMiB: 512), Run);
        qemu.WaitForLine("Microhv: powering off (isa-debug-exit)", Run);
        var lines = qemu.Lines;
        string log = qemu.Describe(60);
        string done = $"pvtest: workload balloon done, {Rounds} rounds, {Rounds * 16} new frames zero";
        Assert.True(lines.Contains(done), $"domain 0 did not finish\n{log}");
        Assert.True(lines.Contains("(d1) " + done), $"domain 1 did not finish\n{log}");
        Assert.True(lines.Contains("(d2) " + done), $"domain 2 did not finish\n{log}");
        Assert.Contains("(d3) pvtest: workload balloon-crash: crashing with its frames ballooned", lines);
        Assert.Contains(lines, l => l.StartsWith("summary: domain 3 (crash): crashed", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains("workload balloon:"));    // a failed step of the workload
        Assert.DoesNotContain(lines, l => l.Contains("FATAL"));
        Assert.True(lines.Any(l => FramesBalanced.IsMatch(l)), $"frames not balanced\n{log}");
        Assert.Equal(3, qemu.WaitForExit(TimeSpan.FromMinutes(1)));                 // not every domain powered off
        _output.WriteLine($"{3 * Rounds + Rounds / 2} balloon rounds of 16 frames in {clock.Elapsed.TotalSeconds:0} s; " +
                          lines.First(l => FramesBalanced.IsMatch(l)));
    }
}
