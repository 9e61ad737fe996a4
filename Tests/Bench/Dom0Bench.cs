using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading.Tasks;
using Microhv.Tests.Qemu;

namespace Microhv.Bench;

/// <summary>What one hardware-dom0 run measured, in guest time (Linux's monotonic clock, under icount).</summary>
public sealed class Dom0Result
{
    public string Key { get; init; }
    public string Title { get; init; }
    public Column Column { get; init; }
    public string Failure { get; set; }             // null: every figure was measured
    public string NotRun { get; set; }              // why the run was not made (--quick, --configs, --replay)
    public double? InitSeconds { get; set; }        // printk time of "Run /init": the kernel's own boot is done
    public double? RootMountedSeconds { get; set; } // printk time of the initramfs's ext4 mount of /dev/sda1
    public double? ShellSeconds { get; set; }       // Linux's clock when the login shell started
    public double? WallShellSeconds { get; set; }   // QEMU start to the shell banner, wall clock (this run, under icount)
    /// <summary>Guest seconds of each read and each write, and the disk's interrupts during each read, in run order.</summary>
    public List<double> ReadSeconds { get; } = new();
    public List<double> WriteSeconds { get; } = new();
    public List<long> ReadInterrupts { get; } = new();
    public List<double> ReadMBps => ReadSeconds.Select(s => Dom0Bench.Bytes / 1e6 / s).ToList();
    public List<double> WriteMBps => WriteSeconds.Select(s => Dom0Bench.Bytes / 1e6 / s).ToList();
    public List<double> InterruptsPerSecond => ReadInterrupts.Zip(ReadSeconds, (n, s) => n / s).ToList();
    /// <summary>Issue 12's figures, measured after the others in the same boot (<see cref="Dom0XlBench"/>).</summary>
    public XlResult Xl { get; } = new();
    public string Command { get; set; }
    public string LogPath { get; set; }
    public double RunSeconds { get; set; }
}

/// <summary>
/// The hardware-dom0 figures: Debian's Linux 6.1 boots as dom0 from the AHCI disk of the dom0 test
/// machine (Tests/Microhv.Tests/Qemu: Dom0Machine, Dom0Host, Dom0Session, linked into this project, so the
/// QEMU command lines are the dom0 tests' own) on Microhv and on Xen 4.17, each from its own copy of
/// the disk, under icount. The shell is driven as the tests drive it; every time is Linux's, read in dom0.
/// </summary>
public static class Dom0Bench
{
    public const string MicrohvKey = "dom0-microhv", XenKey = "dom0-xen";
    public static readonly string[] Keys = { MicrohvKey, XenKey };

    public static readonly TimeSpan BootTimeout = TimeSpan.FromMinutes(12);
    public static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(4);
    public static readonly TimeSpan HardTimeout = TimeSpan.FromMinutes(60);

    /// <summary>64 MiB per transfer, in 1 MiB direct requests: the disk itself, not the page cache.</summary>
    public const int Megabytes = 64;
    public const long Bytes = Megabytes * 1048576L;
    /// <summary>Each transfer is repeated in the same boot: disk waits make single figures vary from run to run (see Dom0Report).</summary>
    public const int Repetitions = 5;

    /// <summary>
    /// The CPU model of both dom0 runs: Xen's dom0 one (XenHypervisor.Dom0Cpu: SMAP and SMEP off; Microhv's
    /// PV CPUID policy hides them itself and lets dom0 set CR4.FSGSBASE, as Xen's does). The dom0 tests give
    /// Microhv QEMU's default qemu64 (no RDRAND, among others): the two would not run on the same CPU.
    /// </summary>
    public const string Cpu = XenHypervisor.Dom0Cpu;
    /// <summary>The write goes to a file on the root filesystem of the run's own copy of the disk, removed afterwards.</summary>
    private const string WriteFile = "/root/bench-dd";
    /// <summary>Linux's USER_HZ on x86: the unit of a process's start time in /proc/PID/stat.</summary>
    private const int UserHz = 100;

    /// <summary>Linux's monotonic clock in nanoseconds (the "now at N nsecs" line of /proc/timer_list).</summary>
    private const string Now = "grep -m1 '^now at' /proc/timer_list";
    private static readonly Regex NowLine = new(@"^now at (\d+) nsecs");

    public static List<Dom0Result> Plan(Options o)
    {
        var list = new List<Dom0Result>
        {
            new() { Key = MicrohvKey, Title = "Microhv, hardware dom0", Column = Column.MicrohvHypercall },
            new() { Key = XenKey, Title = "Xen 4.17, dom0", Column = Column.Xen },
        };
        foreach (Dom0Result r in list)
        {
            bool named = o.Keys != null && (o.Keys.Contains(r.Key) || o.Keys.Contains("dom0"));
            if (o.Keys != null && !named) r.NotRun = "not selected (--configs)";
            else if (o.Quick && !named) r.NotRun = "skipped by --quick (a dom0 boot under icount takes minutes)";
            else if (o.Replay != null) r.NotRun = "not measured (--replay)";
        }
        return list;
    }

    /// <summary>Runs the selected dom0 configurations, both at once (icount: the load does not change the figures).</summary>
    public static void RunAll(List<Dom0Result> results, Dictionary<string, string> missing, string work)
    {
        var todo = results.Where(r => r.NotRun == null).ToList();
        if (todo.Count == 0) return;
        try { Dom0Machine.EnsureBuilt(); }
        catch (InvalidOperationException e)
        {
            foreach (Dom0Result r in todo) r.Failure = "no dom0 disk: " + Program.Short(e.Message);
            Console.WriteLine("bench: dom0: " + e.Message);
            return;
        }
        Parallel.ForEach(todo, new ParallelOptions { MaxDegreeOfParallelism = 2 }, r =>
        {
            string need = r.Key == XenKey ? Configuration.XenElf : Configuration.MicrohvElf;
            if (missing.TryGetValue(need, out string why) || !File.Exists(need))
            {
                r.Failure = why ?? need + " missing";
                Console.WriteLine($"bench: {r.Key}: skipped ({r.Failure})");
                return;
            }
            r.LogPath = work + "/" + r.Key + ".log";
            Console.WriteLine($"bench: {r.Key}: running ({r.Title})");
            var clock = System.Diagnostics.Stopwatch.StartNew();
            try { Run(r, r.Key == XenKey ? Dom0Host.Xen : Dom0Host.Microhv); }
            catch (Exception e) when (e is QemuTestException || e is InvalidOperationException || e is IOException || e is FormatException)
            {
                r.Failure = Program.Short(e.Message.Split('\n')[0]);
            }
            r.RunSeconds = clock.Elapsed.TotalSeconds;
            Console.WriteLine($"bench: {r.Key}: {(r.Failure == null ? "done" : "failed (" + r.Failure + ")")}, {r.RunSeconds:0.0} s");
        });
    }

    private static void Run(Dom0Result r, Dom0Host host)
    {
        // The dom0 tests' machine and command line, plus the bench's icount and one CPU model for both
        // hypervisors (QEMU takes the last -cpu): see Cpu.
        var cpu = new[] { "-cpu", Cpu };
        var icountHost = host with { QemuArgs = disk => host.QemuArgs(disk).Concat(cpu).Concat(Configuration.Icount).ToList() };
        // The copy goes to tmpfs when there is one: host disk latency then hardly enters the guest's disk waits.
        string disk = Dom0Machine.CopyDisk(Directory.Exists("/dev/shm") ? "/dev/shm" : KernelImages.WorkDir);
        Dom0Session dom0 = null;
        try
        {
            dom0 = Dom0Session.Boot(icountHost, disk, HardTimeout);
            r.Command = dom0.Qemu.CommandLine;
            dom0.WaitForShell(BootTimeout);
            r.WallShellSeconds = dom0.Clock.Elapsed.TotalSeconds;
            r.InitSeconds = KernelTime(dom0.Qemu.Lines, "Run /init as init process");
            r.RootMountedSeconds = KernelTime(dom0.Qemu.Lines, "EXT4-fs (sda1): mounted filesystem");
            dom0.Run("dmesg -n 1", CommandTimeout);

            // The login shell's start time, in USER_HZ ticks of Linux's boot clock (field 22 of its stat).
            var stat = dom0.Run("cat /proc/$$/stat", CommandTimeout);
            string[] f = stat.LastOrDefault(l => l.Contains(") "))?.Split(") ")[1].Split(' ');
            if (f == null || f.Length < 20 || !long.TryParse(f[19], out long startTicks))
                throw new FormatException("no start time in the shell's /proc/$$/stat: " + string.Join(" / ", stat));
            r.ShellSeconds = (double)startTicks / UserHz;

            // One typed line per transfer: the clock and the counts are read around dd with no typing in between.
            for (int i = 0; i < Repetitions; i++)
            {
                var read = dom0.Run($"{Now}; cat /proc/interrupts; dd if=/dev/sda of=/dev/null bs=1M count={Megabytes} iflag=direct; {Now}; cat /proc/interrupts", CommandTimeout);
                var (rs, before, after) = Measure(read, "read");
                if (!before.TryGetValue(Dom0Machine.DiskIrqName, out long b) || !after.TryGetValue(Dom0Machine.DiskIrqName, out long a))
                    throw new FormatException("/proc/interrupts has no " + Dom0Machine.DiskIrqName + " line");
                r.ReadSeconds.Add(rs);
                r.ReadInterrupts.Add(a - b);
            }
            for (int i = 0; i < Repetitions; i++)
            {
                dom0.Run($"rm -f {WriteFile}; sync", CommandTimeout);
                var write = dom0.Run($"{Now}; dd if=/dev/zero of={WriteFile} bs=1M count={Megabytes} oflag=direct conv=fsync; {Now}", CommandTimeout);
                r.WriteSeconds.Add(Measure(write, "write").Seconds);
            }
            dom0.Run($"rm -f {WriteFile}; sync", CommandTimeout);

            // Xen's toolstack and an xl-created guest, in the same boot (a failure there keeps the figures above).
            try { Dom0XlBench.Run(r.Xl, dom0); }
            catch (Exception e) when (e is QemuTestException || e is FormatException)
            {
                r.Xl.Failure = Program.Short(e.Message.Split('\n')[0]);
                Console.WriteLine($"bench: {r.Key}: xl figures failed ({r.Xl.Failure})");
            }
        }
        finally
        {
            if (dom0 != null)
            {
                WriteLog(r.LogPath, dom0.Qemu);
                dom0.Dispose();
            }
            try { Directory.Delete(Path.GetDirectoryName(disk), recursive: true); } catch (IOException) { }
        }
    }

    private static readonly Regex PrintkTime = new(@"^\[\s*(\d+\.\d+)\] (.*)$");

    /// <summary>The printk timestamp (Linux's clock) of the first kernel message that starts with <paramref name="text"/>, or null.</summary>
    private static double? KernelTime(IEnumerable<string> lines, string text)
    {
        foreach (string l in lines)
        {
            Match m = PrintkTime.Match(l);
            if (m.Success && m.Groups[2].Value.StartsWith(text, StringComparison.Ordinal))
                return double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        }
        return null;
    }

    /// <summary>The guest seconds between the two clock lines of a transfer, and /proc/interrupts after each; dd must report the whole transfer.</summary>
    private static (double Seconds, Dictionary<string, long> Before, Dictionary<string, long> After) Measure(IReadOnlyList<string> lines, string what)
    {
        var nows = lines.Select((l, i) => (Match: NowLine.Match(l), Index: i)).Where(x => x.Match.Success).ToList();
        if (nows.Count != 2) throw new FormatException($"the {what} printed {nows.Count} clock lines, not 2: " + string.Join(" / ", lines));
        // Busybox's dd reports whole records only ("64+0 records out").
        if (!lines.Any(l => l.Trim() == Megabytes + "+0 records out"))
            throw new FormatException($"dd did not {what} {Megabytes} records of 1 MiB: " + string.Join(" / ", lines));
        double seconds = (long.Parse(nows[1].Match.Groups[1].Value) - long.Parse(nows[0].Match.Groups[1].Value)) / 1e9;
        var before = ProcInterrupts.Counts(lines.Take(nows[1].Index));
        var after = ProcInterrupts.Counts(lines.Skip(nows[1].Index));
        return (seconds, before, after);
    }

    public static void WriteLog(string path, QemuMachine qemu)
    {
        if (path == null) return;
        Directory.CreateDirectory(Path.GetDirectoryName(path));
        var log = new StringBuilder();
        log.Append("# ").AppendLine(qemu.CommandLine);
        foreach (string l in qemu.Lines) log.AppendLine(l);
        File.WriteAllText(path, log.ToString());
    }
}
