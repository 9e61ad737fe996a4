namespace Microhv.Kernel;

/// <summary>Where the linker put the image, as recorded by Boot/boot.asm's boot_layout (same order).</summary>
internal struct BootLayout
{
    public ulong KernelVirtualBase;   // KERNEL_VMA: virtual address of physical 0 for the image
    public ulong DirectMapBase;       // DIRECTMAP_VMA: virtual address of physical 0 in the direct map
    public ulong ImageStart, ImageEnd;
    public ulong TextStart, TextEnd;
    public ulong RodataStart, RodataEnd;
    public ulong DataStart, DataEnd;
    public ulong BssStart, BssEnd;
    public ulong ModulesStart, ModulesEnd;
    public ulong StackGuard, StackTop;
    public ulong IstStacks, IstStacksEnd;
    public ulong EarlyHeap, EarlyHeapEnd;
    public ulong BootPml4Physical;
    public ulong IdleStackGuard;      // the idle loop's stack (Boot/traps.asm) sits above this page

    public ulong ToPhysical(ulong imageVirtual) => imageVirtual - KernelVirtualBase;
}
