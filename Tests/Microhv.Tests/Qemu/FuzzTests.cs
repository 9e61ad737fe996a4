using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The hostile-guest fuzzer (Tests/Guests/Fuzz) in CI: a canary domain holding a checked pattern and
/// five fuzzers, each making 200000 hostile calls from its seed (10^6 in all). The
/// run fails on a Microhv FATAL, a domain that crashed, a hang (hard timeout), a changed canary, a
/// canary page leaked into a fuzzer, a trap a hypercall should not have raised, or a frame count
/// that differs after the last domain ended. Seeds that once found a bug stay in the list.
/// </summary>
[Trait("Category", "Qemu")]
public class FuzzTests
{
    private const string Cmdline = "microhv.log=info microhv.exit=isa-debug-exit";
    private const int CallsPerSeed = 200000;
    /// <summary>Seeds run in CI: 1 and 2 found the console interleaving (ConsoleRing.Put), 3 the fuzzer's own
    /// overruns of its request arrays (Arena.AllocList), 2 its own far transfers into 32-bit code (PrivOps
    /// selectors); 2 once crashed its fuzzer after 100000 calls beside 1, 3 and 4, most likely by
    /// running junk its requests wrote into its scratch pages as code (entered through a junk callback, as seed
    /// 2 still does at call 456945): the scratch pages are no-execute since (Sandbox.MapNoExecute).</summary>
    private static readonly ulong[] Seeds = { 1, 2, 3, 4, 5 };
    /// <summary>About 2 minutes on an idle 2-core machine; a loaded one needs more.</summary>
    private static readonly TimeSpan Run = TimeSpan.FromMinutes(15);
    private static readonly Regex FramesBalanced = new(@"^summary: frames: (\d+) free before the domains were built, \1 after the last one ended$");

    internal static readonly Lazy<string> Built = new(() =>
    {
        string elf = Path.Combine(KernelImages.RepoRoot, "build", "fuzz.elf");
        var psi = new ProcessStartInfo("dotnet", "build Tests/Guests/Fuzz/Fuzz.csproj -nologo -v q") { WorkingDirectory = KernelImages.RepoRoot, UseShellExecute = false };
        using (var p = Process.Start(psi)!) { p.WaitForExit(); Assert.True(p.ExitCode == 0, "building the fuzz guest failed"); }
        Assert.True(File.Exists(elf), $"the Fuzz build left no {elf}");
        return elf;
    });

    private readonly ITestOutputHelper _output;
    public FuzzTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void FuzzersCannotHurtMicrohvOrTheCanary()
    {
        string guest = Built.Value;
        var modules = new (string, string)[Seeds.Length + 1];
        modules[0] = (guest, $"name=canary pages=2048 initial -- mode=canary fuzzers={Seeds.Length} wait=840");
        for (int i = 0; i < Seeds.Length; i++) modules[i + 1] = (guest, $"name=fuzz{Seeds[i]} pages=2048 -- seed={Seeds[i]} calls={CallsPerSeed}");
        var clock = Stopwatch.StartNew();
        var args = BootConfig.Args(KernelImages.IsoWithModules(Cmdline, modules), memoryMiB: 512);
        args.AddRange(new[] { "-cpu", "max" });   // FSGSBASE among others: the fuzzers' random CR4 writes may turn it on
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, args, Run);
        qemu.WaitForLine($"fuzz: canary holds 47 pages for {Seeds.Length} fuzzers", Run);   // the initial domain's lines are unprefixed
        // The end of the run (the canary ends once every fuzzer's domain has shut down, as Microhv tells it,
        // not the fuzzers), or the first sign of a failure.
        var end = qemu.WaitForLine(new Regex(@"^(fuzz: canary intact after \d+ checks|domain \d+ crashed: .*|FATAL.*|.*fuzz: .*(trap outside a call|changed|pattern|did not finish).*)$"), Run);
        double seconds = clock.Elapsed.TotalSeconds;
        Assert.True(end.Value.StartsWith("fuzz: canary intact"), $"{end.Value}\n{qemu.Describe(120)}");
        qemu.WaitForLine("Microhv: powering off (isa-debug-exit)", TimeSpan.FromMinutes(1));
        int status = qemu.WaitForExit(TimeSpan.FromMinutes(1));
        var lines = qemu.Lines;
        string log = qemu.Describe(120);

        Assert.DoesNotContain(lines, l => l.Contains("FATAL"));
        Assert.DoesNotContain(lines, l => l.Contains(" crashed"));
        for (int i = 0; i < Seeds.Length; i++)
        {
            int d = i + 1;
            Assert.True(lines.Contains($"(d{d}) fuzz: seed {Seeds[i]}: {CallsPerSeed} calls done"), $"fuzzer {d} did not finish\n{log}");
            Assert.True(lines.Any(l => Regex.IsMatch(l, $@"^\(d{d}\) fuzz: stats: \d+ hypercalls \(\d+ returned 0\), \d+ instructions, \d+ traps, \d+ wild, 0 unexpected, 0 leaks$")),
                        $"fuzzer {d}: a trap inside a hypercall or a canary leak\n{log}");
            Assert.Contains($"summary: domain {d} (fuzz{Seeds[i]}): poweroff, code", string.Join("\n", lines));
        }
        Assert.Contains("summary: domain 0 (canary): poweroff, code 0", lines);
        Assert.True(lines.Any(l => FramesBalanced.IsMatch(l)), $"a dead domain did not give back every frame\n{log}");
        Assert.Equal(1, status);
        // The fuzzers' irets to selectors and RIPs the CPU refuses reached Microhv's own IRETQ (ExitFault.cs).
        string refused = lines.FirstOrDefault(l => Regex.IsMatch(l, @"^summary: [1-9]\d* exits to a guest refused by the CPU at their IRETQ"));
        Assert.True(refused != null, $"no iret of the fuzzers' was refused at Microhv's IRETQ\n{log}");
        _output.WriteLine(refused);
        long calls = (long)CallsPerSeed * Seeds.Length;
        _output.WriteLine($"{calls} hostile calls in {seconds:0} s of wall time: {calls / seconds:0} calls/s");
    }
}
