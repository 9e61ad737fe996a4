using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;

namespace Microhv.Bench;

/// <summary>The hardware-dom0 section of BENCHMARKS.md: Microhv beside Xen 4.17, and which way each figure is better.</summary>
public static class Dom0Report
{
    /// <summary>A figure: its values in one run (one for the boot, one per repetition for the transfers).</summary>
    private sealed record Row(string Label, Func<Dom0Result, IReadOnlyList<double>> Values, string Format, bool HigherIsBetter);

    private static IReadOnlyList<double> One(double? v) => v is double d ? new[] { d } : Array.Empty<double>();

    private static readonly Row[] Rows =
    {
        new("Boot to the login shell: Linux's clock when the shell on hvc0 started (guest s)", r => One(r.ShellSeconds), "0.00", false),
        new("of which: kernel boot, printk time of `Run /init` (guest s)", r => One(r.InitSeconds), "0.00", false),
        new("of which: up to the root mount, printk time of `EXT4-fs (sda1): mounted` (guest s)", r => One(r.RootMountedSeconds), "0.00", false),
        new($"`dd` read of {Dom0Bench.Megabytes} MiB from /dev/sda, 1 MiB blocks, `iflag=direct` (MB per guest s)", r => r.ReadMBps, "0.0", true),
        new($"`dd` write of {Dom0Bench.Megabytes} MiB to a file on /dev/sda1, 1 MiB blocks, `oflag=direct conv=fsync` (MB per guest s)", r => r.WriteMBps, "0.0", true),
        new("Disk interrupts during a read (AHCI, `" + Microhv.Tests.Qemu.Dom0Machine.DiskIrqName + "` in /proc/interrupts)", r => r.ReadInterrupts.Select(n => (double)n).ToList(), "0", false),
        new("Disk interrupts per guest second during a read", r => r.InterruptsPerSecond, "0", true),
    };

    private static double MBps(long bytes, double seconds) => bytes / 1e6 / seconds;

    /// <summary>Issue 12's figures (Dom0XlBench): an `xl create`d guest beside the hardware dom0.</summary>
    private static readonly Row[] XlRows =
    {
        new("`xl create` to the domU's shell: dom0's clock from `xl create` until the shell's banner came out of `xl console` (guest s)", r => One(r.Xl.ShellSeconds), "0.00", false),
        new("of which: `xl create` until it returned (guest s)", r => One(r.Xl.CreateSeconds), "0.00", false),
        new($"domU `dd` read of {Dom0Bench.Megabytes} MiB from /dev/xvdb, 1 MiB blocks, `iflag=direct` (MB per guest s)", r => r.Xl.ReadMBps, "0.0", true),
        new($"domU `dd` write of {Dom0Bench.Megabytes} MiB to /dev/xvdb, 1 MiB blocks, `oflag=direct conv=fsync` (MB per guest s)", r => r.Xl.WriteMBps, "0.0", true),
        new($"dom0 → domU over xenbr0: {Dom0XlBench.TransferMiB} MiB with busybox `nc`, dom0's clock (MB per guest s)",
            r => r.Xl.ToGuestSeconds is double s ? new[] { MBps(Dom0XlBench.TransferBytes, s) } : Array.Empty<double>(), "0.0", true),
        new($"domU → dom0 over xenbr0: {Dom0XlBench.TransferMiB} MiB with busybox `nc`, the domU's clock (MB per guest s)",
            r => r.Xl.FromGuestSeconds is double s ? new[] { MBps(Dom0XlBench.TransferBytes, s) } : Array.Empty<double>(), "0.0", true),
        new("`xl destroy` until it returned (guest s)", r => One(r.Xl.DestroySeconds), "0.00", false),
        new("`xl destroy` until the guest has left `xl list` (guest s)", r => One(r.Xl.GoneSeconds), "0.00", false),
    };

    public static double? Median(IReadOnlyList<double> v)
    {
        if (v.Count == 0) return null;
        var sorted = v.OrderBy(x => x).ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static Dom0Result Of(List<Dom0Result> all, Column c) => all.FirstOrDefault(r => r.Column == c);

    private static string Cell(Dom0Result r, Row row, string failure = null)
    {
        if (r == null) return "n/a";
        if (r.NotRun != null) return "not run (" + r.NotRun + ")";
        IReadOnlyList<double> values = row.Values(r);
        if (Median(values) is double v)
        {
            string text = v.ToString(row.Format, CultureInfo.InvariantCulture);
            if (values.Count == 1) return text;
            return text + " (" + values.Min().ToString(row.Format, CultureInfo.InvariantCulture) + "–" + values.Max().ToString(row.Format, CultureInfo.InvariantCulture) + ")";
        }
        return "failed (" + Program.Short(r.Failure ?? failure ?? "no figure") + ")";
    }

    /// <summary>Microhv's figure over Xen's, and whether that is at or better than Xen (within 5%: a tie).</summary>
    public static string Compare(double? m, double? x, bool higherIsBetter)
    {
        if (m is not double mv || x is not double xv || xv <= 0) return "";
        double ratio = mv / xv;
        bool atOrBetter = higherIsBetter ? ratio >= 0.95 : ratio <= 1.05;
        return Report.Ratio(ratio) + (atOrBetter ? " (at or better than Xen)" : " (worse than Xen)");
    }

    public static void Append(StringBuilder sb, List<Dom0Result> all)
    {
        Dom0Result m = Of(all, Column.MicrohvHypercall), x = Of(all, Column.Xen);
        sb.AppendLine("## Hardware dom0: Debian Linux 6.1 from the AHCI disk");
        sb.AppendLine();
        sb.AppendLine("The dom0 tests' machine (Tests/Microhv.Tests/Qemu/Dom0Machine.cs: q35, 2 GiB, AHCI disk from");
        sb.AppendLine("`Tests/Guests/linux/make-rootfs.sh`, e1000) booting Debian's Linux 6.1 as dom0 with the same kernel,");
        sb.AppendLine("initramfs and disk (a fresh copy per run) on Microhv (`" + Microhv.Tests.Qemu.Dom0Host.MicrohvDom0Module + "`)");
        sb.AppendLine("and on Xen 4.17 (`" + Microhv.Tests.Qemu.XenHypervisor.Dom0CommandLine + "`), both with 512 MiB for dom0 and on");
        sb.AppendLine("one CPU model (`-cpu " + Dom0Bench.Cpu + "`: Xen's dom0 needs SMAP and SMEP off), under the same icount as above.");
        sb.AppendLine("The shell on hvc0 is driven through the serial console as the dom0 tests drive it.");
        sb.AppendLine("Every time is Linux's own monotonic clock in dom0. Under icount it advances 1 ns per instruction while");
        sb.AppendLine("a CPU runs; while the CPU is idle (halted, e.g. waiting for the disk) `sleep=off` moves it at once to");
        sb.AppendLine("the next timer deadline QEMU has, so disk waits cost the time to the next programmed timer, not host time.");
        sb.AppendLine("The boot figure is the start time of the login shell (field 22 of `/proc/$$/stat`, 10 ms units), so it");
        sb.AppendLine("counts from Linux's first clock reading and leaves out the hypervisor's own boot before it; the");
        sb.AppendLine("transfers are timed by `now at` of `/proc/timer_list` read just before and after `dd` on the same");
        sb.AppendLine("typed line; each transfer runs " + Dom0Bench.Repetitions + " times in the boot: the cell is the median, (min–max) after it.");
        sb.AppendLine("MB = 10^6 bytes. The write goes to a file on the root filesystem (removed after each). The disk copies");
        sb.AppendLine("live in tmpfs (`/dev/shm`), so host disk latency hardly enters the guest's waits.");
        sb.AppendLine();
        sb.AppendLine("| Figure | Microhv | Xen 4.17 | Microhv / Xen |");
        sb.AppendLine("|---|---:|---:|---|");
        foreach (Row row in Rows)
            sb.AppendLine($"| {row.Label} | {Cell(m, row)} | {Cell(x, row)} | {Compare(Median(row.Values(m)), Median(row.Values(x)), row.HigherIsBetter)} |");
        double? mw = m?.WallShellSeconds, xw = x?.WallShellSeconds;
        string wall = mw is double a && xw is double b && b > 0
            ? Report.Ratio(a / b) : "";
        sb.AppendLine($"| Wall clock from QEMU's start to the shell banner, this run under icount (host-dependent: the ratio only) | | | {wall} |");
        sb.AppendLine();
        AppendXl(sb, m, x);
    }

    private static void AppendXl(StringBuilder sb, Dom0Result m, Dom0Result x)
    {
        sb.AppendLine("### Xen's toolstack in dom0: an `xl create`d Debian guest");
        sb.AppendLine();
        sb.AppendLine("In the same boot, after the figures above: dom0 starts Xen's toolstack (`xen-toolstack start`, Debian's");
        sb.AppendLine("xen-utils-4.17) and creates the dom0 tests' guest (`/root/guest.cfg`: Debian's kernel, its initramfs, 128 MiB,");
        sb.AppendLine("one vCPU, a vif on xenbr0) with a second disk for the `dd` figures:");
        sb.AppendLine("`" + Dom0XlBench.CreateCommand + "`; `" + Dom0XlBench.BenchDisk + "` is " + Dom0Bench.Megabytes + " MiB of zeros");
        sb.AppendLine("in a tmpfs of dom0's, served by blkback over a loop device as the guest's xvda is (so the figures are the");
        sb.AppendLine("split block path, blkfront → grants and event channels → blkback → loop → dom0's page cache, not the AHCI disk).");
        sb.AppendLine("A first create and destroy of the same guest, untimed, brings what `xl create` reads into dom0's page cache.");
        sb.AppendLine("The create figure is dom0's clock from just before `xl create` until `grep` read the guest's shell banner from");
        sb.AppendLine("`xl console guest` (its output into a pipe: it copies what xenconsoled kept since the guest started), on one");
        sb.AppendLine("typed line. The domU's figures are the domU's own clock (its Linux's `now at`, same icount). Each `dd` runs " + Dom0XlBench.Repetitions + " times");
        sb.AppendLine("(median, (min–max)); each transfer once: random data from a file in RAM sent with busybox `nc`, timed by the sender");
        sb.AppendLine("until `nc` ended (it ends when the receiver closes, after the last byte), the byte count checked at the receiver.");
        sb.AppendLine("The destroy loop polls `xl list guest` every 50 ms.");
        sb.AppendLine();
        sb.AppendLine("| Figure | Microhv | Xen 4.17 | Microhv / Xen |");
        sb.AppendLine("|---|---:|---:|---|");
        foreach (Row row in XlRows)
            sb.AppendLine($"| {row.Label} | {Cell(m, row, m?.Xl.Failure)} | {Cell(x, row, x?.Xl.Failure)} | {Compare(Median(row.Values(m)), Median(row.Values(x)), row.HigherIsBetter)} |");
        sb.AppendLine();
    }
}
