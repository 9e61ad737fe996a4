using System.Runtime;
using System.Runtime.CompilerServices;

namespace Microhv.Guests.PvOps;

/// <summary>
/// Backend 3, Microhv's ABI ROM (docs/abi-rom.md): found at the address our ABI_ROM note asked for,
/// checked (signature, version, checksum), initialised, then each operation bound by get_reloc:
/// CALL → the ROM entry, called through rom_call (native.asm); NOP → a no-op; NONE → the hypercall
/// backend's operation stays (a ring-3 guest has no native instruction to keep).
/// </summary>
public static unsafe class RomBackend
{
    public const ulong DefaultBase = 0xFFFFFFFFFFC00000;
    [RuntimeImport("*", "rom_call")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern long Call(ulong entry, ulong a1, ulong a2, ulong a3);

    // VMI call numbers (docs/abi-rom.md §5)
    private const ulong SetCR3 = 17, EnableInterrupts = 29, DisableInterrupts = 30, GetInterruptMask = 31, Halt = 35;
    private const ulong AllocatePage = 44, ReleasePage = 45, InvalPage = 46, FlushTLB = 47;
    private const ulong SetLazyMode = 73, LazyModeMmu = 2;
    private const ulong SetPTE = 80, SetPDE = 81, SetPDPTE = 82, SetPML4E = 83, ConsoleWrite = 96, SetTimer = 97, GetTime = 98;

    private static ulong s_base;
    private static ulong s_cr3, s_irqOn, s_irqOff, s_saveFl, s_halt, s_alloc, s_release, s_invlpg, s_flush;
    private static ulong s_lazyMode, s_setPte, s_setPmd, s_setPud, s_setPgd, s_console, s_setTimer, s_getTime;
    public static int Calls, Nops, Natives;
    public static bool VersionMismatch;

    /// <summary>Probes the ROM page (a #PF means no ROM); returns a reason for the boot line, or null if usable.</summary>
    public static string Probe(ulong requiredMajor, out ulong version)
    {
        version = 0;
        Traps.Expect(14, 3);
        ulong signature = Cpu.Read64(DefaultBase);
        bool faulted = Traps.Seen;
        Traps.ExpectNone();
        if (faulted) return "no ROM";
        if (signature != 0x34364D4F5256484DUL) return "no ROM signature";   // "MHVROM64"
        ulong major = *(ushort*)(DefaultBase + 8), minor = *(ushort*)(DefaultBase + 10);
        version = major << 16 | minor;
        VersionMismatch = major != requiredMajor;
        if (VersionMismatch) return "version";
        uint length = *(uint*)(DefaultBase + 20);
        if (length == 0 || length > 0x100000 || (length & 0xFFF) != 0) return "bad ROM length";
        uint sum = 0;
        for (uint i = 0; i < length / 4; i++) sum += ((uint*)DefaultBase)[i];
        if (sum != 0) return "checksum bad";
        s_base = DefaultBase;
        return null;
    }

    public static long Bind()
    {
        HypercallBackend.Bind();        // NONE keeps these
        ulong init = s_base + *(uint*)(s_base + 36);
        long rc = Call(init, (ulong)Guest.VcpuInfo, PvOps.KernelCr3, 0);
        if (rc != 0) return rc;
        s_cr3 = Reloc(SetCR3); s_irqOn = Reloc(EnableInterrupts); s_irqOff = Reloc(DisableInterrupts);
        s_saveFl = Reloc(GetInterruptMask); s_halt = Reloc(Halt); s_alloc = Reloc(AllocatePage);
        s_release = Reloc(ReleasePage); s_invlpg = Reloc(InvalPage); s_flush = Reloc(FlushTLB);
        s_setPte = Reloc(SetPTE); s_setPmd = Reloc(SetPDE); s_setPud = Reloc(SetPDPTE); s_setPgd = Reloc(SetPML4E);
        s_lazyMode = Reloc(SetLazyMode);
        s_console = Reloc(ConsoleWrite); s_setTimer = Reloc(SetTimer); s_getTime = Reloc(GetTime);
        if (s_cr3 != 0) PvOps.WriteCr3Op = &WriteCr3;
        if (s_irqOn != 0) PvOps.IrqEnableOp = &IrqEnable;
        if (s_irqOff != 0) PvOps.IrqDisableOp = &IrqDisable;
        if (s_saveFl != 0) PvOps.SaveFlOp = &SaveFl;
        if (s_halt != 0) PvOps.SafeHaltOp = &SafeHalt;
        if (s_alloc != 0) PvOps.AllocPtOp = &AllocPt;
        if (s_release != 0) PvOps.ReleasePtOp = &ReleasePt;
        if (s_invlpg != 0) PvOps.FlushTlbOneOp = &FlushTlbOne;
        if (s_flush != 0) PvOps.FlushTlbUserOp = &FlushTlbUser;
        if (s_setPte != 0) PvOps.SetPteOp = &SetPte;
        if (s_setPmd != 0) PvOps.SetPmdOp = &SetPmd;
        if (s_setPud != 0) PvOps.SetPudOp = &SetPud;
        if (s_setPgd != 0) PvOps.SetPgdOp = &SetPgd;
        if (s_lazyMode != 0) PvOps.LazyMmuOp = &LazyMmu;
        if (s_console != 0) PvOps.ConsoleWriteOp = &Console;
        if (s_setTimer != 0) PvOps.SetTimerOp = &Timer;
        if (s_getTime != 0) PvOps.TimeNsOp = &Time;
        return 0;
    }

    /// <summary>get_reloc(call) → rax entry, rdx type; the thunk returns rax only, so read the type from the call table.</summary>
    private static ulong Reloc(ulong call)
    {
        ulong entry = (ulong)Call(s_base + *(uint*)(s_base + 40), call, 0, 0);
        uint type = 0;
        ushort count = *(ushort*)(s_base + 14);
        byte* table = (byte*)(s_base + *(uint*)(s_base + 16));
        for (int i = 0; i < count; i++)
            if (*(ushort*)(table + 12 * i + 4) == call) type = table[12 * i + 6];
        if (type == 3) { Nops++; return 0; }   // NOP: our op is already unnecessary work only natively; keep the API's
        if (type == 0 || entry == 0) { Natives++; return 0; }
        Calls++;
        return entry;
    }

    public static ulong Base => s_base;

    private static long WriteCr3(ulong maddr) => Call(s_cr3, maddr, 0, 0);
    private static void IrqEnable() => Call(s_irqOn, 0, 0, 0);
    private static void IrqDisable() => Call(s_irqOff, 0, 0, 0);
    private static ulong SaveFl() => (ulong)Call(s_saveFl, 0, 0, 0);
    private static void SafeHalt() => Call(s_halt, 0, 0, 0);
    private static ulong Flag(int level) => 1UL << (level - 1);     // PT 1, PD 2, PDP 4, PML4 8

    /// <summary>The ROM pins; making the page read-only first has no ROM call, so it stays a hypercall.</summary>
    private static long AllocPt(int level, ulong va)
    {
        long rc = Guest.MakeReadOnly((void*)va);
        if (rc != 0) return rc;
        return Call(s_alloc, Guest.MfnOf((void*)va), Flag(level), 0);
    }

    private static long ReleasePt(int level, ulong va)
    {
        long rc = Call(s_release, Guest.MfnOf((void*)va), Flag(level), 0);
        if (rc != 0) return rc;
        return Guest.MakeWritable((void*)va);
    }

    private static ulong Machine(ulong* p) => HypercallBackend.VirtToMachine((ulong)p & ~0xFFFUL) + ((ulong)p & 0xFFF);
    private static long SetPte(ulong* p, ulong v) => Call(s_setPte, Machine(p), v, 0);
    private static long SetPmd(ulong* p, ulong v) => Call(s_setPmd, Machine(p), v, 0);
    private static long SetPud(ulong* p, ulong v) => Call(s_setPud, Machine(p), v, 0);
    private static long SetPgd(ulong* p, ulong v) => Call(s_setPgd, Machine(p), v, 0);
    private static long LazyMmu(bool enter) => Call(s_lazyMode, enter ? LazyModeMmu : 0, 0, 0);
    private static long FlushTlbOne(ulong va) => Call(s_invlpg, va, 0, 0);
    private static long FlushTlbUser() => Call(s_flush, 1, 0, 0);
    private static void Console(byte* text, int count) => Call(s_console, (ulong)text, (ulong)count, 0);
    private static long Timer(ulong deadline) => Call(s_setTimer, deadline, 0, 0);
    private static ulong Time() => (ulong)Call(s_getTime, 0, 0, 0);
}
