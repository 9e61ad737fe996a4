using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Xunit;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>
/// The FS base and the kernel's and user's GS bases of a running vCPU as Xen 4.17 keeps them (SegmentBases):
/// a change of guest mode reads back the GS base of the mode it leaves (toggle_guest_mode's read_gs_base) and
/// leaves the FS base in the CPU as it is; a switch reads what the CPU holds (save_segments); set_segment_base
/// and the base MSRs change only the base they name. "The CPU" is RecordingHost.LiveFsBase/LiveGsBase, which each
/// test sets as the exit and the guest's own selector loads or WR{FS,GS}BASE would leave them.
/// </summary>
public class SegmentBasesTests
{
    private const ulong Kernel0 = 0xFFFF_8880_0000_0000, User0 = 0x7000_0000, Fs0 = 0x6000_0000;
    private const ulong SyscallEntry = 0xFFFF_FFFF_8100_0080, EventEntry = 0xFFFF_FFFF_8100_0100;
    private static readonly ulong Code = TrapsGuest.Va(TrapsGuest.CodeSlot);
    private static readonly ulong IretSp = TrapsGuest.KernelStackTop - 0x200;
    private readonly TrapsGuest _g = new();
    private readonly GuestEntry _e;
    private RecordingHost Cpu => _g.T.Host;

    public SegmentBasesTests()
    {
        _e = new GuestEntry(_g.T.Machine) { Current = _g.V };
        _g.T.Machine.Scheduler.PickNext(null, true);
        _g.V.SyscallCallback = SyscallEntry;
        _g.V.EventCallback = EventEntry;
        _g.V.GsBaseKernel = Kernel0;
        _g.V.GsBaseUser = User0;
        _g.V.FsBase = Fs0;
        // It runs: the CPU holds its FS base and its kernel GS base, as the exit that started it loaded them.
        _g.V.FsBaseLive = _g.V.GsBaseLive = true;
        Cpu.LiveFsBase = Fs0;
        Cpu.LiveGsBase = Kernel0;
    }

    /// <summary>HYPERVISOR_iret from the guest kernel to user space.</summary>
    private GuestExit IretToUser(bool unlocked = false)
    {
        ulong[] ctx = { 7, 0x202, 0x40_1000, 0, 0x40_1000, Xen.FLAT_RING3_CS64, 0x202, TrapsGuest.UserStackTop - 8, Xen.FLAT_RING3_SS64 };
        for (int i = 0; i < ctx.Length; i++) _g.Write64(IretSp + (ulong)i * 8, ctx[i]);
        var f = new TrapFrame { Rax = Xen.__HYPERVISOR_iret, Rip = Code + 0x10, Rcx = Code + 0x10, Rflags = 0x246, R11 = 0x246,
            Cs = Xen.FLAT_KERNEL_CS64, Ss = Xen.FLAT_KERNEL_SS64, Rsp = IretSp, Vector = TrapFrame.SyscallVector };
        return Enter(ref f, unlocked);
    }

    /// <summary>The guest's own SYSCALL from user space: the bounce to its kernel's syscall callback.</summary>
    private GuestExit SyscallFromUser(bool unlocked = false)
    {
        var f = new TrapFrame { Rax = 39, Rip = 0x40_1010, Rcx = 0x40_1010, Rflags = 0x246, R11 = 0x246,
            Cs = Xen.FLAT_RING3_CS64, Ss = Xen.FLAT_RING3_SS64, Rsp = TrapsGuest.UserStackTop - 0x20, Vector = TrapFrame.SyscallVector };
        GuestExit x = Enter(ref f, unlocked);
        Assert.Equal(SyscallEntry, f.Rip);
        return x;
    }

    private GuestExit Enter(ref TrapFrame f, bool unlocked)
    {
        if (unlocked)
        {
            Assert.True(_e.CanRunUnlocked(in f));
            _e.Unlocked = true;
            _e.SyscallUnlocked(ref f);
        }
        else _e.Syscall(ref f, false);
        return _e.Record;
    }

    /// <summary>What the kernel does with the exit record: the CPU then holds the bases it loaded.</summary>
    private void Apply(GuestExit x)
    {
        if (x.Has(ExitActions.LoadFsBase)) Cpu.LiveFsBase = x.FsBase;
        if (x.Has(ExitActions.LoadGsBase)) Cpu.LiveGsBase = x.GsBase;
    }

    private ulong Rdmsr(uint msr)
    {
        Assert.True(EmulatePrivOp.ReadMsr(_g.V, msr, out ulong value));
        return value;
    }

    private long SetSegmentBase(ulong which, ulong value)
    {
        var f = _g.KernelFrame();
        f.Rax = Xen.__HYPERVISOR_set_segment_base; f.Rdi = which; f.Rsi = value; f.Vector = TrapFrame.SyscallVector;
        _e.Syscall(ref f, false);
        return (long)f.Rax;
    }

    [Fact]
    public void A_change_of_mode_reads_back_the_gs_base_it_leaves_and_leaves_the_fs_base_alone()
    {
        // The kernel's GS base changed in the CPU since (a selector load): the iret to user keeps that one.
        Cpu.LiveGsBase = 0xFFFF_8880_0000_1000;
        GuestExit x = IretToUser();
        Assert.False(_g.V.KernelMode);
        Assert.True(x.Has(ExitActions.LoadGsBase));
        Assert.False(x.Has(ExitActions.LoadFsBase));
        Assert.Equal(User0, x.GsBase);
        Assert.Equal(0xFFFF_8880_0000_1000UL, _g.V.GsBaseKernel);
        Assert.Equal((0, 1), (Cpu.FsBaseReads, Cpu.GsBaseReads));
        Apply(x);

        // User space loads GS and FS with selectors whose descriptors have bases, then makes a system call.
        Cpu.LiveGsBase = 0x0012_3000;
        Cpu.LiveFsBase = 0x0045_6000;
        x = SyscallFromUser();
        Assert.True(_g.V.KernelMode);
        Assert.True(x.Has(ExitActions.LoadGsBase));
        Assert.False(x.Has(ExitActions.LoadFsBase));                    // its FS stays: the kernel sees the user's
        Assert.Equal(0xFFFF_8880_0000_1000UL, x.GsBase);
        Assert.Equal(0x0012_3000UL, _g.V.GsBaseUser);
        Apply(x);
        Assert.Equal(0x0045_6000UL, Rdmsr(EmulatePrivOp.MSR_FS_BASE));
        Assert.Equal(0x0012_3000UL, Rdmsr(EmulatePrivOp.MSR_SHADOW_GS_BASE));
        Assert.Equal(0xFFFF_8880_0000_1000UL, Rdmsr(EmulatePrivOp.MSR_GS_BASE));

        // And back to user space: the GS base the user had, the FS base it had, untouched.
        x = IretToUser();
        Assert.Equal(0x0012_3000UL, x.GsBase);
        Assert.False(x.Has(ExitActions.LoadFsBase));
        Assert.Equal(0x0045_6000UL, Cpu.LiveFsBase);
    }

    [Fact]
    public void A_gs_base_written_with_wrgsbase_survives_the_changes_of_mode()
    {
        _g.T.Host.CpuIdLeaves[0] = (7, 0, 0, 0);
        _g.T.Host.CpuIdLeaves[7] = (0, 1, 0, 0);
        _g.V.Cr4 = PvCr4.CR4_FSGSBASE;
        Cpu.LiveGsBase = 0xFFFF_8880_DEAD_0000;                         // the kernel's WRGSBASE
        GuestExit x = IretToUser();
        Assert.Equal(0xFFFF_8880_DEAD_0000UL, _g.V.GsBaseKernel);
        Assert.Equal(User0, x.GsBase);
        Apply(x);
        Cpu.LiveGsBase = 0x0000_7FFF_BEEF_0000;                         // the user's WRGSBASE
        x = SyscallFromUser();
        Assert.Equal(0xFFFF_8880_DEAD_0000UL, x.GsBase);
        Assert.Equal(0x0000_7FFF_BEEF_0000UL, _g.V.GsBaseUser);
        Apply(x);
        x = IretToUser();
        Assert.Equal(0x0000_7FFF_BEEF_0000UL, x.GsBase);
        Assert.Equal(0xFFFF_8880_DEAD_0000UL, _g.V.GsBaseKernel);
        Assert.Equal(0, Cpu.FsBaseReads);
    }

    [Fact]
    public void Two_changes_of_mode_in_one_trap_read_the_cpu_once()
    {
        // The iret to user space meets a pending event: the upcall takes it back to the kernel in the same trap.
        _g.UpcallMask = 1;
        _g.D.EventChannels.SetPending(_g.D.EventChannels.BindIpi(0));
        Cpu.LiveGsBase = 0xFFFF_8880_0000_2000;
        GuestExit x = IretToUser();
        Assert.True(x.Has(ExitActions.Upcall));
        Assert.True(_g.V.KernelMode);
        Assert.Equal((0, 1), (Cpu.FsBaseReads, Cpu.GsBaseReads));
        Assert.Equal(User0, _g.V.GsBaseUser);
        Assert.Equal(0xFFFF_8880_0000_2000UL, x.GsBase);
        Assert.False(x.Has(ExitActions.LoadFsBase));
    }

    [Fact]
    public void A_switch_after_a_change_of_mode_saves_the_fs_base_from_the_cpu_and_the_gs_base_read_at_the_change()
    {
        _g.D.MaxVcpus = 2;
        Vcpu other = _g.D.Vcpus[1];
        other.Online = other.Initialised = true;
        other.GuestTable = _g.V.GuestTable;
        other.Regs = new TrapFrame { Rip = 0xAAAA, Rcx = 0xAAAA, Rflags = 0x202, R11 = 0x202, Cs = Xen.FLAT_RING3_CS64,
            Ss = Xen.FLAT_RING3_SS64, Rsp = TrapsGuest.KernelStackTop - 0x300 };
        other.FsBase = 0x1234_0000;
        other.GsBaseKernel = 0xFFFF_8880_5678_0000;
        _g.V.KernelMode = false;
        Cpu.LiveFsBase = 0x0045_6000;                                   // the user's, from a selector load
        Cpu.LiveGsBase = 0x0012_3000;
        // A #UD in user space, bounced to the kernel, and the vCPU must give way in the same trap.
        _g.WriteBytes(0x40_1000, 0x0F, 0x0B);
        _g.Trap(6, 0xFFFF_FFFF_8100_0200);
        _g.V.PendingExitWork |= ExitWork.Reschedule;
        var f = new TrapFrame { Rip = 0x40_1000, Rcx = 1, Rflags = 0x202, R11 = 2, Cs = Xen.FLAT_RING3_CS64, Ss = Xen.FLAT_RING3_SS64,
            Rsp = TrapsGuest.UserStackTop - 0x20, Vector = 6 };
        _e.Exception(ref f, 0);
        Assert.Same(other, _e.Current);
        Assert.True(_g.V.KernelMode);
        Assert.Equal((1, 1), (Cpu.FsBaseReads, Cpu.GsBaseReads));
        Assert.Equal(0x0045_6000UL, _g.V.FsBase);
        Assert.Equal(0x0012_3000UL, _g.V.GsBaseUser);
        Assert.Equal(Kernel0, _g.V.GsBaseKernel);
        GuestExit x = _e.Record;
        Assert.True(x.Has(ExitActions.LoadFsBase) && x.Has(ExitActions.LoadGsBase));
        Assert.Equal((0x1234_0000UL, 0xFFFF_8880_5678_0000UL), (x.FsBase, x.GsBase));
    }

    [Fact]
    public void Set_segment_base_loads_only_the_base_it_changes_into_the_cpu()
    {
        Cpu.LiveFsBase = 0x0045_6000;
        Assert.Equal(0, SetSegmentBase(ArchX86.SEGBASE_GS_USER, 0x5000));
        GuestExit x = _e.Record;
        Assert.False(x.Has(ExitActions.LoadFsBase) || x.Has(ExitActions.LoadGsBase));   // the inactive one: only the copy
        Assert.Equal(0x5000UL, _g.V.GsBaseUser);

        Assert.Equal(0, SetSegmentBase(ArchX86.SEGBASE_GS_KERNEL, 0xFFFF_8880_0000_3000));
        x = _e.Record;
        Assert.True(x.Has(ExitActions.LoadGsBase));
        Assert.False(x.Has(ExitActions.LoadFsBase));
        Assert.Equal(0xFFFF_8880_0000_3000UL, x.GsBase);
        Apply(x);

        Assert.Equal(0, SetSegmentBase(ArchX86.SEGBASE_FS, 0x8000));
        x = _e.Record;
        Assert.True(x.Has(ExitActions.LoadFsBase));
        Assert.False(x.Has(ExitActions.LoadGsBase));
        Assert.Equal(0x8000UL, x.FsBase);
        Apply(x);
        Assert.Equal(0, Cpu.FsBaseReads);

        x = IretToUser();
        Assert.Equal(0x5000UL, x.GsBase);
        Assert.Equal(0xFFFF_8880_0000_3000UL, _g.V.GsBaseKernel);
    }

    [Fact]
    public void The_unlocked_system_call_and_iret_change_bases_without_exit_work_or_the_lock()
    {
        _g.T.Host.CpuIdLeaves[0] = (7, 0, 0, 0);
        _g.T.Host.CpuIdLeaves[7] = (0, 1, 0, 0);
        _g.V.Cr4 = PvCr4.CR4_FSGSBASE;
        Cpu.LiveGsBase = 0xFFFF_8880_DEAD_0000;
        GuestExit x = IretToUser(unlocked: true);
        Assert.True(_e.Unlocked);                                       // done without the lock
        Assert.Equal(0, Cpu.Serializations);
        Assert.Equal(ExitWork.None, _g.V.PendingExitWork);
        Assert.Equal(ExitActions.LoadGsBase, x.Actions & ~ExitActions.StubOnly);
        Assert.Equal(User0, x.GsBase);
        Apply(x);
        Cpu.LiveGsBase = 0x0000_7FFF_BEEF_0000;
        x = SyscallFromUser(unlocked: true);
        Assert.True(_e.Unlocked);
        Assert.Equal(ExitWork.None, _g.V.PendingExitWork);
        Assert.Equal(ExitActions.LoadGsBase, x.Actions & ~ExitActions.StubOnly);
        Assert.Equal(0xFFFF_8880_DEAD_0000UL, x.GsBase);
        Assert.Equal(0x0000_7FFF_BEEF_0000UL, _g.V.GsBaseUser);
    }

    [Fact]
    public void Gs_user_sel_loads_the_selector_and_takes_the_base_it_gives_as_the_user_gs_base()
    {
        // A guest GDT of three entries, entry 2 a DPL-3 data segment with base 0x0067_8000.
        ulong gdt = _g.Page[TrapsGuest.ArgsSlot];
        _g.T.Memory.Write64(gdt * 4096 + 16, 0x00CF_F200_0000_FFFFUL | (0x67_8000UL << 16));
        _g.V.GdtFrames[0] = gdt;
        _g.V.GdtEntries = 3;
        Assert.Equal(0, SetSegmentBase(ArchX86.SEGBASE_GS_USER_SEL, 0x10));
        Assert.Equal(new ushort[] { 0x13 }, Cpu.UserGsLoads);              // RPL 3, as Xen loads it
        Assert.Equal(0x0067_8000UL, _g.V.GsBaseUser);
        GuestExit x = _e.Record;
        Assert.False(x.Has(ExitActions.LoadFsBase) || x.Has(ExitActions.LoadGsBase));   // the kernel's GS stays
        x = IretToUser();
        Assert.Equal(0x0067_8000UL, x.GsBase);
        Apply(x);
        SyscallFromUser();

        Assert.Equal(0, SetSegmentBase(ArchX86.SEGBASE_GS_USER_SEL, 2));
        Assert.Equal(new ushort[] { 0x13, 2 }, Cpu.UserGsLoads);           // a null selector as given
        Assert.Equal(0UL, _g.V.GsBaseUser);
    }
}
