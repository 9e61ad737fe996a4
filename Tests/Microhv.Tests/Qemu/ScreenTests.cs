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
}
