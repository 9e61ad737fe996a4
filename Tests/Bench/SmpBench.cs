using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Microhv.Tests.Qemu;

namespace Microhv.Bench;

/// <summary>What one SMP run measured: wall time (Linux's monotonic clock, no icount) of k concurrent jobs.</summary>
public sealed class SmpResult
{
    public string Key { get; init; }
    public string Title { get; init; }
    public Column Column { get; init; }
    public string Failure { get; set; }             // null: every figure was measured
    public string NotRun { get; set; }              // why the run was not made (--quick, --configs, --no-wallclock, --replay)
    public int? Vcpus { get; set; }                 // dom0's `nproc`
    /// <summary>Seconds of each repetition, per job count (SmpBench.JobCounts).</summary>
    public Dictionary<int, List<double>> Seconds { get; } = new();
    /// <summary>Nanoseconds per round trip or iteration of each smp-probe mode (SmpProbe.Modes), one per repetition.</summary>
    public Dictionary<string, List<double>> ProbeNs { get; } = new();
    public string ProbeFailure { get; set; }        // why there are no smp-probe figures (the md5sum ones may still be there)
    public string Command { get; set; }
    public string LogPath { get; set; }
    public double RunSeconds { get; set; }

    public double? ProbeMedian(string mode) => ProbeNs.TryGetValue(mode, out var v) ? Dom0Report.Median(v) : null;

    public double? Median(int jobs) => Seconds.TryGetValue(jobs, out var v) ? Dom0Report.Median(v) : null;

    /// <summary>k·t1/tk: how many one-job times k jobs took less than running them one after the other.</summary>
    public double? Speedup(int jobs) => Median(1) is double t1 && Median(jobs) is double tk && tk > 0 ? jobs * t1 / tk : null;
}

/// <summary>
/// The SMP figures (issue 13): the hardware dom0 of <see cref="Dom0Bench"/> (same machine, disk copy and CPU
/// model) on `-smp 4` WITHOUT icount (under icount QEMU runs the vCPUs round-robin on one host thread, so
/// nothing runs in parallel), with four vCPUs (one per CPU: both hypervisors' default for dom0), no toolstack.
/// In dom0, k concurrent `md5sum` of one random file in tmpfs for k = 1, 2, 4, timed by Linux's clock.
/// Wall clock: the runs go one at a time, after every other QEMU run, and only the ratios carry over hosts.
/// </summary>
public static class SmpBench
{
    public const string MicrohvKey = "smp-microhv", XenKey = "smp-xen";
    public const int Cpus = 4;
    public static readonly int[] JobCounts = { 1, 2, 4 };
    /// <summary>Each job count is timed this many times, the counts interleaved (1, 2, 4, 1, 2, 4, ...) so that a change in the host's load falls on all of them.</summary>
    public const int Repetitions = 5;
    public const int Megabytes = 32;
    /// <summary>The file the jobs read, in /run (rcS mounts a tmpfs there): memory, no disk.</summary>
    public const string File = "/run/smp-bench";

    private static readonly TimeSpan BootTimeout = TimeSpan.FromMinutes(12);
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(4);
    private static readonly TimeSpan HardTimeout = TimeSpan.FromMinutes(40);

    private const string Now = "grep -m1 '^now at' /proc/timer_list";
    private static readonly Regex NowLine = new(@"^now at (\d+) nsecs");
    private static readonly Regex SumLine = new(@"^([0-9a-f]{32})  " + Regex.Escape(File) + @"\s*$");

    /// <summary>The script that times k jobs ($1): two clock readings around k background `md5sum`s and `wait`.
    /// It is written once and run by a short typed line: a long typed line loses characters on a loaded host.</summary>
    public const string Script = "/run/smp-jobs";
    public const string ScriptText = "grep -m1 \"^now at\" /proc/timer_list; i=0; while [ $i -lt $1 ]; do md5sum " + File
                                     + " & i=$((i+1)); done; wait; grep -m1 \"^now at\" /proc/timer_list";
    /// <summary>How many times a repetition whose output is malformed (a typed character lost) is tried.</summary>
    private const int Attempts = 3;

    public static List<SmpResult> Plan(Options o)
    {
        var list = new List<SmpResult>
        {
            new() { Key = MicrohvKey, Title = "Microhv, hardware dom0 on -smp 4", Column = Column.MicrohvHypercall },
            new() { Key = XenKey, Title = "Xen 4.17, dom0 on -smp 4", Column = Column.Xen },
        };
        foreach (SmpResult r in list)
        {
            bool named = o.Keys != null && (o.Keys.Contains(r.Key) || o.Keys.Contains("smp"));
            if (o.Keys != null && !named) r.NotRun = "not selected (--configs)";
            else if (o.Quick && !named) r.NotRun = "skipped by --quick (wall clock)";
            else if (o.NoWallClock) r.NotRun = "not measured (--no-wallclock)";
            else if (o.Replay != null) r.NotRun = "not measured (--replay)";
        }
        return list;
    }

    /// <summary>Runs the selected configurations one after the other: each is timed by the wall clock.</summary>
    public static void RunAll(List<SmpResult> results, Dictionary<string, string> missing, string work)
    {
        var todo = results.Where(r => r.NotRun == null).ToList();
        if (todo.Count == 0) return;
        string probe = SmpProbe.Build(work, out string probeFailure);
        foreach (SmpResult r in todo) r.ProbeFailure = probeFailure;
        try { Dom0Machine.EnsureBuilt(); }
        catch (InvalidOperationException e)
        {
            foreach (SmpResult r in todo) r.Failure = "no dom0 disk: " + Program.Short(e.Message);
            Console.WriteLine("bench: smp: " + e.Message);
            return;
        }
        foreach (SmpResult r in todo)
        {
            string need = r.Key == XenKey ? Configuration.XenElf : Configuration.MicrohvElf;
            if (missing.TryGetValue(need, out string why) || !System.IO.File.Exists(need))
            {
                r.Failure = why ?? need + " missing";
                Console.WriteLine($"bench: {r.Key}: skipped ({r.Failure})");
                continue;
            }
            r.LogPath = work + "/" + r.Key + ".log";
            Console.WriteLine($"bench: {r.Key}: running ({r.Title}, wall clock)");
            var clock = System.Diagnostics.Stopwatch.StartNew();
            try { Run(r, r.Key == XenKey ? Dom0Host.Xen : Dom0Host.Microhv, probe); }
            catch (Exception e) when (e is QemuTestException || e is InvalidOperationException || e is IOException || e is FormatException)
            {
                r.Failure = Program.Short(e.Message.Split('\n')[0]);
            }
            r.RunSeconds = clock.Elapsed.TotalSeconds;
            string figures = string.Join(", ", JobCounts.Where(k => r.Median(k) != null).Select(k => $"{k} jobs {r.Median(k):0.000} s"));
            Console.WriteLine($"bench: {r.Key}: {(r.Failure == null ? "done" : "failed (" + r.Failure + ")")}{(figures.Length > 0 ? ": " + figures : "")}, {r.RunSeconds:0.0} s");
        }
    }

    private static void Run(SmpResult r, Dom0Host host, string probe)
    {
        // The dom0 bench's machine and CPU model (QEMU takes the last -cpu), four CPUs, and no icount.
        var smpHost = host with { QemuArgs = disk => host.QemuArgs(disk).Concat(new[] { "-cpu", Dom0Bench.Cpu, "-smp", Cpus.ToString() }).ToList() };
        string disk = Dom0Machine.CopyDisk(Directory.Exists("/dev/shm") ? "/dev/shm" : KernelImages.WorkDir);
        Dom0Session dom0 = null;
        try
        {
            if (probe != null && !SmpProbe.Install(probe, disk, out string why)) r.ProbeFailure = why;
            dom0 = Dom0Session.Boot(smpHost, disk, HardTimeout);
            r.Command = dom0.Qemu.CommandLine;
            dom0.WaitForShell(BootTimeout);
            dom0.Run("dmesg -n 1", CommandTimeout);

            string nproc = dom0.Run("nproc", CommandTimeout).Select(l => l.Trim()).LastOrDefault(l => l.Length > 0);
            if (!int.TryParse(nproc, out int n)) throw new FormatException("nproc printed no number: " + nproc);
            r.Vcpus = n;
            if (n != Cpus) throw new FormatException($"dom0 has {n} vCPUs, not {Cpus} (nproc)");

            // The file, then one untimed pass that also gives the sum every job must print.
            var made = dom0.Run($"head -c {Megabytes * 1048576L} /dev/urandom > {File} && wc -c < {File}", CommandTimeout);
            if (!made.Any(l => l.Trim() == (Megabytes * 1048576L).ToString()))
                throw new FormatException($"no {Megabytes} MiB file in {File}: " + string.Join(" / ", made));
            string sum = Sums(dom0.Run("md5sum " + File, CommandTimeout)).SingleOrDefault()
                         ?? throw new FormatException("the warm-up md5sum printed no sum");

            WriteScript(dom0);
            foreach (int k in JobCounts) r.Seconds[k] = new List<double>();
            for (int i = 0; i < Repetitions; i++)
                foreach (int k in JobCounts) r.Seconds[k].Add(TimeJobs(dom0, k, sum));
            dom0.Run($"rm -f {File} {Script}", CommandTimeout);

            // The IPI and TLB-flush probes, in the same boot (a failure there keeps the figures above).
            if (r.ProbeFailure == null)
            {
                try { SmpProbe.Run(dom0, r, Repetitions, Attempts, CommandTimeout); }
                catch (Exception e) when (e is QemuTestException || e is FormatException)
                {
                    r.ProbeFailure = Program.Short(e.Message.Split('\n')[0]);
                    Console.WriteLine($"bench: {r.Key}: smp-probe figures failed ({r.ProbeFailure})");
                }
            }
        }
        finally
        {
            if (dom0 != null)
            {
                Dom0Bench.WriteLog(r.LogPath, dom0.Qemu);
                dom0.Dispose();
            }
            try { Directory.Delete(Path.GetDirectoryName(disk), recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Writes <see cref="Script"/> and checks it by its sum (the host's of the same text).</summary>
    private static void WriteScript(Dom0Session dom0)
    {
        string want = Convert.ToHexString(System.Security.Cryptography.MD5.HashData(System.Text.Encoding.ASCII.GetBytes(ScriptText + "\n"))).ToLowerInvariant();
        IReadOnlyList<string> lines = null;
        for (int attempt = 0; attempt < Attempts; attempt++)
        {
            lines = dom0.Run($"printf '%s\\n' '{ScriptText}' > {Script}; md5sum {Script}", CommandTimeout);
            if (lines.Any(l => l.StartsWith(want + "  " + Script))) return;
        }
        throw new FormatException($"{Script} was not written as sent (md5 {want}): " + string.Join(" / ", lines));
    }

    /// <summary>Seconds of one run of <paramref name="jobs"/> jobs; each must print <paramref name="sum"/>. A malformed output is tried again.</summary>
    private static double TimeJobs(Dom0Session dom0, int jobs, string sum)
    {
        IReadOnlyList<string> lines = null;
        for (int attempt = 0; attempt < Attempts; attempt++)
        {
            lines = dom0.Run($"sh {Script} {jobs}", CommandTimeout);
            var sums = Sums(lines);
            if (sums.Count == jobs && sums.All(s => s == sum) && lines.Count(l => NowLine.IsMatch(l)) == 2)
                return Elapsed(lines, jobs);
        }
        throw new FormatException($"{jobs} jobs did not print {jobs} times {sum} between two clock lines: " + string.Join(" / ", lines));
    }

    private static List<string> Sums(IEnumerable<string> lines)
        => lines.Select(l => SumLine.Match(l)).Where(m => m.Success).Select(m => m.Groups[1].Value).ToList();

    /// <summary>Seconds between the two clock lines of one timed line.</summary>
    private static double Elapsed(IReadOnlyList<string> lines, int jobs)
    {
        var nows = lines.Select(l => NowLine.Match(l)).Where(m => m.Success).ToList();
        if (nows.Count != 2) throw new FormatException($"{jobs} jobs: {nows.Count} clock lines, not 2: " + string.Join(" / ", lines));
        return (long.Parse(nows[1].Groups[1].Value) - long.Parse(nows[0].Groups[1].Value)) / 1e9;
    }
}
