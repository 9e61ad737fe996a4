using System;
using System.Diagnostics;
using System.IO;
using System.Text.RegularExpressions;
using Xunit;

namespace Microhv.Tests.Qemu;

/// <summary>
/// Debian 12's stock Linux 6.1 kernel (linux-image-6.1.0-*-amd64, a Xen PV guest) boots unmodified as
/// Microhv's initial domain with a busybox initramfs: the kernel's boot log, /init running in user
/// space, and a clean poweroff. Tests/Guests/linux/fetch-linux.sh downloads the packages (about 72 MB
/// through apt) on first use and extracts build/linux/vmlinux and build/linux/initrd.cpio.gz.
/// </summary>
[Trait("Category", "Qemu")]
public class LinuxGuestTests
{
    private const string Cmdline = "microhv.log=info microhv.exit=isa-debug-exit";
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(180);

    private static string Vmlinux => Path.Combine(KernelImages.RepoRoot, "build", "linux", "vmlinux");
    private static string Initrd => Path.Combine(KernelImages.RepoRoot, "build", "linux", "initrd.cpio.gz");
    private static string FetchScript => Path.Combine(KernelImages.RepoRoot, "Tests", "Guests", "linux", "fetch-linux.sh");

    private static readonly Lazy<bool> Fetched = new(() =>
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            WorkingDirectory = KernelImages.RepoRoot };
        psi.ArgumentList.Add(FetchScript);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start bash for fetch-linux.sh");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit((int)TimeSpan.FromMinutes(10).TotalMilliseconds))
        {
            p.Kill(entireProcessTree: true);
            throw new InvalidOperationException("Tests/Guests/linux/fetch-linux.sh did not finish within 10 minutes");
        }
        p.WaitForExit();
        if (p.ExitCode != 0 || !File.Exists(Vmlinux) || !File.Exists(Initrd))
            throw new InvalidOperationException("Tests/Guests/linux/fetch-linux.sh could not fetch Debian's Linux 6.1 and busybox-static " +
                $"(needs apt-get with Debian 12 sources and network; run 'apt-get update') (exit {p.ExitCode}):\n{stdout.Result}{stderr.Result}");
        return true;
    });

    [Fact]
    public void DebianLinuxBootsToInitAndPowersOff()
    {
        _ = Fetched.Value;
        string iso = KernelImages.IsoWithModules(Cmdline,
            (Vmlinux, "name=linux pages=65536 initial -- console=hvc0 earlyprintk=xen loglevel=8"),
            (Initrd, "initrd"));
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, BootConfig.Args(iso, memoryMiB: 1024), TimeSpan.FromMinutes(5));
        qemu.WaitForLine(new Regex(@"^domain: module 0 \(linux\) is domain 0 \(initial\): 65536 pages, .*, initrd of \d+ bytes$"), Step);
        qemu.WaitForLine(new Regex(@"^\(d0\) \[ *[0-9.]+\] Linux version 6\.1\.\d+-\d+-amd64 "), Step);
        qemu.WaitForLine(new Regex(@"^\(d0\) \[ *[0-9.]+\] Hypervisor detected: Xen PV$"), Step);
        qemu.WaitForLine(new Regex(@"^\(d0\) \[ *[0-9.]+\] RAMDISK: \[mem 0x[0-9a-f]+-0x[0-9a-f]+\]$"), Step);
        qemu.WaitForLine(new Regex(@"^\(d0\) \[ *[0-9.]+\] Kernel command line: console=hvc0 earlyprintk=xen loglevel=8$"), Step);
        qemu.WaitForLine(new Regex(@"^\(d0\) \[ *[0-9.]+\] Run /init as init process$"), Step);
        qemu.WaitForLine(new Regex(@"^\(d0\) microhv-linux-init: hello from /init, kernel 6\.1\.\d+-\d+-amd64$"), Step);
        qemu.WaitForLine("summary: domain 0 (linux): poweroff, code 0", Step);
        Assert.DoesNotContain(qemu.Lines, l => l.Contains("Kernel panic") || l.Contains("BUG:") || l.Contains("Oops"));
        Assert.Equal(1, qemu.WaitForExit(Step));
    }
}
