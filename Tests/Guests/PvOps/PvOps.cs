namespace Microhv.Guests.PvOps;

/// <summary>
/// The paravirt-ops table, grouped as Linux's pv_ops: one function pointer per operation, bound at
/// boot by a backend (Native, Hypercall, Rom; the native shim reuses Hypercall). Every call goes
/// through a wrapper that counts it, so each phase can report how many paravirtual operations it made.
/// </summary>
public static unsafe class PvOps
{
    public static string Backend;
    public static bool IsNative;
    public static ulong Ops;

    // pv_irq_ops
    public static delegate*<void> IrqDisableOp, IrqEnableOp, SafeHaltOp;
    public static delegate*<ulong> SaveFlOp;
    // pv_mmu_ops: level 1..4 = pte, pmd, pud, pgd
    public static delegate*<int, ulong, long> AllocPtOp, ReleasePtOp;
    public static delegate*<ulong*, ulong, long> SetPteOp, SetPmdOp, SetPudOp, SetPgdOp;
    public static delegate*<ulong, long> WriteCr3Op, FlushTlbOneOp;
    public static delegate*<long> FlushTlbUserOp;
    public static delegate*<ulong, ulong, long> UpdateVaOp;
    public static delegate*<bool, long> LazyMmuOp;           // enter (true) / leave (false): leaving flushes queued writes
    // pv_time_ops
    public static delegate*<ulong> TimeNsOp;
    public static delegate*<ulong, long> SetTimerOp;
    // console, null call, shutdown
    public static delegate*<byte*, int, void> ConsoleWriteOp;
    public static delegate*<long> NullCallOp;
    public static delegate*<uint, void> ShutdownOp;

    // Not operations: facts the backend provides.
    public static delegate*<ulong, ulong> VirtToMachineOp;   // a p2m lookup (identity natively)
    public static delegate*<ulong> TimerTicksOp;              // timer interrupts/upcalls seen
    public static ulong* KernelL4;                            // the boot L4, readable
    public static ulong KernelCr3;                            // its machine address
    public static ulong TscPerMs;

    public static void IrqDisable() { Ops++; IrqDisableOp(); }
    public static void IrqEnable() { Ops++; IrqEnableOp(); }
    public static void SafeHalt() { Ops++; SafeHaltOp(); }
    public static ulong SaveFl() { Ops++; return SaveFlOp(); }
    public static long AllocPt(int level, void* table) { Ops++; return AllocPtOp(level, (ulong)table); }
    public static long ReleasePt(int level, void* table) { Ops++; return ReleasePtOp(level, (ulong)table); }
    public static long SetPte(ulong* p, ulong v) { Ops++; return SetPteOp(p, v); }
    public static long SetPmd(ulong* p, ulong v) { Ops++; return SetPmdOp(p, v); }
    public static long SetPud(ulong* p, ulong v) { Ops++; return SetPudOp(p, v); }
    public static long SetPgd(ulong* p, ulong v) { Ops++; return SetPgdOp(p, v); }
    public static long WriteCr3(ulong maddr) { Ops++; return WriteCr3Op(maddr); }
    public static long FlushTlbOne(ulong va) { Ops++; return FlushTlbOneOp(va); }
    public static long FlushTlbUser() { Ops++; return FlushTlbUserOp(); }
    public static long UpdateVa(ulong va, ulong pte) { Ops++; return UpdateVaOp(va, pte); }
    public static long LazyMmu(bool enter) { Ops++; return LazyMmuOp(enter); }
    public static ulong TimeNs() { Ops++; return TimeNsOp(); }
    public static long SetTimer(ulong deadline) { Ops++; return SetTimerOp(deadline); }
    public static long NullCall() { Ops++; return NullCallOp(); }
    public static ulong VirtToMachine(void* va) => VirtToMachineOp((ulong)va);
    public static ulong TimerTicks() => TimerTicksOp();

    public static void Nop() { }
    public static long Nop0() => 0;
    public static long Nop1(ulong a) => 0;
    public static long NopLazy(bool enter) => 0;
}

/// <summary>The guest's console line printer, over the bound console operation (not counted).</summary>
public static unsafe class Log
{
    private struct LineBuffer { public fixed byte Bytes[256]; }
    private static LineBuffer s_line;
    private static int s_length;

    public static void Write(string s) { for (int i = 0; i < s.Length; i++) Put((byte)s[i]); }
    public static void Line(string s) { Write(s); Put((byte)'\n'); }

    public static void Dec(ulong v)
    {
        byte* d = stackalloc byte[24];
        int n = 0;
        do { d[n++] = (byte)('0' + v % 10); v /= 10; } while (v != 0);
        while (n > 0) Put(d[--n]);
    }

    public static void Hex(ulong v)
    {
        Write("0x");
        for (int shift = 60; shift >= 0; shift -= 4)
        {
            int nibble = (int)((v >> shift) & 15);
            Put((byte)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10));
        }
    }

    public static void HexShort(ulong v)
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
            if (b != (byte)'\n' && s_length < 255) { line[s_length++] = b; return; }
            line[s_length++] = (byte)'\n';
            PvOps.ConsoleWriteOp(line, s_length);
            s_length = 0;
        }
    }
}

/// <summary>Command line words: `key=value` lookups over a NUL-terminated string.</summary>
public static unsafe class CommandLine
{
    public static byte* Text;

    public static bool Has(string key, string value)
    {
        int at = Find(key);
        if (at < 0) return false;
        byte* v = Text + at;
        for (int k = 0; k < value.Length; k++) if (v[k] != (byte)value[k]) return false;
        return v[value.Length] == 0 || v[value.Length] == (byte)' ';
    }

    /// <summary>The decimal value of key (its leading digits), or <paramref name="otherwise"/>.</summary>
    public static ulong Number(string key, ulong otherwise)
    {
        int at = Find(key);
        if (at < 0 || Text[at] < (byte)'0' || Text[at] > (byte)'9') return otherwise;
        ulong n = 0;
        for (byte* v = Text + at; *v >= (byte)'0' && *v <= (byte)'9'; v++) n = n * 10 + (ulong)(*v - (byte)'0');
        return n;
    }

    private static int Find(string key)
    {
        if (Text == null) return -1;
        for (int i = 0; i + key.Length <= 1024 && Text[i] != 0; i++)
        {
            if (i > 0 && Text[i - 1] != (byte)' ') continue;
            int k = 0;
            while (k < key.Length && Text[i + k] == (byte)key[k]) k++;
            if (k == key.Length) return i + k;
        }
        return -1;
    }
}
