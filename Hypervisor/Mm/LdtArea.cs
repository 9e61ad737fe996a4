using Microhv.HAL;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// The hypervisor's virtual range where each vCPU's LDT is seen by the CPU (Xen's per-vCPU LDT half of
/// GDT_LDT_VIRT_START, in the hole's slot 260 as in Xen): 16 pages (8192 descriptors) per vCPU, present
/// only where the guest's LDT page was mapped on demand (LdtShadow). The LDT descriptor the kernel loads
/// at a vCPU switch points at that vCPU's 64 KiB. Supervisor-only: the guest never reads it itself.
/// The kernel builds the page tables under it at boot and hands over the machine addresses of the L1
/// tables (each covers 512 pages, 32 vCPUs); hosted tests give frames of their simulated memory.
/// </summary>
public sealed class LdtArea
{
    public const int PagesPerVcpu = 16;
    public const ulong BytesPerVcpu = PagesPerVcpu * Layout.PageSize;
    private const int PtesPerTable = 512;

    /// <summary>Where the area starts: Xen's PERDOMAIN_VIRT_START (L4 slot 260).</summary>
    public const ulong DefaultStart = 0xFFFF_8200_0000_0000;

    public readonly ulong VirtualStart;
    /// <summary>Machine addresses of the L1 tables mapping the area, in order.</summary>
    private readonly ulong[] _l1Tables;
    /// <summary>Extra bits of every entry the hypervisor writes (NX when the CPU has it).</summary>
    public readonly ulong ExtraFlags;

    public LdtArea(ulong virtualStart, ulong[] l1Tables, ulong extraFlags)
    {
        VirtualStart = virtualStart;
        _l1Tables = l1Tables;
        ExtraFlags = extraFlags;
    }

    /// <summary>vCPU slots the area has room for (Vcpu.LdtSlot below this).</summary>
    public int Slots => _l1Tables.Length * PtesPerTable / PagesPerVcpu;

    public bool Contains(ulong va) => va - VirtualStart < (ulong)Slots * BytesPerVcpu;

    public bool HasSlot(int slot) => slot >= 0 && slot < Slots;

    /// <summary>The linear address of slot <paramref name="slot"/>'s LDT (the LDT descriptor's base).</summary>
    public ulong VirtualAddressOf(int slot) => VirtualStart + (ulong)slot * BytesPerVcpu;

    /// <summary>The machine address of the entry mapping page <paramref name="page"/> of slot <paramref name="slot"/>.</summary>
    public ulong EntryAddress(int slot, int page)
    {
        int i = slot * PagesPerVcpu + page;
        return _l1Tables[i / PtesPerTable] + (ulong)(i % PtesPerTable) * 8;
    }

    /// <summary>The entry mapping a guest descriptor page: present, writable (the CPU sets descriptors'
    /// accessed bits), supervisor-only, never global (a CR3 load flushes it).</summary>
    public ulong EntryFor(ulong mfn)
        => (mfn << Layout.PageShift) | PageTableEntry.Present | PageTableEntry.Writable | PageTableEntry.Accessed
            | PageTableEntry.Dirty | ExtraFlags;
}
