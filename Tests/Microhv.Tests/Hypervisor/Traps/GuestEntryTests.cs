using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Xunit;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>The exit decisions GuestEntry makes for the kernel: switch or not, what to reload, SYSRET or IRETQ, the timer.</summary>
public class GuestEntryTests
{
    private const ulong Handler = 0xFFFF_FFFF_8100_0000;
    private static readonly ulong Code = TrapsGuest.Va(TrapsGuest.CodeSlot);
    private static readonly ulong Args = TrapsGuest.Va(TrapsGuest.ArgsSlot);

    private readonly TrapsGuest _g = new();
    private readonly GuestEntry _e;

    public GuestEntryTests()
    {
        _e = new GuestEntry(_g.T.Machine);
        _e.Current = _g.V;
        _g.T.Machine.Scheduler.PickNext(null, true);        // the scheduler runs _g.V
        Assert.Same(_g.V, _g.T.Machine.Scheduler.Running);
    }

    /// <summary>The frame the SYSCALL entry builds: RCX = RIP and R11 = RFLAGS, as the CPU left them.</summary>
    private static TrapFrame Syscall(ulong nr, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0) => new TrapFrame
    {
        Rax = nr, Rdi = a1, Rsi = a2, Rdx = a3, Rip = Code + 0x10, Rcx = Code + 0x10, Rflags = 0x246, R11 = 0x246,
        Cs = Xen.FLAT_RING3_CS64, Ss = Xen.FLAT_RING3_SS64, Rsp = TrapsGuest.KernelStackTop - 0x100, Vector = TrapFrame.SyscallVector,
    };

    /// <summary>What an entry returned is the record's actions; the record carries the rest.</summary>
    private GuestExit Run(ExitActions returned)
    {
        Assert.Equal(returned, _e.Record.Actions);
        return _e.Record;
    }

    private Domain SecondDomain()
    {
        Domain d = _g.T.AddDomain(2);
        d.Vcpu.GuestTable = 0x77000;
        d.Vcpu.FsBase = 0x1234;
        d.Vcpu.GsBaseKernel = 0x5678;
        d.Vcpu.Regs = new TrapFrame { Rip = 0xAAAA, Rcx = 0xAAAA, Rflags = 0x202, R11 = 0x202, Cs = Xen.FLAT_RING3_CS64, Ss = Xen.FLAT_RING3_SS64 };
        return d;
    }

    [Fact]
    public void Null_hypercall_leaves_by_sysret_and_reloads_nothing()
    {
        var f = Syscall(Xen.__HYPERVISOR_xen_version);
        GuestExit x = Run(_e.Syscall(ref f, false));
        Assert.Equal(0x0004_0011UL, f.Rax);
        Assert.Equal(ExitActions.Sysret, x.Actions);
        Assert.Same(_g.V, _e.Current);
        Assert.Equal(1UL, _e.Hypercalls);
        Assert.Empty(_g.T.Host.LoadedPageTableBases);
    }

    [Fact]
    public void Set_segment_base_reloads_the_bases_and_set_timer_op_arms_the_timer()
    {
        var f = Syscall(Xen.__HYPERVISOR_set_segment_base, ArchX86.SEGBASE_FS, 0x7000_0000);
        GuestExit x = Run(_e.Syscall(ref f, false));
        Assert.Equal(ExitActions.Sysret | ExitActions.LoadFsBase | ExitActions.LoadGsBase, x.Actions);
        Assert.Equal(0x7000_0000UL, x.FsBase);

        _g.T.Host.NowNs = 1000;
        _g.V.PeriodicPeriod = 0;                                         // as Linux does: one-shot only
        f = Syscall(Xen.__HYPERVISOR_set_timer_op, 5_000_000);
        x = Run(_e.Syscall(ref f, false));
        Assert.Equal(ExitActions.Sysret | ExitActions.ArmTimer, x.Actions);
        Assert.Equal(5_000_000UL, x.TimerDeadline);

        f = Syscall(Xen.__HYPERVISOR_xen_version);                     // the work was consumed
        Assert.Equal(ExitActions.Sysret, Run(_e.Syscall(ref f, false)).Actions);
    }

    [Fact]
    public void Yield_switches_to_the_other_vcpu_with_its_frame_tables_and_bases()
    {
        Domain d2 = SecondDomain();
        var f = Syscall(Xen.__HYPERVISOR_sched_op, Sched.SCHEDOP_yield);
        GuestExit x = Run(_e.Syscall(ref f, false));
        Assert.True(x.Has(ExitActions.Switch | ExitActions.LoadAddressSpace | ExitActions.LoadFsBase | ExitActions.LoadGsBase | ExitActions.Sysret));
        Assert.False(x.Has(ExitActions.Idle));
        Assert.Same(_g.V, _e.Previous);
        Assert.Same(d2.Vcpu, _e.Current);
        Assert.Equal(0xAAAAUL, f.Rip);                                   // the frame is now the other vCPU's
        Assert.Equal(0UL, _g.V.Regs.Rax);                                // the yield's result, saved with the old frame
        Assert.Equal(0x77000UL, x.Cr3);
        Assert.Equal(0x1234UL, x.FsBase);
        Assert.Equal(0x5678UL, x.GsBase);
    }

    [Fact]
    public void Block_with_nothing_pending_idles_and_an_event_switches_back()
    {
        _g.V.EventCallback = Handler;
        var f = Syscall(Xen.__HYPERVISOR_sched_op, Sched.SCHEDOP_block);
        GuestExit x = Run(_e.Syscall(ref f, false));
        Assert.Equal(ExitActions.Switch | ExitActions.Idle, x.Actions);
        Assert.Null(_e.Current);

        var idle = new TrapFrame { Cs = 0xE008 };                        // the idle loop, interrupted
        Assert.Equal(ExitActions.None, Run(_e.Interrupt(ref idle)).Actions);  // nothing happened: still idle
        int port = _g.D.EventChannels.BindIpi(0);
        _g.D.EventChannels.SetPending(port);                             // a driver raised an event: wakes the vCPU
        x = Run(_e.Interrupt(ref idle));
        Assert.True(x.Has(ExitActions.Switch | ExitActions.LoadAddressSpace | ExitActions.Upcall));
        Assert.Same(_g.V, _e.Current);
        Assert.Equal(Handler, idle.Rip);                                 // resumed straight into its event callback
        Assert.False(x.Has(ExitActions.Sysret));
    }

    [Fact]
    public void An_upcall_in_guest_kernel_mode_is_delivered_on_the_common_exit_and_from_user_mode_on_the_full_one()
    {
        _g.V.EventCallback = Handler;
        int port = _g.D.EventChannels.BindIpi(0);
        _g.D.EventChannels.SetPending(port);                             // e.g. EVTCHNOP_send to itself
        var f = Syscall(Xen.__HYPERVISOR_xen_version);
        GuestExit x = Run(_e.Syscall(ref f, false));
        Assert.Equal(ExitActions.Upcall, x.Actions);                     // nothing else to load; IRETQ into the callback
        Assert.Equal(Handler, f.Rip);
        Assert.Same(_g.V, _e.Current);

        _g.V.GsBaseKernel = 0xCAFE;
        _g.V.KernelMode = false;                                         // the same event seen from guest user space
        _g.UpcallMask = 0;                                               // the handler unmasked; still pending
        f = Syscall(0);                                                  // a device interrupt in guest user space
        f.Rsp = TrapsGuest.UserStackTop - 8;
        f.Vector = 0x40;
        x = Run(_e.Interrupt(ref f));
        Assert.True(x.Has(ExitActions.Upcall));
        Assert.True(x.Has(ExitActions.LoadFsBase | ExitActions.LoadGsBase));
        Assert.Equal(0xCAFEUL, x.GsBase);                               // the kernel's GS base, after the switch to kernel mode
        Assert.True(_g.V.KernelMode);
        Assert.Equal(Handler, f.Rip);
    }

    [Fact]
    public void Timer_ticks_preempt_after_the_slice_and_arm_the_next_deadline()
    {
        SecondDomain();
        var f = Syscall(Xen.__HYPERVISOR_xen_version);
        for (int i = 1; i < Scheduler.SliceTicks; i++)
        {
            GuestExit t = Run(_e.Timer(ref f, true));
            Assert.False(t.Has(ExitActions.Switch));
            Assert.True(t.Has(ExitActions.ArmTimer));
        }
        GuestExit x = Run(_e.Timer(ref f, true));
        Assert.True(x.Has(ExitActions.Switch));
        Assert.NotSame(_g.V, _e.Current);
        // A deadline interrupt that is not a tick fires timers but never asks the scheduler.
        x = Run(_e.Timer(ref f, false));
        Assert.False(x.Has(ExitActions.Switch));
        Assert.True(x.Has(ExitActions.ArmTimer));
    }

    [Fact]
    public void Iret_to_user_reloads_the_bases_and_sysrets_only_for_a_syscall_return()
    {
        _g.V.GsBaseUser = 0xBEEF;
        ulong sp = TrapsGuest.KernelStackTop - 0x200;
        void Context(ulong flags)
        {
            _g.Write64(sp + ArchX86.iret_rax, 7); _g.Write64(sp + ArchX86.iret_r11, 0x99); _g.Write64(sp + ArchX86.iret_rcx, 0x88);
            _g.Write64(sp + ArchX86.iret_flags, flags); _g.Write64(sp + ArchX86.iret_rip, 0x40_1000); _g.Write64(sp + ArchX86.iret_cs, Xen.FLAT_RING3_CS64);
            _g.Write64(sp + ArchX86.iret_rflags, 0x202); _g.Write64(sp + ArchX86.iret_rsp, TrapsGuest.UserStackTop - 8); _g.Write64(sp + ArchX86.iret_ss, Xen.FLAT_RING3_SS64);
        }
        Context(0);
        var f = Syscall(Xen.__HYPERVISOR_iret); f.Rsp = sp;
        GuestExit x = Run(_e.Syscall(ref f, false));
        Assert.Equal(7UL, f.Rax);
        Assert.False(_g.V.KernelMode);
        Assert.Equal(ExitActions.LoadFsBase | ExitActions.LoadGsBase, x.Actions);           // RCX/R11 are the context's: IRETQ
        Assert.Equal(0xBEEFUL, x.GsBase);

        _g.V.KernelMode = true;
        Context(ArchX86.VGCF_in_syscall);
        f = Syscall(Xen.__HYPERVISOR_iret); f.Rsp = sp;
        x = Run(_e.Syscall(ref f, false));
        Assert.Equal(ExitActions.LoadGsBase | ExitActions.Sysret, x.Actions);   // the FS base the CPU holds stays
        Assert.Equal(0xBEEFUL, x.GsBase);
    }

    [Fact]
    public void A_bounced_exception_leaves_by_iretq_and_fpu_taskswitch_sets_cr0_ts()
    {
        _g.Trap(TrapBounce.VectorUD, Handler);
        _g.WriteBytes(Code, 0x0F, 0x0B);
        var f = _g.KernelFrame(Code);
        f.Vector = TrapBounce.VectorUD;
        GuestExit x = Run(_e.Exception(ref f, 0));
        Assert.Equal(Handler, f.Rip);
        Assert.Equal(ExitActions.None, x.Actions);

        f = Syscall(Xen.__HYPERVISOR_fpu_taskswitch, 1);
        Assert.Equal(ExitActions.Sysret | ExitActions.Cr0Ts, Run(_e.Syscall(ref f, false)).Actions);
    }

    [Fact]
    public void A_crash_is_reported_once_with_the_frame_and_the_machine_ends()
    {
        var f = _g.KernelFrame(Code);
        f.Vector = TrapBounce.VectorGP;                                    // no handler: the domain is crashed
        f.ErrorCode = 0x10;
        GuestExit x = Run(_e.Exception(ref f, 0));
        Assert.Equal(ExitActions.ReportCrash | ExitActions.Switch | ExitActions.Idle | ExitActions.AllEnded, x.Actions);
        Assert.Same(_g.V, _e.Crashed);
        Assert.Equal(Code, _g.V.Regs.Rip);
        Assert.Equal(DomainState.Crashed, _g.D.State);
    }

    [Fact]
    public void User_mode_int_0x82_is_a_blocked_int_n_and_user_syscall_goes_to_the_guest_kernel()
    {
        _g.V.KernelMode = false;
        _g.Trap(TrapBounce.VectorGP, Handler);
        _g.WriteBytes(Code, 0xCD, 0x82);
        var f = Syscall(Xen.__HYPERVISOR_xen_version);
        f.Rip = Code + 2; f.Rsp = TrapsGuest.UserStackTop - 8;
        GuestExit x = Run(_e.Syscall(ref f, true));
        Assert.Equal(0UL, _g.D.HypercallCounts[Xen.__HYPERVISOR_xen_version]);
        Assert.Equal(Handler, f.Rip);
        Assert.Equal(Code, _g.Read64(f.Rsp + 24));                        // #GP at the INT instruction
        Assert.True(_g.V.KernelMode);
        Assert.True(x.Has(ExitActions.LoadFsBase | ExitActions.LoadGsBase));
    }

    [Fact]
    public void Sysret_only_for_a_frame_it_restores_exactly()
    {
        var f = Syscall(0);
        Assert.True(GuestExit.CanSysret(in f));
        var g = f; g.Rip = 0x0000_8000_0000_0000; g.Rcx = g.Rip;           // non-canonical: #GP in ring 0 on Intel
        Assert.False(GuestExit.CanSysret(in g));
        g = f; g.Rflags |= ArchX86.X86_EFLAGS_RF; g.R11 = g.Rflags;        // SYSRET would drop RF
        Assert.False(GuestExit.CanSysret(in g));
        g = f; g.Cs = Xen.FLAT_RING3_CS32;
        Assert.False(GuestExit.CanSysret(in g));
        g = f; g.R11 = 0x202;
        Assert.False(GuestExit.CanSysret(in g));
        g = f; g.Rcx = 0;
        Assert.False(GuestExit.CanSysret(in g));
    }
}
