using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Text.RegularExpressions;
using Microhv.Tests.Qemu;

namespace Microhv.Bench;

/// <summary>What the `xl create` part of one hardware-dom0 run measured (issue 12's figures), in guest time.</summary>
public sealed class XlResult
{
    public string Failure { get; set; }             // null: every figure was measured
    public double? CreateSeconds { get; set; }      // dom0's clock: `xl create` until it returned
    public double? ShellSeconds { get; set; }       // dom0's clock: `xl create` until the domU's shell banner came out of `xl console`
    public List<double> ReadSeconds { get; } = new();   // domU's clock: dd from /dev/xvdb
    public List<double> WriteSeconds { get; } = new();  // domU's clock: dd to /dev/xvdb
    public double? ToGuestSeconds { get; set; }     // dom0's clock: nc of 16 MiB to the domU, until the receiver closed
    public double? FromGuestSeconds { get; set; }   // domU's clock: nc of 16 MiB to dom0, until the receiver closed
    public double? DestroySeconds { get; set; }     // dom0's clock: `xl destroy` until it returned
    public double? GoneSeconds { get; set; }        // dom0's clock: `xl destroy` until `xl list guest` fails
    public List<double> ReadMBps => ReadSeconds.Select(s => Dom0Bench.Bytes / 1e6 / s).ToList();
    public List<double> WriteMBps => WriteSeconds.Select(s => Dom0Bench.Bytes / 1e6 / s).ToList();
}

/// <summary>
/// Issue 12's figures, after the hardware-dom0 figures in the same boot: dom0 starts Xen's toolstack by hand
/// (`xen-toolstack start`, what rcS runs with `xen-toolstack` on the command line), then `xl create /root/guest.cfg`
/// (the dom0 tests' guest, see Tests/Microhv.Tests/Qemu/XlGuestScenario.cs) with a second disk, xvdb: a 64 MiB
/// file of zeros in a tmpfs of dom0's, served by blkback over a loop device as the guest's xvda is. The console is
/// switched with `xl console` and Ctrl-] as the scenario does. Every time is read from Linux's monotonic clock
/// (`now at` of /proc/timer_list) on the same typed line as what it times: dom0's for the create, the transfer to
/// the domU and the destroy, the domU's for its dd and its transfer to dom0 (each side times what it started).
/// </summary>
public static class Dom0XlBench
{
    public const int TransferMiB = 16;
    public const long TransferBytes = TransferMiB * 1048576L;
    /// <summary>Each dd in the domU runs this many times (the dom0 dd runs Dom0Bench.Repetitions).</summary>
    public const int Repetitions = 3;
    public const string BenchDisk = "/run/xvdb/xvdb.img";
    /// <summary>The scenario's guest with its own disk and a second one for the dd figures.</summary>
    public const string CreateCommand = "xl create /root/guest.cfg \"disk=['file:/root/guest.img,xvda,w','file:" + BenchDisk + ",xvdb,w']\"";

    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(4);
    private static readonly TimeSpan GuestTimeout = TimeSpan.FromMinutes(10);
    private const string Now = "grep -m1 '^now at' /proc/timer_list";
    private static readonly Regex NowLine = new(@"^now at (\d+) nsecs");
    private static int _probes;

    /// <summary>Runs the xl figures in <paramref name="dom0"/>'s shell (already past `dmesg -n 1`); throws on a failed step.</summary>
    public static void Run(XlResult r, Dom0Session dom0)
    {
        List<string> Dom0(string command, TimeSpan? timeout = null)
            => dom0.Run(command, timeout ?? CommandTimeout).Where(l => !l.StartsWith("udhcpc: ", StringComparison.Ordinal)).ToList();

        Expect(Dom0("/usr/local/sbin/xen-toolstack start >/dev/null 2>&1; cat /proc/xen/capabilities", GuestTimeout), "control_d", "xen-toolstack start");
        Expect(Dom0($"mkdir -p /run/xvdb && mount -t tmpfs -o size=72m tmpfs /run/xvdb && dd if=/dev/zero of={BenchDisk} bs=1M count={Dom0Bench.Megabytes} 2>/dev/null && echo disk-ok"),
            "disk-ok", "the bench disk in dom0's tmpfs");
        // A first create and destroy, untimed: it brings xl, its libraries, the hotplug scripts and what they run,
        // and the guest's kernel and initramfs into dom0's page cache. Without it the figure below counts AHCI
        // disk waits, which icount's idle clock makes vary from run to run (6 to 30 guest s for one create).
        Expect(Dom0($"{CreateCommand} && echo xl-create-ok", GuestTimeout), "xl-create-ok", "the warm-up " + CreateCommand);
        Expect(Dom0("xl destroy guest; i=0; while xl list guest >/dev/null 2>&1 && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; " +
            "xl list guest >/dev/null 2>&1 && echo guest-still-listed || echo guest-gone", GuestTimeout), "guest-gone", "the warm-up's xl destroy");

        // The data dom0 sends, and dom0's listener for what the domU sends (its input a pipe that stays open:
        // at the end of its input busybox nc would half-close the connection).
        Expect(Dom0($"dd if=/dev/urandom of=/tmp/tx bs=1M count={TransferMiB} 2>/dev/null; rm -f /tmp/rx.count; " +
            "(sleep 86400 | nc -l -p 5001 | wc -c > /tmp/rx.count) & echo listening"), "listening", "dom0's listener");

        // xl create, then xl console with its output into a pipe: non-interactive, it copies the guest's console
        // (what xenconsoled kept since the start) until grep has the shell's banner.
        var create = Dom0($"rm -f /tmp/con; mkfifo /tmp/con; {Now}; {CreateCommand} && echo xl-create-ok; {Now}; " +
            $"xl console guest > /tmp/con & c=$!; grep -m1 -F \"{Dom0Session.ShellBanner}\" < /tmp/con; {Now}; kill $c 2>/dev/null; wait $c 2>/dev/null; rm -f /tmp/con", GuestTimeout);
        Expect(create, "xl-create-ok", CreateCommand);
        if (!create.Any(l => l.Contains(Dom0Session.ShellBanner))) throw new FormatException("no shell banner from xl console: " + Join(create));
        var t = Times(create, 3, "xl create");
        r.CreateSeconds = t[1] - t[0];
        r.ShellSeconds = t[2] - t[0];

        Attach(dom0);
        dom0.Run("dmesg -n 1", CommandTimeout);
        Expect(dom0.Run("rm -f /tmp/rx.count; (sleep 86400 | nc -l -p 5000 | wc -c > /tmp/rx.count) & echo listening", CommandTimeout).ToList(), "listening", "the domU's listener");
        for (int i = 0; i < Repetitions; i++)
            r.ReadSeconds.Add(DdSeconds(dom0.Run($"{Now}; dd if=/dev/xvdb of=/dev/null bs=1M count={Dom0Bench.Megabytes} iflag=direct; {Now}", CommandTimeout), "read"));
        for (int i = 0; i < Repetitions; i++)
            r.WriteSeconds.Add(DdSeconds(dom0.Run($"{Now}; dd if=/dev/zero of=/dev/xvdb bs=1M count={Dom0Bench.Megabytes} oflag=direct conv=fsync; {Now}", CommandTimeout), "write"));
        dom0.Run($"dd if=/dev/urandom of=/tmp/tx bs=1M count={TransferMiB} 2>/dev/null", CommandTimeout);
        var fromGuest = dom0.Run($"{Now}; nc 10.0.0.1 5001 < /tmp/tx; {Now}; rm -f /tmp/tx", GuestTimeout);
        t = Times(fromGuest, 2, "the domU's nc to dom0");
        r.FromGuestSeconds = t[1] - t[0];

        Detach(dom0);
        CheckCount(Dom0(WaitForCount), "dom0");
        var toGuest = Dom0($"{Now}; nc 10.0.0.2 5000 < /tmp/tx; {Now}", GuestTimeout);
        t = Times(toGuest, 2, "dom0's nc to the domU");
        r.ToGuestSeconds = t[1] - t[0];
        Attach(dom0);
        CheckCount(dom0.Run(WaitForCount, CommandTimeout).ToList(), "the domU");
        Detach(dom0);

        var destroy = Dom0($"{Now}; xl destroy guest && echo xl-destroy-ok; {Now}; " +
            $"i=0; while xl list guest >/dev/null 2>&1 && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; {Now}; " +
            "xl list guest >/dev/null 2>&1 && echo guest-still-listed || echo guest-gone", GuestTimeout);
        Expect(destroy, "xl-destroy-ok", "xl destroy guest");
        Expect(destroy, "guest-gone", "the guest leaving xl list");
        t = Times(destroy, 3, "xl destroy");
        r.DestroySeconds = t[1] - t[0];
        r.GoneSeconds = t[2] - t[0];
    }

    private const string WaitForCount = "i=0; while [ ! -s /tmp/rx.count ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done; cat /tmp/rx.count";

    private static void CheckCount(IReadOnlyList<string> lines, string who)
    {
        if (!lines.Any(l => l.Trim() == TransferBytes.ToString()))
            throw new FormatException($"{who} did not receive {TransferBytes} bytes: " + Join(lines));
    }

    private static double DdSeconds(IReadOnlyList<string> lines, string what)
    {
        if (!lines.Any(l => l.Trim() == Dom0Bench.Megabytes + "+0 records out"))
            throw new FormatException($"the domU's dd did not {what} {Dom0Bench.Megabytes} records of 1 MiB: " + Join(lines));
        var t = Times(lines, 2, "the domU's dd " + what);
        return t[1] - t[0];
    }

    /// <summary>The <paramref name="count"/> clock readings of a typed line, in seconds.</summary>
    private static double[] Times(IReadOnlyList<string> lines, int count, string what)
    {
        var t = lines.Select(l => NowLine.Match(l)).Where(m => m.Success).Select(m => long.Parse(m.Groups[1].Value) / 1e9).ToArray();
        if (t.Length != count) throw new FormatException($"{what} printed {t.Length} clock lines, not {count}: " + Join(lines));
        return t;
    }

    private static void Expect(IReadOnlyList<string> lines, string text, string what)
    {
        if (!lines.Any(l => l.Contains(text))) throw new FormatException($"{what}: no \"{text}\": " + Join(lines));
    }

    private static string Join(IEnumerable<string> lines) => string.Join(" / ", lines.Take(40));

    /// <summary>Ctrl-] ends `xl console`; then dom0's shell answers again.</summary>
    private static void Detach(Dom0Session dom0)
    {
        dom0.Qemu.Type("\x1d");
        System.Threading.Thread.Sleep(1000);
        Probe(dom0, "dom0");
    }

    /// <summary>`xl console guest`; then the domU's shell answers.</summary>
    private static void Attach(Dom0Session dom0)
    {
        dom0.Qemu.Type("xl console guest\r");
        System.Threading.Thread.Sleep(1000);
        Probe(dom0, "guest");
    }

    /// <summary>Types `echo probe-N-$(hostname)` until <paramref name="host"/>'s shell answers (input typed while
    /// xl console sets up its terminal may be flushed), as XlGuestScenario does.</summary>
    private static void Probe(Dom0Session dom0, string host)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            int n = ++_probes;
            dom0.Qemu.Type($"echo xlprobe-{n}-$(hostname)\r");
            try
            {
                dom0.Qemu.WaitForLine(Dom0Session.Line($"xlprobe-{n}-{host}"), TimeSpan.FromSeconds(20));
                return;
            }
            catch (QemuTestException) when (!dom0.Qemu.HasExited && deadline.Elapsed < TimeSpan.FromMinutes(3)) { }
        }
    }
}
