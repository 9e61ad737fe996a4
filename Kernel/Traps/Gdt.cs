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

    public static ulong* Table;
    public static TaskStateSegment* Tss;

    public static void Initialize(ulong kernelStackTop, ulong istStacks, ulong istStackSize)
    {
        Table = (ulong*)Internal.Runtime.KernelHeap.AllocateAligned(Entries * 8, 4096);
        Tss = (TaskStateSegment*)Internal.Runtime.KernelHeap.AllocateAligned((ulong)sizeof(TaskStateSegment), 64);

        Table[HypervisorCs64 >> 3] = SegmentDescriptor.KernelCode64;
        Table[HypervisorDs >> 3] = SegmentDescriptor.KernelData;
        Table[Ring3Cs32 >> 3] = SegmentDescriptor.Encode(0, 0xF_FFFF, SegmentDescriptor.TypeCodeExecuteRead, true, 3, true, false, false, true, true);
        Table[Ring3Ds >> 3] = SegmentDescriptor.UserData;
        Table[Ring3Cs64 >> 3] = SegmentDescriptor.UserCode64;

        Tss->Rsp0 = kernelStackTop;
        // IST1 #DF, IST2 NMI, IST3 #MC: each stack sits above its own unmapped guard page.
        for (int i = 1; i <= 3; i++)
            Tss->SetIst(i, istStacks + (ulong)i * istStackSize);
        Tss->IoMapBase = (ushort)TaskStateSegment.Size;                  // no I/O bitmap: ring 3 port I/O faults
        SystemSegmentDescriptor.Tss((ulong)Tss, (uint)TaskStateSegment.Size, out ulong low, out ulong high);
        Table[TssSelector >> 3] = low;
        Table[(TssSelector >> 3) + 1] = high;

        byte* gdtr = stackalloc byte[10];
        *(ushort*)gdtr = Entries * 8 - 1;
        *(ulong*)(gdtr + 2) = (ulong)Table;
        Cpu.LoadGdt(gdtr, HypervisorCs64, HypervisorDs);
        Cpu.LoadTaskRegister(TssSelector);
    }
}
