namespace Microhv.HAL;

/// <summary>
/// The output device under a <see cref="TextGrid"/>: something that can show one character per cell.
/// The grid tells it only what changed, so a device never has to keep or copy screen contents.
/// Coordinates are always inside the grid: 0 &lt;= col &lt; Columns, 0 &lt;= row &lt; Rows.
/// </summary>
public abstract class TextRenderer
{
    /// <summary>Shows byte <paramref name="ch"/> (code page 437) in the cell, replacing what was there.</summary>
    public abstract void DrawCell(int col, int row, byte ch);

    /// <summary>Blanks every cell of the row.</summary>
    public abstract void ClearRow(int row);

    /// <summary>Where the cursor is now (called after every write; a device may ignore repeats).</summary>
    public virtual void MoveCursor(int col, int row) { }

    /// <summary>
    /// Asks the device to move every row up by one itself (row 0 is lost; the last row's old content
    /// may stay, the grid clears it next). Return true if done; the default, false, makes the grid
    /// scroll ring style instead. Only devices for which this is cheap (VGA text: 4 KB) should do it.
    /// </summary>
    public virtual bool ScrollUp() => false;
}

/// <summary>
/// A character-cell console model independent of the output device: a Columns x Rows grid of bytes
/// (code page 437), a cursor, and the control characters a kernel log uses. It keeps its own copy of
/// the cells (Columns*Rows bytes, allocated once by the constructor) and reports every change to a
/// <see cref="TextRenderer"/>. Writing never allocates.
///
/// Characters:
///   '\n'  to column 0 of the next line (the log sends "\n" alone, so it is CR+LF here);
///   '\r'  to column 0 of the same line;
///   '\t'  to the next multiple of <see cref="TabWidth"/>, blanking the cells it passes; a tab that
///         would reach the end of the line goes to the start of the next line instead;
///   '\b'  one cell left, not past column 0 (non-destructive, like a terminal: "\b \b" erases);
///         with a wrap pending it goes back onto the last column, so "\b \b" erases there too;
///   '\f'  clears the grid, cursor to the top left;
///   ESC [ ... final byte (an ANSI CSI sequence, e.g. a colour change) is swallowed;
///   other bytes below 0x20, and 0x7F, are ignored; 0x20-0x7E and 0x80-0xFF are drawn.
///
/// Line wrap is deferred (as on a VT100): writing into the last column leaves the cursor "past the
/// end" of that line, and the line break happens only when the next printable character arrives. So a
/// line of exactly Columns characters followed by '\n' takes one row, not two.
///
/// Scrolling: when a line break happens on the last row, the grid first asks the renderer to scroll
/// (<see cref="TextRenderer.ScrollUp"/>); a device for which moving the whole screen is cheap does so
/// and the grid moves its own cells and clears the bottom row: classic scrolling. Otherwise the grid
/// scrolls RING STYLE, copying nothing: output continues on row 0 again, over the oldest text. Each
/// time the cursor enters a row, that row is cleared, and so is the row after it (the "gap"), so the
/// screen always shows one blank row just below the newest line: above the gap is the newest text
/// (top down to the cursor), below it the older text, oldest first. A line break thus costs at most
/// two row clears however large the screen, and rows known to be blank already are not cleared again.
/// </summary>
public sealed class TextGrid
{
    public const int TabWidth = 8;
    public const byte Blank = (byte)' ';

    private readonly TextRenderer _renderer;
    private readonly byte[] _cells;      // row-major, Columns * Rows
    private readonly bool[] _rowBlank;   // true when every cell of the row is Blank
    private readonly int _columns, _rows;
    private int _col, _row;              // _col == _columns: wrap pending
    private int _escape;                 // 0 none, 1 after ESC, 2 inside ESC [
    private bool _ring;                  // true once a ring-style scroll happened

    public TextGrid(TextRenderer renderer, int columns, int rows)
    {
        if (columns < 1) columns = 1;
        if (rows < 1) rows = 1;
        _renderer = renderer;
        _columns = columns;
        _rows = rows;
        _cells = new byte[columns * rows];
        _rowBlank = new bool[rows];
        Clear();
    }

    public int Columns => _columns;
    public int Rows => _rows;

    /// <summary>Cursor column as shown (a pending wrap shows on the last column).</summary>
    public int CursorColumn => _col < _columns ? _col : _columns - 1;
    public int CursorRow => _row;

    /// <summary>True while the cursor sits past the last column waiting for the next character to wrap.</summary>
    public bool WrapPending => _col >= _columns;

    /// <summary>True once output has wrapped from the last row back to row 0 (ring-style scrolling).</summary>
    public bool HasWrapped => _ring;

    /// <summary>The byte in a cell, as the grid believes the device shows it.</summary>
    public byte CellAt(int col, int row) => _cells[row * _columns + col];

    /// <summary>Blanks every row and puts the cursor at the top left.</summary>
    public void Clear()
    {
        for (int r = 0; r < _rows; r++) ClearRowNow(r);
        _col = 0;
        _row = 0;
        _ring = false;
        _escape = 0;
        _renderer.MoveCursor(0, 0);
    }

    public void Write(byte b)
    {
        if (_escape != 0)
        {
            if (_escape == 1) _escape = b == (byte)'[' ? 2 : 0;
            else if (b >= 0x40 && b <= 0x7E) _escape = 0;   // CSI final byte
            return;
        }

        switch (b)
        {
            case (byte)'\n': NewLine(); break;
            case (byte)'\r': _col = 0; break;
            case (byte)'\b': if (_col >= _columns) _col = _columns - 1; else if (_col > 0) _col--; break;
            case (byte)'\t': Tab(); break;
            case 0x0C: Clear(); break;
            case 0x1B: _escape = 1; return;
            default:
                if (b < 0x20 || b == 0x7F) return;
                Put(b);
                break;
        }
        _renderer.MoveCursor(CursorColumn, _row);
    }

    private void Put(byte b)
    {
        if (_col >= _columns) NewLine();
        SetCell(_col, _row, b);
        _col++;
    }

    private void Tab()
    {
        if (_col >= _columns) NewLine();
        int next = (_col / TabWidth + 1) * TabWidth;
        if (next >= _columns) { NewLine(); return; }
        while (_col < next) { SetCell(_col, _row, Blank); _col++; }
    }

    private void SetCell(int col, int row, byte b)
    {
        int i = row * _columns + col;
        if (_cells[i] == b) return;
        _cells[i] = b;
        if (b != Blank) _rowBlank[row] = false;
        _renderer.DrawCell(col, row, b);
    }

    private void NewLine()
    {
        _col = 0;
        if (_row + 1 < _rows)
        {
            _row++;
        }
        else if (_renderer.ScrollUp())
        {
            int rowBytes = _columns;
            int last = (_rows - 1) * _columns;
            ShiftCellsUp(rowBytes, last);
            for (int r = 0; r + 1 < _rows; r++) _rowBlank[r] = _rowBlank[r + 1];
            _rowBlank[_rows - 1] = false;   // the device may still show the old last row
            ClearRowIfNeeded(_rows - 1);
            return;
        }
        else
        {
            _row = 0;
            _ring = true;
        }
        ClearRowIfNeeded(_row);
        // The gap row; before the first wrap row 0 still holds the first lines and stays.
        int gap = _row + 1 < _rows ? _row + 1 : 0;
        if (_rows > 2 && (gap != 0 || _ring)) ClearRowIfNeeded(gap);
    }

    /// <summary>Moves the cell model up one row: a word at a time (one scroll per line of output).</summary>
    private unsafe void ShiftCellsUp(int rowBytes, int last)
    {
        fixed (byte* c = _cells)
        {
            int i = 0;
            for (; i + 8 <= last; i += 8) *(ulong*)(c + i) = *(ulong*)(c + i + rowBytes);
            for (; i < last; i++) c[i] = c[i + rowBytes];
        }
    }

    private void ClearRowIfNeeded(int row)
    {
        if (!_rowBlank[row]) ClearRowNow(row);
    }

    private void ClearRowNow(int row)
    {
        int start = row * _columns;
        for (int i = 0; i < _columns; i++) _cells[start + i] = Blank;
        _rowBlank[row] = true;
        _renderer.ClearRow(row);
    }
}
