using System;
using System.Diagnostics;
using System.IO;
using System.Text.RegularExpressions;
using Xunit;

namespace Microhv.Tests.Qemu;

/// <summary>
/// Debian 12's stock Linux 6.1 kernel (linux-image-6.1.0-*-amd64, a Xen PV guest) boots unmodified as
/// Microhv's initial domain with a busybox initramfs: the kernel's boot log, /init running in user
/// space, and a clean poweroff. On a q35 machine with an AHCI controller and an e1000 it is the
/// hardware domain: it finds the ACPI tables and the IO-APIC, maps the ISA interrupt lines as pirqs,
/// runs the ACPI interpreter (whose SCI it binds) and enumerates PCI through configuration space,
/// printing the same lines as on Xen 4.17 with the same kernel and machine (the reference test here).
/// Tests/Guests/linux/fetch-linux.sh downloads the packages (about 72 MB through apt) on first use and
/// extracts build/linux/vmlinux and build/linux/initrd.cpio.gz.
/// </summary>
[Trait("Category", "Qemu")]
public class LinuxGuestTests
{
    private const string Cmdline = "microhv.log=info microhv.exit=isa-debug-exit";
    private const string LinuxCmdline = "console=hvc0 earlyprintk=xen loglevel=8";
    /// <summary>The machine of the hardware-domain scenario (docs/hardware-domain.md), without disks yet.</summary>
    private static readonly string[] Q35Devices =
    {
        "-machine", "q35", "-device", "ahci,id=ahci", "-netdev", "user,id=n0,restrict=on", "-device", "e1000,netdev=n0",
    };

    /// <summary>Lines Linux prints as the hardware domain, on Xen 4.17 and on Microhv alike.</summary>
    private static readonly Regex[] HardwareDomainLines =
    {
        new(@"\] Setting APIC routing to Xen PV\.$"),
        new(@"\] IOAPIC\[0\]: apic_id \d+, version \d+, address 0xfec00000, GSI 0-23$"),
        new(@"\] xen: --> pirq=9 -> irq=9 \(gsi=9\)$"),
        new(@"\] ACPI: Interpreter enabled$"),
        new(@"\] pci 0000:00:02\.0: \[8086:2922\] type 00 class 0x010601$"),
        new(@"\] pci 0000:00:03\.0: \[8086:100e\] type 00 class 0x020000$"),
    };

    private static void AssertNoHardwareDomainFailures(QemuMachine qemu)
    {
        Assert.DoesNotContain(qemu.Lines, l => l.Contains("Kernel panic") || l.Contains("BUG:") || l.Contains("Oops"));
        Assert.DoesNotContain(qemu.Lines, l => l.Contains("Failed to add - passthrough") || l.Contains("SCI (ACPI GSI")
            || l.Contains("PCI: Fatal") || l.Contains("xen map irq failed"));
    }
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
            (Vmlinux, "name=linux pages=65536 initial -- " + LinuxCmdline),
            (Initrd, "initrd"));
        var args = BootConfig.Args(iso, memoryMiB: 1024);
        // QEMU's max CPU: Linux sets CR4.FSGSBASE, which the PV CPUID policy offers, and uses RDFSBASE/WRFSBASE;
        // SMAP, SMEP and UMIP stay hidden from it, as Xen's PV policy hides them.
        args.AddRange(new[] { "-cpu", "max" });
        args.AddRange(Q35Devices);
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, args, TimeSpan.FromMinutes(5));
        qemu.WaitForLine(new Regex(@"^domain: module 0 \(linux\) is domain 0 \(initial\): 65536 pages, .*, initrd of \d+ bytes$"), Step);
        qemu.WaitForLine(new Regex(@"^\[ *[0-9.]+\] Linux version 6\.1\.\d+-\d+-amd64 "), Step);
        qemu.WaitForLine(new Regex(@"^\[ *[0-9.]+\] Hypervisor detected: Xen PV$"), Step);
        qemu.WaitForLine(new Regex(@"^\[ *[0-9.]+\] RAMDISK: \[mem 0x[0-9a-f]+-0x[0-9a-f]+\]$"), Step);
        foreach (Regex line in HardwareDomainLines)
            qemu.WaitForLine(new Regex(@"^\[ *[0-9.]+" + line), Step);
        qemu.WaitForLine(new Regex(@"^\[ *[0-9.]+\] Run /init as init process$"), Step);
        qemu.WaitForLine(new Regex(@"^microhv-linux-init: hello from /init, kernel 6\.1\.\d+-\d+-amd64$"), Step);
        qemu.WaitForLine("summary: domain 0 (linux): poweroff, code 0", Step);
        Assert.Contains(qemu.Lines, l => Regex.IsMatch(l, @"^\[ *[0-9.]+\] Kernel command line: console=hvc0 earlyprintk=xen loglevel=8$"));
        AssertNoHardwareDomainFailures(qemu);
        Assert.Equal(1, qemu.WaitForExit(Step));
    }

    /// <summary>The reference: the same kernel, initramfs and machine as dom0 of Debian's Xen 4.17.</summary>
    [Fact]
    public void DebianLinuxAsDom0OnXenSeesTheSameHardware()
    {
        _ = Fetched.Value;
        var args = new System.Collections.Generic.List<string>
        {
            "-m", "1024", "-cpu", "max,-smap,-smep",
            "-kernel", XenHypervisor.EnsureFetched(),
            "-initrd", Vmlinux + " " + LinuxCmdline + "," + Initrd,
            "-append", "console=com1 com1=115200,8n1 dom0_mem=256M noreboot",
        };
        args.AddRange(Q35Devices);
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, args, TimeSpan.FromMinutes(5));
        foreach (Regex line in HardwareDomainLines)
            qemu.WaitForLine(new Regex(@"^\[ *[0-9.]+" + line), Step);
        qemu.WaitForLine(new Regex(@"^microhv-linux-init: hello from /init, kernel 6\.1\.\d+-\d+-amd64$"), Step);
        qemu.WaitForLine(new Regex(@"reboot: Power down$"), Step);
        AssertNoHardwareDomainFailures(qemu);
    }
}
