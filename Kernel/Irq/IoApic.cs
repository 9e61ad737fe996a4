using System.Runtime.CompilerServices;
using Microhv.Kernel.Memory;

namespace Microhv.Kernel.Irq;

/// <summary>
/// The IO-APIC (Intel 82093AA register interface): an index register and a data window, one 64-bit
/// redirection entry per input line. Microhv owns it and changes an entry only when the hypervisor's
/// interrupt routing asks (Hypervisor/Irq/IrqRouting.cs); every entry starts masked. Lines are
/// delivered in fixed mode, physical destination, to the boot CPU.
/// </summary>
internal static unsafe class IoApic
{
    public const ulong DefaultBase = 0xFEC00000;
    private const uint RegId = 0x00, RegVersion = 0x01, RegRedirection = 0x10;
    private const ulong Masked = 1UL << 16, Level = 1UL << 15, ActiveLow = 1UL << 13;

    public static ulong PhysicalBase;
    public static int Lines;
    private static byte* s_mmio;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static uint Read(uint reg) { *(uint*)s_mmio = reg; return *(uint*)(s_mmio + 0x10); }
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Write(uint reg, uint value) { *(uint*)s_mmio = reg; *(uint*)(s_mmio + 0x10) = value; }

    /// <summary>Finds the IO-APIC at <paramref name="physicalBase"/> and masks every line; false when none answers there.</summary>
    public static bool Initialize(ulong physicalBase)
    {
        s_mmio = DirectMap.ToVirtual(physicalBase);
        uint version = Read(RegVersion);
        if (version == 0xFFFF_FFFF || version == 0) { s_mmio = null; return false; }
        PhysicalBase = physicalBase;
        Lines = (int)((version >> 16) & 0xFF) + 1;
        for (int i = 0; i < Lines; i++) SetEntry(i, Masked);
        return true;
    }

    public static uint Version => s_mmio == null ? 0 : Read(RegVersion);

    /// <summary>A register read for the hardware domain's PHYSDEVOP_apic_read (id, version, arbitration, entries).</summary>
    public static bool ReadRegister(ulong physicalBase, uint reg, out uint value)
    {
        value = 0;
        if (s_mmio == null || physicalBase != PhysicalBase) return false;
        value = Read(reg);
        return true;
    }

    /// <summary>Programs line <paramref name="line"/> to deliver <paramref name="vector"/> to the CPU with APIC ID <paramref name="apicId"/>.</summary>
    public static bool Route(int line, byte vector, bool level, bool activeLow, bool masked, uint apicId)
    {
        if (s_mmio == null || line < 0 || line >= Lines) return false;
        ulong entry = vector | ((ulong)apicId << 56);
        if (level) entry |= Level;
        if (activeLow) entry |= ActiveLow;
        if (masked) entry |= Masked;
        SetEntry(line, entry);
        return true;
    }

    /// <summary>Writes the high half first with the entry masked, so the line never fires half-programmed.</summary>
    private static void SetEntry(int line, ulong entry)
    {
        uint low = RegRedirection + (uint)line * 2;
        Write(low, (uint)Masked);
        Write(low + 1, (uint)(entry >> 32));
        Write(low, (uint)entry);
    }
}
