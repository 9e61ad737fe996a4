using System;
using Xunit;

namespace Microhv.Tests.Qemu;

/// <summary>
/// build/microhv.iso, exactly as built, boots to "Microhv ready" every way a user can boot it:
/// BIOS from CD, UEFI from CD, BIOS from a USB disk, UEFI from a USB disk.
/// </summary>
[Trait("Category", "Qemu")]
public class BootTests
{
    public const string Banner = "Microhv 0.1 x86-64 hypervisor (C#, NativeAOT)";
    public const string Ready = "Microhv ready";

    /// <summary>TCG boots: SeaBIOS takes a few seconds, OVMF up to half a minute on a loaded machine.</summary>
    public static readonly TimeSpan BiosBoot = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan UefiBoot = TimeSpan.FromSeconds(120);

    public static TimeSpan BootTimeout(Firmware firmware) => firmware == Firmware.Uefi ? UefiBoot : BiosBoot;

    [Theory]
    [InlineData(Firmware.Bios, BootMedium.Cdrom)]
    [InlineData(Firmware.Uefi, BootMedium.Cdrom)]
    [InlineData(Firmware.Bios, BootMedium.UsbDisk)]
    [InlineData(Firmware.Uefi, BootMedium.UsbDisk)]
    public void BootsToReady(Firmware firmware, BootMedium medium)
    {
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, BootConfig.Args(KernelImages.DefaultIso, firmware, medium));
        qemu.WaitForLine(Banner, BootTimeout(firmware));
        qemu.WaitForLine(Ready, BootTimeout(firmware));
    }
}
