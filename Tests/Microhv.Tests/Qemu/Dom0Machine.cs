using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The machine of the hardware-dom0 scenario, whatever hypervisor boots on it: QEMU's q35 with 2 GiB,
/// an AHCI controller holding the dom0 disk (Tests/Guests/linux/make-rootfs.sh: ext4 root on partition
/// 1, Linux's /dev/sda1) and an e1000 on QEMU's user network (restrict=on: nothing leaves QEMU).
/// The disk is built once per test run if missing or stale; each test boots its own copy, so the
/// cached image never changes.
/// </summary>
public static class Dom0Machine
{
    public static string Disk => Path.Combine(KernelImages.RepoRoot, "build", "linux", "rootfs.img");
    public static string Initrd => Path.Combine(KernelImages.RepoRoot, "build", "linux", "rootfs-initrd.cpio.gz");
    public static string Vmlinux => Path.Combine(KernelImages.RepoRoot, "build", "linux", "vmlinux");
    public static string MakeScript => Path.Combine(KernelImages.RepoRoot, "Tests", "Guests", "linux", "make-rootfs.sh");

    private static readonly Lazy<string> Built = new(() =>
    {
        // make-rootfs.sh runs fetch-linux.sh first, so the kernel and its modules come from one package.
        XenHypervisor.Run("bash", new[] { MakeScript }, TimeSpan.FromMinutes(10),
            "Tests/Guests/linux/make-rootfs.sh could not build the dom0 disk (needs apt-get with Debian 12 sources and network, " +
            "dpkg-deb, depmod (kmod), sfdisk (fdisk), mke2fs (e2fsprogs), cpio; run 'apt-get update')");
        foreach (string f in new[] { Disk, Initrd, Vmlinux })
        {
            if (!File.Exists(f)) throw new InvalidOperationException($"Tests/Guests/linux/make-rootfs.sh ran but left no {f}");
        }
        return Disk;
    });

    /// <summary>Builds build/linux/rootfs.img and its initramfs on first use (a no-op when up to date).</summary>
    public static void EnsureBuilt() => _ = Built.Value;

    /// <summary>A sparse copy of the dom0 disk in a new directory under <paramref name="parent"/>; delete the directory when done.</summary>
    public static string CopyDisk(string parent)
    {
        EnsureBuilt();
        string dir = Path.Combine(parent, $"dom0-{Guid.NewGuid():N}".Substring(0, 13));
        Directory.CreateDirectory(dir);
        string copy = Path.Combine(dir, "rootfs.img");
        XenHypervisor.Run("cp", new[] { "--sparse=always", Disk, copy }, TimeSpan.FromMinutes(2), $"copying {Disk} to {copy} failed");
        return copy;
    }

    /// <summary>The AHCI controller's interrupt in dom0's /proc/interrupts: it is the first device after q35's own (slot 00:02.0, <see cref="Devices"/> order).</summary>
    public const string DiskIrqName = "ahci[0000:00:02.0]";

    /// <summary>QEMU's machine, memory, disk and network card, booting <paramref name="disk"/>.</summary>
    public static IEnumerable<string> Devices(string disk) => new[]
    {
        "-machine", "q35",
        "-m", "2048",
        "-device", "ahci,id=ahci",
        "-drive", $"if=none,id=d0,file={disk},format=raw",
        "-device", "ide-hd,drive=d0,bus=ahci.0",
        "-netdev", "user,id=n0,restrict=on",
        "-device", "e1000,netdev=n0",
        // A second card with MSI-X (00:04.0), brought up by the scenario to check that interrupt path.
        "-netdev", "user,id=n1,restrict=on",
        "-device", "e1000e,netdev=n1",
    };
}
