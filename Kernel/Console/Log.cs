namespace Microhv.Kernel.Console;

/// <summary>
/// The kernel log: every byte goes to COM1 and to the screen console (as <c>console=</c> chose: see
/// <see cref="ToSerial"/> and <see cref="ScreenConsole.Active"/>). Nothing here allocates,
/// so it is safe on trap paths. A line is written as a sequence of calls ending in Line().
/// </summary>
internal static unsafe class Log
{
    public const int Quiet = 0, Info = 1, Debug = 2;
    public static int Verbosity = Info;

    public static bool ShowInfo => Verbosity >= Info;
    public static bool ShowDebug => Verbosity >= Debug;

    /// <summary>False when <c>console=</c> leaves out com1: the log then goes to the screen alone.</summary>
    public static bool ToSerial = true;

    public static void Put(byte b)
    {
        if (ToSerial)
        {
            if (b == (byte)'\n') SerialPort.Write((byte)'\r');
            SerialPort.Write(b);
        }
        ScreenConsole.Write(b);
    }

    public static void Write(string s)
    {
        for (int i = 0; i < s.Length; i++) Put((byte)s[i]);
    }

    public static void Write(byte* s, int length)
    {
        for (int i = 0; i < length; i++) Put(s[i]);
    }

    /// <summary>Writes a NUL-terminated string of at most maxLength bytes.</summary>
    public static void WriteZ(byte* s, int maxLength)
    {
        for (int i = 0; i < maxLength && s[i] != 0; i++) Put(s[i]);
    }

    public static void Line(string s) { Write(s); Put((byte)'\n'); }
    public static void Line() => Put((byte)'\n');

    public static void Dec(ulong value)
    {
        byte* digits = stackalloc byte[20];
        int n = 0;
        do { digits[n++] = (byte)('0' + value % 10); value /= 10; } while (value != 0);
        while (n > 0) Put(digits[--n]);
    }

    public static void Dec(long value)
    {
        if (value < 0) { Put((byte)'-'); Dec((ulong)(-value)); }
        else Dec((ulong)value);
    }

    /// <summary>"0x" and exactly <paramref name="digits"/> lowercase hex digits.</summary>
    public static void Hex(ulong value, int digits = 16)
    {
        Put((byte)'0'); Put((byte)'x');
        for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4)
        {
            int d = (int)((value >> shift) & 0xF);
            Put((byte)(d < 10 ? '0' + d : 'a' + d - 10));
        }
    }

    /// <summary>"0x" and as many hex digits as the value needs.</summary>
    public static void HexShort(ulong value)
    {
        int digits = 1;
        while (digits < 16 && (value >> (digits * 4)) != 0) digits++;
        Hex(value, digits);
    }

    public static void Field(string name, ulong value)
    {
        Write(name); Put((byte)'='); Hex(value);
    }
}
