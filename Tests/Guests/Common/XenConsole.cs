namespace Microhv.Guests;

/// <summary>
/// The guest's console, one line at a time. The initial domain writes with console_io; any other
/// domain writes the shared console ring (start_info.console.domU) and notifies its event channel.
/// </summary>
public static unsafe class XenConsole
{
    private struct LineBuffer { public fixed byte Bytes[512]; }
    private static LineBuffer s_line;
    private static int s_length;
    private static byte* s_ring;              // xencons_interface, when not the initial domain
    private static uint s_ringPort;

    // struct xencons_interface (io/console.h)
    private const int RingOut = 1024, RingOutSize = 2048, RingOutCons = 3080, RingOutProd = 3084;

    /// <summary>Chooses the console from start_info; maps the ring at window page WindowConsole when needed.</summary>
    public static void Initialize()
    {
        if (Guest.IsInitialDomain) return;
        ulong mfn = *(ulong*)(Guest.StartInfo + Xen.SI_console_mfn);
        s_ringPort = *(uint*)(Guest.StartInfo + Xen.SI_console_evtchn);
        if (Guest.MapInWindow(Guest.WindowConsole, mfn, true) == 0)
            s_ring = (byte*)Guest.WindowPage(Guest.WindowConsole);
    }

    public static void Write(string s)
    {
        for (int i = 0; i < s.Length; i++) Put((byte)s[i]);
    }

    public static void Line(string s) { Write(s); Put((byte)'\n'); }

    public static void Dec(long v)
    {
        if (v < 0) { Put((byte)'-'); Udec((ulong)(-v)); }
        else Udec((ulong)v);
    }

    public static void Udec(ulong v)
    {
        byte* d = stackalloc byte[24];
        int n = 0;
        do { d[n++] = (byte)('0' + v % 10); v /= 10; } while (v != 0);
        while (n > 0) Put(d[--n]);
    }

    public static void Hex(ulong v)
    {
        Write("0x");
        bool started = false;
        for (int shift = 60; shift >= 0; shift -= 4)
        {
            int nibble = (int)((v >> shift) & 15);
            if (nibble == 0 && !started && shift != 0) continue;
            started = true;
            Put((byte)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10));
        }
    }

    public static void Put(byte b)
    {
        fixed (byte* line = s_line.Bytes)
        {
            if (b != (byte)'\n' && s_length < 511) { line[s_length++] = b; return; }
            line[s_length++] = (byte)'\n';
            Flush(line, s_length);
            s_length = 0;
        }
    }

    private static void Flush(byte* text, int count)
    {
        if (s_ring == null)
        {
            Hypercall.ConsoleWrite(text, (ulong)count);
            return;
        }
        byte* cons = s_ring + RingOutCons;
        byte* prod = s_ring + RingOutProd;
        for (int i = 0; i < count; i++)
        {
            // A full ring waits for the console backend; yield so it can run.
            uint p = Cpu.Load32(prod);
            for (int spins = 0; p - Cpu.Load32(cons) >= RingOutSize; spins++)
            {
                if (spins > 100000) return;
                Hypercall.SchedOp(Xen.SCHEDOP_yield, null);
            }
            s_ring[RingOut + (p & (RingOutSize - 1))] = text[i];
            Cpu.Store32(prod, p + 1);   // x86 keeps the data store before the producer store
        }
        uint* send = stackalloc uint[1];
        send[0] = s_ringPort;
        Hypercall.EventChannelOp(Xen.EVTCHNOP_send, send);
    }
}
