using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Microhv.Tests.Qemu;

namespace Microhv.Bench;

/// <summary>
/// Tests/Bench/smp-probe.c in the SMP runs' dom0: a cross-vCPU wakeup round trip (a futex ping-pong
/// between threads pinned to vCPU 0 and 1: each wakeup an IPI) and a remote TLB flush (mprotect of a
/// written page while a thread of the process spins on vCPU 1), each beside its one-vCPU baseline.
/// The host builds it static (gcc) and writes it into the run's copy of the disk (debugfs), so the
/// dom0 disk itself (make-rootfs.sh) needs no compiler.
/// </summary>
public static class SmpProbe
{
    /// <summary>The modes, in the order they run and are reported.</summary>
    public static readonly string[] Modes = { "wake-cross", "wake-same", "flush-remote", "flush-local" };
    public const string Source = "Tests/Bench/smp-probe.c";
    public const string InDom0 = "/root/smp-probe";
    /// <summary>Round trips or iterations per run of the probe.</summary>
    public const int Rounds = 1000;

    private static readonly Regex Figure = new(@"^smp-probe: (\S+) (\d+) (\d+)\s*$");

    /// <summary>Builds the probe into <paramref name="work"/>; null (and why) if it cannot be.</summary>
    public static string Build(string work, out string failure)
    {
        string output = Path.Combine(work, "smp-probe");
        var cc = Tool.Run("gcc", new[] { "-O2", "-static", "-pthread", "-o", output, Source }, null, TimeSpan.FromMinutes(2));
        failure = cc.ExitCode == 0 && File.Exists(output) ? null : "building " + Source + " failed (gcc, static glibc): " + Program.Short(Tool.Tail(cc.Output, 1));
        if (failure != null) Console.WriteLine("bench: smp: " + failure);
        return failure == null ? output : null;
    }

    /// <summary>Writes the probe into partition 1 of <paramref name="disk"/> (its ext4 root) as <see cref="InDom0"/>.</summary>
    public static bool Install(string probe, string disk, out string failure)
    {
        // The MBR's first partition entry (offset 446): its first sector, little-endian, at +8.
        byte[] mbr = new byte[512];
        using (var f = File.OpenRead(disk)) f.ReadExactly(mbr);
        long offset = BitConverter.ToUInt32(mbr, 446 + 8) * 512L;
        var w = Tool.Run("debugfs", new[] { "-w", "-R", $"write {probe} {InDom0}", $"{disk}?offset={offset}" }, null, TimeSpan.FromMinutes(1));
        var check = Tool.Run("debugfs", new[] { "-R", $"stat {InDom0}", $"{disk}?offset={offset}" }, null, TimeSpan.FromMinutes(1));
        failure = w.ExitCode == 0 && check.Output.Contains("Mode:  0755") ? null : "debugfs could not write " + InDom0 + ": " + Program.Short(Tool.Tail(w.Output + check.Output, 1));
        return failure == null;
    }

    /// <summary>Runs every mode <paramref name="repetitions"/> times, interleaved; a malformed output (a typed character lost) is tried again.</summary>
    public static void Run(Dom0Session dom0, SmpResult r, int repetitions, int attempts, TimeSpan timeout)
    {
        foreach (string mode in Modes) r.ProbeNs[mode] = new List<double>();
        for (int i = 0; i < repetitions; i++)
            foreach (string mode in Modes)
            {
                IReadOnlyList<string> lines = null;
                Match m = null;
                for (int attempt = 0; attempt < attempts && m == null; attempt++)
                {
                    lines = dom0.Run($"{InDom0} {mode} {Rounds}", timeout);
                    m = lines.Select(l => Figure.Match(l)).FirstOrDefault(x => x.Success && x.Groups[1].Value == mode && x.Groups[2].Value == Rounds.ToString());
                }
                if (m == null) throw new FormatException($"smp-probe {mode} printed no figure: " + string.Join(" / ", lines));
                r.ProbeNs[mode].Add(double.Parse(m.Groups[3].Value));
            }
    }
}
