namespace Microhv.Guests.Fuzz;

/// <summary>Words of the guest command line: <c>key=value</c>, separated by spaces.</summary>
internal static unsafe class Options
{
    private static int Find(byte* s, string key)
    {
        for (int i = 0; i + key.Length <= 1024 && s[i] != 0; i++)
        {
            if (i > 0 && s[i - 1] != (byte)' ') continue;
            int k = 0;
            while (k < key.Length && s[i + k] == (byte)key[k]) k++;
            if (k == key.Length) return i + k;
        }
        return -1;
    }

    public static ulong Number(byte* cmd, string key, ulong fallback)
    {
        int at = Find(cmd, key);
        if (at < 0) return fallback;
        ulong v = 0;
        bool any = false;
        for (byte* p = cmd + at; *p >= (byte)'0' && *p <= (byte)'9'; p++) { v = v * 10 + (ulong)(*p - '0'); any = true; }
        return any ? v : fallback;
    }

    /// <summary>mode=canary on the command line.</summary>
    public static bool IsCanary(byte* cmd)
    {
        int at = Find(cmd, "mode=");
        if (at < 0) return false;
        byte* v = cmd + at;
        const string canary = "canary";
        for (int k = 0; k < canary.Length; k++) if (v[k] != (byte)canary[k]) return false;
        return v[canary.Length] == 0 || v[canary.Length] == (byte)' ';
    }
}
