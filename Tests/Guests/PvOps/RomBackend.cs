using System.Runtime;
using System.Runtime.CompilerServices;

namespace Microhv.Guests.PvOps;

/// <summary>
/// Backend 3, Microhv's ABI ROM (docs/abi-rom.md): found at the address our ABI_ROM note asked for,
/// checked (signature, version, checksum), initialised, then each operation bound by get_reloc as VMI
/// guests bound theirs: CALL → the ROM entry itself, so a patched site calls it directly (the ROM's
/// signature is the site's); NOP → the sites become NOPs; NONE → the native bytes where the operation
/// has them, else the hypercall backend's function. alloc_pt and release_pt first make the page
/// read-only, which the ROM has no call for: they bind small glue that calls the ROM's entry.
/// </summary>
public static unsafe class RomBackend
{
    public const ulong DefaultBase = 0xFFFFFFFFFFC00000;
    [RuntimeImport("*", "rom_call")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern long Call(ulong entry, ulong a1, ulong a2, ulong a3);

    private const uint RelocNone = 0, RelocCallRel = 1, RelocJumpRel = 2, RelocNop = 3;

    private static ulong s_base;
    private static ulong s_alloc, s_release;
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
        HypercallBackend.Bind();        // NONE keeps these where there is no native instruction
        ulong init = s_base + *(uint*)(s_base + 36);
        long rc = Call(init, (ulong)Guest.VcpuInfo, PvOps.KernelCr3, 0);
        if (rc != 0) return rc;
        BindDirect(VmiCall.SetCR3); BindDirect(VmiCall.EnableInterrupts); BindDirect(VmiCall.DisableInterrupts);
        BindDirect(VmiCall.GetInterruptMask); BindDirect(VmiCall.Halt); BindDirect(VmiCall.InvalPage);
        BindDirect(VmiCall.FlushTLB); BindDirect(VmiCall.SetLazyMode); BindDirect(VmiCall.SetPTE);
        BindDirect(VmiCall.SetPDE); BindDirect(VmiCall.SetPDPTE); BindDirect(VmiCall.SetPML4E);
        BindDirect(VmiCall.ConsoleWrite); BindDirect(VmiCall.SetTimer); BindDirect(VmiCall.GetTime);
        s_alloc = BindGlue(VmiCall.AllocatePage, (delegate*<ulong, ulong, long>)&AllocPt);
        s_release = BindGlue(VmiCall.ReleasePage, (delegate*<ulong, ulong, long>)&ReleasePt);
        return 0;
    }

    private static void BindDirect(int call)
    {
        ulong entry = Reloc(call, out uint type);
        if (type == RelocCallRel && entry != 0) { Paravirt.Bind(call, (void*)entry, Paravirt.HowCall); Calls++; }
        else if (type == RelocNop) { Paravirt.Bind(call, (void*)Slot(call), Paravirt.HowNop); Nops++; }
        else { Paravirt.Bind(call, (void*)Slot(call), Paravirt.HowNative); Natives++; }
    }

    /// <summary>An operation whose ROM call needs C# around it: CALL binds the glue (which calls the returned entry); else the API's stays.</summary>
    private static ulong BindGlue(int call, void* glue)
    {
        ulong entry = Reloc(call, out uint type);
        if (type == RelocCallRel && entry != 0) { Paravirt.Bind(call, glue, Paravirt.HowCall); Calls++; return entry; }
        if (type == RelocNop) Nops++; else Natives++;
        return 0;
    }

    private static ulong Slot(int call)
    {
        Paravirt.Table(out _, out ulong* slots, out _, out _);
        return slots[call];
    }

    /// <summary>get_reloc(call) → rax entry, rdx type; the thunk returns rax only, so read the type from the call table.</summary>
    private static ulong Reloc(int call, out uint type)
    {
        ulong entry = (ulong)Call(s_base + *(uint*)(s_base + 40), (ulong)call, 0, 0);
        type = RelocNone;
        ushort count = *(ushort*)(s_base + 14);
        byte* table = (byte*)(s_base + *(uint*)(s_base + 16));
        for (int i = 0; i < count; i++)
            if (*(ushort*)(table + 12 * i + 4) == call) type = table[12 * i + 6];
        return entry;
    }

    public static ulong Base => s_base;

    private static ulong Flag(ulong level) => 1UL << (int)(level - 1);     // PT 1, PD 2, PDP 4, PML4 8

    /// <summary>The ROM pins; making the page read-only first has no ROM call, so it stays a hypercall.</summary>
    private static long AllocPt(ulong level, ulong va)
    {
        long rc = Guest.MakeReadOnly((void*)va);
        if (rc != 0) return rc;
        return Call(s_alloc, Guest.MfnOf((void*)va), Flag(level), 0);
    }

    private static long ReleasePt(ulong level, ulong va)
    {
        long rc = Call(s_release, Guest.MfnOf((void*)va), Flag(level), 0);
        if (rc != 0) return rc;
        return Guest.MakeWritable((void*)va);
    }
}
