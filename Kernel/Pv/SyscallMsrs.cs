using System.Runtime;
using System.Runtime.CompilerServices;
using Microhv.Kernel.Traps;

namespace Microhv.Kernel.Pv;

/// <summary>SYSCALL is how a 64-bit PV guest kernel enters the hypervisor (the hypercall page's stubs).</summary>
internal static unsafe class SyscallMsrs
{
    private const uint Efer = 0xC0000080, Star = 0xC0000081, Lstar = 0xC0000082, Sfmask = 0xC0000084;
    private const ulong EferSce = 1;
    // IF, TF, DF, NT, AC cleared on entry: the hypervisor runs with interrupts off.
    private const ulong EntryFlagsMask = 0x200 | 0x100 | 0x400 | 0x4000 | 0x40000;

    [RuntimeImport("*", "syscall_entry_address")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern ulong EntryAddress();

    public static void Enable()
    {
        Cpu.WriteMsr(Efer, Cpu.ReadMsr(Efer) | EferSce);
        // SYSCALL: CS = STAR[47:32], SS = +8; SYSRET: CS32 = STAR[63:48], SS = +8, CS64 = +16.
        Cpu.WriteMsr(Star, ((ulong)Gdt.Ring3Cs32 << 48) | ((ulong)Gdt.HypervisorCs64 << 32));
        Cpu.WriteMsr(Lstar, EntryAddress());
        Cpu.WriteMsr(Sfmask, EntryFlagsMask);
    }
}
