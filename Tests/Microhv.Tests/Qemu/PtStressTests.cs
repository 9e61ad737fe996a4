using System;
using System.Diagnostics;
using System.Linq;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Microhv.Tests.Qemu;

/// <summary>
/// Issue 13's concurrency stress: pvtest's <c>workload=pt-stress</c> (Tests/Guests/PvTest/PtStress.cs) on four
/// vCPUs of one domain on <c>-smp 4</c> maps, pins, unpins and updates the same page-table frames from every
/// vCPU at once while a second domain (the fuzzer's canary) holds a checked pattern. It must end with its result
/// line and no failure, no hypervisor fault, the canary intact, the frame table's self-check consistent, every
/// frame back and guest time on all four processors. The same workload runs as dom0 on Xen 4.17 (-smp 4) to show
/// that what it expects is what Xen does. A third domain runs the same workload but powers off after 100 rounds of
/// its vCPU 0 while its other three are at work, so its teardown releases tables pinned and hooked mid-flight. MICROHV_PT_STRESS_ROUNDS sets the rounds per vCPU for a longer run
/// (default 300: about 1-2 minutes of wall time under TCG on a loaded 2-core machine).
/// </summary>
[Trait("Category", "Qemu")]
public class PtStressTests
{
    private const string Cmdline = "microhv.log=info microhv.exit=isa-debug-exit";
    private const int DefaultRounds = 300, EarlyRounds = 100;
    private static readonly Regex Result = new(@"pvtest: workload pt-stress done, 4 vCPUs x (\d+) rounds: (\d+) pins \((\d+) refused\), (\d+) writable maps \((\d+) refused\), stale writes faulted: (\d+) after its own pin, (\d+) after another vCPU's; stale table reads faulted: (\d+); (\d+) data checks, (\d+) chaos moves done, \d+ TLB_FLUSH_MULTI, 0 failures$");

    private readonly ITestOutputHelper _output;
    public PtStressTests(ITestOutputHelper output) => _output = output;

    private static int Rounds()
    {
        string s = Environment.GetEnvironmentVariable("MICROHV_PT_STRESS_ROUNDS");
        return int.TryParse(s, out int n) && n > 0 ? n : DefaultRounds;
    }

    /// <summary>The result line's counts: every vCPU finished every round, and pins, refusals and stale writes happened.</summary>
    private static void AssertBusy(Match m, int rounds, string log)
    {
        Assert.True(m.Success, log);
        Assert.Equal(rounds.ToString(), m.Groups[1].Value);
        Assert.True(long.Parse(m.Groups[2].Value) > 0 && long.Parse(m.Groups[3].Value) > 0, $"no pin raced another vCPU\n{log}");
        Assert.True(long.Parse(m.Groups[6].Value) > 0, $"no stale writable translation was tried after a pin\n{log}");
        Assert.True(long.Parse(m.Groups[8].Value) > 0, $"no translation through an unhooked table was tried once it was writable\n{log}");
        Assert.Equal(4L * rounds, long.Parse(m.Groups[9].Value));
    }

    [Fact]
    public void FourVcpusHammeringTheSamePageTablesLeaveMicrohvAndTheCanaryIntact()
    {
        int rounds = Rounds();
        var run = TimeSpan.FromMinutes(10 + rounds / 300);
        string canary = FuzzTests.Built.Value, pvtest = XenHypervisor.EnsurePvTest();
        var clock = Stopwatch.StartNew();
        var args = BootConfig.Args(KernelImages.IsoWithModules(Cmdline,
            (canary, "name=canary pages=2048 initial vcpus=1 -- mode=canary fuzzers=2 wait=3600"),
            (pvtest, $"name=stress vcpus=4 -- workload=pt-stress rounds={rounds}"),
            (pvtest, $"name=early vcpus=4 -- workload=pt-stress rounds=1000000 stop-after={EarlyRounds}")), memoryMiB: 512);
        args.AddRange(new[] { "-smp", "4" });
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, args, run);
        qemu.WaitForLine("fuzz: canary holds 47 pages for 2 fuzzers", run);
        var end = qemu.WaitForLine(new Regex(@"^(fuzz: canary intact after \d+ checks|fuzz: canary.*|FATAL.*|domain \d+ crashed: .*|\(d[12]\) pvtest: workload pt-stress.*(FAILED|unexpected|cannot|no window).*)$"), run);
        Assert.True(end.Value.StartsWith("fuzz: canary intact"), $"{end.Value}\n{qemu.Describe(120)}");
        qemu.WaitForLine("Microhv: powering off (isa-debug-exit)", TimeSpan.FromMinutes(1));
        int status = qemu.WaitForExit(TimeSpan.FromMinutes(1));
        var lines = qemu.Lines;
        string log = qemu.Describe(60);

        string result = lines.FirstOrDefault(l => l.StartsWith("(d1) pvtest: workload pt-stress", StringComparison.Ordinal)) ?? "";
        AssertBusy(Result.Match(result), rounds, log);
        Assert.DoesNotContain(lines, l => l.Contains("FATAL"));
        Assert.Contains("summary: domain 0 (canary): poweroff, code 0", lines);
        Assert.Contains("summary: domain 1 (stress): poweroff, code 0", lines);
        Assert.Contains($"(d2) pvtest: workload pt-stress: vCPU 0 powers off after {EarlyRounds} rounds, 3 vCPUs still at work", lines);
        Assert.Contains("summary: domain 2 (early): poweroff, code 0", lines);
        Assert.Contains(lines, l => Regex.IsMatch(l, @"^summary: frame table consistent \(\d+ frames checked\)$"));
        Assert.Contains(lines, l => Regex.IsMatch(l, @"^summary: frames: (\d+) free before the domains were built, \1 after the last one ended$"));
        var perCpu = Regex.Match(string.Join("\n", lines), @"summary: guest time per CPU: CPU0 (\d+) ms, CPU1 (\d+) ms, CPU2 (\d+) ms, CPU3 (\d+) ms");
        Assert.True(perCpu.Success, log);
        for (int c = 1; c <= 4; c++) Assert.True(int.Parse(perCpu.Groups[c].Value) > 0, $"CPU {c - 1} ran no guest\n{log}");
        Assert.Equal(1, status);
        _output.WriteLine(result);
        _output.WriteLine(lines.First(l => l.StartsWith("fuzz: canary intact", StringComparison.Ordinal)));
        foreach (string l in lines.Where(l => l.StartsWith("summary: frame", StringComparison.Ordinal) || l.StartsWith("summary: guest time", StringComparison.Ordinal))) _output.WriteLine(l);
        _output.WriteLine($"{rounds} rounds per vCPU in {clock.Elapsed.TotalSeconds:0} s of wall time");
    }

    /// <summary>The workload as Xen 4.17's dom0 with one vCPU per CPU: the refusals and faults it expects are Xen's.</summary>
    [Fact]
    public void TheWorkloadPassesOnXen()
    {
        const int rounds = 200;
        string pvtest = XenHypervisor.EnsurePvTest();
        var args = XenHypervisor.Args(pvtest).ToList();
        int initrd = args.IndexOf("-initrd");
        args[initrd + 1] = $"{pvtest} workload=pt-stress rounds={rounds}";
        args.AddRange(new[] { "-smp", "4" });
        var run = TimeSpan.FromMinutes(8);
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, args, run);
        var line = qemu.WaitForLine(new Regex(@"^pvtest: workload pt-stress.*$"), run);
        AssertBusy(Result.Match(line.Value), rounds, qemu.Describe(60));
        _output.WriteLine(line.Value);
    }
}
