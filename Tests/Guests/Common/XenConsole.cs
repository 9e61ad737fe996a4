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
    private const int RingIn = 0, RingInSize = 1024, RingInCons = 3072, RingInProd = 3076;

    /// <summary>The event channel input arrives on: the console ring's port, or (initial domain) the
    /// port bound to VIRQ_CONSOLE by <see cref="BindInput"/>; 0 before that.</summary>
    public static uint InputPort => s_ring != null ? s_ringPort : s_virqPort;
    private static uint s_virqPort;

    /// <summary>The initial domain binds VIRQ_CONSOLE, which announces serial input (console_io read);
    /// another domain is notified on its ring's port. Returns 0 or the hypercall's error.</summary>
    public static long BindInput()
    {
        if (s_ring != null) return 0;
        uint* bind = stackalloc uint[3];
        bind[0] = Xen.VIRQ_CONSOLE; bind[1] = 0; bind[2] = 0;
        long rc = Hypercall.EventChannelOp(Xen.EVTCHNOP_bind_virq, bind);
        if (rc == 0) s_virqPort = bind[2];
        return rc;
    }

    /// <summary>Up to <paramref name="max"/> input bytes: CONSOLEIO_read for the initial domain, the
    /// ring's in[] for another. Returns the count, or a negative errno.</summary>
    public static long Read(byte* buffer, int max)
    {
        if (s_ring == null) return Hypercall.Call3(Xen.console_io, Xen.CONSOLEIO_read, (ulong)max, (ulong)buffer);
        uint cons = Cpu.Load32(s_ring + RingInCons);
        uint prod = Cpu.Load32(s_ring + RingInProd);
        int n = 0;
        for (; cons != prod && n < max; cons++, n++) buffer[n] = s_ring[RingIn + (cons & (RingInSize - 1))];
        Cpu.Store32(s_ring + RingInCons, cons);
        return n;
    }

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
