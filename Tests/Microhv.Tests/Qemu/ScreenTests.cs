using System.IO;
using System.Linq;
using Microhv.HAL;
using Xunit;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The banner is visible on the screen, read back from a QEMU screendump by glyph matching
/// (<see cref="ScreenText"/>): VGA text mode under BIOS, the GOP framebuffer console under UEFI.
/// </summary>
[Trait("Category", "Qemu")]
public class ScreenTests
{
    [Theory]
    [InlineData(Firmware.Bios)]
    [InlineData(Firmware.Uefi)]
    public void BannerIsOnScreen(Firmware firmware)
    {
        // The kernel alone (no guest module): after "Microhv ready" it idles, so the screen still
        // holds the boot log when it is dumped (a guest's output would scroll the banner away).
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, BootConfig.Args(KernelImages.IsoFor("microhv.log=info"), firmware));
        qemu.WaitForLine(BootTests.Banner, BootTests.BootTimeout(firmware));
        qemu.WaitForLine(BootTests.Ready, BootTests.BootTimeout(firmware));

        string dump = qemu.Screendump(Path.Combine(KernelImages.WorkDir, $"screen-{firmware}-{System.Guid.NewGuid():N}.ppm"));
        var image = PpmImage.Load(dump);
        var screen = ScreenText.Decode(image, Font8x16.Glyphs);

        if (firmware == Firmware.Bios)
            Assert.True(image.Width is 720 or 640 && image.Height == 400,
                $"BIOS boot should leave VGA 80x25 text mode (720x400 or 640x400), got {image.Width}x{image.Height}");
        if (!screen.Rows.Any(r => r.Contains(BootTests.Banner)))
            throw new QemuTestException(
                $"the banner is not on the {image.Width}x{image.Height} screen; it reads (cells {screen.CellWidth}x16 at " +
                $"{screen.OriginX},{screen.OriginY}, mean glyph distance {screen.MeanDistance:0.0}):\n{screen}", qemu);
    }

    /// <summary>
    /// Xen's console= chooses where the log goes: com1 keeps it off the screen (and a bad item is named and
    /// ignored, the boot goes on), vga keeps it off the serial port after the command line is read.
    /// </summary>
    [Fact]
    public void Console_option_chooses_serial_or_screen()
    {
        using (var qemu = QemuMachine.Start(KernelImages.WorkDir,
                   BootConfig.Args(KernelImages.IsoFor("microhv.log=info console=com1 console=com3"), Firmware.Bios)))
        {
            qemu.WaitForLine("cmdline: unknown value in 'console=com3' ignored", BootTests.BootTimeout(Firmware.Bios));
            qemu.WaitForLine("console: screen not used (console= has no vga); serial COM1 115200 8N1", BootTests.BootTimeout(Firmware.Bios));
            qemu.WaitForLine(BootTests.Ready, BootTests.BootTimeout(Firmware.Bios));
            var screen = Read(qemu, "com1");
            if (screen.Rows.Any(r => r.Contains(BootTests.Banner) || r.Contains(BootTests.Ready)))
                throw new QemuTestException($"console=com1, yet Microhv's log is on the screen:\n{screen}", qemu);
        }
        using (var qemu = QemuMachine.Start(KernelImages.WorkDir,
                   BootConfig.Args(KernelImages.IsoFor("microhv.log=info console=vga"), Firmware.Bios)))
        {
            qemu.WaitForLine(BootTests.Banner, BootTests.BootTimeout(Firmware.Bios));
            ScreenText screen = null;
            for (int i = 0; i < 30 && (screen == null || !screen.Rows.Any(r => r.Contains(BootTests.Ready))); i++)
            {
                if (screen != null) System.Threading.Thread.Sleep(1000);
                screen = Read(qemu, "vga");
            }
            if (!screen.Rows.Any(r => r.Contains(BootTests.Ready)))
                throw new QemuTestException($"console=vga, yet \"{BootTests.Ready}\" is not on the screen:\n{screen}", qemu);
            if (qemu.Lines.Any(l => l.Contains(BootTests.Ready)))
                throw new QemuTestException("console=vga, yet Microhv's log after the command line reached COM1", qemu);
        }
    }

    private static ScreenText Read(QemuMachine qemu, string name)
    {
        string dump = qemu.Screendump(Path.Combine(KernelImages.WorkDir, $"screen-{name}-{System.Guid.NewGuid():N}.ppm"));
        return ScreenText.Decode(PpmImage.Load(dump), Font8x16.Glyphs);
    }
}
