using Microhv.HAL;

namespace Microhv.Kernel.Console;

/// <summary>
/// Renderer over VGA text memory (mode 3: 80x25 cells of character + attribute byte at physical
/// 0xB8000, reached through the pointer the kernel passes, e.g. DirectMapBase + 0xB8000). Light grey
/// on black. The hardware cursor is moved through the CRT controller (index port 0x3D4, data 0x3D5,
/// registers 0x0E/0x0F = cursor location high/low), lazily: see ShowCursor. Scrolling moves the 4000-byte buffer up one row,
/// which is cheap, so the grid scrolls classically here instead of ring style.
/// </summary>
internal sealed unsafe class VgaTextConsole : TextRenderer
{
    public const int Columns = 80, Rows = 25;
    public const byte Attribute = 0x07;   // light grey on black
    private const ushort CrtIndex = 0x3D4, CrtData = 0x3D5;
    private const byte CursorStart = 0x0A, CursorEnd = 0x0B, CursorHigh = 0x0E, CursorLow = 0x0F;

    private readonly ushort* _cells;
    private int _cursor = -1;   // where the hardware cursor is
    private int _wanted;        // where the grid last put it

    public VgaTextConsole(byte* vgaText)
    {
        _cells = (ushort*)vgaText;
        // Underline cursor on scan lines 14-15, enabled (bit 5 of Cursor Start clear).
        Cpu.OutB(CrtIndex, CursorStart); Cpu.OutB(CrtData, 14);
        Cpu.OutB(CrtIndex, CursorEnd); Cpu.OutB(CrtData, 15);
    }

    public override void DrawCell(int col, int row, byte ch)
    {
        _cells[row * Columns + col] = (ushort)(ch | (Attribute << 8));
    }

    public override void ClearRow(int row)
    {
        ushort* p = _cells + row * Columns;
        ushort blank = (ushort)(' ' | (Attribute << 8));
        for (int i = 0; i < Columns; i++) p[i] = blank;
    }

    /// <summary>Only remembered: the CRT controller is told in <see cref="ShowCursor"/>, once per line
    /// or per trap rather than with four port writes per character.</summary>
    public override void MoveCursor(int col, int row) => _wanted = row * Columns + col;

    public void ShowCursor()
    {
        int pos = _wanted;
        if (pos == _cursor) return;
        _cursor = pos;
        Cpu.OutB(CrtIndex, CursorHigh); Cpu.OutB(CrtData, (byte)(pos >> 8));
        Cpu.OutB(CrtIndex, CursorLow); Cpu.OutB(CrtData, (byte)pos);
    }

    public override bool ScrollUp()
    {
        ulong* p = (ulong*)_cells;
        int words = (Rows - 1) * Columns * 2 / 8;   // 3840 bytes of rows 1..24 moved to rows 0..23
        ulong* src = (ulong*)(_cells + Columns);
        for (int i = 0; i < words; i++) p[i] = src[i];
        return true;
    }
}
