using System.Runtime;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Microhv.Kernel.Console;
using Microhv.Kernel.Memory;
using Microhv.Kernel.Timer;
using Microhv.Kernel.Traps;

namespace Microhv.Kernel.Pv;

/// <summary>
/// The one physical CPU as the hypervisor uses it: every trap lands here once domains exist. The
/// kernel's part is the hardware: acknowledge the interrupt, run its driver, call the matching
/// GuestEntry entry, and apply the exit record it returns (FPU state, CR3, GDT, segment-base MSRs,
/// CR0.TS, the one-shot timer). Which vCPU runs, and what its frame holds, is GuestEntry's decision.
/// </summary>
internal static unsafe class PvCpu
{
    public const int HypercallTrapVector = 0x82;
    private const uint FsBaseMsr = 0xC0000100, GsBaseMsr = 0xC0000101;

    public static Machine Machine;
    /// <summary>This CPU's entry state (current vCPU, counters); per CPU once more CPUs run guests.</summary>
    public static GuestEntry Entry;
    public static bool Active;
    /// <summary>Managed-heap bytes allocated when the guests started: hypercall and trap paths must not add to it.</summary>
    public static ulong HeapAtStart;

    [RuntimeImport("*", "cpu_set_exit_cr0_ts")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern void SetExitCr0Ts(bool set);
    [RuntimeImport("*", "idle_entry_address")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern ulong IdleEntryAddress();
    [RuntimeImport("*", "idle_stack_top_address")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern ulong IdleStackTop();

    /// <summary>Called by TrapDispatch for every trap once domains run. <paramref name="fpu"/> is the
    /// interrupted context's FXSAVE image, restored by the exit path.</summary>
    public static void OnTrap(TrapFrame* frame, byte* fpu)
    {
        ulong vector = frame->Vector;
        GuestExit exit;
        if (vector == TrapFrame.SyscallVector || vector == HypercallTrapVector)
            exit = Entry.Syscall(ref *frame, vector == HypercallTrapVector);
        else if (vector < 32)
            exit = Entry.Exception(ref *frame, Cpu.ReadCr2());
        else if (vector == Clock.ApicTimerVector && Clock.DeadlineMode)
            exit = Entry.Timer(ref *frame, Clock.OnDeadlineInterrupt(Machine.Host.SystemTimeNs()));
        else if (vector == Clock.ApicTimerVector || (vector == Clock.PitVector && !Clock.UsingApic))
        {
            Clock.OnTick();
            exit = Entry.Timer(ref *frame, true);
        }
        else
        {
            // Device interrupts: the driver runs, then the exit path delivers what it raised.
            if (vector == SerialInput.Vector) SerialInput.OnInterrupt(Machine.ConsoleInput);
            exit = Entry.Interrupt(ref *frame);
        }
        Apply(frame, fpu, ref exit);
    }

    /// <summary>Does what the exit record says, in the order the hardware needs it.</summary>
    private static void Apply(TrapFrame* frame, byte* fpu, ref GuestExit exit)
    {
        if (exit.Has(ExitActions.ReportCrash)) ReportCrash(Entry.Crashed);
        if (exit.Has(ExitActions.Switch))
        {
            Vcpu prev = Entry.Previous, next = Entry.Current;
            if (prev != null) Internal.Runtime.Memory.Move((byte*)prev.FpuArea, fpu, 512);
            if (next != null) Internal.Runtime.Memory.Move(fpu, (byte*)next.FpuArea, 512);
            if (exit.Has(ExitActions.Idle)) LoadIdle(frame);
        }
        if (exit.Has(ExitActions.LoadAddressSpace))
        {
            Cpu.WriteCr3(exit.Cr3);
            GuestGdt.Load(Entry.Current);
        }
        if (exit.Has(ExitActions.LoadSegmentBases))
        {
            Cpu.WriteMsr(FsBaseMsr, exit.FsBase);
            Cpu.WriteMsr(GsBaseMsr, exit.GsBase);
        }
        if (exit.Has(ExitActions.AllEnded)) DomainSummary.PrintAndExit(Machine);
        if (exit.Has(ExitActions.ArmTimer) && Clock.DeadlineMode) Clock.ArmFor(exit.TimerDeadline, Machine.Host.SystemTimeNs());
        SetExitCr0Ts(exit.Has(ExitActions.Cr0Ts));
        if (ScreenConsole.CursorBehind) ScreenConsole.ShowCursor();    // the screen's cursor follows once per trap, not per byte
    }

    /// <summary>A domain the hypervisor killed: why, and the guest registers at that moment (saved in its vCPU).</summary>
    private static void ReportCrash(Vcpu v)
    {
        TrapFrame f = v.Regs;
        Log.Write("domain "); Log.Dec(v.Domain.DomainId); Log.Write(" crashed: ");
        Log.Write(v.Domain.CrashReason != null ? v.Domain.CrashReason : "no reason recorded");
        Log.Write(" (vector "); Log.Dec(f.Vector); Log.Write(", error code "); Log.HexShort(f.ErrorCode); Log.Line(")");
        RegisterDump.Write(&f, Cpu.ReadCr2());
    }

    /// <summary>Makes the frame return into the idle loop, on its own stack, in the hypervisor's address space.</summary>
    private static void LoadIdle(TrapFrame* frame)
    {
        *frame = default;
        frame->Rip = IdleEntryAddress();
        frame->Cs = Gdt.HypervisorCs64;
        frame->Rflags = 0x2;
        frame->Rsp = IdleStackTop();
        frame->Ss = Gdt.HypervisorDs;
        Cpu.WriteCr3(KernelAddressSpace.Tables.Root);
    }

    [UnmanagedCallersOnly(EntryPoint = "hv_idle")]
    private static void Idle()
    {
        while (true) Cpu.EnableInterruptsAndHalt();
    }
}
