using System.Runtime.CompilerServices;
using Microhv.HAL;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>
/// One physical CPU's way into the hypervisor and back out (Xen's entry.S paths, hypercall.c and
/// test_all_events). The kernel calls one entry per kind of trap with the saved frame; the
/// hypervisor handles it, decides whether to switch vCPUs (the scheduler is asked only when
/// something that can change its answer happened: a tick, a yield/block/shutdown, a vCPU that can
/// no longer run, or an idle CPU), delivers a pending event upcall, and returns the exit record of
/// what the kernel must load before it resumes. All of this CPU's state is in this object (the
/// kernel reaches it through its per-CPU block), so a second CPU gets a second one.
/// </summary>
public sealed class GuestEntry
{
    public readonly Machine Machine;
    /// <summary>The vCPU this CPU runs (null: idle).</summary>
    public Vcpu Current;
    /// <summary>After an exit with <see cref="ExitActions.Switch"/>: the vCPU that ran before (null: idle).</summary>
    public Vcpu Previous;
    /// <summary>After an exit with <see cref="ExitActions.ReportCrash"/>: the crashed vCPU, its registers in Regs.</summary>
    public Vcpu Crashed;
    public ulong Traps, Hypercalls;
    /// <summary>Exits whose IRETQ the CPU refused (<see cref="ExitFaulted"/>).</summary>
    public ulong ExitFaults;
    /// <summary>The kernel is loading <see cref="Current"/>'s selectors (HypervisorHost.LoadSegments): a #PF of its
    /// LDT area then maps the page on demand (Mm/LdtShadow.OnHypervisorFault).</summary>
    public bool LoadingSegments;

    /// <summary>The exit record of the last trap: <see cref="GuestExit.Actions"/> always (what every
    /// entry also returns), the other fields when their action is set.</summary>
    public GuestExit Record;

    /// <summary>The processor this entry state belongs to.</summary>
    public readonly int Cpu;

    public GuestEntry(Machine machine, int cpu = 0) { Machine = machine; Cpu = cpu; }

    /// <summary>SYSCALL (or INT 0x82, <paramref name="viaInt82"/>) from the guest: a hypercall from its
    /// kernel, the guest's own system call from its user space (Xen's switch_to_kernel). The hypercall
    /// is the hot path: inlined into the kernel's SYSCALL entry with the dispatch and the common exit,
    /// so a call that changes nothing the exit acts on runs in one frame besides its handler's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ExitActions Syscall(ref TrapFrame frame, bool viaInt82)
    {
        Traps++;
        Vcpu v = Current;
        if (v == null || !v.KernelMode) return SyscallFromUser(ref frame, viaInt82);
        Hypercalls++;
        Microhv.Hypervisor.Hypercalls.Dispatch(v, ref frame);
        return Exit(ref frame, v, true);
    }

    /// <summary>This processor entered without the hypervisor's lock (<see cref="SyscallUnlocked"/>) and has not
    /// taken it since. The kernel sets it; HypervisorHost.Serialize takes the lock and clears it.</summary>
    public bool Unlocked;

    /// <summary>
    /// Whether a SYSCALL can be served without the hypervisor's lock when several processors take guests: the
    /// guest's own system call from user space (switch_to_kernel) and HYPERVISOR_iret from its kernel, the two
    /// entries of every guest system call, touch only this vCPU (its registers, mode, page-table base and segment
    /// bases) and its own guest memory (the kernel stack, vcpu_info), as in Xen, which takes no lock for them.
    /// Only when no work waits for the exit and the vCPU may still run (what another processor changes about it
    /// comes with a kick, taken after this exit); a crash on the way takes the lock (Domain.Crash).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool CanRunUnlocked(in TrapFrame frame)
    {
        Vcpu v = Current;
        if (v == null || v.PendingExitWork != ExitWork.None || !Scheduler.IsRunnable(v)) return false;
        return v.KernelMode ? frame.Rax == Xen.__HYPERVISOR_iret : v.SyscallCallback != 0;
    }

    /// <summary>The SYSCALL <see cref="CanRunUnlocked"/> accepted, with <see cref="Unlocked"/> set: the system call's
    /// bounce or the iret, then the exit FullExit would decide for a vCPU that keeps its processor with no work
    /// waiting (the upcall, the segment bases of the new mode, CR0.TS, SYSRET). If the lock was taken on the way,
    /// or work arrived meanwhile, the usual exit decides under it.</summary>
    public ExitActions SyscallUnlocked(ref TrapFrame frame)
    {
        Traps++;
        Vcpu v = Current;
        bool enteredInKernelMode = v.KernelMode;
        if (enteredInKernelMode)
        {
            Hypercalls++;
            Microhv.Hypervisor.Hypercalls.CountIret(v.Domain);
            Iret.Do(v, ref frame);
        }
        else
        {
            TrapBounce.SyscallFromUser(v, ref frame);
        }
        if (Unlocked && v.PendingExitWork == ExitWork.None && Scheduler.IsRunnable(v))
        {
            var exit = new GuestExit();
            if (TrapBounce.DeliverEventUpcall(v, ref frame)) exit.Actions = ExitActions.Upcall;
            if (Unlocked)                                    // (a crash delivering it took the lock)
            {
                if (SegmentBases.NeedLoad(v)) SegmentBases.Load(ref exit, v, false);
                if (v.FpuTaskSwitched) exit.Actions |= ExitActions.Cr0Ts;
                if (GuestExit.CanSysret(in frame)) exit.Actions |= ExitActions.Sysret;
                Record = exit;
                return exit.Actions;
            }
        }
        Machine.Host.Serialize();
        return SlowExit(ref frame, false, false, enteredInKernelMode);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ExitActions SyscallFromUser(ref TrapFrame frame, bool viaInt82)
    {
        Vcpu v = Current;
        if (v == null) return SlowExit(ref frame, false, false, false);
        if (!viaInt82) GuestTraps.HandleUserSyscall(v, ref frame);
        else
        {
            // INT 0x82 is the guest kernel's gate (Xen's is DPL 1): from user space it is the #GP of a
            // blocked INT n at the instruction, which the guest's trap table may still allow.
            frame.Rip -= 2;
            frame.Vector = TrapBounce.VectorGP;
            frame.ErrorCode = (0x82UL << 3) | 2;
            GuestTraps.HandleException(v, ref frame, 0);
        }
        return Exit(ref frame, v, false);
    }

    /// <summary>An exception (vector &lt; 32) raised by guest code; <paramref name="cr2"/> is the CPU's CR2.
    /// Inlined into the kernel's guest trap entry, as Syscall is into its SYSCALL entry.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ExitActions Exception(ref TrapFrame frame, ulong cr2)
    {
        Traps++;
        Vcpu v = Current;
        if (v == null) return SlowExit(ref frame, false, false, false);
        bool kernelMode = v.KernelMode;
        GuestTraps.HandleException(v, ref frame, cr2);
        return Exit(ref frame, v, kernelMode);
    }

    /// <summary>The IRETQ of an exit to this CPU's vCPU faulted on a CS, SS or RIP the guest chose
    /// (Boot/traps.asm exit_iretq_faulted): the refused frame is that vCPU's trap now (ExitFault).</summary>
    public ExitActions ExitFaulted(ref TrapFrame frame, ulong cr2 = 0)
    {
        Traps++;
        ExitFaults++;
        Vcpu v = Current;
        if (v == null)
        {
            frame.Vector &= ~TrapFrame.ExitFaultFlag;
            return SlowExit(ref frame, false, false, false);
        }
        bool kernelMode = v.KernelMode;
        ExitFault.Handle(v, ref frame, cr2);
        return Exit(ref frame, v, kernelMode);
    }

    /// <summary>The hypervisor's timer interrupt (the kernel acknowledged it): guest timers fire;
    /// <paramref name="tick"/>: a scheduler tick (10 ms) elapsed, so slices are counted and console rings drained.</summary>
    public ExitActions Timer(ref TrapFrame frame, bool tick)
    {
        Traps++;
        Timers.Tick(Machine);
        if (tick && Cpu == 0)
        {
            for (int i = 0; i < Machine.DomainCount; i++)
                if (Machine.Domains[i].ConsoleRingMfn != 0) ConsoleRing.Drain(Machine.Domains[i]);
        }
        return SlowExit(ref frame, tick, true, Current != null && Current.KernelMode);
    }

    /// <summary>Any other interrupt, after the kernel's driver handled it (it may have raised events).</summary>
    public ExitActions Interrupt(ref TrapFrame frame)
    {
        Traps++;
        Vcpu v = Current;
        return v == null ? SlowExit(ref frame, false, false, false) : Exit(ref frame, v, v.KernelMode);
    }

    /// <summary>The vCPU interrupted by a trap that did nothing (a spurious interrupt) resumes: only
    /// its virtual CR0.TS to restore, by IRETQ.</summary>
    public ExitActions Resume()
    {
        Vcpu v = Current;
        return Record.Actions = v != null && v.FpuTaskSwitched ? ExitActions.Cr0Ts : ExitActions.None;
    }

    /// <summary>Xen's test_all_events and context switch, as decisions: <paramref name="enteredInKernelMode"/>
    /// is the guest mode of <paramref name="v"/> (this CPU's vCPU) when the trap arrived, so a change of
    /// mode (iret to user, a bounce into the kernel) reloads the segment bases it selects.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ExitActions Exit(ref TrapFrame frame, Vcpu v, bool enteredInKernelMode)
    {
        // The common case, first: a hypercall or trap that changed nothing the exit path acts on
        // (no recorded work, same guest mode, the vCPU can still run). An event upcall is delivered
        // here too when the guest is in kernel mode (an event sent to itself, a device's interrupt):
        // the bounce then changes no mode, segment base or page table, so FullExit has nothing to add.
        if (v.PendingExitWork == ExitWork.None && v.KernelMode == enteredInKernelMode && Scheduler.IsRunnable(v))
        {
            ExitActions quick = ExitActions.None;
            if (TrapBounce.UpcallDeliverable(v))
            {
                if (!v.KernelMode || !TrapBounce.DeliverEventUpcallInline(v, ref frame))
                    return SlowExit(ref frame, false, false, enteredInKernelMode);   // to kernel mode, or the domain crashed
                quick = ExitActions.Upcall;
            }
            if (v.FpuTaskSwitched) quick |= ExitActions.Cr0Ts;
            if (GuestExit.CanSysret(in frame)) quick |= ExitActions.Sysret;
            Record.Actions = quick;
            return quick;
        }
        return SlowExit(ref frame, false, false, enteredInKernelMode);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ExitActions SlowExit(ref TrapFrame frame, bool tick, bool timer, bool enteredInKernelMode)
    {
        Record = FullExit(ref frame, tick, timer, enteredInKernelMode);
        return Record.Actions;
    }

    private GuestExit FullExit(ref TrapFrame frame, bool tick, bool timer, bool enteredInKernelMode)
    {
        var exit = new GuestExit();
        Vcpu v = Current;
        ExitWork work = ExitWork.None;
        if (v != null)
        {
            work = v.PendingExitWork;
            v.PendingExitWork = ExitWork.None;
            if (v.Domain.State == DomainState.Crashed && !v.CrashReported)
            {
                v.CrashReported = true;
                v.Regs = frame;
                Crashed = v;
                exit.Actions |= ExitActions.ReportCrash;
            }
        }

        bool switched = false;
        bool debugBefore = v != null && DebugRegisters.Active(v);
        if (v == null || tick || (work & ExitWork.Reschedule) != 0 || !Scheduler.IsRunnable(v))
        {
            Scheduler s = Machine.Scheduler;
            bool preempt = (tick && s.Tick(v)) || (work & ExitWork.Reschedule) != 0 || !Scheduler.IsRunnable(v);
            Vcpu next = s.PickNext(v, preempt);
            if (next != v)
            {
                switched = true;
                if (v != null && frame.Ring == 3) v.Regs = frame;
                // Its selectors and the bases the CPU holds (save_segments); not the bases this trap changed.
                if (v != null) SegmentReload.Save(v);
                Previous = v;
                Current = next;
                exit.Actions |= ExitActions.Switch;
                if (next == null) exit.Actions |= ExitActions.Idle;
                else
                {
                    frame = next.Regs;
                    exit.Actions |= ExitActions.LoadAddressSpace;
                    SegmentReload.Load(next, ref frame);     // its GDT, LDT and selectors (load_segments); maybe the failsafe callback
                }
            }
        }

        Vcpu c = Current;
        if (c != null)
        {
            if (switched || timer) TimeInfo.Update(c);
            if (TrapBounce.DeliverEventUpcall(c, ref frame)) exit.Actions |= ExitActions.Upcall;
            // After the upcall, which may have switched the vCPU to its kernel tables.
            if (switched) exit.Cr3 = c.KernelMode || c.GuestTableUser == 0 ? c.GuestTable : c.GuestTableUser;
            if (switched || SegmentBases.NeedLoad(c)) SegmentBases.Load(ref exit, c, switched);
            if (switched || (work & ExitWork.Cr4) != 0)
            {
                exit.Actions |= ExitActions.LoadCr4;
                exit.Fsgsbase = PvCr4.WritesOwnBases(c);
            }
            if (c.FpuTaskSwitched) exit.Actions |= ExitActions.Cr0Ts;
            if (GuestExit.CanSysret(in frame)) exit.Actions |= ExitActions.Sysret;
        }
        else if (Machine.Scheduler.AllDomainsEnded()) exit.Actions |= ExitActions.AllEnded;
        // The CPU holds a vCPU's debug registers only while its DR7 enables a breakpoint (Xen's
        // paravirt_ctxt_switch_from/_to): reload them when they changed or the CPU changed hands.
        if ((work & ExitWork.DebugRegisters) != 0 || (switched && (debugBefore || (c != null && DebugRegisters.Active(c)))))
            exit.Actions |= ExitActions.LoadDebugRegisters;

        // A guest deadline can only have moved earlier after a timer interrupt (periodic timers
        // advanced, the armed one was used up) or a hypercall that set a timer; and a vCPU switched in
        // brings its deadlines to this processor (with one processor they were armed here already).
        if (timer || (work & ExitWork.TimersChanged) != 0 || switched && Machine.Scheduler.Cpus != 1UL)
        {
            exit.Actions |= ExitActions.ArmTimer;
            exit.TimerDeadline = Timers.NextDeadline(Machine);
        }
        return exit;
    }
}
