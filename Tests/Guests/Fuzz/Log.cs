namespace Microhv.Guests.Fuzz;

/// <summary>Lines that name a call by seed and number, so a failure can be replayed (log=1 logfrom=K).</summary>
internal static class Log
{
    private static void Head(ulong seed, ulong n)
    {
        XenConsole.Write("fuzz: seed "); XenConsole.Udec(seed); XenConsole.Write(" call "); XenConsole.Udec(n); XenConsole.Write(": ");
    }

    public static unsafe void Call(ulong seed, ulong n, ref HostileCall c)
    {
        Head(seed, n);
        Args(c.Nr, c.A1, c.A2, c.A3, c.A4, c.A5);
        XenConsole.Line("");
        Entries(ref c);
    }

    /// <summary>A multicall's first entries (at most 8), when its list lies in our scratch pages.</summary>
    private static unsafe void Entries(ref HostileCall c)
    {
        ulong end = Sandbox.ScratchVa + Sandbox.ScratchPages * 4096UL;
        if (c.Nr != 13 || c.A1 < Sandbox.ScratchVa || c.A1 >= end) return;
        ulong* list = (ulong*)c.A1;
        for (ulong i = 0; i < c.A2 && i < 8 && c.A1 + (i + 1) * 64 <= end; i++)
        {
            XenConsole.Write("fuzz:   entry "); XenConsole.Udec(i); XenConsole.Write(": ");
            Args(list[8 * i], list[8 * i + 2], list[8 * i + 3], list[8 * i + 4], list[8 * i + 5], list[8 * i + 6]);
            XenConsole.Line("");
        }
    }

    public static void Probe(ulong seed, ulong n, ulong which, ulong a, ulong b, ulong c)
    {
        Head(seed, n);
        XenConsole.Write("instruction "); XenConsole.Udec(which);
        XenConsole.Write(" ("); XenConsole.Hex(a); XenConsole.Write(", "); XenConsole.Hex(b); XenConsole.Write(", "); XenConsole.Hex(c); XenConsole.Line(")");
    }

    /// <summary>A trap inside a hypercall (<paramref name="kind"/>: unexpected, or wild: at an address outside our image).</summary>
    public static void Trap(string kind, ulong seed, ulong n, ref HostileCall c)
    {
        XenConsole.Write("fuzz: "); XenConsole.Write(kind); XenConsole.Write(" trap "); XenConsole.Udec(FuzzTraps.LastVector); XenConsole.Write(" at "); XenConsole.Hex(FuzzTraps.LastRip);
        XenConsole.Write(", error "); XenConsole.Hex(FuzzTraps.LastError); XenConsole.Write(", in ");
        Head(seed, n);
        Args(c.Nr, c.A1, c.A2, c.A3, c.A4, c.A5);
        XenConsole.Line("");
        Entries(ref c);
    }

    private static void Args(ulong nr, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5)
    {
        XenConsole.Write("hypercall "); XenConsole.Udec(nr); XenConsole.Write(" (");
        XenConsole.Hex(a1); XenConsole.Write(", "); XenConsole.Hex(a2); XenConsole.Write(", "); XenConsole.Hex(a3); XenConsole.Write(", ");
        XenConsole.Hex(a4); XenConsole.Write(", "); XenConsole.Hex(a5); XenConsole.Write(")");
    }
}
