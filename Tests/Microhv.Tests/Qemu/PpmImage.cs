using System;
using System.IO;

namespace Microhv.Tests.Qemu;

/// <summary>A binary PPM (P6, 8 bits per channel) as QEMU's screendump writes it; pixels as 0xRRGGBB.</summary>
public sealed class PpmImage
{
    public int Width { get; }
    public int Height { get; }
    public int[] Pixels { get; }

    public PpmImage(int width, int height, int[] pixels)
    {
        if (pixels.Length != width * height) throw new ArgumentException("pixel count does not match the size");
        Width = width;
        Height = height;
        Pixels = pixels;
    }

    public int this[int x, int y] => Pixels[y * Width + x];

    public static PpmImage Load(string path) => Parse(File.ReadAllBytes(path));

    public static PpmImage Parse(byte[] data)
    {
        int pos = 0;
        if (NextToken(data, ref pos) != "P6") throw new FormatException("not a binary PPM (P6)");
        int width = int.Parse(NextToken(data, ref pos));
        int height = int.Parse(NextToken(data, ref pos));
        int maxval = int.Parse(NextToken(data, ref pos));
        if (width <= 0 || height <= 0 || maxval <= 0 || maxval > 255) throw new FormatException($"unsupported PPM {width}x{height} maxval {maxval}");
        pos++; // exactly one whitespace byte ends the header
        if (data.Length - pos < width * height * 3) throw new FormatException("PPM pixel data is truncated");
        var pixels = new int[width * height];
        for (int i = 0; i < pixels.Length; i++, pos += 3)
            pixels[i] = data[pos] << 16 | data[pos + 1] << 8 | data[pos + 2];
        return new PpmImage(width, height, pixels);
    }

    public byte[] ToBytes()
    {
        byte[] header = System.Text.Encoding.ASCII.GetBytes($"P6\n{Width} {Height}\n255\n");
        var data = new byte[header.Length + Pixels.Length * 3];
        header.CopyTo(data, 0);
        for (int i = 0, p = header.Length; i < Pixels.Length; i++, p += 3)
        {
            data[p] = (byte)(Pixels[i] >> 16);
            data[p + 1] = (byte)(Pixels[i] >> 8);
            data[p + 2] = (byte)Pixels[i];
        }
        return data;
    }

    private static string NextToken(byte[] data, ref int pos)
    {
        while (true)
        {
            while (pos < data.Length && IsSpace(data[pos])) pos++;
            if (pos < data.Length && data[pos] == (byte)'#')
            {
                while (pos < data.Length && data[pos] != (byte)'\n') pos++;
                continue;
            }
            break;
        }
        int start = pos;
        while (pos < data.Length && !IsSpace(data[pos])) pos++;
        if (start == pos) throw new FormatException("PPM header is truncated");
        return System.Text.Encoding.ASCII.GetString(data, start, pos - start);
    }

    private static bool IsSpace(byte b) => b == ' ' || b == '\t' || b == '\n' || b == '\r';
}
