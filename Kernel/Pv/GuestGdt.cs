using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Kernel.Smp;
using Microhv.Kernel.Traps;

namespace Microhv.Kernel.Pv;

/// <summary>
/// The guest's part of the CPU's GDT. Xen maps a vCPU's set_gdt frames into the first 14 pages of
/// its per-CPU GDT; Microhv copies their descriptors into the same entries of the running CPU's GDT instead.
/// A copy stays exact because the frames are typed as descriptor pages: the guest cannot map them
/// writable, so they change only through update_descriptor, which writes the copy too. The vCPU's LDT is
/// loaded with it.
/// </summary>
internal static unsafe class GuestGdt
{
    /// <summary>Copies <paramref name="v"/>'s descriptors into this CPU's GDT; entries beyond a smaller
    /// GDT than the last one loaded here are cleared.</summary>
    public static void Load(Vcpu v)
    {
        ref PerCpu cpu = ref Processors.Cpus[Processors.Current];
        PhysicalMemory memory = v.Domain.Machine.Memory;
        int entries = v.GdtEntries;
        if (entries > Gdt.FirstReservedEntry) entries = Gdt.FirstReservedEntry;   // set_gdt refuses more; never reach our own
        for (int i = 0; i < entries; i++)
            cpu.Gdt[i] = memory.Read64((v.GdtFrames[i >> 9] << 12) + (ulong)(i & 511) * 8);
        for (int i = entries; i < cpu.GuestGdtEntries; i++) cpu.Gdt[i] = 0;
        cpu.GuestGdtEntries = entries;
        LoadLdt(v);
    }

    /// <summary>Xen's load_LDT: with entries, an LDT descriptor in this CPU's GDT for the vCPU's part of the
    /// LdtArea (its pages are mapped on demand, Hypervisor/Mm/LdtShadow.cs) and LLDT; without, the null LDT,
    /// so a TI=1 selector is #GP.</summary>
    public static void LoadLdt(Vcpu v)
    {
        ref PerCpu cpu = ref Processors.Cpus[Processors.Current];
        Hypervisor.Mm.LdtArea area = v.Domain.Machine.Ldt;
        if (v.LdtEntries == 0 || area == null || !area.HasSlot(v.LdtSlot))
        {
            Cpu.LoadLdtRegister(0);
            return;
        }
        SystemSegmentDescriptor.Encode(area.VirtualAddressOf(v.LdtSlot), (uint)(v.LdtEntries * 8 - 1), SystemSegmentDescriptor.TypeLdt,
            0, true, false, false, out ulong low, out ulong high);
        cpu.Gdt[Gdt.LdtSelector >> 3] = low;
        cpu.Gdt[(Gdt.LdtSelector >> 3) + 1] = high;
        Cpu.LoadLdtRegister(Gdt.LdtSelector);
    }

    public static void Write(int index, ulong descriptor)
    {
        ref PerCpu cpu = ref Processors.Cpus[Processors.Current];
        if (index >= 0 && index < cpu.GuestGdtEntries) cpu.Gdt[index] = descriptor;
    }
}
