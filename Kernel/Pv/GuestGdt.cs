using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Kernel.Traps;

namespace Microhv.Kernel.Pv;

/// <summary>
/// The guest's part of the CPU's GDT. Xen maps a vCPU's set_gdt frames into the first 14 pages of
/// its per-CPU GDT; with one CPU Microhv copies their descriptors into the same entries instead.
/// A copy stays exact because the frames are typed as descriptor pages: the guest cannot map them
/// writable, so they change only through update_descriptor, which writes the copy too.
/// </summary>
internal static unsafe class GuestGdt
{
    /// <summary>Entries of the current copy; those beyond a smaller GDT are cleared on the next load.</summary>
    private static int _loaded;

    public static void Load(Vcpu v)
    {
        PhysicalMemory memory = v.Domain.Machine.Memory;
        int entries = v.GdtEntries;
        if (entries > Gdt.FirstReservedEntry) entries = Gdt.FirstReservedEntry;   // set_gdt refuses more; never reach our own
        for (int i = 0; i < entries; i++)
            Gdt.Table[i] = memory.Read64((v.GdtFrames[i >> 9] << 12) + (ulong)(i & 511) * 8);
        for (int i = entries; i < _loaded; i++) Gdt.Table[i] = 0;
        _loaded = entries;
    }

    public static void Write(int index, ulong descriptor)
    {
        if (index >= 0 && index < _loaded) Gdt.Table[index] = descriptor;
    }
}
