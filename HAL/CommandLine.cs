namespace Microhv.HAL;

/// <summary>
/// A kernel command line: words separated by spaces or tabs, each either <c>flag</c> or <c>key=value</c>
/// (the key ends at the first '='). No quoting. Bytes are ASCII; nothing here allocates except the
/// optional copy from physical memory into a caller-owned buffer.
/// Positions and lengths are byte offsets into <see cref="Bytes"/>.
/// </summary>
public sealed class CommandLine
{
    private readonly byte[] _bytes;
    private readonly int _length;

    /// <summary>Uses the first <paramref name="length"/> bytes of <paramref name="bytes"/> (clamped to its length; a NUL ends it early).</summary>
    public CommandLine(byte[] bytes, int length)
    {
        _bytes = bytes;
        if (length < 0) length = 0;
        if (length > bytes.Length) length = bytes.Length;
        int n = 0;
        while (n < length && bytes[n] != 0) n++;
        _length = n;
    }

    public byte[] Bytes => _bytes;
    public int Length => _length;

    /// <summary>
    /// Copies up to <paramref name="buffer"/>.Length bytes of the string at <paramref name="address"/> (stopping at NUL
    /// or after <paramref name="length"/> bytes) and returns the number copied. <paramref name="truncated"/> is set
    /// when the string did not fit. Reads nothing outside PhysicalMemory.
    /// </summary>
    public static int CopyFrom(PhysicalMemory memory, ulong address, ulong length, byte[] buffer, out bool truncated)
    {
        truncated = false;
        if (!memory.Contains(address, length)) return 0;
        int n = 0;
        for (ulong i = 0; i < length; i++)
        {
            byte b = memory.Read8(address + i);
            if (b == 0) break;
            if (n == buffer.Length)
            {
                truncated = true;
                break;
            }
            buffer[n++] = b;
        }
        return n;
    }

    private static bool IsSpace(byte b) => b == (byte)' ' || b == (byte)'\t' || b == (byte)'\n' || b == (byte)'\r';

    /// <summary>
    /// Next word at or after <paramref name="position"/>; advances <paramref name="position"/> past it.
    /// False when no word is left.
    /// </summary>
    public bool NextWord(ref int position, out int start, out int length)
    {
        int i = position < 0 ? 0 : position;
        while (i < _length && IsSpace(_bytes[i])) i++;
        start = i;
        while (i < _length && !IsSpace(_bytes[i])) i++;
        length = i - start;
        position = i;
        return length > 0;
    }

    /// <summary>Splits a word into key (up to the first '=') and value (after it; hasValue false for a bare flag).</summary>
    public void SplitWord(int start, int length, out int keyLength, out bool hasValue, out int valueStart, out int valueLength)
    {
        keyLength = 0;
        while (keyLength < length && _bytes[start + keyLength] != (byte)'=') keyLength++;
        hasValue = keyLength < length;
        valueStart = hasValue ? start + keyLength + 1 : start + length;
        valueLength = hasValue ? length - keyLength - 1 : 0;
    }

    /// <summary>True when the <paramref name="length"/> bytes at <paramref name="start"/> equal <paramref name="text"/>.</summary>
    public bool BytesEqual(int start, int length, string text)
    {
        if (length != text.Length || start < 0 || start + length > _length) return false;
        for (int i = 0; i < length; i++)
        {
            if (_bytes[start + i] != (byte)text[i]) return false;
        }
        return true;
    }

    /// <summary>
    /// Value of the last <c>key=value</c> word whose key equals <paramref name="key"/> (the value may be empty).
    /// False when no such word exists (a bare flag <c>key</c> does not count).
    /// </summary>
    public bool TryGetValue(string key, out int valueStart, out int valueLength)
    {
        valueStart = 0;
        valueLength = 0;
        bool found = false;
        int position = 0;
        while (NextWord(ref position, out int start, out int length))
        {
            SplitWord(start, length, out int keyLength, out bool hasValue, out int vs, out int vl);
            if (!hasValue || !BytesEqual(start, keyLength, key)) continue;
            found = true;
            valueStart = vs;
            valueLength = vl;
        }
        return found;
    }

    /// <summary>True when the bare word <paramref name="flag"/> (without '=') is present.</summary>
    public bool HasFlag(string flag)
    {
        int position = 0;
        while (NextWord(ref position, out int start, out int length))
        {
            if (BytesEqual(start, length, flag)) return true;
        }
        return false;
    }

    /// <summary>True when <c>key=value</c> is present with exactly that value (last occurrence of key decides).</summary>
    public bool ValueIs(string key, string value)
        => TryGetValue(key, out int start, out int length) && BytesEqual(start, length, value);
}
