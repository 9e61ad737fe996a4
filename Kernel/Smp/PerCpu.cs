using Microhv.HAL;

namespace Microhv.Kernel.Smp;

/// <summary>What one processor owns: its APIC id, stacks, GDT and TSS (all allocated by the boot
/// processor before the processor starts, so an application processor never allocates).</summary>
internal unsafe struct PerCpu
{
    public uint ApicId;
    public bool Online;
    public ulong StackTop;
    public ulong* Gdt;
    public TaskStateSegment* Tss;
}
