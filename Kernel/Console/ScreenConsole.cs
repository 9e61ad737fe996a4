using Microhv.HAL;

namespace Microhv.Kernel.Console;

/// <summary>
/// The screen half of the kernel log: a <see cref="TextGrid"/> over whichever display the boot
/// loader left us, VGA text mode or a linear framebuffer. Write is a no-op until one Initialize call
/// succeeds; the Initialize calls allocate (grid cells, renderer) and must run after the kernel heap
/// is up, Write never allocates. Not reentrant: a trap handler that logs while a Write is in progress
/// may garble the screen, never memory (all positions are kept in range).
/// </summary>
internal static unsafe class ScreenConsole
{
    public const int None = 0, VgaText = 1, Framebuffer = 2;

    public static bool Active;
    public static uint Columns, Rows;
    /// <summary>0 none, 1 VGA text, 2 framebuffer.</summary>
    public static int Kind;

    private static TextGrid _grid;
    private static VgaTextConsole _vga;
    private static FramebufferConsole _framebuffer;

    /// <summary>80x25 VGA text mode; <paramref name="vgaText"/> is the virtual address of physical 0xB8000.</summary>
    public static void InitializeVgaText(byte* vgaText)
    {
        if (vgaText == null) return;
        Active = false;
        var renderer = new VgaTextConsole(vgaText);
        _grid = new TextGrid(renderer, VgaTextConsole.Columns, VgaTextConsole.Rows);
        _vga = renderer;
        _framebuffer = null;
        Set(VgaText);
    }

    /// <summary>
    /// Linear framebuffer from the multiboot2 framebuffer tag (type 1, direct RGB); <paramref name="fb"/>
    /// is the virtual address of framebuffer_addr. Leaves the console inactive (Kind 0) for a format
    /// it cannot draw (indexed colour, bpp other than 16/24/32).
    /// </summary>
    public static void InitializeFramebuffer(byte* fb, uint pitch, uint width, uint height, byte bpp,
        byte redPos, byte redSize, byte greenPos, byte greenSize, byte bluePos, byte blueSize)
    {
        Active = false;
        var renderer = FramebufferConsole.Create(fb, pitch, width, height, bpp,
            redPos, redSize, greenPos, greenSize, bluePos, blueSize);
        if (renderer == null) { Kind = None; Columns = Rows = 0; return; }
        _grid = new TextGrid(renderer, renderer.Columns, renderer.Rows);
        _framebuffer = renderer;
        _vga = null;
        Set(Framebuffer);
    }

    private static void Set(int kind)
    {
        Kind = kind;
        Columns = (uint)_grid.Columns;
        Rows = (uint)_grid.Rows;
        Active = true;
        ShowCursor();
    }

    /// <summary>One byte; the cursor follows at the end of each line and in <see cref="ShowCursor"/>.</summary>
    public static void Write(byte b)
    {
        if (!Active) return;
        _grid.Write(b);
        if (b == (byte)'\n') ShowCursor(); else CursorBehind = true;
    }

    /// <summary>True when text was written since the cursor was last shown.</summary>
    public static bool CursorBehind;

    /// <summary>Moves the visible cursor to where the text ends; the trap path calls it once per trap.</summary>
    public static void ShowCursor()
    {
        CursorBehind = false;
        if (!Active) return;
        if (_vga != null) _vga.ShowCursor();
        else if (_framebuffer != null) _framebuffer.ShowCursor();
    }

    /// <summary>Where the next character goes, in cells; false when the screen is not Microhv's.</summary>
    public static bool Cursor(out int column, out int row)
    {
        column = row = 0;
        if (!Active) return false;
        column = _grid.CursorColumn;
        row = _grid.CursorRow;
        return true;
    }

    /// <summary>Stops writing to the screen (another owner has it); the cursor is left where the text ends.</summary>
    public static void Relinquish()
    {
        ShowCursor();
        Active = false;
    }

    /// <summary>Writes to the screen again after <see cref="Relinquish"/> (its owner never started).</summary>
    public static void Reclaim()
    {
        if (Kind != None) Active = true;
    }

    /// <summary>Blanks the screen, cursor to the top left.</summary>
    public static void Clear()
    {
        if (!Active) return;
        _grid.Clear();
        ShowCursor();
    }
}
