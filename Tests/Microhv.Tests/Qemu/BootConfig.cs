using System;
using System.Collections.Generic;
using System.IO;

namespace Microhv.Tests.Qemu;

public enum Firmware { Bios, Uefi }

public enum BootMedium
{
    /// <summary>The ISO as an IDE CD-ROM (El Torito).</summary>
    Cdrom,
    /// <summary>The ISO as a raw USB mass-storage disk on xHCI, as a stick written with dd.</summary>
    UsbDisk,
}

/// <summary>QEMU arguments for the ways Microhv boots: BIOS (SeaBIOS) or UEFI (OVMF), from CD or USB disk.</summary>
public static class BootConfig
{
    public static List<string> Args(string iso, Firmware firmware = Firmware.Bios, BootMedium medium = BootMedium.Cdrom, int memoryMiB = 256)
    {
        var args = new List<string> { "-m", memoryMiB.ToString() };
        if (firmware == Firmware.Uefi) args.AddRange(UefiFirmwareArgs());
        if (medium == BootMedium.Cdrom)
        {
            args.AddRange(new[] { "-cdrom", iso });
        }
        else
        {
            // Read-only: tests share one image, and a USB boot must not depend on writing to it.
            args.AddRange(new[]
            {
                "-drive", $"if=none,id=stick,format=raw,readonly=on,file={iso}",
                "-device", "qemu-xhci,id=xhci",
                "-device", "usb-storage,bus=xhci.0,drive=stick,bootindex=1",
            });
        }
        return args;
    }

    /// <summary>OVMF as one read-only image (Debian's ovmf: /usr/share/ovmf/OVMF.fd).</summary>
    public static IEnumerable<string> UefiFirmwareArgs()
    {
        foreach (string path in new[] { "/usr/share/ovmf/OVMF.fd", "/usr/share/qemu/OVMF.fd" })
        {
            if (File.Exists(path)) return new[] { "-bios", path };
        }
        throw new InvalidOperationException("no OVMF firmware found (apt-get install ovmf): looked for /usr/share/ovmf/OVMF.fd");
    }
}
