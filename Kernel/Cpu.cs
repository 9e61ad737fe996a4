using System.Runtime;
using System.Runtime.CompilerServices;

namespace Microhv.Kernel;

/// <summary>The CPU instructions C# cannot express: thin bindings to Boot/cpu.asm.</summary>
internal static unsafe class Cpu
{
    [RuntimeImport("*", "cpu_inb")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern byte InB(ushort port);
    [RuntimeImport("*", "cpu_inw")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ushort InW(ushort port);
    [RuntimeImport("*", "cpu_ind")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern uint InD(ushort port);
    [RuntimeImport("*", "cpu_outb")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void OutB(ushort port, byte value);
    [RuntimeImport("*", "cpu_outw")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void OutW(ushort port, ushort value);
    [RuntimeImport("*", "cpu_outd")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void OutD(ushort port, uint value);
    [RuntimeImport("*", "cpu_read_cr0")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong ReadCr0();
    [RuntimeImport("*", "cpu_read_dr6")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong ReadDr6();
    [RuntimeImport("*", "cpu_write_dr6")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void WriteDr6(ulong value);
    [RuntimeImport("*", "cpu_write_dr7")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void WriteDr7(ulong value);
    [RuntimeImport("*", "cpu_load_breakpoints")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void LoadBreakpoints(ulong dr0, ulong dr1, ulong dr2, ulong dr3);
    [RuntimeImport("*", "cpu_read_cr2")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong ReadCr2();
    [RuntimeImport("*", "cpu_read_cr3")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong ReadCr3();
    [RuntimeImport("*", "cpu_read_cr4")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong ReadCr4();
    [RuntimeImport("*", "cpu_write_cr0")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void WriteCr0(ulong value);
    [RuntimeImport("*", "cpu_write_cr3")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void WriteCr3(ulong value);
    [RuntimeImport("*", "cpu_write_cr4")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void WriteCr4(ulong value);
    [RuntimeImport("*", "cpu_rdmsr")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong ReadMsr(uint msr);
    [RuntimeImport("*", "cpu_wrmsr")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void WriteMsr(uint msr, ulong value);
    [RuntimeImport("*", "cpu_rdtsc")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong ReadTsc();
    [RuntimeImport("*", "cpu_read_rflags")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong ReadRflags();
    [RuntimeImport("*", "cpu_read_rsp")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong ReadRsp();
    [RuntimeImport("*", "cpu_cli")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void DisableInterrupts();
    [RuntimeImport("*", "cpu_sti")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void EnableInterrupts();
    [RuntimeImport("*", "cpu_hlt")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void Halt();
    [RuntimeImport("*", "cpu_sti_hlt")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void EnableInterruptsAndHalt();
    [RuntimeImport("*", "cpu_invlpg")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void InvalidatePage(ulong va);
    [RuntimeImport("*", "cpu_pause")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void Pause();
    [RuntimeImport("*", "cpu_cpuid")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void CpuId(uint leaf, uint subleaf, uint* eaxEbxEcxEdx);
    [RuntimeImport("*", "cpu_lgdt")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void LoadGdt(void* gdtr, ushort codeSelector, ushort dataSelector);
    [RuntimeImport("*", "cpu_lidt")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void LoadIdt(void* idtr);
    [RuntimeImport("*", "cpu_ltr")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void LoadTaskRegister(ushort selector);
    [RuntimeImport("*", "cpu_read_selectors")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void ReadSelectors(ushort* four);
    [RuntimeImport("*", "cpu_load_guest_selectors")] [MethodImpl(MethodImplOptions.InternalCall)]
    public static extern int LoadGuestSelectors(ushort ds, ushort es, ushort fs, ushort gs, ulong gsBase);
    [RuntimeImport("*", "cpu_load_user_gs")] [MethodImpl(MethodImplOptions.InternalCall)]
    public static extern ulong LoadUserGs(ushort selector, ulong gsBase);
    [RuntimeImport("*", "cpu_lldt")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void LoadLdtRegister(ushort selector);

    [RuntimeImport("*", "cpu_clobber_fpu")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void ClobberFpu();

    /// <summary>Stops this CPU for good: interrupts off, halt forever.</summary>
    public static void Stop()
    {
        while (true) { DisableInterrupts(); Halt(); }
    }
}
