using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>What a hypercall or trap handler changed that the way back to the guest must act on,
/// recorded on the vCPU as it happens (Xen's softirq and vcpu flags), read and cleared on exit.</summary>
[System.Flags]
public enum ExitWork : byte
{
    None = 0,
    /// <summary>The vCPU gave up the CPU or may no longer run (yield, block, poll, hlt, shutdown).</summary>
    Reschedule = 1,
    /// <summary>A guest timer may now fire earlier than the one armed (set_timer_op, vcpu_op timers, poll timeout).</summary>
    TimersChanged = 2,
    /// <summary>The FS base or the active GS base changed (set_segment_base, an emulated wrmsr): SegmentBases.</summary>
    SegmentBases = 4,
    /// <summary>The guest changed the CR4 bits it controls (an emulated mov to CR4).</summary>
    Cr4 = 8,
    /// <summary>The guest changed a debug register (set_debugreg, an emulated MOV to %drN).</summary>
    DebugRegisters = 16,
}

/// <summary>What the kernel does before it resumes a guest, as GuestEntry decided it. The two lowest
/// bits are the ones the exit stub itself acts on (Boot/traps.asm reads them from the entry's return
/// value): everything else is applied by Kernel/Pv/PvCpu.cs first.</summary>
[System.Flags]
public enum ExitActions : ushort
{
    None = 0,
    /// <summary>The frame is one SYSRET restores exactly: leave by SYSRET, not IRETQ.</summary>
    Sysret = 1,
    /// <summary>Leave with CR0.TS set (the guest's virtual TS, fpu_taskswitch).</summary>
    Cr0Ts = 2,
    /// <summary>The bits the exit stub acts on.</summary>
    StubOnly = Sysret | Cr0Ts,
    /// <summary>An exit with no bit outside these needs nothing from the kernel (an upcall is in the frame already).</summary>
    NothingToApply = Sysret | Cr0Ts | Upcall,
    /// <summary>The CPU changes vCPU (or goes idle): the frame already holds the next one's registers;
    /// the kernel switches the FPU state from GuestEntry.Previous to GuestEntry.Current.</summary>
    Switch = 4,
    /// <summary>Nothing can run: resume the idle loop in the hypervisor's address space.</summary>
    Idle = 8,
    /// <summary>Load CR3 with <see cref="GuestExit.Cr3"/> and the vCPU's GDT (a switch to a vCPU).</summary>
    LoadAddressSpace = 16,
    /// <summary>Write the FS base MSR from <see cref="GuestExit.FsBase"/>.</summary>
    LoadFsBase = 32,
    /// <summary>Re-arm the one-shot timer for <see cref="GuestExit.TimerDeadline"/> (0: only the scheduler tick).</summary>
    ArmTimer = 64,
    /// <summary>An event upcall was delivered (the frame now enters the guest's event callback).</summary>
    Upcall = 128,
    /// <summary>A domain was crashed by this trap: the kernel prints GuestEntry.Crashed's report.</summary>
    ReportCrash = 256,
    /// <summary>Every domain has ended: the kernel prints the summary and stops.</summary>
    AllEnded = 512,
    /// <summary>Set CR4.FSGSBASE as <see cref="GuestExit.Fsgsbase"/> says (a switch to a vCPU, or its CR4 write).</summary>
    LoadCr4 = 1024,
    /// <summary>Load GuestEntry.Current's debug registers when its DR7 enables a breakpoint, else turn DR7
    /// off (a switch from or to a vCPU with breakpoints, or its set_debugreg): DebugRegisters.</summary>
    LoadDebugRegisters = 2048,
    /// <summary>Write the guest's active GS base from <see cref="GuestExit.GsBase"/> (a change of guest mode, a vCPU
    /// switched in, a base the guest set through Microhv).</summary>
    LoadGsBase = 4096,
}

/// <summary>The exit record: GuestEntry fills it, Kernel/Pv/PvCpu.cs applies it.</summary>
public struct GuestExit
{
    public ExitActions Actions;
    public ulong Cr3, FsBase, GsBase, TimerDeadline;
    /// <summary>With <see cref="ExitActions.LoadCr4"/>: whether the guest may use {RD,WR}{FS,GS}BASE.</summary>
    public bool Fsgsbase;

    public bool Has(ExitActions a) => (Actions & a) != 0;

    /// <summary>
    /// Whether SYSRET returns to exactly this frame (the cases Xen's restore_all_guest checks before
    /// its sysretq): SYSRET loads RIP from RCX and RFLAGS from R11 (clearing RF and VM) and the flat
    /// 64-bit ring-3 CS and SS, so the frame must already say that; and RIP must be canonical, or
    /// Intel CPUs raise #GP in ring 0 on the guest's stack. Otherwise IRETQ.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static bool CanSysret(in TrapFrame f)
    {
        const ulong RfVm = ArchX86.X86_EFLAGS_RF | ArchX86.X86_EFLAGS_VM;
        return f.Cs == Xen.FLAT_RING3_CS64 && f.Ss == Xen.FLAT_RING3_SS64
            && f.Rcx == f.Rip && f.R11 == f.Rflags && (f.Rflags & RfVm) == 0
            && PageTableEntry.IsCanonical(f.Rip);
    }
}
