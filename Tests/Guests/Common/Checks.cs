namespace Microhv.Guests;

/// <summary>
/// The test reporter: runs each check on its own (an unexpected fault abandons only that check),
/// prints `check NAME: PASS` or `check NAME: FAIL (detail)`, and at the end a summary line and
/// a shutdown: poweroff if every check passed, crash otherwise. Lines are deterministic so the
/// same guest's output compares across hypervisors.
/// </summary>
public static unsafe class Checks
{
    private struct Detail { public fixed byte Bytes[200]; }
    private static Detail s_detail;
    private static int s_detailLength;
    private static string s_differs;
    private static bool s_failed;
    public static bool Running;
    public static int Passed, Failed;

    public static void Run(string name, delegate*<void> check)
    {
        s_failed = false;
        s_detailLength = 0;
        s_differs = null;
        Running = true;
        Cpu.CheckRun(check);
        Running = false;
        XenConsole.Write("check ");
        XenConsole.Write(name);
        if (!s_failed)
        {
            Passed++;
            XenConsole.Write(": PASS");
            if (s_differs != null) { XenConsole.Write(" (differs: "); XenConsole.Write(s_differs); XenConsole.Write(")"); }
            XenConsole.Line("");
            return;
        }
        Failed++;
        XenConsole.Write(": FAIL (");
        fixed (byte* d = s_detail.Bytes)
            for (int i = 0; i < s_detailLength; i++) XenConsole.Put(d[i]);
        XenConsole.Line(")");
    }

    /// <summary>Prints the summary and shuts the domain down; never returns.</summary>
    public static void Finish(string guest)
    {
        XenConsole.Write(guest);
        XenConsole.Write(": ");
        XenConsole.Dec(Passed);
        XenConsole.Write(" passed, ");
        XenConsole.Dec(Failed);
        XenConsole.Line(" failed");
        Hypercall.Shutdown(Failed == 0 ? Xen.SHUTDOWN_poweroff : Xen.SHUTDOWN_crash);
    }

    /// <summary>Marks the PASS line with a legitimate difference between hypervisors.</summary>
    public static void Differs(string why) => s_differs = why;

    /// <summary>Fails the current check; only the first failure's detail is kept.</summary>
    public static bool Fail(string what)
    {
        if (s_failed) return false;
        s_failed = true;
        Append(what);
        return false;
    }

    public static bool Fail(string what, long value)
    {
        if (s_failed) return false;
        Fail(what);
        AppendSigned(value);
        return false;
    }

    public static bool FailHex(string what, ulong value)
    {
        if (s_failed) return false;
        Fail(what);
        AppendHex(value);
        return false;
    }

    /// <summary>Fails unless <paramref name="actual"/> equals <paramref name="expected"/>: "what = actual, expected expected".</summary>
    public static bool Expect(string what, long actual, long expected)
    {
        if (actual == expected) return true;
        if (s_failed) return false;
        Fail(what);
        Append(" = ");
        AppendSigned(actual);
        Append(", expected ");
        AppendSigned(expected);
        return false;
    }

    public static bool ExpectHex(string what, ulong actual, ulong expected)
    {
        if (actual == expected) return true;
        if (s_failed) return false;
        Fail(what);
        Append(" = ");
        AppendHex(actual);
        Append(", expected ");
        AppendHex(expected);
        return false;
    }

    /// <summary>Fails unless <paramref name="rc"/> is a negative errno (a rejection).</summary>
    public static bool ExpectRejected(string what, long rc)
    {
        if (rc < 0) return true;
        return Fail(what, rc);
    }

    public static bool IsFailing => s_failed;

    public static void Append(string s)
    {
        for (int i = 0; i < s.Length; i++) AppendByte((byte)s[i]);
    }

    public static void AppendSigned(long v)
    {
        if (v < 0) { AppendByte((byte)'-'); v = -v; }
        byte* d = stackalloc byte[24];
        int n = 0;
        ulong u = (ulong)v;
        do { d[n++] = (byte)('0' + u % 10); u /= 10; } while (u != 0);
        while (n > 0) AppendByte(d[--n]);
    }

    public static void AppendHex(ulong v)
    {
        Append("0x");
        bool started = false;
        for (int shift = 60; shift >= 0; shift -= 4)
        {
            int nibble = (int)((v >> shift) & 15);
            if (nibble == 0 && !started && shift != 0) continue;
            started = true;
            AppendByte((byte)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10));
        }
    }

    private static void AppendByte(byte b)
    {
        if (s_detailLength < 199) fixed (byte* d = s_detail.Bytes) d[s_detailLength++] = b;
    }
}
