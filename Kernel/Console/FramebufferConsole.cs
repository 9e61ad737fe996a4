using Microhv.HAL;

namespace Microhv.Kernel.Console;

/// <summary>
/// Renderer over a linear direct-colour framebuffer (multiboot2 framebuffer tag, type 1 = RGB):
/// draws <see cref="Font8x16"/> glyphs, light grey on black, one 8x16 cell per character, so the grid
/// is (width / 8) x (height / 16) cells. Pixels of 32, 24 or 16 bits (16 covers 5:6:5 and 5:5:5
/// layouts, whatever the field positions and sizes say). The cursor is an underline on the cell's two
/// bottom scan lines, drawn by XOR so it can be taken away without knowing the cell's character;
/// any DrawCell/ClearRow over the cursor cell has already erased it, which is tracked.
/// </summary>
internal sealed unsafe class FramebufferConsole : TextRenderer
{
    private readonly byte* _base;
    private readonly uint _pitch;
    private readonly int _bytesPerPixel;
    private readonly int _columns, _rows;
    private readonly uint _foreground, _background;
    private int _cursorCol, _cursorRow;     // where the underline is drawn (when _cursorShown)
    private int _wantedCol, _wantedRow;     // where the grid last put the cursor
    private bool _cursorShown;

    private FramebufferConsole(byte* fb, uint pitch, uint width, uint height, int bytesPerPixel, uint fg, uint bg)
    {
        _base = fb;
        _pitch = pitch;
        _bytesPerPixel = bytesPerPixel;
        _columns = (int)(width / Font8x16.Width);
        _rows = (int)(height / Font8x16.Height);
        _foreground = fg;
        _background = bg;
    }

    public int Columns => _columns;
    public int Rows => _rows;

    /// <summary>Returns null when the format is not one this renderer draws (bpp other than 16/24/32,
    /// a screen smaller than one cell, or a pitch too small for the width).</summary>
    public static FramebufferConsole Create(byte* fb, uint pitch, uint width, uint height, byte bpp,
        byte redPos, byte redSize, byte greenPos, byte greenSize, byte bluePos, byte blueSize)
    {
        if (fb == null) return null;
        if (bpp != 16 && bpp != 24 && bpp != 32) return null;
        int bytesPerPixel = bpp / 8;
        if (width < Font8x16.Width || height < Font8x16.Height) return null;
        if ((ulong)pitch < (ulong)width * (ulong)bytesPerPixel) return null;
        uint fg = Pack(0xAA, 0xAA, 0xAA, redPos, redSize, greenPos, greenSize, bluePos, blueSize);
        uint bg = Pack(0x00, 0x00, 0x00, redPos, redSize, greenPos, greenSize, bluePos, blueSize);
        return new FramebufferConsole(fb, pitch, width, height, bytesPerPixel, fg, bg);
    }

    /// <summary>Packs an 8-bit-per-channel colour into the framebuffer's pixel format.</summary>
    public static uint Pack(uint r, uint g, uint b, byte redPos, byte redSize, byte greenPos, byte greenSize, byte bluePos, byte blueSize)
        => Channel(r, redPos, redSize) | Channel(g, greenPos, greenSize) | Channel(b, bluePos, blueSize);

    private static uint Channel(uint value8, byte pos, byte size)
    {
        if (size == 0 || pos >= 32) return 0;
        if (size > 8) size = 8;
        return (value8 >> (8 - size)) << pos;
    }

    public override void DrawCell(int col, int row, byte ch)
    {
        if (_cursorShown && col == _cursorCol && row == _cursorRow) _cursorShown = false;
        byte[] glyphs = Font8x16.Glyphs;
        int g = ch * Font8x16.Height;
        byte* line = _base + (ulong)(uint)(row * Font8x16.Height) * _pitch + (ulong)(uint)(col * Font8x16.Width * _bytesPerPixel);
        uint fg = _foreground, bg = _background;
        for (int y = 0; y < Font8x16.Height; y++, line += _pitch)
        {
            int bits = glyphs[g + y];
            if (_bytesPerPixel == 4)
            {
                uint* p = (uint*)line;
                for (int x = 0; x < 8; x++) p[x] = (bits & (0x80 >> x)) != 0 ? fg : bg;
            }
            else if (_bytesPerPixel == 2)
            {
                ushort* p = (ushort*)line;
                for (int x = 0; x < 8; x++) p[x] = (ushort)((bits & (0x80 >> x)) != 0 ? fg : bg);
            }
            else
            {
                byte* p = line;
                for (int x = 0; x < 8; x++, p += 3)
                {
                    uint c = (bits & (0x80 >> x)) != 0 ? fg : bg;
                    p[0] = (byte)c; p[1] = (byte)(c >> 8); p[2] = (byte)(c >> 16);
                }
            }
        }
    }

    public override void ClearRow(int row)
    {
        if (_cursorShown && row == _cursorRow) _cursorShown = false;
        byte* line = _base + (ulong)(uint)(row * Font8x16.Height) * _pitch;
        int pixels = _columns * Font8x16.Width;
        uint bg = _background;
        for (int y = 0; y < Font8x16.Height; y++, line += _pitch)
        {
            if (_bytesPerPixel == 4)
            {
                uint* p = (uint*)line;
                if ((((ulong)p) & 7) == 0 && (pixels & 1) == 0)
                {
                    ulong* q = (ulong*)p;
                    ulong two = ((ulong)bg << 32) | bg;
                    for (int x = 0; x < pixels / 2; x++) q[x] = two;
                }
                else
                {
                    for (int x = 0; x < pixels; x++) p[x] = bg;
                }
            }
            else if (_bytesPerPixel == 2)
            {
                ushort* p = (ushort*)line;
                for (int x = 0; x < pixels; x++) p[x] = (ushort)bg;
            }
            else
            {
                byte* p = line;
                for (int x = 0; x < pixels; x++, p += 3) { p[0] = (byte)bg; p[1] = (byte)(bg >> 8); p[2] = (byte)(bg >> 16); }
            }
        }
    }

    /// <summary>Only remembered: the underline is redrawn in <see cref="ShowCursor"/>, once per line or
    /// per trap rather than erased and drawn again for every character.</summary>
    public override void MoveCursor(int col, int row)
    {
        _wantedCol = col;
        _wantedRow = row;
    }

    public void ShowCursor()
    {
        int col = _wantedCol, row = _wantedRow;
        if (_cursorShown)
        {
            if (col == _cursorCol && row == _cursorRow) return;
            ToggleCursor(_cursorCol, _cursorRow);
        }
        _cursorCol = col;
        _cursorRow = row;
        ToggleCursor(col, row);
        _cursorShown = true;
    }

    /// <summary>XORs the two bottom scan lines of a cell with (foreground ^ background).</summary>
    private void ToggleCursor(int col, int row)
    {
        uint flip = _foreground ^ _background;
        byte* line = _base + (ulong)(uint)(row * Font8x16.Height + Font8x16.Height - 2) * _pitch
                           + (ulong)(uint)(col * Font8x16.Width * _bytesPerPixel);
        for (int y = 0; y < 2; y++, line += _pitch)
        {
            byte* p = line;
            for (int x = 0; x < Font8x16.Width; x++, p += _bytesPerPixel)
            {
                if (_bytesPerPixel == 4) *(uint*)p ^= flip;
                else if (_bytesPerPixel == 2) *(ushort*)p ^= (ushort)flip;
                else { p[0] ^= (byte)flip; p[1] ^= (byte)(flip >> 8); p[2] ^= (byte)(flip >> 16); }
            }
        }
    }
}
