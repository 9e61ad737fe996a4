using System.Runtime.CompilerServices;

namespace Microhv.Guests.PvOps;

/// <summary>
/// The paravirt operations the workload makes, grouped as Linux's pv_ops. Each is a call site of
/// Paravirt's (patched at load: Patcher.cs), inlined here so every use is its own site; each counts
/// itself, so each phase can report how many paravirtual operations it made. The few calls that are
/// not paravirt operations (facts the backend provides, the null hypercall, shutdown) stay function pointers.
/// </summary>
public static unsafe class PvOps
{
    public static string Backend;
    public static bool IsNative;
    public static ulong Ops;

    public static delegate*<ulong, ulong, long> UpdateVaOp;
    public static delegate*<long> NullCallOp;
    public static delegate*<uint, void> ShutdownOp;

    // Not operations: facts the backend provides.
    public static delegate*<ulong, ulong> VirtToMachineOp;   // a p2m lookup
    public static bool DirectMapped;                          // natively: machine = physical = virtual - VirtBase, no lookup
                                                              // (Linux's pfn_to_mfn tests auto_translated_physmap the same way)
    public static delegate*<ulong> TimerTicksOp;              // timer interrupts/upcalls seen
    public static ulong* KernelL4;                            // the boot L4, readable
    public static ulong KernelCr3;                            // its machine address
    public static ulong TscPerMs;

    private const MethodImplOptions Inline = MethodImplOptions.AggressiveInlining;
    private const ulong LazyModeMmu = 2;                      // SetLazyMode's MMU bit

    [MethodImpl(Inline)] public static void IrqDisable() { Ops++; Paravirt.IrqDisable(); }
    [MethodImpl(Inline)] public static void IrqEnable() { Ops++; Paravirt.IrqEnable(); }
    [MethodImpl(Inline)] public static void SafeHalt() { Ops++; Paravirt.SafeHalt(); }
    [MethodImpl(Inline)] public static ulong SaveFl() { Ops++; return Paravirt.SaveFl() & 0x200; }
    [MethodImpl(Inline)] public static long AllocPt(int level, void* table) { Ops++; return Paravirt.AllocPt((ulong)level, (ulong)table); }
    [MethodImpl(Inline)] public static long ReleasePt(int level, void* table) { Ops++; return Paravirt.ReleasePt((ulong)level, (ulong)table); }
    [MethodImpl(Inline)] public static long SetPte(ulong* p, ulong v) { Ops++; return Paravirt.SetPte(Machine(p), v); }
    [MethodImpl(Inline)] public static long SetPmd(ulong* p, ulong v) { Ops++; return Paravirt.SetPmd(Machine(p), v); }
    [MethodImpl(Inline)] public static long SetPud(ulong* p, ulong v) { Ops++; return Paravirt.SetPud(Machine(p), v); }
    [MethodImpl(Inline)] public static long SetPgd(ulong* p, ulong v) { Ops++; return Paravirt.SetPgd(Machine(p), v); }
    [MethodImpl(Inline)] public static long WriteCr3(ulong maddr) { Ops++; return Paravirt.WriteCr3(maddr); }
    [MethodImpl(Inline)] public static long FlushTlbOne(ulong va) { Ops++; return Paravirt.Invlpg(va); }
    [MethodImpl(Inline)] public static long FlushTlbUser() { Ops++; return Paravirt.FlushTlb(1); }
    [MethodImpl(Inline)] public static long LazyMmu(bool enter) { Ops++; return Paravirt.LazyMmu(enter ? LazyModeMmu : 0); }
    [MethodImpl(Inline)] public static ulong TimeNs() { Ops++; return Paravirt.GetTime(); }
    [MethodImpl(Inline)] public static long SetTimer(ulong deadline) { Ops++; return Paravirt.SetTimer(deadline); }
    public static long UpdateVa(ulong va, ulong pte) { Ops++; return UpdateVaOp(va, pte); }
    public static long NullCall() { Ops++; return NullCallOp(); }
    [MethodImpl(Inline)] public static ulong VirtToMachine(void* va) => DirectMapped ? (ulong)va - NativeCpu.VirtBase : VirtToMachineOp((ulong)va);
    public static ulong TimerTicks() => TimerTicksOp();

    /// <summary>The machine address of a page-table entry: what the set_p*d operations take (the ROM's SetPxE does).</summary>
    [MethodImpl(Inline)] private static ulong Machine(ulong* p) => DirectMapped ? (ulong)p - NativeCpu.VirtBase : VirtToMachineOp((ulong)p & ~0xFFFUL) + ((ulong)p & 0xFFF);
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
            Paravirt.ConsoleWrite(line, (ulong)s_length);
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
