using System;
using System.Collections.Generic;
using System.Linq;
using System.Numerics;

namespace Microhv.Tests.Qemu;

/// <summary>
/// Reads the text on a screen dump by glyph matching, so a test sees what a person would see, not
/// what some buffer holds. The screen's background is its most common colour; every other pixel is
/// ink. The image is cut into character cells (16 pixels high; 8 wide, or 9 for VGA text mode whose
/// 9th column is spacing), each cell's left 8x16 pixels become a bitmap, and the bitmap is matched to
/// the glyph of a 256 x 8x16 font (bit 7 = leftmost pixel) at the least Hamming distance.
///
/// VGA text mode dumps are 720x400 (9-pixel cells) or 640x400 (8-pixel cells), with the grid at (0,0).
/// For other sizes (a framebuffer console) the cell width (8 or 9) and the grid origin are searched:
/// the grid that explains the ink with the least total distance wins.
/// </summary>
public sealed class ScreenText
{
    public const int GlyphWidth = 8, CellHeight = 16;

    /// <summary>The decoded rows, top to bottom, trailing blanks removed. Unmatched shapes are '?'.</summary>
    public IReadOnlyList<string> Rows { get; }
    public int CellWidth { get; }
    public int OriginX { get; }
    public int OriginY { get; }
    /// <summary>Cells with ink, and the mean Hamming distance of their best glyphs (0 = exact font).</summary>
    public int InkCells { get; }
    public double MeanDistance { get; }

    private ScreenText(IReadOnlyList<string> rows, int cellWidth, int ox, int oy, int inkCells, long distance)
    {
        Rows = rows;
        CellWidth = cellWidth;
        OriginX = ox;
        OriginY = oy;
        InkCells = inkCells;
        MeanDistance = inkCells == 0 ? 0 : (double)distance / inkCells;
    }

    public override string ToString() => string.Join("\n", Rows.Select((r, i) => $"{i,3}| {r}"));

    /// <summary>
    /// Other shapes of characters, as the firmware's font draws them where it differs from ours.
    /// VGA text mode shows the VGA BIOS's font (SeaBIOS: the IBM VGA ROM font), whose zero has a dot
    /// in the middle; Font8x16's zero is slashed. Every other printable ASCII glyph is the same.
    /// </summary>
    public static readonly (char Char, byte[] Rows)[] VgaBiosVariants =
    {
        ('0', new byte[] { 0x00, 0x00, 0x3C, 0x66, 0xC3, 0xC3, 0xDB, 0xDB, 0xC3, 0xC3, 0x66, 0x3C, 0x00, 0x00, 0x00, 0x00 }),
    };

    /// <summary>
    /// Reads <paramref name="image"/> with <paramref name="font"/> (256 glyphs x 16 rows) plus
    /// <paramref name="variants"/> (default: <see cref="VgaBiosVariants"/>).
    /// </summary>
    public static ScreenText Decode(PpmImage image, byte[] font, IEnumerable<(char Char, byte[] Rows)> variants = null)
    {
        if (font.Length != 256 * CellHeight) throw new ArgumentException("font must be 256 glyphs of 16 bytes");
        var glyphs = new List<(int Code, Glyph Shape)>();
        foreach (int c in SearchOrder) glyphs.Add((c, new Glyph(font, c * CellHeight)));
        foreach (var (ch, rows) in variants ?? VgaBiosVariants) glyphs.Add((ch, new Glyph(rows, 0)));
        bool[] ink = InkMask(image);

        if (image.Height == 400 && (image.Width == 720 || image.Width == 640))
            return DecodeGrid(image, ink, glyphs, image.Width / 80, 0, 0);

        ScreenText best = null;
        long bestDistance = long.MaxValue;
        foreach (int cellWidth in new[] { 8, 9 })
        {
            for (int oy = 0; oy < CellHeight; oy++)
            {
                for (int ox = 0; ox < cellWidth; ox++)
                {
                    long d = GridDistance(image, ink, glyphs, cellWidth, ox, oy, bestDistance);
                    if (d < bestDistance)
                    {
                        bestDistance = d;
                        best = DecodeGrid(image, ink, glyphs, cellWidth, ox, oy);
                    }
                }
            }
        }
        return best;
    }

    /// <summary>Pixels that differ from the most common colour.</summary>
    private static bool[] InkMask(PpmImage image)
    {
        var counts = new Dictionary<int, int>();
        foreach (int p in image.Pixels) counts[p] = counts.TryGetValue(p, out int n) ? n + 1 : 1;
        int background = counts.MaxBy(kv => kv.Value).Key;
        return image.Pixels.Select(p => p != background).ToArray();
    }

    private static long GridDistance(PpmImage image, bool[] ink, List<(int Code, Glyph Shape)> glyphs, int cellWidth, int ox, int oy, long giveUpAbove)
    {
        long total = 0;
        int cols = (image.Width - ox) / cellWidth, rows = (image.Height - oy) / CellHeight;
        // Ink outside the grid cannot be explained by it: count it as mismatched.
        int outside = 0;
        for (int y = 0; y < image.Height; y++)
            for (int x = 0; x < image.Width; x++)
                if (ink[y * image.Width + x] && (x < ox || y < oy || x >= ox + cols * cellWidth || y >= oy + rows * CellHeight)) outside++;
        total += outside;
        for (int row = 0; row < rows && total < giveUpAbove; row++)
        {
            for (int col = 0; col < cols; col++)
            {
                Glyph cell = ReadCell(image, ink, ox + col * cellWidth, oy + row * CellHeight, cellWidth, out int extra);
                total += extra;
                if (!cell.IsBlank) total += BestMatch(cell, glyphs, out _);
            }
        }
        return total;
    }

    private static ScreenText DecodeGrid(PpmImage image, bool[] ink, List<(int Code, Glyph Shape)> glyphs, int cellWidth, int ox, int oy)
    {
        int cols = (image.Width - ox) / cellWidth, rows = (image.Height - oy) / CellHeight;
        var lines = new List<string>(rows);
        int inkCells = 0;
        long distance = 0;
        var chars = new char[cols];
        for (int row = 0; row < rows; row++)
        {
            for (int col = 0; col < cols; col++)
            {
                Glyph cell = ReadCell(image, ink, ox + col * cellWidth, oy + row * CellHeight, cellWidth, out _);
                if (cell.IsBlank) { chars[col] = ' '; continue; }
                inkCells++;
                distance += BestMatch(cell, glyphs, out int code);
                chars[col] = code >= 0x20 && code < 0x7F ? (char)code : '?';
            }
            lines.Add(new string(chars).TrimEnd());
        }
        return new ScreenText(lines, cellWidth, ox, oy, inkCells, distance);
    }

    /// <summary>The cell's left 8x16 pixels as a glyph bitmap; <paramref name="extra"/> counts ink in a 9th column.</summary>
    private static Glyph ReadCell(PpmImage image, bool[] ink, int x0, int y0, int cellWidth, out int extra)
    {
        ulong top = 0, bottom = 0;
        extra = 0;
        for (int y = 0; y < CellHeight; y++)
        {
            int rowStart = (y0 + y) * image.Width + x0;
            ulong bits = 0;
            for (int x = 0; x < GlyphWidth; x++)
                if (ink[rowStart + x]) bits |= 0x80UL >> x;
            for (int x = GlyphWidth; x < cellWidth; x++)
                if (ink[rowStart + x]) extra++;
            if (y < 8) top |= bits << (8 * y);
            else bottom |= bits << (8 * (y - 8));
        }
        return new Glyph(top, bottom);
    }

    /// <summary>Least Hamming distance to a glyph; the first of equals wins (printable ASCII comes first).</summary>
    private static int BestMatch(Glyph cell, List<(int Code, Glyph Shape)> glyphs, out int code)
    {
        int best = int.MaxValue;
        code = 0;
        foreach (var (c, g) in glyphs)
        {
            int d = BitOperations.PopCount(cell.Top ^ g.Top) + BitOperations.PopCount(cell.Bottom ^ g.Bottom);
            if (d < best) { best = d; code = c; }
        }
        return best;
    }

    private static readonly int[] SearchOrder =
        Enumerable.Range(0x20, 0x5F).Concat(Enumerable.Range(0, 0x20)).Concat(Enumerable.Range(0x7F, 0x81)).ToArray();

    private readonly struct Glyph
    {
        public readonly ulong Top, Bottom; // rows 0-7 and 8-15, row r in byte r

        public Glyph(ulong top, ulong bottom) { Top = top; Bottom = bottom; }

        public Glyph(byte[] font, int offset)
        {
            Top = BitConverter.ToUInt64(font, offset);
            Bottom = BitConverter.ToUInt64(font, offset + 8);
        }

        public bool IsBlank => Top == 0 && Bottom == 0;
    }
}
