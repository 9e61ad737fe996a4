using Microhv.HAL;

namespace Microhv.Kernel.Smp;

/// <summary>What one processor owns: its APIC id, stacks, GDT, TSS and entry block (all allocated by
/// the boot processor before the processor starts, so an application processor never allocates).</summary>
internal unsafe struct PerCpu
{
    public uint ApicId;
    public bool Online;
    /// <summary>The processor takes guests (it joined the scheduler's processors).</summary>
    public bool Joined;
    public ulong StackTop;
    public ulong* Gdt;
    public TaskStateSegment* Tss;
    public CpuBlock* Block;
    /// <summary>Entries of the running vCPU's GDT copied into this CPU's GDT (Kernel/Pv/GuestGdt.cs).</summary>
    public int GuestGdtEntries;
}
