using System.Runtime;
using System.Runtime.CompilerServices;
using Microhv.HAL;

namespace Microhv.Kernel.Traps;

/// <summary>The interrupt descriptor table: all 256 vectors point at Boot/traps.asm's stubs.</summary>
internal static unsafe class Idt
{
    /// <summary>#DB has a stack of its own too: a guest's MOV SS or POP SS can delay a data breakpoint's #DB
    /// past its SYSCALL, so it arrives at CPL 0 on the guest's own RSP (Xen's XSA-260).</summary>
    public const int DoubleFaultIst = 1, NmiIst = 2, MachineCheckIst = 3, DebugIst = 4;

    [RuntimeImport("*", "isr_table_address")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern ulong* IsrTable();

    public static ulong* Table;

    public static void Initialize()
    {
        Table = (ulong*)Internal.Runtime.KernelHeap.AllocateAligned(256 * 16, 4096);
        ulong* stubs = IsrTable();
        for (int v = 0; v < 256; v++)
        {
            int ist = v == Vectors.DoubleFault ? DoubleFaultIst : v == Vectors.Nmi ? NmiIst : v == Vectors.MachineCheck ? MachineCheckIst
                : v == Vectors.Debug ? DebugIst : 0;
            InterruptGate.Interrupt(stubs[v], Gdt.HypervisorCs64, ist, out Table[2 * v], out Table[2 * v + 1]);
        }
        Load();
    }

    /// <summary>Lets ring-3 code (a PV guest kernel) raise <paramref name="vector"/> with INT n.</summary>
    public static void SetGuestGate(int vector)
    {
        ulong* stubs = IsrTable();
        InterruptGate.Encode(stubs[vector], Gdt.HypervisorCs64, 0, InterruptGate.TypeInterrupt, 3, true, out Table[2 * vector], out Table[2 * vector + 1]);
    }

    /// <summary>Loads the shared IDT on this CPU.</summary>
    public static void Load()
    {
        byte* idtr = stackalloc byte[10];
        *(ushort*)idtr = 256 * 16 - 1;
        *(ulong*)(idtr + 2) = (ulong)Table;
        Cpu.LoadIdt(idtr);
    }
}
