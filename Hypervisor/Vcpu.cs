using Microhv.HAL;

namespace Microhv.Hypervisor;

/// <summary>One entry of a guest's trap table (Xen's trap_info: vector, flags, cs, address).</summary>
public struct TrapInfo
{
    public byte Vector;
    /// <summary>Bits 0-1: the DPL allowed to raise it with INT n; bit 2: mask events on delivery.</summary>
    public byte Flags;
    public ushort Cs;
    public ulong Address;
}

/// <summary>
/// A guest's virtual CPU: its registers while it is not running, and the paravirtual CPU state
/// Xen keeps in struct pv_vcpu: trap table, kernel stack, callbacks, segment bases, page tables.
/// </summary>
public sealed class Vcpu
{
    public readonly Domain Domain;
    /// <summary>The vCPU's number in its domain (Xen's vcpu_id): 0 to the domain's MaxVcpus - 1.</summary>
    public readonly int Id;
    /// <summary>This vCPU object's part of the machine's LdtArea (fixed for the object's life: pooled domains keep theirs).</summary>
    public readonly int LdtSlot;
    public Vcpu(Domain domain, int id = 0)
    {
        Domain = domain;
        Id = id;
        LdtSlot = domain != null && domain.Machine != null ? domain.Machine.VcpusMade++ : -1;
    }

    /// <summary>Saved registers (valid while the vCPU is not on the CPU).</summary>
    public TrapFrame Regs;
    /// <summary>Kernel-side opaque address of this vCPU's 512-byte FXSAVE area (0 in hosted tests).</summary>
    public ulong FpuArea;

    /// <summary>Guest kernel mode (TF_kernel_mode): the guest kernel, as opposed to its user space, is running.</summary>
    public bool KernelMode = true;
    /// <summary>Machine addresses of the kernel (guest_table) and user (guest_table_user) L4s.</summary>
    public ulong GuestTable, GuestTableUser;

    public readonly TrapInfo[] TrapTable = new TrapInfo[256];
    /// <summary>stack_switch: the guest kernel stack used when a trap arrives from guest user mode.</summary>
    public ulong KernelSs, KernelSp;

    /// <summary>callback_op / set_callbacks targets.</summary>
    public ulong EventCallback, FailsafeCallback, SyscallCallback;
    public bool SyscallMasksEvents;
    /// <summary>VGCF_failsafe_disables_events: the failsafe callback is entered with events masked.</summary>
    public bool FailsafeMasksEvents;

    /// <summary>Xen's arch.pv.fs_base, gs_base_kernel and gs_base_user: copies of what the CPU holds while the
    /// vCPU runs, read back before they are used (Traps/SegmentBases.cs).</summary>
    public ulong FsBase, GsBaseKernel, GsBaseUser;
    /// <summary>The CR4 bits the guest controls (Xen's ctrlreg[4] less the host's visible bits): FSGSBASE.</summary>
    public ulong Cr4;
    /// <summary>The CPU holds this vCPU's FS base, and the GS base of its guest mode, and the guest may have changed
    /// them since (it is running, or the exit being prepared loads them): the copies are then read back first.</summary>
    public bool FsBaseLive, GsBaseLive;

    /// <summary>set_debugreg / MOV to %drN: the guest's debug registers (Traps/DebugRegisters.cs).</summary>
    public Traps.DebugRegisterState Debug = Traps.DebugRegisterState.Reset;

    /// <summary>fpu_taskswitch: the guest's virtual CR0.TS.</summary>
    public bool FpuTaskSwitched;
    /// <summary>physdev_op(set_iopl): the guest kernel's I/O privilege level (0-3).</summary>
    public int Iopl;

    /// <summary>set_gdt frames (machine frame numbers) and entry count; 0 entries = none.</summary>
    public readonly ulong[] GdtFrames = new ulong[14];
    public int GdtEntries;
    /// <summary>MMUEXT_SET_LDT: the LDT's guest linear address and entries (0: none). Its pages are mapped on
    /// demand into the vCPU's part of the machine's LdtArea (Mm/LdtShadow.cs).</summary>
    public ulong LdtBase, LdtEntries;
    /// <summary>The data-segment selectors the vCPU had when it last left a processor (Xen's user_regs.ds/es/fs/gs),
    /// loaded again when it comes back (save_segments / load_segments).</summary>
    public ushort Ds, Es, Fs, Gs;

    /// <summary>Blocked in sched_op(block/poll) until an event is pending.</summary>
    public bool Blocked;
    /// <summary>Woken from Blocked by an event or timer and not yet run since (Xen credit's BOOST): the
    /// scheduler runs it before the round-robin order, so an IPI or interrupt is answered at once.</summary>
    public bool Boosted;
    /// <summary>SCHEDOP_poll in progress (Xen's poll_mask bit), the polled port (-1: several), its timeout.</summary>
    public bool Polling;
    public int PollPort;
    public ulong PollDeadline;
    /// <summary>VCPUOP_register_runstate_memory_area: guest virtual address of the runstate copy (0 = none).</summary>
    public ulong RunstateArea;
    /// <summary>VCPUOP_register_vcpu_info succeeded (Xen allows it once per vCPU).</summary>
    public bool VcpuInfoRegistered;
    /// <summary>Given a context (Xen's is_initialised): by the domain builder, VCPUOP_initialise or setvcpucontext.</summary>
    public bool Initialised;
    /// <summary>The vCPU is up (Xen's !VPF_down): built by the domain builder, or given a context with
    /// VGCF_online by the toolstack's setvcpucontext. An offline vCPU never runs.</summary>
    public bool Online;
    /// <summary>Xen's runstate (Events/Runstate.cs): RUNSTATE_* now, since when (system time ns), and the time spent in each.</summary>
    public int RunstateState = Public.VcpuOps.RUNSTATE_offline;
    public ulong RunstateEntry;
    public readonly ulong[] RunstateTime = new ulong[4];
    /// <summary>Time the vCPU ran before it last left the CPU, and when it last started (system time, ns): Scheduler.RunTime.</summary>
    public ulong RunNs, RunSince;
    /// <summary>The processor running this vCPU now, -1 when none (Scheduler).</summary>
    public int RunningOn = -1;
    /// <summary>Xen's v->pause_count: the hypervisor's own pauses of this vCPU while it reads or changes its state
    /// (getvcpucontext, setvcpucontext: VcpuPause); a paused vCPU is not runnable. The toolstack's pauses are the
    /// domain's (Domain.PauseCount).</summary>
    public int PauseCount;
    /// <summary>The processor it last ran on: while it is on none, that processor arms its timers (Xen's v->processor).</summary>
    public int LastCpu;
    /// <summary>setvcpuaffinity: the physical CPUs (bit n = CPU n) this vCPU may run on, and prefers.</summary>
    public ulong HardAffinity = ulong.MaxValue, SoftAffinity = ulong.MaxValue;
    /// <summary>One-shot timer deadline in system-time ns (0 = none), the periodic timer's period, and when it fires
    /// next: 0 while it is not armed (from the vCPU's switch-out to its switch-in or the guest setting it: Events/Timers.cs).</summary>
    public ulong TimerDeadline, PeriodicPeriod, PeriodicNext;
    /// <summary>When the periodic timer last sent its event (Xen's periodic_last_event).</summary>
    public ulong PeriodicLast;

    /// <summary>What handlers changed since the vCPU last entered the hypervisor (read and cleared by GuestEntry).</summary>
    public Traps.ExitWork PendingExitWork;

    /// <summary>The kernel printed this vCPU's crash report already.</summary>
    public bool CrashReported;

    /// <summary>Machine address of this vCPU's vcpu_info (inside shared_info by default).</summary>
    public ulong VcpuInfoAddress;

    /// <summary>The running hypercall's remaining work budget and the continuation it recorded (Continuation.cs).</summary>
    public int PreemptBudget = Continuation.Budget;
    public PendingContinuation PendingCall;

    /// <summary>Back to the state of a new vCPU (a pooled domain is reused): every field but the FPU area,
    /// which the kernel owns and puts back in its power-on state itself.</summary>
    public void Reset()
    {
        Regs = default;
        KernelMode = true;
        GuestTable = GuestTableUser = 0;
        Zero.Fill(TrapTable);
        KernelSs = KernelSp = 0;
        EventCallback = FailsafeCallback = SyscallCallback = 0;
        SyscallMasksEvents = false;
        FsBase = GsBaseKernel = GsBaseUser = 0;
        Cr4 = 0;
        FsBaseLive = GsBaseLive = false;
        Debug = Traps.DebugRegisterState.Reset;
        FpuTaskSwitched = false;
        Iopl = 0;
        Zero.Fill(GdtFrames);
        GdtEntries = 0;
        LdtBase = LdtEntries = 0;
        Ds = Es = Fs = Gs = 0;
        FailsafeMasksEvents = false;
        Blocked = false;
        Boosted = false;
        Polling = false;
        PollPort = 0;
        PollDeadline = 0;
        RunstateArea = 0;
        VcpuInfoRegistered = false;
        Initialised = false;
        Online = false;
        RunNs = RunSince = 0;
        RunningOn = -1;
        PauseCount = 0;
        LastCpu = 0;
        RunstateState = Public.VcpuOps.RUNSTATE_offline;
        RunstateEntry = 0;
        Zero.Fill(RunstateTime);
        HardAffinity = SoftAffinity = ulong.MaxValue;
        TimerDeadline = PeriodicPeriod = PeriodicNext = PeriodicLast = 0;
        PendingExitWork = default;
        CrashReported = false;
        VcpuInfoAddress = 0;
        PreemptBudget = Continuation.Budget;
        PendingCall = default;
    }
}
