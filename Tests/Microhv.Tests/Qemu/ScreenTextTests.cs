using System.Linq;
using Microhv.HAL;
using Xunit;

namespace Microhv.Tests.Qemu;

/// <summary>
/// Host-only checks of the screen reader the QEMU screen tests rely on: text drawn with the font
/// into a synthetic screen must read back exactly, at VGA text geometry and on a framebuffer with
/// an offset grid, and a screen without the text must not appear to contain it.
/// </summary>
public class ScreenTextTests
{
    private const string Banner = BootTests.Banner;

    /// <summary>Draws rows of text with Font8x16 (cells cellWidth x 16 from origin), like a console would.</summary>
    private static PpmImage Render(int width, int height, int cellWidth, int ox, int oy, int fg, int bg, params string[] rows)
    {
        var pixels = Enumerable.Repeat(bg, width * height).ToArray();
        for (int r = 0; r < rows.Length; r++)
        {
            for (int c = 0; c < rows[r].Length; c++)
            {
                int code = rows[r][c];
                for (int y = 0; y < 16; y++)
                {
                    byte bits = Font8x16.Glyphs[code * 16 + y];
                    for (int x = 0; x < 8; x++)
                        if ((bits & (0x80 >> x)) != 0)
                            pixels[(oy + r * 16 + y) * width + ox + c * cellWidth + x] = fg;
                }
            }
        }
        return new PpmImage(width, height, pixels);
    }

    [Fact]
    public void ReadsVgaTextModeWithNinePixelCells()
    {
        var image = Render(720, 400, 9, 0, 0, 0xAAAAAA, 0x000000, "GRUB noise", Banner, "Microhv ready");
        var text = ScreenText.Decode(PpmImage.Parse(image.ToBytes()), Font8x16.Glyphs);
        Assert.Equal(25, text.Rows.Count);
        Assert.Equal(new[] { "GRUB noise", Banner, "Microhv ready" }, text.Rows.Take(3));
        Assert.All(text.Rows.Skip(3), r => Assert.Equal("", r));
        Assert.Equal(0, text.MeanDistance);
    }

    [Fact]
    public void ReadsVgaTextModeWithEightPixelCells()
    {
        var image = Render(640, 400, 8, 0, 0, 0xFFFFFF, 0x0000AA, Banner);
        var text = ScreenText.Decode(image, Font8x16.Glyphs);
        Assert.Equal(Banner, text.Rows[0]);
    }

    [Fact]
    public void FindsTheGridOfAFramebufferConsole()
    {
        var image = Render(800, 600, 8, 5, 7, 0xC0C0C0, 0x101010, "", Banner, "Microhv ready");
        var text = ScreenText.Decode(image, Font8x16.Glyphs);
        Assert.Equal((8, 5, 7), (text.CellWidth, text.OriginX, text.OriginY));
        Assert.Equal(Banner, text.Rows[1]);
        Assert.Equal("Microhv ready", text.Rows[2]);
    }

    [Fact]
    public void ToleratesAFontThatDiffersInAFewPixels()
    {
        var image = Render(720, 400, 9, 0, 0, 0xAAAAAA, 0, Banner);
        var rng = new System.Random(1);
        var pixels = image.Pixels.ToArray();
        // flip 3 pixels in every cell of the banner row, as another VGA BIOS font might differ
        for (int c = 0; c < Banner.Length; c++)
            for (int k = 0; k < 3; k++)
            {
                int i = (2 + rng.Next(12)) * 720 + c * 9 + rng.Next(8);
                pixels[i] = pixels[i] == 0 ? 0xAAAAAA : 0;
            }
        var text = ScreenText.Decode(new PpmImage(720, 400, pixels), Font8x16.Glyphs);
        Assert.Equal(Banner, text.Rows[0]);
    }

    [Fact]
    public void ReadsTheVgaBiosDottedZeroAsZero()
    {
        var image = Render(720, 400, 9, 0, 0, 0xAAAAAA, 0, "0O0");
        var pixels = image.Pixels.ToArray();
        byte[] dotted = ScreenText.VgaBiosVariants.Single(v => v.Char == '0').Rows;
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 8; x++)
                pixels[y * 720 + 18 + x] = (dotted[y] & (0x80 >> x)) != 0 ? 0xAAAAAA : 0;
        var text = ScreenText.Decode(new PpmImage(720, 400, pixels), Font8x16.Glyphs);
        Assert.Equal("0O0", text.Rows[0]);
    }

    [Fact]
    public void AScreenWithoutTheBannerDoesNotReadAsOne()
    {
        var image = Render(720, 400, 9, 0, 0, 0xAAAAAA, 0, "Microhv 0.2 x86-64 hypervisor (C#, NativeAOT)", "Booting `Microhv'");
        var text = ScreenText.Decode(image, Font8x16.Glyphs);
        Assert.DoesNotContain(text.Rows, r => r.Contains(Banner));
        var blank = ScreenText.Decode(new PpmImage(720, 400, new int[720 * 400]), Font8x16.Glyphs);
        Assert.All(blank.Rows, r => Assert.Equal("", r));
    }
}
