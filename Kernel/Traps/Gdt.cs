using Microhv.HAL;
using Microhv.Kernel.Console;

namespace Microhv.Kernel.Traps;

/// <summary>
/// The global descriptor table, laid out as Xen lays out its own: 16 pages, the first 14 free for a
/// paravirtualized guest's descriptors (set_gdt), the hypervisor's entries from entry 7168 (0xE000)
/// up, so that Xen's selectors (FLAT_RING3_CS64 = 0xE033 …) mean the same thing here. The order of
/// ring-3 entries is also what SYSRET needs: STAR selects CS32, then SS = +8 and CS64 = +16.
/// </summary>
internal static unsafe class Gdt
{
    public const int Entries = 16 * 512;
    public const int FirstReservedEntry = 14 * 512;                       // 7168
    public const ushort HypervisorCs64 = 0xE008, HypervisorDs = 0xE010;  // __HYPERVISOR_CS64, __HYPERVISOR_DS32
    public const ushort Ring3Cs32 = 0xE023, Ring3Ds = 0xE02B, Ring3Cs64 = 0xE033; // FLAT_RING3_CS32, _DS32/_SS, _CS64
    public const ushort TssSelector = 0xE040;
    /// <summary>The running vCPU's LDT descriptor (16 bytes after the TSS's, Xen's LDT_SELECTOR): Kernel/Pv/GuestGdt.cs.</summary>
    public const ushort LdtSelector = 0xE050;

    public static ulong* Table;
    public static TaskStateSegment* Tss;

    /// <summary>The boot processor's GDT and TSS, loaded.</summary>
    public static void Initialize(ulong kernelStackTop, ulong istStacks, ulong istStackSize)
    {
        // IST1 #DF, IST2 NMI, IST3 #MC, IST4 #DB: each stack sits above its own unmapped guard page.
        Create(kernelStackTop, istStacks + istStackSize, istStacks + 2 * istStackSize, istStacks + 3 * istStackSize, istStacks + 4 * istStackSize, out Table, out Tss);
        Load(Table);
    }

    /// <summary>A GDT and TSS for one processor (the hypervisor's entries, its RSP0 and IST stacks), not loaded.</summary>
    public static void Create(ulong kernelStackTop, ulong ist1Top, ulong ist2Top, ulong ist3Top, ulong ist4Top, out ulong* table, out TaskStateSegment* tss)
    {
        table = (ulong*)Internal.Runtime.KernelHeap.AllocateAligned(Entries * 8, 4096);
        tss = (TaskStateSegment*)Internal.Runtime.KernelHeap.AllocateAligned((ulong)sizeof(TaskStateSegment), 64);

        table[HypervisorCs64 >> 3] = SegmentDescriptor.KernelCode64;
        table[HypervisorDs >> 3] = SegmentDescriptor.KernelData;
        table[Ring3Cs32 >> 3] = SegmentDescriptor.Encode(0, 0xF_FFFF, SegmentDescriptor.TypeCodeExecuteRead, true, 3, true, false, false, true, true);
        table[Ring3Ds >> 3] = SegmentDescriptor.UserData;
        table[Ring3Cs64 >> 3] = SegmentDescriptor.UserCode64;

        tss->Rsp0 = kernelStackTop;
        tss->SetIst(1, ist1Top);
        tss->SetIst(2, ist2Top);
        tss->SetIst(3, ist3Top);
        tss->SetIst(4, ist4Top);
        tss->IoMapBase = (ushort)TaskStateSegment.Size;                  // no I/O bitmap: ring 3 port I/O faults
        SystemSegmentDescriptor.Tss((ulong)tss, (uint)TaskStateSegment.Size, out ulong low, out ulong high);
        table[TssSelector >> 3] = low;
        table[(TssSelector >> 3) + 1] = high;
    }

    /// <summary>Loads <paramref name="table"/> on this CPU, reloads the segment registers and the task register.</summary>
    public static void Load(ulong* table)
    {
        byte* gdtr = stackalloc byte[10];
        *(ushort*)gdtr = Entries * 8 - 1;
        *(ulong*)(gdtr + 2) = (ulong)table;
        Cpu.LoadGdt(gdtr, HypervisorCs64, HypervisorDs);
        Cpu.LoadTaskRegister(TssSelector);
    }
}
