using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading.Tasks;

namespace Microhv.Bench;

/// <summary>What one configuration produced: its figures, or why it failed, and its boot time.</summary>
public sealed class ConfigResult
{
    public Configuration Config { get; init; }
    public string Failure { get; set; }                 // null: the guest reached "pvops: done"
    public List<Figure> Figures { get; set; } = new();
    public string Command { get; set; }
    public string LogPath { get; set; }
    public double RunSeconds { get; set; }
    public double? BootSeconds { get; set; }            // wall clock, no icount: QEMU start to the guest's first line
    public string BootFailure { get; set; }
}

public sealed class Options
{
    public bool Quick, Build = true, WallClock = true, CleanBuild = true;
    public bool NoWallClock;                            // --no-wallclock given (--quick alone leaves the named SMP runs on)
    public HashSet<string> Keys;                        // null: every configuration
    public TimeSpan Timeout = TimeSpan.FromSeconds(150);
    public string Out = "BENCHMARKS.md";
    public string Replay;                               // read serial logs from here instead of running QEMU
    public string CommandLine = "./bench.sh";
}

/// <summary>
/// ./bench.sh: build, boot every configuration (two QEMUs at a time: CI has two cores; icount
/// makes the figures independent of the load), then the wall-clock boot runs one at a time, then
/// the wall-clock SMP runs one at a time, then the clean build, so that the timed steps do not
/// compete with each other.
/// </summary>
public static class Program
{
    /// <summary>Added to the guest's command line by --quick: fewer repetitions (the guest's option).</summary>
    public const string QuickGuestArg = "pvops.quick=1";

    public static int Main(string[] argv)
    {
        Options o = ParseOptions(argv, out int usageExit);
        if (o == null) return usageExit;
        string root = FindRoot();
        Directory.SetCurrentDirectory(root);
        string work = "build/bench";
        Directory.CreateDirectory(work);

        var configs = Configuration.All(work, o.Quick ? QuickGuestArg : "")
            .Where(c => o.Keys == null || o.Keys.Contains(c.Key) || (c.PingPong && o.Keys.Contains(c.Key.Replace("pingpong-", ""))))
            .ToList();
        var results = configs.Select(c => new ConfigResult { Config = c }).ToList();
        var dom0 = Dom0Bench.Plan(o);
        var smp = SmpBench.Plan(o);

        var missing = o.Replay == null ? Prepare(o, configs, dom0, smp) : new Dictionary<string, string>();
        RunAll(o, results, missing, work);
        Dom0Bench.RunAll(dom0, missing, work);
        if (o.WallClock && o.Replay == null) BootTimes(results);
        // Wall clock with several host threads per QEMU: alone, after every other run and before the clean build.
        SmpBench.RunAll(smp, missing, work);
        var host = HostInfo.Collect(o.CleanBuild && o.Replay == null, root);

        var report = new Report(o, results, dom0, smp, host);
        string generated = report.Generate();
        Console.WriteLine();
        Console.WriteLine(report.Table());
        Console.WriteLine(report.Footnotes());
        report.WriteFile(o.Out, generated);
        Console.WriteLine($"bench: written to {o.Out}; serial logs in {work}/");
        return report.AnyFigure ? 0 : 1;
    }

    /// <summary>Builds the kernel, the pvops guest and fetches Xen; returns the missing files with why they are missing.</summary>
    private static Dictionary<string, string> Prepare(Options o, List<Configuration> configs, List<Dom0Result> dom0, List<SmpResult> smp)
    {
        var missing = new Dictionary<string, string>();
        if (o.Build)
        {
            if (configs.Any(c => c.IsoKernel == Configuration.MicrohvElf) || dom0.Any(d => d.NotRun == null && d.Key == Dom0Bench.MicrohvKey)
                || smp.Any(d => d.NotRun == null && d.Key == SmpBench.MicrohvKey))
                Step("building the kernel", Tool.Run("dotnet", new[] { "build", "Kernel/Kernel.csproj", "-nologo", "-v", "q" }, null, TimeSpan.FromMinutes(10)),
                     Configuration.MicrohvElf, "kernel build failed", missing);
            if (File.Exists("Tests/Guests/PvOps/PvOps.csproj"))
                Step("building the pvops guest", Tool.Run("dotnet", new[] { "build", "Tests/Guests/PvOps/PvOps.csproj", "-nologo", "-v", "q" }, null, TimeSpan.FromMinutes(10)),
                     Configuration.PvOpsElf, "pvops build failed", missing);
            else if (!File.Exists(Configuration.PvOpsElf))
                missing[Configuration.PvOpsElf] = "no pvops guest (Tests/Guests/PvOps)";
            if ((configs.Any(c => c.Column == Column.Xen) || dom0.Any(d => d.NotRun == null && d.Key == Dom0Bench.XenKey)
                 || smp.Any(d => d.NotRun == null && d.Key == SmpBench.XenKey)) && !File.Exists(Configuration.XenElf))
                Step("fetching Xen 4.17", Tool.Run("bash", new[] { "Tests/Guests/fetch-xen.sh" }, null, TimeSpan.FromMinutes(5)),
                     Configuration.XenElf, "Xen 4.17 not fetched", missing);
        }
        foreach (string f in new[] { Configuration.MicrohvElf, Configuration.PvOpsElf, Configuration.XenElf })
            if (!File.Exists(f) && !missing.ContainsKey(f)) missing[f] = f + " missing";
        return missing;
    }

    private static void Step(string what, Tool.Result r, string product, string failure, Dictionary<string, string> missing)
    {
        Console.WriteLine($"bench: {what}: {(r.ExitCode == 0 ? "ok" : "FAILED")} ({r.Seconds:0.0} s)");
        if (r.ExitCode != 0)
        {
            Console.WriteLine(Tool.Tail(r.Output, 15));
            missing[product] = failure;
        }
    }

    private static void RunAll(Options o, List<ConfigResult> results, Dictionary<string, string> missing, string work)
    {
        Parallel.ForEach(results, new ParallelOptions { MaxDegreeOfParallelism = 2 }, r =>
        {
            Configuration c = r.Config;
            r.LogPath = work + "/" + c.Key + ".log";
            r.Command = "qemu-system-x86_64 " + string.Join(" ", c.Args(true).Select(QemuRun.Quote));
            if (o.Replay != null) { Replay(o.Replay, r); return; }

            var needs = new List<string> { Configuration.PvOpsElf };
            if (c.IsoKernel == Configuration.MicrohvElf) needs.Add(Configuration.MicrohvElf);
            if (c.Column == Column.Xen) needs.Add(Configuration.XenElf);
            string lacking = needs.Where(missing.ContainsKey).Select(n => missing[n]).FirstOrDefault();
            if (lacking != null) { r.Failure = lacking; Console.WriteLine($"bench: {c.Key}: skipped ({lacking})"); return; }

            if (c.IsoArgs != null)
            {
                var mk = Tool.Run("bash", new[] { "Boot/mkiso.sh", c.IsoKernel, c.IsoPath }.Concat(c.IsoArgs).ToArray(), null, TimeSpan.FromMinutes(2));
                if (mk.ExitCode != 0 || !File.Exists(c.IsoPath))
                {
                    r.Failure = "Boot/mkiso.sh failed";
                    Console.WriteLine($"bench: {c.Key}: {r.Failure}\n{Tool.Tail(mk.Output, 10)}");
                    return;
                }
            }
            Console.WriteLine($"bench: {c.Key}: running ({c.Title})");
            RunResult run = QemuRun.Run(Directory.GetCurrentDirectory(), c.Args(true), o.Timeout,
                lines => lines.Count(l => GuestOutput.IsDone(l.Text)) >= c.Guests, r.LogPath);
            r.RunSeconds = run.Seconds;
            r.Figures = GuestOutput.Parse(run.Texts);
            r.Failure = Classify(run, c, o.Timeout);
            Console.WriteLine($"bench: {c.Key}: {(r.Failure == null ? "done" : "failed (" + r.Failure + ")")}, {r.Figures.Count} figures, {run.Seconds:0.0} s");
        });
    }

    /// <summary>Boot time without icount, one QEMU at a time so that the runs do not slow each other down.</summary>
    private static void BootTimes(List<ConfigResult> results)
    {
        foreach (ConfigResult r in results.Where(r => !r.Config.PingPong))
        {
            Configuration c = r.Config;
            if (c.IsoArgs != null && !File.Exists(c.IsoPath)) { r.BootFailure = r.Failure ?? "no image"; continue; }
            if (c.IsoArgs == null && (!File.Exists(Configuration.XenElf) || !File.Exists(Configuration.PvOpsElf))) { r.BootFailure = r.Failure ?? "no image"; continue; }
            RunResult run = QemuRun.Run(Directory.GetCurrentDirectory(), c.Args(false), TimeSpan.FromSeconds(90),
                lines => lines.Any(l => GuestOutput.IsGuestLine(l.Text)), "build/bench/" + c.Key + "-boot.log");
            r.BootSeconds = run.FirstGuestLine;
            if (r.BootSeconds == null) r.BootFailure = run.TimedOut ? "no guest line within 90 s" : "QEMU exited before the guest printed";
            Console.WriteLine($"bench: {c.Key}: boot to first guest line: {(r.BootSeconds is double s ? s.ToString("0.00") + " s" : r.BootFailure)}");
        }
    }

    private static string Classify(RunResult run, Configuration c, TimeSpan timeout)
    {
        if (run.StartError != null) return "QEMU did not start: " + run.StartError;
        string backend = GuestOutput.Backend(run.Texts);
        if (backend != null && c.Backend != null && backend != c.Backend) return "the guest ran backend " + backend + ", not " + c.Backend;
        if (run.Lines.Count(l => GuestOutput.IsDone(l.Text)) >= c.Guests) return null;
        string crash = run.Texts.FirstOrDefault(l => l.Contains("crashed") || l.StartsWith("FATAL") || l.Contains("runtime failure") || l.Contains("Panic"));
        if (crash != null) return "crashed: " + Short(crash);
        if (run.TimedOut) return $"no 'pvops: done' within {timeout.TotalSeconds:0} s";
        if (!run.Lines.Any(l => GuestOutput.IsGuestLine(l.Text))) return $"guest printed nothing; QEMU exit status {run.ExitCode}";
        return $"QEMU exited (status {run.ExitCode}) before 'pvops: done'";
    }

    public static string Short(string s)
    {
        s = s.Replace("|", "/").Trim();
        return s.Length <= 70 ? s : s.Substring(0, 67) + "...";
    }

    /// <summary>--replay: the figures from a saved serial log (the harness's own log format, or raw serial text).</summary>
    private static void Replay(string dir, ConfigResult r)
    {
        string path = Path.Combine(dir, r.Config.Key + ".log");
        if (!File.Exists(path)) { r.Failure = "no log " + path; return; }
        var lines = File.ReadAllLines(path).Where(l => !l.StartsWith("# "))
            .Select(l => l.StartsWith("[") && l.IndexOf("] ") > 0 ? l.Substring(l.IndexOf("] ") + 2) : l).ToList();
        r.Figures = GuestOutput.Parse(lines);
        r.LogPath = path;
        if (lines.Count(GuestOutput.IsDone) < r.Config.Guests) r.Failure = "log has no 'pvops: done'";
    }

    private static Options ParseOptions(string[] argv, out int exit)
    {
        var o = new Options();
        exit = 0;
        if (argv.Length > 0) o.CommandLine += " " + string.Join(" ", argv.Select(QemuRun.Quote));
        for (int i = 0; i < argv.Length; i++)
        {
            string a = argv[i];
            string Value() => i + 1 < argv.Length ? argv[++i] : null;
            switch (a)
            {
                case "--quick": o.Quick = true; o.WallClock = false; o.CleanBuild = false; break;
                case "--no-build": o.Build = false; break;
                case "--no-wallclock": o.WallClock = false; o.NoWallClock = true; break;
                case "--no-clean-build": o.CleanBuild = false; break;
                case "--configs":
                    string v = Value();
                    if (v == null) { exit = Usage(); return null; }
                    o.Keys = new HashSet<string>(v.Split(',', StringSplitOptions.RemoveEmptyEntries));
                    break;
                case "--timeout":
                    if (!int.TryParse(Value(), out int t) || t <= 0) { exit = Usage(); return null; }
                    o.Timeout = TimeSpan.FromSeconds(t);
                    break;
                case "--out":
                    o.Out = Value();
                    if (o.Out == null) { exit = Usage(); return null; }
                    break;
                case "--replay":
                    o.Replay = Value();
                    if (o.Replay == null) { exit = Usage(); return null; }
                    o.Replay = Path.GetFullPath(o.Replay);
                    break;
                case "-h": case "--help": Usage(); return null;
                default: Console.Error.WriteLine($"bench: unknown option '{a}'"); exit = Usage(); return null;
            }
        }
        if (!Path.IsPathRooted(o.Out)) o.Out = Path.GetFullPath(o.Out, Environment.GetEnvironmentVariable("BENCH_CALLER_DIR") ?? Directory.GetCurrentDirectory());
        return o;
    }

    private static int Usage()
    {
        Console.Error.WriteLine(@"usage: ./bench.sh [options]
  --quick            fewer repetitions in the guest (pvops.quick=1); no boot-time runs, no clean build,
                     no dom0 or smp runs unless --configs names them
  --configs a,b      only these: native, hypercall, rom, xen (hypercall/rom include their ping-pong run),
                     dom0-microhv, dom0-xen (dom0: both; Debian Linux as hardware dom0 from the AHCI disk,
                     then Xen's toolstack in it: xl create, the domU's disk and network, xl destroy),
                     smp-microhv, smp-xen (smp: both; the same dom0 on -smp 4 without icount, wall clock:
                     k concurrent md5sums for k = 1, 2, 4; not run by --quick unless named)
  --timeout N        hard timeout of each QEMU run in seconds (default 150)
  --out FILE         where the report goes (default BENCHMARKS.md in the repository)
  --no-build         use the existing build/ images
  --no-wallclock     skip the wall-clock runs (boot times, smp-*)
  --no-clean-build   skip timing a clean build of the kernel
  --replay DIR       format DIR/<config>.log (serial logs) instead of running QEMU");
        return 2;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Microhv.sln")) && File.Exists(Path.Combine(dir.FullName, "Boot", "mkiso.sh")))
                return dir.FullName;
        return Directory.GetCurrentDirectory();
    }
}

/// <summary>Runs a build tool with a timeout, collecting its output.</summary>
public static class Tool
{
    public sealed record Result(int ExitCode, string Output, double Seconds);

    public static Result Run(string file, string[] args, string cwd, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = cwd ?? Directory.GetCurrentDirectory(),
        };
        foreach (string a in args) psi.ArgumentList.Add(a);
        var clock = Stopwatch.StartNew();
        Process p;
        try { p = Process.Start(psi); }
        catch (Exception e) { return new Result(-1, e.Message, 0); }
        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit((int)timeout.TotalMilliseconds))
            {
                try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                p.WaitForExit();
                return new Result(-1, $"{file} did not finish within {timeout.TotalSeconds:0} s", clock.Elapsed.TotalSeconds);
            }
            p.WaitForExit();
            return new Result(p.ExitCode, stdout.Result + stderr.Result, clock.Elapsed.TotalSeconds);
        }
    }

    public static string Tail(string text, int lines)
        => string.Join("\n", text.Split('\n').Where(l => l.Trim().Length > 0).TakeLast(lines));
}
