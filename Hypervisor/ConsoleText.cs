namespace Microhv.Hypervisor;

/// <summary>
/// Text the hypervisor logic prints on its own console (debug keys, input focus messages), written
/// byte by byte through the host: nothing here allocates, so it is safe on interrupt paths.
/// </summary>
public readonly struct ConsoleText
{
    private readonly HypervisorHost _host;

    public ConsoleText(HypervisorHost host) { _host = host; }

    public ConsoleText Put(byte b) { _host.ConsoleWrite(b); return this; }

    public ConsoleText Write(string s)
    {
        for (int i = 0; i < s.Length; i++) _host.ConsoleWrite((byte)s[i]);
        return this;
    }

    public ConsoleText Write(byte[] s, int length)
    {
        for (int i = 0; i < length && i < s.Length; i++) _host.ConsoleWrite(s[i]);
        return this;
    }

    public ConsoleText Line(string s) => Write(s).Put((byte)'\n');
    public ConsoleText Line() => Put((byte)'\n');

    public ConsoleText Dec(ulong value)
    {
        ulong divisor = 1;
        while (value / divisor >= 10) divisor *= 10;
        for (; divisor > 0; divisor /= 10) _host.ConsoleWrite((byte)('0' + value / divisor % 10));
        return this;
    }

    public ConsoleText Dec(long value) => value < 0 ? Put((byte)'-').Dec((ulong)(-value)) : Dec((ulong)value);

    /// <summary>Lowercase hex without leading zeros, after "0x".</summary>
    public ConsoleText Hex(ulong value)
    {
        Write("0x");
        int shift = 60;
        while (shift > 0 && ((value >> shift) & 0xF) == 0) shift -= 4;
        for (; shift >= 0; shift -= 4)
        {
            uint digit = (uint)(value >> shift) & 0xF;
            _host.ConsoleWrite((byte)(digit < 10 ? '0' + digit : 'a' + digit - 10));
        }
        return this;
    }
}
