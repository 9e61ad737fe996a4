using System.Linq;
using Microhv.HAL;
using Xunit;

namespace Microhv.Tests.Hosted;

/// <summary>
/// Sanity of the built-in font against facts about the CP437 / IBM VGA glyph set that do not come from
/// the font file itself: blanks are blank, block elements fill exactly their part of the cell, box
/// drawing lines run edge to edge so they join, shades get darker, letters look like letters.
/// </summary>
public class Font8x16Tests
{
    private static byte[] Glyph(int c) => Font8x16.Glyphs.Skip(c * Font8x16.Height).Take(Font8x16.Height).ToArray();
    private static int Ink(int c) => Glyph(c).Sum(b => System.Numerics.BitOperations.PopCount(b));

    [Fact]
    public void HasTwoHundredFiftySixGlyphsOfEightBySixteen()
    {
        Assert.Equal(8, Font8x16.Width);
        Assert.Equal(16, Font8x16.Height);
        Assert.Equal(256 * 16, Font8x16.Glyphs.Length);
    }

    [Theory]
    [InlineData(0x00)] // NUL
    [InlineData(0x20)] // space
    [InlineData(0xFF)] // non-breaking space in CP437
    public void BlankCharactersHaveNoInk(int c) => Assert.All(Glyph(c), b => Assert.Equal(0, b));

    [Fact]
    public void FullBlockIsAllOnes() => Assert.All(Glyph(0xDB), b => Assert.Equal(0xFF, b));

    [Fact]
    public void HalfBlocksFillExactlyTheirHalf()
    {
        byte[] lower = Glyph(0xDC), upper = Glyph(0xDF);
        for (int y = 0; y < 16; y++)
        {
            Assert.Equal(0xFF, lower[y] | upper[y]);     // together they cover the cell
            Assert.Equal(0, lower[y] & upper[y]);        // and never overlap
        }
        Assert.Equal(0, lower[0]); Assert.Equal(0xFF, lower[15]);
        Assert.Equal(0xFF, upper[0]); Assert.Equal(0, upper[15]);
        Assert.All(Glyph(0xDD), b => Assert.Equal(0xF0, b)); // left half
        Assert.All(Glyph(0xDE), b => Assert.Equal(0x0F, b)); // right half
    }

    [Fact]
    public void ShadesGetDarker()
    {
        int light = Ink(0xB0), medium = Ink(0xB1), dark = Ink(0xB2), full = Ink(0xDB);
        Assert.True(0 < light && light < medium && medium < dark && dark < full);
        Assert.Equal(full / 2, medium);
    }

    [Fact]
    public void BoxDrawingLinesRunEdgeToEdgeAndCross()
    {
        byte[] horizontal = Glyph(0xC4), vertical = Glyph(0xB3), cross = Glyph(0xC5);
        int lineRow = System.Array.FindIndex(horizontal, b => b == 0xFF);
        Assert.True(lineRow > 0);
        Assert.Equal(15, horizontal.Count(b => b == 0));          // one full-width row only
        Assert.NotEqual(0, vertical[0]);
        Assert.All(vertical, b => Assert.Equal(vertical[0], b));  // same columns top to bottom
        for (int y = 0; y < 16; y++)
            Assert.Equal(y == lineRow ? 0xFF : vertical[0], cross[y]);
    }

    [Fact]
    public void UnderscoreHasInkOnlyInItsBottomRows()
    {
        byte[] g = Glyph('_');
        for (int y = 0; y < 12; y++) Assert.Equal(0, g[y]);
        Assert.Contains(g.Skip(12), b => b == 0xFF);
    }

    [Fact]
    public void PeriodSitsLowAndCaretSitsHigh()
    {
        byte[] dot = Glyph('.'), caret = Glyph('^');
        Assert.All(dot.Take(8), b => Assert.Equal(0, b));
        Assert.Contains(dot.Skip(8), b => b != 0);
        Assert.All(caret.Skip(8), b => Assert.Equal(0, b));
        Assert.Contains(caret.Take(8), b => b != 0);
    }

    [Theory]
    [InlineData('A')]
    [InlineData('H')]
    [InlineData('O')]
    [InlineData('U')]
    public void SymmetricLettersAreMirrorSymmetric(char c)
    {
        // VGA letters are drawn in columns 0..6 (column 7 is the inter-character gap).
        byte[] g = Glyph(c);
        Assert.True(g.Count(b => b != 0) >= 7, "letter has ink on several rows");
        foreach (byte b in g)
        {
            Assert.Equal(0, b & 1);
            int mirrored = 0;
            for (int x = 0; x < 7; x++) if ((b & (0x80 >> x)) != 0) mirrored |= 0x80 >> (6 - x);
            Assert.Equal(b, mirrored);
        }
    }

    [Fact]
    public void LetterAHasApexCrossbarAndTwoLegs()
    {
        byte[] g = Glyph('A');
        int top = System.Array.FindIndex(g, b => b != 0);
        int bottom = System.Array.FindLastIndex(g, b => b != 0);
        Assert.True(System.Numerics.BitOperations.PopCount(g[top]) <= 2, "narrow apex");
        Assert.Contains(g.Skip(top + 2).Take(bottom - top - 2), b => System.Numerics.BitOperations.PopCount(b) >= 6); // crossbar
        Assert.True((g[bottom] & 0xC0) != 0 && (g[bottom] & 0x06) != 0, "two legs at the outer columns");
        Assert.Equal(0, g[bottom] & 0x38);                                                           // open between the legs
    }

    [Fact]
    public void PrintableAsciiGlyphsAreDistinctAndInked()
    {
        var seen = new System.Collections.Generic.HashSet<string>();
        for (int c = 0x21; c < 0x7F; c++)
        {
            Assert.True(Ink(c) > 0, $"glyph 0x{c:X2} has ink");
            Assert.True(seen.Add(System.Convert.ToHexString(Glyph(c))), $"glyph 0x{c:X2} is unique");
        }
    }
}
