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
/// The one physical CPU as the hypervisor uses it: every trap lands here once domains exist.
/// A trap from a guest (ring 3) is a hypercall (SYSCALL or INT 0x82), an exception to emulate or
/// bounce, or a device interrupt; then the scheduler may switch vCPUs — by saving the trap frame
/// and FXSAVE area into the old vCPU and loading the new one's into them, so the common exit path
/// (IRETQ) resumes whoever should run. No vCPU runnable: the frame becomes the idle loop's.
/// </summary>
internal static unsafe class PvCpu
{
    public const int HypercallTrapVector = 0x82;
    private const uint FsBaseMsr = 0xC0000100, GsBaseMsr = 0xC0000101;

    public static Machine Machine;
    public static Scheduler Scheduler;
    public static Vcpu Current;
    public static bool Active;
    public static ulong Traps, Hypercalls;
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
        Traps++;
        ulong vector = frame->Vector;
        bool tick = false;
        Vcpu v = Current;

        bool timer = false, timersChanged = false;
        if (vector == Clock.ApicTimerVector && Clock.DeadlineMode)
        {
            tick = Clock.OnDeadlineInterrupt(Machine.Host.SystemTimeNs());
            timer = true;
        }
        else if (vector == Clock.ApicTimerVector || (vector == Clock.PitVector && !Clock.UsingApic))
        {
            Clock.OnTick();
            tick = timer = true;
        }
        else if (vector == SerialInput.Vector)
        {
            SerialInput.OnInterrupt(Machine.ConsoleInput);   // may wake the vCPU the input is for
        }
        else if (frame->Ring == 3 && v != null)
        {
            if (vector == TrapFrame.SyscallVector && !v.KernelMode)
            {
                GuestTraps.HandleUserSyscall(v, ref *frame);   // guest user space: to the guest kernel's syscall callback
                LoadSegmentBases(v);
            }
            else if (vector == TrapFrame.SyscallVector || vector == HypercallTrapVector)
            {
                Hypercalls++;
                ulong nr = frame->Rax;
                Microhv.Hypervisor.Hypercalls.Dispatch(v, ref *frame);
                if (nr == Xen.__HYPERVISOR_set_segment_base || nr == Xen.__HYPERVISOR_iret) LoadSegmentBases(v);
                timersChanged = SetsTimers(nr);
            }
            else if (vector < 32)
            {
                GuestTraps.HandleException(v, ref *frame, Cpu.ReadCr2());
                LoadSegmentBases(v);
            }
        }

        if (v != null && v.Domain.State == DomainState.Crashed && !v.CrashReported) ReportCrash(v, frame);

        if (timer) Timers.Tick(Machine);
        if (tick)
        {
            for (int i = 0; i < Machine.DomainCount; i++)
                if (Machine.Domains[i].ConsoleRingMfn != 0) ConsoleRing.Drain(Machine.Domains[i]);
        }
        Reschedule(frame, fpu, tick, timer);
        // Re-arm the one-shot only when a guest deadline can have moved earlier: a timer interrupt
        // (periodic timers advance, the armed deadline was consumed) or a hypercall that sets timers.
        if (Clock.DeadlineMode && (timer || timersChanged || Clock.ArmedNs == 0))
            Clock.ArmFor(Timers.NextDeadline(Machine), Machine.Host.SystemTimeNs());
        if (ScreenConsole.CursorBehind) ScreenConsole.ShowCursor();    // the screen's cursor follows once per trap, not per byte
    }

    /// <summary><paramref name="timer"/>: the trap was a timer interrupt, when the guest's time info is
    /// refreshed besides on every vCPU switch. The guest extrapolates system time from any recent
    /// (TSC, time) pair with the same scale the hypervisor uses, so a hypercall need not rewrite it.</summary>
    private static void Reschedule(TrapFrame* frame, byte* fpu, bool tick, bool timer)
    {
        bool preempt = (tick && Scheduler.Tick(Current)) || Machine.RescheduleRequested || !Scheduler.IsRunnable(Current);
        Machine.RescheduleRequested = false;
        Vcpu next = Scheduler.PickNext(Current, preempt);
        bool switched = next != Current;
        if (switched)
        {
            if (Current != null && frame->Ring == 3) Save(Current, frame, fpu);
            if (next != null) Load(next, frame, fpu); else LoadIdle(frame);
            Current = next;
        }
        if (Current != null)
        {
            if (switched || tick || timer) TimeInfo.Update(Current);
            bool wasKernel = Current.KernelMode;
            TrapBounce.DeliverEventUpcall(Current, ref *frame);
            if (wasKernel != Current.KernelMode) LoadSegmentBases(Current);
        }
        else if (Scheduler.AllDomainsEnded())
        {
            DomainSummary.PrintAndExit(Machine);
        }
        SetExitCr0Ts(Current != null && FpuTaskswitch.WantsCr0Ts(Current));
    }

    /// <summary>Hypercalls that can set or move a guest timer (set_timer_op, vcpu_op timers, sched_op
    /// poll timeouts, and multicall, which may carry any of them).</summary>
    private static bool SetsTimers(ulong nr)
        => nr == Xen.__HYPERVISOR_set_timer_op || nr == Xen.__HYPERVISOR_vcpu_op || nr == Xen.__HYPERVISOR_sched_op
           || nr == Xen.__HYPERVISOR_sched_op_compat || nr == Xen.__HYPERVISOR_multicall;

    /// <summary>A domain the hypervisor killed: why, and the guest registers at that moment.</summary>
    private static void ReportCrash(Vcpu v, TrapFrame* f)
    {
        v.CrashReported = true;
        Log.Write("domain "); Log.Dec(v.Domain.DomainId); Log.Write(" crashed: ");
        Log.Write(v.Domain.CrashReason != null ? v.Domain.CrashReason : "no reason recorded");
        Log.Write(" (vector "); Log.Dec(f->Vector); Log.Write(", error code "); Log.HexShort(f->ErrorCode); Log.Line(")");
        RegisterDump.Write(f, Cpu.ReadCr2());
    }

    private static void Save(Vcpu v, TrapFrame* frame, byte* fpu)
    {
        v.Regs = *frame;
        Internal.Runtime.Memory.Move((byte*)v.FpuArea, fpu, 512);
    }

    private static void Load(Vcpu v, TrapFrame* frame, byte* fpu)
    {
        *frame = v.Regs;
        Internal.Runtime.Memory.Move(fpu, (byte*)v.FpuArea, 512);
        Cpu.WriteCr3(v.KernelMode || v.GuestTableUser == 0 ? v.GuestTable : v.GuestTableUser);
        GuestGdt.Load(v);
        LoadSegmentBases(v);
    }

    private static void LoadSegmentBases(Vcpu v)
    {
        Cpu.WriteMsr(FsBaseMsr, v.FsBase);
        Cpu.WriteMsr(GsBaseMsr, v.KernelMode ? v.GsBaseKernel : v.GsBaseUser);
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
