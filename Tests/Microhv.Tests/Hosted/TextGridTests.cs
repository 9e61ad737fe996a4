using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using Microhv.HAL;
using Xunit;

namespace Microhv.Tests.Hosted;

/// <summary>A device that only knows what the grid told it: a cell array, plus counters.</summary>
public sealed class RecordingRenderer : TextRenderer
{
    public readonly int Columns, Rows;
    public readonly byte[,] Screen;
    public readonly bool Scrolls;
    public int Draws, RowClears, Scrollings;
    public readonly List<int> ClearedRows = new();
    public (int Col, int Row) Cursor = (-1, -1);

    public RecordingRenderer(int columns, int rows, bool scrolls = false)
    {
        Columns = columns; Rows = rows; Scrolls = scrolls;
        Screen = new byte[columns, rows];
        for (int r = 0; r < rows; r++) for (int c = 0; c < columns; c++) Screen[c, r] = (byte)'?'; // garbage until cleared
    }

    public override void DrawCell(int col, int row, byte ch)
    {
        Assert.InRange(col, 0, Columns - 1); Assert.InRange(row, 0, Rows - 1);
        Screen[col, row] = ch; Draws++;
    }

    public override void ClearRow(int row)
    {
        Assert.InRange(row, 0, Rows - 1);
        for (int c = 0; c < Columns; c++) Screen[c, row] = (byte)' ';
        RowClears++; ClearedRows.Add(row);
    }

    public override void MoveCursor(int col, int row)
    {
        Assert.InRange(col, 0, Columns - 1); Assert.InRange(row, 0, Rows - 1);
        Cursor = (col, row);
    }

    public override bool ScrollUp()
    {
        if (!Scrolls) return false;
        Scrollings++;
        for (int r = 0; r + 1 < Rows; r++) for (int c = 0; c < Columns; c++) Screen[c, r] = Screen[c, r + 1];
        return true;
    }

    public string Line(int row)
    {
        var sb = new StringBuilder();
        for (int c = 0; c < Columns; c++) sb.Append((char)Screen[c, row]);
        return sb.ToString().TrimEnd(' ');
    }

    public string[] Lines() => Enumerable.Range(0, Rows).Select(Line).ToArray();
}

public class TextGridTests
{
    private static (TextGrid Grid, RecordingRenderer Screen) Make(int cols, int rows, bool scrolls = false)
    {
        var r = new RecordingRenderer(cols, rows, scrolls);
        return (new TextGrid(r, cols, rows), r);
    }

    private static void Write(TextGrid g, string s) { foreach (char c in s) g.Write((byte)c); }

    /// <summary>The grid's own cells and what it told the device must always agree.</summary>
    private static void AssertConsistent(TextGrid g, RecordingRenderer s)
    {
        for (int r = 0; r < g.Rows; r++)
            for (int c = 0; c < g.Columns; c++)
                Assert.Equal(g.CellAt(c, r), s.Screen[c, r]);
        Assert.Equal((g.CursorColumn, g.CursorRow), s.Cursor);
    }

    [Fact]
    public void StartsBlankWithCursorAtTopLeft()
    {
        var (g, s) = Make(10, 4);
        Assert.All(s.Lines(), l => Assert.Equal("", l));
        Assert.Equal((0, 0), s.Cursor);
        Assert.Equal(4, s.RowClears);
    }

    [Fact]
    public void PrintsTextAndMovesCursor()
    {
        var (g, s) = Make(10, 4);
        Write(g, "Hi");
        Assert.Equal("Hi", s.Line(0));
        Assert.Equal((2, 0), s.Cursor);
        Assert.Equal(2, s.Draws);
        AssertConsistent(g, s);
    }

    [Fact]
    public void NewlineGoesToColumnZeroOfNextRow()
    {
        var (g, s) = Make(10, 4);
        Write(g, "ab\ncd\n");
        Assert.Equal(new[] { "ab", "cd", "", "" }, s.Lines());
        Assert.Equal((0, 2), s.Cursor);
        AssertConsistent(g, s);
    }

    [Fact]
    public void CarriageReturnOverwritesTheSameLine()
    {
        var (g, s) = Make(10, 4);
        Write(g, "hello\rJ");
        Assert.Equal("Jello", s.Line(0));
        Assert.Equal((1, 0), s.Cursor);
        Write(g, "\r\n");
        Assert.Equal((0, 1), s.Cursor);
        AssertConsistent(g, s);
    }

    [Fact]
    public void TabAdvancesToNextStopAndBlanks()
    {
        var (g, s) = Make(20, 3);
        Write(g, "abcdefghij\rx\ty");
        Assert.Equal("x       yj", s.Line(0));
        Assert.Equal((9, 0), s.Cursor);
        Write(g, "\t");                        // 9 -> 16
        Assert.Equal((16, 0), s.Cursor);
        Write(g, "\t");                        // next stop 24 is past the line: new line
        Assert.Equal((0, 1), s.Cursor);
        AssertConsistent(g, s);
    }

    [Fact]
    public void BackspaceMovesLeftWithoutErasingAndStopsAtColumnZero()
    {
        var (g, s) = Make(10, 3);
        Write(g, "abc\b");
        Assert.Equal((2, 0), s.Cursor);
        Assert.Equal("abc", s.Line(0));
        Write(g, "\b \b");
        Assert.Equal("a c", s.Line(0));
        Write(g, "\b\b\b\b\b");
        Assert.Equal((0, 0), s.Cursor);
        AssertConsistent(g, s);
    }

    [Fact]
    public void LongLineWrapsAndExactFitDoesNotLeaveEmptyLine()
    {
        var (g, s) = Make(5, 4);
        Write(g, "abcdefg");
        Assert.Equal(new[] { "abcde", "fg", "", "" }, s.Lines());
        Assert.Equal((2, 1), s.Cursor);

        var (g2, s2) = Make(5, 4);
        Write(g2, "abcde");
        Assert.True(g2.WrapPending);
        Assert.Equal((4, 0), s2.Cursor);    // shown on the last column
        Write(g2, "\nxy");
        Assert.Equal(new[] { "abcde", "xy", "", "" }, s2.Lines());
        AssertConsistent(g2, s2);
    }

    [Fact]
    public void BackspaceAfterFullLineErasesTheLastCharacter()
    {
        var (g, s) = Make(5, 3);
        Write(g, "abcde\b \b");
        Assert.Equal("abcd", s.Line(0));
        Assert.Equal((4, 0), s.Cursor);
        Assert.Equal(0, g.CursorRow);
        AssertConsistent(g, s);
    }

    [Fact]
    public void RingScrollWrapsToTopAndKeepsAGapBelowTheNewestLine()
    {
        var (g, s) = Make(8, 4);
        Write(g, "L0\nL1\nL2\nL3");
        Assert.Equal(new[] { "L0", "L1", "L2", "L3" }, s.Lines());   // first pass keeps row 0
        Assert.False(g.HasWrapped);

        Write(g, "\nL4");
        Assert.True(g.HasWrapped);
        Assert.Equal(new[] { "L4", "", "L2", "L3" }, s.Lines());     // newest, gap, oldest...
        Assert.Equal((2, 0), s.Cursor);

        Write(g, "\nL5\nL6");
        Assert.Equal(new[] { "L4", "L5", "L6", "" }, s.Lines());
        Write(g, "\nL7");
        Assert.Equal(new[] { "", "L5", "L6", "L7" }, s.Lines());     // the gap wraps to row 0
        Write(g, "\nL8");
        Assert.Equal(new[] { "L8", "", "L6", "L7" }, s.Lines());
        Assert.Equal(0, s.Scrollings);
        AssertConsistent(g, s);
    }

    [Fact]
    public void RingScrollCostsAtMostTwoRowClearsPerLineAndNoCopies()
    {
        var (g, s) = Make(80, 25);
        int clearsBefore = s.RowClears;
        const int lines = 1000;
        for (int i = 0; i < lines; i++) Write(g, "a line of text\n");
        int clears = s.RowClears - clearsBefore;
        // Entering a row finds it already blank (it was the gap), so once the screen has filled each
        // line break clears exactly one row: the next gap.
        Assert.InRange(clears, lines - 25, lines);
        // Every non-blank character drawn exactly once (blanks land on cleared cells), nothing redrawn.
        Assert.Equal(lines * "alineoftext".Length, s.Draws);
        AssertConsistent(g, s);
    }

    [Fact]
    public void BlankRowsAreNotClearedAgain()
    {
        var (g, s) = Make(10, 6);
        int before = s.RowClears;
        Write(g, "\n\n\n");                      // the screen is blank already
        Assert.Equal(before, s.RowClears);
    }

    [Fact]
    public void DeviceScrollingMovesLinesUpClassically()
    {
        var (g, s) = Make(8, 3, scrolls: true);
        Write(g, "L0\nL1\nL2\nL3\nL4");
        Assert.Equal(new[] { "L2", "L3", "L4" }, s.Lines());
        Assert.Equal((2, 2), s.Cursor);
        Assert.Equal(2, s.Scrollings);
        Assert.False(g.HasWrapped);
        AssertConsistent(g, s);
    }

    [Fact]
    public void FormFeedClearsEverything()
    {
        var (g, s) = Make(8, 3);
        Write(g, "x\ny\nz\nw");
        Write(g, "\f");
        Assert.All(s.Lines(), l => Assert.Equal("", l));
        Assert.Equal((0, 0), s.Cursor);
        Assert.False(g.HasWrapped);
        AssertConsistent(g, s);
    }

    [Fact]
    public void ControlBytesAndAnsiSequencesAreNotDrawn()
    {
        var (g, s) = Make(20, 3);
        Write(g, "a\x01\x07\x7F" + "b\x1B[1;31mc\x1B[0md");
        Assert.Equal("abcd", s.Line(0));
        g.Write(0xB3);                           // CP437 high bytes are drawn
        Assert.Equal(0xB3, s.Screen[4, 0]);
        AssertConsistent(g, s);
    }

    [Fact]
    public void RandomOutputKeepsDeviceAndModelInAgreement()
    {
        var rnd = new Random(1234);
        byte[] alphabet = Encoding.ASCII.GetBytes("abcXYZ 0123\n\n\r\t\b\f");
        foreach (bool scrolls in new[] { false, true })
        {
            var (g, s) = Make(13, 7, scrolls);
            for (int i = 0; i < 20000; i++)
            {
                g.Write(alphabet[rnd.Next(alphabet.Length)]);
                if (i % 97 == 0) AssertConsistent(g, s);
            }
            AssertConsistent(g, s);
        }
    }
}

/// <summary>
/// Renders through the font into a pixel bitmap, the way the framebuffer console does, and reads the
/// text back by matching cells against the font: what the grid writes is what appears on the pixels.
/// </summary>
public class TextGridPixelRenderingTests
{
    private sealed class PixelRenderer : TextRenderer
    {
        public readonly int Columns, Rows;
        public readonly bool[,] Pixels;
        public PixelRenderer(int columns, int rows)
        {
            Columns = columns; Rows = rows;
            Pixels = new bool[columns * Font8x16.Width, rows * Font8x16.Height];
            for (int y = 0; y < rows * 16; y++) for (int x = 0; x < columns * 8; x++) Pixels[x, y] = true;
        }
        public override void DrawCell(int col, int row, byte ch)
        {
            for (int y = 0; y < Font8x16.Height; y++)
            {
                byte bits = Font8x16.Glyphs[ch * Font8x16.Height + y];
                for (int x = 0; x < Font8x16.Width; x++)
                    Pixels[col * 8 + x, row * 16 + y] = (bits & (0x80 >> x)) != 0;
            }
        }
        public override void ClearRow(int row)
        {
            for (int y = 0; y < 16; y++) for (int x = 0; x < Columns * 8; x++) Pixels[x, row * 16 + y] = false;
        }

        public string ReadBack(int row)
        {
            var sb = new StringBuilder();
            for (int col = 0; col < Columns; col++)
            {
                int match = -1;
                for (int c = 0x20; c < 0x7F && match < 0; c++)
                {
                    bool same = true;
                    for (int y = 0; y < 16 && same; y++)
                        for (int x = 0; x < 8 && same; x++)
                            same = Pixels[col * 8 + x, row * 16 + y] == ((Font8x16.Glyphs[c * 16 + y] & (0x80 >> x)) != 0);
                    if (same) match = c;
                }
                sb.Append(match < 0 ? '?' : (char)match);
            }
            return sb.ToString().TrimEnd(' ');
        }
    }

    [Fact]
    public void TextWrittenToTheGridCanBeReadBackFromThePixels()
    {
        var r = new PixelRenderer(16, 3);
        var g = new TextGrid(r, 16, 3);
        foreach (char c in "Microhv booting\nCPU 0: VMX ok\nline three\nwrapped!") g.Write((byte)c);
        Assert.Equal("wrapped!", r.ReadBack(0));
        Assert.Equal("", r.ReadBack(1));          // the ring gap
        Assert.Equal("line three", r.ReadBack(2));
    }

    [Fact]
    public void GlyphPixelsMatchTheFontBitForBit()
    {
        var r = new PixelRenderer(2, 1);
        var g = new TextGrid(r, 2, 1);
        g.Write((byte)'A'); g.Write(0xDB);
        int ink = 0;
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 8; x++)
            {
                Assert.Equal((Font8x16.Glyphs['A' * 16 + y] & (0x80 >> x)) != 0, r.Pixels[x, y]);
                Assert.True(r.Pixels[8 + x, y]);   // full block
                if (r.Pixels[x, y]) ink++;
            }
        Assert.InRange(ink, 20, 60);
    }
}
