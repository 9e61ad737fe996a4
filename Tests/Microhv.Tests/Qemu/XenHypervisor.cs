using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The real Xen 4.17 (Debian 12's xen-hypervisor-4.17-amd64) and the PV test guests, for checking
/// the guests against the hypervisor whose ABI Microhv implements. Tests/Guests/fetch-xen.sh
/// leaves Xen's multiboot1 ELF at build/xen/xen, which QEMU's -kernel boots with the guest as
/// its first module (the initial domain's kernel). Both are prepared once per test run.
/// </summary>
public static class XenHypervisor
{
    public static string Image => Path.Combine(KernelImages.RepoRoot, "build", "xen", "xen");
    public static string FetchScript => Path.Combine(KernelImages.RepoRoot, "Tests", "Guests", "fetch-xen.sh");
    public static string PvTestProject => Path.Combine(KernelImages.RepoRoot, "Tests", "Guests", "PvTest", "PvTest.csproj");
    public static string PvTestElf => Path.Combine(KernelImages.RepoRoot, "build", "pvtest.elf");

    /// <summary>Xen's command line: serial console, a small initial domain, halt (not reboot) when it ends.</summary>
    public const string CommandLine = "console=com1 com1=115200,8n1 dom0_mem=64M noreboot";

    private static readonly Lazy<string> Fetched = new(() =>
    {
        Run("bash", new[] { FetchScript }, TimeSpan.FromMinutes(5),
            "Tests/Guests/fetch-xen.sh could not fetch Xen 4.17 (needs apt-get with Debian 12 sources and network; run 'apt-get update')");
        if (!File.Exists(Image))
            throw new InvalidOperationException($"Tests/Guests/fetch-xen.sh ran but left no {Image}");
        return Image;
    });

    private static readonly Lazy<string> PvTestBuilt = new(() =>
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (string.IsNullOrEmpty(dotnet) || !File.Exists(dotnet)) dotnet = "dotnet";
        Run(dotnet, new[] { "build", PvTestProject, "-nologo", "-v", "q" }, TimeSpan.FromMinutes(5),
            "building Tests/Guests/PvTest/PvTest.csproj failed");
        if (!File.Exists(PvTestElf))
            throw new InvalidOperationException($"the PvTest build left no {PvTestElf}");
        return PvTestElf;
    });

    /// <summary>build/xen/xen, fetched on first use; fails with the script's output if it cannot be fetched.</summary>
    public static string EnsureFetched() => Fetched.Value;

    /// <summary>build/pvtest.elf, built on first use.</summary>
    public static string EnsurePvTest() => PvTestBuilt.Value;

    /// <summary>QEMU arguments that boot Xen with <paramref name="guestElf"/> as the initial domain's kernel.</summary>
    public static IEnumerable<string> Args(string guestElf) => new[]
    {
        "-m", "512",
        "-cpu", "max",
        "-kernel", EnsureFetched(),
        "-initrd", guestElf,
        "-append", CommandLine,
    };

    /// <summary>
    /// QEMU arguments that boot Xen on the dom0 machine (<see cref="Dom0Machine"/>) with Debian's Linux as
    /// dom0: root on <paramref name="disk"/>'s first partition, console on hvc0, the initramfs that mounts it
    /// as the next module (QEMU's multiboot modules are comma separated; a comma in a command line is doubled).
    /// SMAP and SMEP are off: with them, Linux dom0 crashes on Xen 4.17 under TCG in its first seconds.
    /// </summary>
    public static List<string> Dom0Args(string disk, string dom0Words = "")
    {
        string dom0 = ("root=/dev/sda1 console=hvc0 " + dom0Words).Trim().Replace(",", ",,");
        var args = new List<string>(Dom0Machine.Devices(disk))
        {
            "-cpu", Dom0Cpu,
            "-kernel", EnsureFetched(),
            "-append", Dom0CommandLine,
            "-initrd", $"{Dom0Machine.Vmlinux} {dom0},{Dom0Machine.Initrd}",
        };
        return args;
    }

    /// <summary>The CPU model of Xen's dom0 machine (./bench.sh gives Microhv's dom0 the same one).</summary>
    public const string Dom0Cpu = "max,-smap,-smep";

    /// <summary>Xen's command line for the hardware dom0: 512 MiB for dom0, halt (not reboot) when it ends.</summary>
    public const string Dom0CommandLine = "console=com1 com1=115200,8n1 dom0_mem=512M noreboot";

    /// <summary>Runs a helper program to completion; fails with its output (and <paramref name="failure"/>) on a non-zero exit or timeout.</summary>
    internal static void Run(string file, IEnumerable<string> args, TimeSpan timeout, string failure)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = KernelImages.RepoRoot,
        };
        foreach (string a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"{failure}: cannot start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit((int)timeout.TotalMilliseconds))
        {
            p.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"{failure}: {file} did not finish within {timeout.TotalSeconds:0} s");
        }
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{failure} (exit {p.ExitCode}):\n{stdout.Result}{stderr.Result}");
    }
}
