using System.Runtime;
using System.Runtime.CompilerServices;

namespace Microhv.Guests.PvOps;

/// <summary>The call numbers of the paravirt operations: VMI's, as the ABI ROM numbers them (docs/abi-rom.md §5); paravirt.inc lists the same.</summary>
public static class VmiCall
{
    public const int SetCR3 = 17, EnableInterrupts = 29, DisableInterrupts = 30, GetInterruptMask = 31, Halt = 35;
    public const int AllocatePage = 44, ReleasePage = 45, InvalPage = 46, FlushTLB = 47, SetLazyMode = 73;
    public const int SetPTE = 80, SetPDE = 81, SetPDPTE = 82, SetPML4E = 83, ConsoleWrite = 96, SetTimer = 97, GetTime = 98;
}

/// <summary>
/// The paravirt operations as call sites (docs/abi-rom.md §9). Each method is a stub in paravirt.asm,
/// so every use compiles to a direct `call pv_name` that pvsites.sh records and Patcher rewrites at load.
/// The signatures are the ABI ROM's (arguments rdi, rsi, rdx; result rax), so a site can call a ROM entry
/// directly; every backend's function for an operation has the same signature.
/// </summary>
public static unsafe class Paravirt
{
    public const int Calls = 128;

    /// <summary>How a backend wants an operation's sites patched.</summary>
    public const byte HowCall = 0, HowNative = 1, HowNop = 2;

    [RuntimeImport("*", "pv_irq_disable")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void IrqDisable();
    [RuntimeImport("*", "pv_irq_enable")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void IrqEnable();
    [RuntimeImport("*", "pv_save_fl")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong SaveFl();
    [RuntimeImport("*", "pv_safe_halt")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void SafeHalt();
    [RuntimeImport("*", "pv_write_cr3")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern long WriteCr3(ulong maddr);
    [RuntimeImport("*", "pv_invlpg")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern long Invlpg(ulong va);
    [RuntimeImport("*", "pv_flush_tlb")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern long FlushTlb(ulong flags);
    [RuntimeImport("*", "pv_alloc_pt")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern long AllocPt(ulong level, ulong va);
    [RuntimeImport("*", "pv_release_pt")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern long ReleasePt(ulong level, ulong va);
    [RuntimeImport("*", "pv_set_pte")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern long SetPte(ulong maddr, ulong value);
    [RuntimeImport("*", "pv_set_pmd")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern long SetPmd(ulong maddr, ulong value);
    [RuntimeImport("*", "pv_set_pud")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern long SetPud(ulong maddr, ulong value);
    [RuntimeImport("*", "pv_set_pgd")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern long SetPgd(ulong maddr, ulong value);
    [RuntimeImport("*", "pv_lazy_mmu")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern long LazyMmu(ulong mode);
    [RuntimeImport("*", "pv_console_write")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void ConsoleWrite(byte* text, ulong count);
    [RuntimeImport("*", "pv_set_timer")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern long SetTimer(ulong deadline);
    [RuntimeImport("*", "pv_get_time")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong GetTime();

    [RuntimeImport("*", "paravirt_table_addresses")] [MethodImpl(MethodImplOptions.InternalCall)] private static extern void TableAddresses(ulong* out4);

    private struct Hows { public fixed byte How[Calls]; }
    private static Hows s_how;

    /// <summary>Binds an operation: its slot (what the stub jumps to, and what a call site calls) and how its sites are patched.</summary>
    public static void Bind(int call, void* target, byte how)
    {
        ulong* t = stackalloc ulong[4];
        TableAddresses(t);
        ((ulong*)t[1])[call] = (ulong)target;
        s_how.How[call] = how;
    }

    public static byte HowOf(int call) => s_how.How[call];

    /// <summary>The stubs (at +8 per call number), the slots, and the site table's bounds.</summary>
    public static void Table(out ulong stubs, out ulong* slots, out byte* sites, out byte* sitesEnd)
    {
        ulong* t = stackalloc ulong[4];
        TableAddresses(t);
        stubs = t[0];
        slots = (ulong*)t[1];
        sites = (byte*)t[2];
        sitesEnd = (byte*)t[3];
    }
}
