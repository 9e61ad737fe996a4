using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Text.RegularExpressions;

namespace Microhv.Tests.Qemu;

/// <summary>
/// A hypervisor that boots the dom0 machine (<see cref="Dom0Machine"/>): its QEMU arguments for a given
/// disk, and QEMU's exit status once dom0 has powered off. The dom0 scenario takes one of these, so the
/// same checks run on Xen 4.17 (the reference) and on Microhv.
/// </summary>
public sealed record Dom0Host(string Name, Func<string, IReadOnlyList<string>> QemuArgs, int PowerOffExitCode)
{
    /// <summary>Debian's Xen 4.17: dom0's poweroff enters ACPI S5 and QEMU exits with status 0.</summary>
    public static readonly Dom0Host Xen = new("Xen 4.17", disk => XenHypervisor.Dom0Args(disk), 0);

    /// <summary>Microhv from its ISO with the same kernel, initramfs and memory as Xen's dom0 (512 MiB): dom0's
    /// poweroff ends the last domain, and isa-debug-exit reports success as status 1.</summary>
    public static readonly Dom0Host Microhv = new("Microhv", MicrohvArgs, 1);

    /// <summary>Microhv's module line for the hardware dom0 (qemu-run.sh --linux uses the same words).</summary>
    public const string MicrohvDom0Module = "name=dom0 pages=131072 initial -- root=/dev/sda1 console=hvc0";

    /// <summary>Xen 4.17 with <paramref name="dom0Words"/> added to dom0's command line (e.g. xen-toolstack).</summary>
    public static Dom0Host XenWith(string dom0Words) => new("Xen 4.17", disk => XenHypervisor.Dom0Args(disk, dom0Words), 0);

    /// <summary>Microhv with <paramref name="dom0Words"/> added to dom0's command line.</summary>
    public static Dom0Host MicrohvWith(string dom0Words) => new("Microhv", disk => MicrohvArgs(disk, dom0Words), 1);

    private static IReadOnlyList<string> MicrohvArgs(string disk) => MicrohvArgs(disk, "");

    private static IReadOnlyList<string> MicrohvArgs(string disk, string dom0Words)
    {
        string iso = KernelImages.IsoWithModules("microhv.log=info microhv.exit=isa-debug-exit",
            (Dom0Machine.Vmlinux, (MicrohvDom0Module + " " + dom0Words).Trim()), (Dom0Machine.Initrd, "initrd"));
        // The disk has no boot loader: boot the CD.
        return new List<string>(Dom0Machine.Devices(disk)) { "-cdrom", iso, "-boot", "d" };
    }
}

/// <summary>
/// One boot of the dom0 disk, driven as a user at the serial console: it waits for the root shell on
/// hvc0 (a busybox ash login shell, no password), types commands and reads their output between two
/// marker lines the shell computes (so the echo of the typed line never matches them).
/// </summary>
public sealed class Dom0Session : IDisposable
{
    /// <summary>The line the initramfs prints when the root filesystem is mounted.</summary>
    public const string RootMounted = "rootfs-initrd: /dev/sda1 mounted, switching to its /sbin/init";
    /// <summary>Busybox ash's banner, printed when the login shell on hvc0 starts.</summary>
    public const string ShellBanner = "Enter 'help' for a list of built-in commands.";

    private int _commands;

    public QemuMachine Qemu { get; }
    public Dom0Host Host { get; }
    /// <summary>Wall time from QEMU's start, for the figures.</summary>
    public Stopwatch Clock { get; } = Stopwatch.StartNew();

    private Dom0Session(Dom0Host host, QemuMachine qemu) { Host = host; Qemu = qemu; }

    /// <summary>Starts QEMU with <paramref name="host"/> booting <paramref name="disk"/> (a copy: it is written to).</summary>
    public static Dom0Session Boot(Dom0Host host, string disk, TimeSpan hardTimeout, params string[] extraArgs)
        => new(host, QemuMachine.Start(KernelImages.WorkDir, host.QemuArgs(disk).Concat(extraArgs).ToList(), hardTimeout));

    /// <summary>Waits until the initramfs has mounted /dev/sda1 and the root shell on hvc0 has started.</summary>
    public void WaitForShell(TimeSpan timeout)
    {
        Qemu.WaitForLine(RootMounted, timeout);
        Qemu.WaitForLine(ShellBanner, timeout);
    }

    /// <summary>
    /// A line that is <paramref name="text"/>, or <paramref name="text"/> with a kernel message the console
    /// printed right after it on the same line (until `dmesg -n 1` runs, rcS's background driver loads
    /// can print between a command's output and its newline).
    /// </summary>
    public static Regex Line(string text) => new("^" + Regex.Escape(text) + @"(\[ *[0-9]+\.[0-9]+\] .*)?\s*$");

    /// <summary>Types <paramref name="command"/> (stdout and stderr) into the shell and returns the lines it printed.</summary>
    public IReadOnlyList<string> Run(string command, TimeSpan timeout)
    {
        int n = ++_commands;
        string begin = $"BEGIN{n}", end = $"END{n}";
        Regex beginLine = Line(begin), endLine = Line(end);
        Qemu.Type($"echo BEGIN$(({n})); {{ {command}; }} 2>&1; echo END$(({n}))\r");
        Qemu.WaitForLine(endLine, timeout);
        var lines = Qemu.Lines;
        int last = lines.Count - 1;
        while (last >= 0 && !endLine.IsMatch(lines[last])) last--;
        int first = last;
        while (first >= 0 && !beginLine.IsMatch(lines[first])) first--;
        if (first < 0) throw new QemuTestException($"the output of \"{command}\" has no {begin} line", Qemu);
        return lines.Skip(first + 1).Take(last - first - 1).ToList();
    }

    /// <summary>`poweroff -f` in dom0; returns QEMU's exit status once it has ended.</summary>
    public int PowerOff(TimeSpan timeout)
    {
        Qemu.Type("poweroff -f\r");
        return Qemu.WaitForExit(timeout);
    }

    public void Dispose() => Qemu.Dispose();
}
