using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using Microhv.Tests.Qemu;

namespace Microhv.Bench;

/// <summary>The SMP section of BENCHMARKS.md (SmpBench): the same parallel work on Microhv and on Xen 4.17, and the speedups.</summary>
public static class SmpReport
{
    private static string F(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);

    private static string NotMeasured(SmpResult r)
        => r == null ? "n/a" : r.NotRun != null ? "not run (" + r.NotRun + ")" : "failed (" + Program.Short(r.Failure ?? "no figure") + ")";

    private static string TimeCell(SmpResult r, int jobs)
    {
        if (r?.Median(jobs) is not double v) return NotMeasured(r);
        var all = r.Seconds[jobs];
        return F(v, "0.000") + " (" + F(all.Min(), "0.000") + "–" + F(all.Max(), "0.000") + ")";
    }

    private static string SpeedupCell(SmpResult r, int jobs) => r?.Speedup(jobs) is double s ? F(s, "0.00") : NotMeasured(r);

    private static readonly (string Mode, string Label)[] ProbeRows =
    {
        ("wake-cross", "Wakeup round trip between vCPU 0 and vCPU 1: futex ping-pong, two IPIs a round trip (µs, host-dependent)"),
        ("wake-same", "The same ping-pong with both threads on vCPU 0: no IPI (µs, host-dependent)"),
        ("flush-remote", "Remote TLB flush: `mprotect` of a written page read-only and back, a thread of the process on vCPU 1 (µs, host-dependent)"),
        ("flush-local", "The same `mprotect` loop with no second thread: local flush only (µs, host-dependent)"),
    };

    private static double? Us(SmpResult r, string mode) => r?.ProbeMedian(mode) / 1000;

    private static string ProbeCell(SmpResult r, string mode)
    {
        if (Us(r, mode) is not double v)
            return r != null && r.NotRun == null && r.Failure == null ? "failed (" + Program.Short(r.ProbeFailure ?? "no figure") + ")" : NotMeasured(r);
        var all = r.ProbeNs[mode];
        return F(v, "0.0") + " (" + F(all.Min() / 1000, "0.0") + "–" + F(all.Max() / 1000, "0.0") + ")";
    }

    public static void Append(StringBuilder sb, List<SmpResult> all, int hostCores)
    {
        SmpResult m = all.FirstOrDefault(r => r.Column == Column.MicrohvHypercall), x = all.FirstOrDefault(r => r.Column == Column.Xen);
        sb.AppendLine("## Several CPUs: a parallel workload in dom0 on `-smp " + SmpBench.Cpus + "`");
        sb.AppendLine();
        sb.AppendLine("The hardware dom0 above (same machine, kernel, initramfs, a fresh copy of the disk, `-cpu " + Dom0Bench.Cpu + "`)");
        sb.AppendLine("on `-smp " + SmpBench.Cpus + "` WITHOUT icount: under icount QEMU runs every vCPU in turn on one host thread, so");
        sb.AppendLine("nothing would run in parallel; without it each virtual CPU is a host thread of its own (QEMU's multi-threaded TCG).");
        sb.AppendLine("Dom0 has one vCPU per CPU (both hypervisors' default; `nproc` is checked), no toolstack. In dom0 a file of");
        sb.AppendLine(SmpBench.Megabytes + " MiB from /dev/urandom in tmpfs (`" + SmpBench.File + "`) is read once by `md5sum` (warm, and the sum every job");
        sb.AppendLine("must print), then k concurrent `md5sum`s of it, started by a script between two readings of Linux's monotonic clock");
        sb.AppendLine("(`now at` of /proc/timer_list; `" + SmpBench.ScriptText + "`), are timed for k = " + string.Join(", ", SmpBench.JobCounts) + ", interleaved, " + SmpBench.Repetitions + " times each: the cell is the");
        sb.AppendLine("median, (min–max) after it. Speedup = k·t1/tk from the medians of the same boot (ideal: k). These are wall-clock");
        sb.AppendLine("figures (the clock runs in real time without icount), measured one run at a time after every other run:");
        sb.AppendLine("the times depend on the host and its load; the speedups and the Microhv / Xen ratios are what carries over.");
        sb.AppendLine($"**This host has {hostCores} core{(hostCores == 1 ? "" : "s")}**: QEMU's {SmpBench.Cpus} vCPU threads share them, so the speedup cannot");
        sb.AppendLine($"exceed about {Math.Min(hostCores, SmpBench.Cpus)} whatever the vCPU count (a 2-core host caps it near 2), and other load on the host lowers it further.");
        sb.AppendLine("A speedup above the host's core count can only come from the host's load changing between the repetitions: it is noise, and");
        sb.AppendLine("so is a Microhv / Xen ratio computed from it; the min–max spread of the times says how loaded the host was.");
        sb.AppendLine();
        sb.AppendLine("| Figure | Microhv | Xen 4.17 | Microhv / Xen |");
        sb.AppendLine("|---|---:|---:|---|");
        sb.AppendLine($"| dom0's vCPUs (`nproc`) | {(m?.Vcpus is int mv ? mv.ToString() : NotMeasured(m))} | {(x?.Vcpus is int xv ? xv.ToString() : NotMeasured(x))} | |");
        foreach (int k in SmpBench.JobCounts)
        {
            string label = k == 1 ? $"1 `md5sum` of {SmpBench.Megabytes} MiB (wall s, host-dependent)" : $"{k} concurrent `md5sum`s of the file (wall s, host-dependent)";
            sb.AppendLine($"| {label} | {TimeCell(m, k)} | {TimeCell(x, k)} | {Dom0Report.Compare(m?.Median(k), x?.Median(k), false)} |");
        }
        foreach (int k in SmpBench.JobCounts.Where(k => k > 1))
            sb.AppendLine($"| Speedup with {k} jobs, {k}·t1/t{k} (ideal {k}) | {SpeedupCell(m, k)} | {SpeedupCell(x, k)} | {Dom0Report.Compare(m?.Speedup(k), x?.Speedup(k), true)} |");
        foreach (var (mode, label) in ProbeRows)
            sb.AppendLine($"| {label} | {ProbeCell(m, mode)} | {ProbeCell(x, mode)} | {Dom0Report.Compare(Us(m, mode), Us(x, mode), false)} |");
        sb.AppendLine();
        sb.AppendLine("The last four rows come from `" + SmpProbe.Source + "`, built static on the host and written into the run's disk");
        sb.AppendLine("copy (`" + SmpProbe.InDom0 + "`), run after the `md5sum`s in the same boot, " + SmpBench.Repetitions + " times each mode, interleaved (median, (min–max)),");
        sb.AppendLine(SmpProbe.Rounds + " round trips or iterations a run, timed by CLOCK_MONOTONIC in the probe. An IPI cannot be sent from user space: the");
        sb.AppendLine("round trip is a futex ping-pong between two threads pinned (sched_setaffinity) to vCPU 0 and vCPU 1, where each wakeup of");
        sb.AppendLine("the blocked thread makes Linux send an IPI to the other vCPU (on Xen PV an event-channel IPI through the hypervisor,");
        sb.AppendLine("which also has to wake the blocked vCPU); the one-vCPU row is the same ping-pong on vCPU 0 alone, the path without the");
        sb.AppendLine("IPI. The remote flush is an `mprotect` of a just-written page to read-only and back while a second thread of the");
        sb.AppendLine("process spins on vCPU 1, so every downgrade flushes vCPU 1's TLB too (Linux PV: `mmuext_op` TLB_FLUSH_MULTI or");
        sb.AppendLine("INVLPG_MULTI with the vCPU mask); the local row is the same loop with no second thread. The differences between the");
        sb.AppendLine("paired rows are the cross-vCPU parts. Wall clock as above: host-dependent, and noisy on a loaded host.");
        sb.AppendLine();
    }
}
