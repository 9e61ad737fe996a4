using System.Runtime;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Irq;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Microhv.Kernel.Console;
using Microhv.Kernel.Memory;
using Microhv.Kernel.Timer;
using Microhv.Kernel.Traps;

namespace Microhv.Kernel.Pv;

/// <summary>
/// A physical CPU as the hypervisor uses it: every trap lands here once domains exist. The
/// kernel's part is the hardware: acknowledge the interrupt, run its driver, call the matching
/// GuestEntry entry, and apply the exit record it returns (FPU state, CR3, GDT, segment-base MSRs,
/// CR0.TS, the one-shot timer). Which vCPU runs, and what its frame holds, is the decision of this
/// CPU's GuestEntry (one per processor, found through the CPU's block).
/// </summary>
internal static unsafe class PvCpu
{
    public const int HypercallTrapVector = 0x82;
    private const uint FsBaseMsr = 0xC0000100;

    public static Machine Machine;
    /// <summary>Each processor's entry state (current vCPU, counters), by CPU index.</summary>
    public static GuestEntry[] Entries;
    /// <summary>The calling processor's entry state.</summary>
    public static GuestEntry Entry => Entries[Smp.Processors.Current];
    public static bool Active;
    /// <summary>More than one processor takes guests: every entry takes the hypervisor's lock (docs/smp.md).</summary>
    public static bool Shared;
    /// <summary>Managed-heap bytes allocated when the guests started: hypercall and trap paths must not add to it.</summary>
    public static ulong HeapAtStart;

    [RuntimeImport("*", "cpu_set_exit_fpu")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern void SetExitFpu(ulong fxsaveArea);
    [RuntimeImport("*", "cpu_fxsave")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern void FxSave(ulong fxsaveArea);

    /// <summary>FXSAVE offsets of xmm0 and xmm8 (the registers the trap entry saves itself).</summary>
    private const int FxXmm0 = 160, FxXmm8 = 160 + 8 * 16;
    [RuntimeImport("*", "idle_entry_address")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern ulong IdleEntryAddress();

    /// <summary>Every trap from a guest (ring 3), straight from the entry stub with this CPU's index,
    /// as a runtime export (no transition frame); a SYSCALL has its own entry below. Returns the exit
    /// stub's bits (<see cref="ExitActions.StubOnly"/>: SYSRET, CR0.TS).</summary>
    [RuntimeExport("guest_trap_dispatch")]
    [SkipLocalsInit]        // the inlined bounce frame is filled before it is copied
    private static int OnGuestTrap(TrapFrame* frame, byte* guestXmm, uint cpu)
    {
        GuestEntry entry = Entries[cpu];
        ulong vector = frame->Vector;
        if (vector == Smp.Ipi.FlushVector) return AnswerFlush(entry);
        if (Shared) Enter(cpu);
        int bits;
        if (vector < 32)
        {
            if (vector == Vectors.Debug) TakeDebugStatus(entry.Current);
            // An exception of the guest's (a bounce, an emulated instruction): decided in this frame.
            ExitActions exit = entry.Exception(ref *frame, Cpu.ReadCr2());
            if ((exit & ~ExitActions.NothingToApply) != 0 || ScreenConsole.CursorBehind) Apply(entry, frame, guestXmm, exit);
            bits = (int)(exit & ExitActions.StubOnly);
        }
        else if (vector == LocalApic.SpuriousInterruptVector)
        {
            TrapDispatch.SpuriousCount++;                // no EOI owed; the guest resumes as it was
            bits = (int)(entry.Resume() & ExitActions.StubOnly);
        }
        else bits = OnTrap(entry, frame, guestXmm);
        if (Shared) Leave();
        return bits;
    }

    /// <summary>An interrupt of the hypervisor's own idle loop once domains run (TrapDispatch).</summary>
    public static int OnTrap(TrapFrame* frame, byte* guestXmm)
    {
        GuestEntry entry = Entry;
        if (frame->Vector == Smp.Ipi.FlushVector) return AnswerFlush(entry);
        if (!Shared) return OnTrap(entry, frame, guestXmm);
        Enter((uint)entry.Cpu);
        int bits = OnTrap(entry, frame, guestXmm);
        Leave();
        return bits;
    }

    /// <summary>An application processor joins the processors that take guests (its timer is its own, the
    /// scheduler may give it vCPUs from now on); it then idles with interrupts on.</summary>
    public static void Join(int cpu)
    {
        Clock.EnterDeadlineMode(Machine.Host.SystemTimeNs());
        LockAcquire();
        Machine.Cpu = cpu;
        Machine.Tlb.Flushed(cpu);
        Machine.Scheduler.Join(cpu);
        Smp.Processors.Cpus[cpu].Joined = true;
        Smp.Processors.Joined++;
        Log.Write("smp: CPU "); Log.Dec((ulong)cpu); Log.Write(" (APIC "); Log.Dec(Smp.Processors.Cpus[cpu].ApicId);
        Log.Line(") takes guests");
        LockRelease();
    }

    [RuntimeImport("*", "hv_lock_acquire")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern void LockAcquire();
    [RuntimeImport("*", "hv_lock_release")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern void LockRelease();

    /// <summary>This processor takes the hypervisor's lock (answering flush requests while it waits) and
    /// becomes the one the hypervisor acts for.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Enter(uint cpu)
    {
        LockAcquire();
        Machine.Cpu = (int)cpu;
        Machine.Scheduler.Entered((int)cpu);
    }

    /// <summary>Kicks the processors the hypervisor's decisions concern, then lets the lock go.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Leave()
    {
        ulong kicks = Machine.Scheduler.TakeKicks();
        if (kicks != 0) Smp.Ipi.Kick(kicks);
        LockRelease();
    }

    /// <summary>Boot/smp.asm: a processor asked for the hypervisor's lock it already holds (an entry that
    /// did not let it go): a bug of Microhv's, reported with what is known, then the machine stops.</summary>
    [UnmanagedCallersOnly(EntryPoint = "hv_lock_reentered")]
    private static void LockReentered()
    {
        int cpu = Smp.Processors.Current;
        Log.Write("FATAL: hypervisor lock: CPU "); Log.Dec((ulong)cpu); Log.Write(" enters holding it (the hypervisor last acted for CPU ");
        Log.Dec((ulong)Machine.Cpu); Log.Line(")");
        QemuExit.Exit(QemuExit.Fatal);
        Cpu.Stop();
    }

    /// <summary>A #PF of the hypervisor's own at <paramref name="cr2"/>: true when it is this processor's load of its
    /// vCPU's selectors reading a page of the vCPU's LDT, now mapped (the load is retried).</summary>
    public static bool LdtFault(ulong cr2, ulong errorCode)
    {
        GuestEntry entry = Entry;
        return entry.LoadingSegments && LdtShadow.OnHypervisorFault(entry.Current, cr2, errorCode);
    }

    /// <summary>A TLB-flush IPI: answered at once, without the lock its sender holds; the interrupted
    /// context resumes as it was.</summary>
    private static int AnswerFlush(GuestEntry entry)
    {
        Smp.Ipi.AnswerFlush();
        LocalApic.EndOfInterrupt();
        return (int)(entry.Resume() & ExitActions.StubOnly);
    }

    /// <summary>One trap for this CPU's <paramref name="entry"/>: the kernel's drivers, then GuestEntry, then
    /// the exit record. <paramref name="guestXmm"/>: the guest's xmm0 and xmm8 as the entry saved them
    /// (null when the idle loop was interrupted).</summary>
    private static int OnTrap(GuestEntry entry, TrapFrame* frame, byte* guestXmm)
    {
        ulong vector = frame->Vector;
        ExitActions exit;
        if (vector == TrapFrame.SyscallVector || vector == HypercallTrapVector)
            exit = entry.Syscall(ref *frame, vector == HypercallTrapVector);
        else if ((vector & TrapFrame.ExitFaultFlag) != 0)
            exit = entry.ExitFaulted(ref *frame, Cpu.ReadCr2());
        else if (vector < 32)
            exit = entry.Exception(ref *frame, Cpu.ReadCr2());
        else if (vector == Clock.ApicTimerVector && Clock.DeadlineMode)
            exit = entry.Timer(ref *frame, Clock.OnDeadlineInterrupt(Machine.Host.SystemTimeNs()));
        else if (vector == Clock.ApicTimerVector || (vector == Clock.PitVector && !Clock.UsingApic))
        {
            Clock.OnTick();
            exit = entry.Timer(ref *frame, true);
        }
        else
        {
            // Device interrupts: the driver runs, then the exit path delivers what it raised.
            if (vector == Smp.Ipi.KickVector) LocalApic.EndOfInterrupt();   // a kick: the exit decides again
            else if (vector == SerialInput.Vector) SerialInput.OnInterrupt(Machine.ConsoleInput);
            else if (IrqRouting.VectorToGsi((int)vector, out int gsi))
            {
                Machine.Irqs.OnInterrupt(gsi);           // an IO-APIC line: its owner's pirq event
                LocalApic.EndOfInterrupt();
            }
            else if (MsiRouting.VectorToSlot((int)vector, out int msi))
            {
                Machine.Msis.OnInterrupt(msi);           // a message-signalled interrupt: its owner's pirq event
                LocalApic.EndOfInterrupt();
            }
            exit = entry.Interrupt(ref *frame);
        }
        if ((exit & ~ExitActions.NothingToApply) != 0 || ScreenConsole.CursorBehind) Apply(entry, frame, guestXmm, exit);
        return (int)(exit & ExitActions.StubOnly);
    }

    /// <summary>SYSCALL from a guest, straight from the entry stub with this CPU's index (no vector to
    /// sort out, no reverse-P/Invoke transition: a runtime export is called as a plain function). The
    /// common hypercall runs here in one frame: GuestEntry.Syscall, the table dispatch and the exit
    /// decision are inlined, and an exit that needs only SYSRET and CR0.TS returns straight to the stub.</summary>
    [RuntimeExport("syscall_dispatch")]
    [SkipLocalsInit]        // the inlined bounce frame and iret context are filled before they are read
    private static int OnSyscall(TrapFrame* frame, byte* guestXmm, uint cpu)
    {
        GuestEntry entry = Entries[cpu];
        if (Shared)
        {
            if (entry.CanRunUnlocked(in *frame) && !ScreenConsole.CursorBehind) return OnSyscallUnlocked(entry, frame, guestXmm);
            Enter(cpu);
        }
        ExitActions exit = entry.Syscall(ref *frame, false);
        if ((exit & ~ExitActions.NothingToApply) != 0 || ScreenConsole.CursorBehind) Apply(entry, frame, guestXmm, exit);
        if (Shared) Leave();
        return (int)(exit & ExitActions.StubOnly);
    }

    /// <summary>A guest's system call or iret on a machine where several processors take guests, without the
    /// hypervisor's lock (GuestEntry.CanRunUnlocked says why that is safe); the lock is let go at the end only if
    /// something on the way took it (<see cref="Serialize"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int OnSyscallUnlocked(GuestEntry entry, TrapFrame* frame, byte* guestXmm)
    {
        entry.Unlocked = true;
        ExitActions exit = entry.SyscallUnlocked(ref *frame);
        if (entry.Unlocked)
        {
            entry.Unlocked = false;
            // Only the segment-base MSRs can be asked for here: nothing shared, no screen.
            if ((exit & ~ExitActions.NothingToApply) != 0) ApplyChanges(entry, frame, guestXmm, ref entry.Record);
        }
        else
        {
            if ((exit & ~ExitActions.NothingToApply) != 0 || ScreenConsole.CursorBehind) Apply(entry, frame, guestXmm, exit);
            Leave();
        }
        return (int)(exit & ExitActions.StubOnly);
    }

    /// <summary>HypervisorHost.Serialize: this processor entered without the lock and now needs it.</summary>
    public static void Serialize()
    {
        if (!Shared) return;
        GuestEntry entry = Entry;
        if (!entry.Unlocked) return;
        entry.Unlocked = false;
        Enter((uint)entry.Cpu);
    }

    /// <summary>How many turns a pauser spins without the lock before it looks again under it (the vCPU may have been
    /// unpaused meanwhile, or moved: VcpuPause.Descheduled decides).</summary>
    private const int DescheduleSpins = 1 << 16;

    /// <summary>HypervisorHost.WaitDescheduled (Xen's vcpu_sleep_sync): <paramref name="v"/> may no longer run but
    /// another processor runs it. The lock is let go (Leave kicks that processor: its vCPU is not runnable), this
    /// processor spins until the vCPU's processor changes, answering flush requests (its interrupts are off), then
    /// takes the lock again and looks: the processor that left the vCPU saved its registers, segments and FPU
    /// state before it let the lock go.</summary>
    public static void WaitDescheduled(Vcpu v)
    {
        if (!Shared) return;
        GuestEntry entry = Entry;
        if (entry.Unlocked) return;                      // never: the pausers are domctls, always entered locked
        uint me = (uint)entry.Cpu;
        while (!VcpuPause.Descheduled(v))
        {
            int cpu = v.RunningOn;
            Leave();
            for (int spins = 0; spins < DescheduleSpins && RunningOn(v) == cpu; spins++)
            {
                Smp.Ipi.AnswerFlush();
                Cpu.Pause();
            }
            Enter(me);
            DescheduleWaits++;
        }
    }

    /// <summary>Times a pauser let the lock go to wait for a vCPU to leave another processor (the summary prints them).</summary>
    public static ulong DescheduleWaits;

    // A real memory read: another processor changes it under the lock this one does not hold.
    [MethodImpl(MethodImplOptions.NoInlining)] private static int RunningOn(Vcpu v) => v.RunningOn;

    /// <summary>A trap that did nothing for the guest it interrupted (a spurious interrupt): the exit
    /// stub's bits to resume it as it was.</summary>
    public static int Resume() => (int)(Entry.Resume() & ExitActions.StubOnly);

    /// <summary>Does what the exit record says, in the order the hardware needs it (the exit stub then
    /// does SYSRET and CR0.TS).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Apply(GuestEntry entry, TrapFrame* frame, byte* guestXmm, ExitActions actions)
    {
        if ((actions & ~ExitActions.NothingToApply) != 0) ApplyChanges(entry, frame, guestXmm, ref entry.Record);
        if (ScreenConsole.CursorBehind) ScreenConsole.ShowCursor();    // the screen's cursor follows once per trap, not per byte
    }

    private static void ApplyChanges(GuestEntry entry, TrapFrame* frame, byte* guestXmm, ref GuestExit exit)
    {
        if (exit.Has(ExitActions.ReportCrash)) ReportCrash(entry.Crashed);
        if (exit.Has(ExitActions.Switch))
        {
            Vcpu prev = entry.Previous, next = entry.Current;
            if (prev != null && guestXmm != null) SaveFpu(prev, guestXmm);
            if (next != null) SetExitFpu(next.FpuArea);
            if (exit.Has(ExitActions.Idle)) LoadIdle(frame);
        }
        if (exit.Has(ExitActions.LoadAddressSpace))
        {
            Cpu.WriteCr3(exit.Cr3);                      // (its GDT, LDT and selectors were loaded by GuestEntry: SegmentReload)
            if (Shared) Machine.Tlb.Flushed(entry.Cpu);
        }
        if (exit.Has(ExitActions.LoadFsBase)) Cpu.WriteMsr(FsBaseMsr, exit.FsBase);
        // Until the exit path's SWAPGS, GS is this CPU's block: the guest's GS base waits in KERNEL_GS_BASE.
        if (exit.Has(ExitActions.LoadGsBase)) Cpu.WriteMsr(Smp.CpuBlock.KernelGsBaseMsr, exit.GsBase);
        if (exit.Has(ExitActions.LoadCr4)) SetFsgsbase(exit.Fsgsbase);
        if (exit.Has(ExitActions.LoadDebugRegisters)) LoadDebugRegisters(entry.Current);
        // Off a dead domain's page tables now (CR3 was switched): its frames go back to the pool.
        if (exit.Has(ExitActions.Switch)) DomainRelinquish.ReleaseDead(Machine, entry.Current);
        if (exit.Has(ExitActions.AllEnded)) DomainSummary.PrintAndExit(Machine);
        if (exit.Has(ExitActions.ArmTimer) && Clock.DeadlineMode) Clock.ArmFor(exit.TimerDeadline, Machine.Host.SystemTimeNs());
    }

    /// <summary>A #DB from the guest (Boot/traps.asm's isr1 brought it here): the CPU's DR6 goes into the vCPU's
    /// before the bounce, and the CPU's is reset so the next #DB's bits are its own (Xen's do_debug).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void TakeDebugStatus(Vcpu v)
    {
        ulong dr6 = Cpu.ReadDr6();
        Cpu.WriteDr6(DebugRegisters.DR6Default);
        if (v != null) DebugRegisters.OnGuestDebugException(v, dr6);
    }

    /// <summary>The vCPU about to run gets its breakpoints when its DR7 enables one; otherwise DR7 is off, so
    /// no breakpoint of another domain's stays armed (Xen's activate_debugregs and paravirt_ctxt_switch_from).</summary>
    private static void LoadDebugRegisters(Vcpu v)
    {
        if (v == null || !DebugRegisters.Active(v))
        {
            Cpu.WriteDr7(0);
            return;
        }
        Cpu.LoadBreakpoints(v.Debug.Dr0, v.Debug.Dr1, v.Debug.Dr2, v.Debug.Dr3);
        Cpu.WriteDr6(v.Debug.Dr6);
        Cpu.WriteDr7(v.Debug.Dr7);
    }

    private const ulong Cr4Fsgsbase = 1UL << 16;

    /// <summary>CR4.FSGSBASE for the vCPU about to run (PvCr4): written only when it changes, CR4 writes serialize.</summary>
    private static void SetFsgsbase(bool on)
    {
        ulong cr4 = Cpu.ReadCr4();
        ulong want = on ? cr4 | Cr4Fsgsbase : cr4 & ~Cr4Fsgsbase;
        if (want != cr4) Cpu.WriteCr4(want);
    }

    /// <summary>The FPU state of a vCPU leaving the CPU: everything the hypervisor did not touch is still
    /// the guest's in the registers; xmm0 and xmm8 are the copies the entry saved.</summary>
    private static void SaveFpu(Vcpu v, byte* guestXmm)
    {
        FxSave(v.FpuArea);
        byte* area = (byte*)v.FpuArea;
        ((ulong*)(area + FxXmm0))[0] = ((ulong*)guestXmm)[0];
        ((ulong*)(area + FxXmm0))[1] = ((ulong*)guestXmm)[1];
        ((ulong*)(area + FxXmm8))[0] = ((ulong*)guestXmm)[2];
        ((ulong*)(area + FxXmm8))[1] = ((ulong*)guestXmm)[3];
    }

    /// <summary>A domain the hypervisor killed: why, and the guest registers at that moment (saved in its vCPU).</summary>
    private static void ReportCrash(Vcpu v)
    {
        TrapFrame f = v.Regs;
        ConsoleRing.EndOpenLine(Machine);
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
        frame->Rsp = Smp.Processors.Cpus[Smp.Processors.Current].Block->IdleStackTop;
        frame->Ss = Gdt.HypervisorDs;
        Cpu.WriteCr3(KernelAddressSpace.Tables.Root);
        if (Shared) Machine.Tlb.Flushed(Smp.Processors.Current);
    }

    [UnmanagedCallersOnly(EntryPoint = "hv_idle")]
    private static void Idle()
    {
        while (true) Cpu.EnableInterruptsAndHalt();
    }
}
