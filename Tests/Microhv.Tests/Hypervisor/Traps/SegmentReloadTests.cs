using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Xunit;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>
/// A vCPU's DS, ES, FS and GS across vCPU switches (Xen's save_segments and load_segments): saved when it
/// leaves a processor, its GDT, LDT and selectors loaded when it comes back, and the failsafe callback when
/// the CPU refuses one of them.
/// </summary>
public class SegmentReloadTests
{
    private const ulong Failsafe = 0xFFFF_FFFF_8100_2000;
    private static readonly ulong Code = TrapsGuest.Va(TrapsGuest.CodeSlot);

    private readonly TrapsGuest _g = new();
    private readonly GuestEntry _e;

    public SegmentReloadTests()
    {
        _e = new GuestEntry(_g.T.Machine);
        _e.Current = _g.V;
        _g.T.Machine.Scheduler.PickNext(null, true);
        _g.V.FsBaseLive = _g.V.GsBaseLive = true;                         // it runs: the CPU holds its bases
    }

    private static TrapFrame Syscall(ulong nr, ulong a1 = 0, ulong a2 = 0) => new TrapFrame
    {
        Rax = nr, Rdi = a1, Rsi = a2, Rip = Code + 0x10, Rcx = Code + 0x10, Rflags = 0x246, R11 = 0x246,
        Cs = Xen.FLAT_RING3_CS64, Ss = Xen.FLAT_RING3_SS64, Rsp = TrapsGuest.KernelStackTop - 0x100, Vector = TrapFrame.SyscallVector,
    };

    private Vcpu Other(ushort ds = 0x0F, ushort es = 0x17, ushort fs = 0x1F, ushort gs = 0x2B)
    {
        // The domain's second vCPU, on the same tables (its stacks are in the domain's pages).
        _g.D.MaxVcpus = 2;
        Vcpu v = _g.D.Vcpus[1];
        v.Online = v.Initialised = true;
        v.GuestTable = _g.V.GuestTable;
        v.KernelSp = TrapsGuest.KernelStackTop;
        v.Ds = ds; v.Es = es; v.Fs = fs; v.Gs = gs;
        v.FailsafeCallback = Failsafe;
        v.Regs = new TrapFrame { Rip = 0xAAAA, Rcx = 0xAAAA, Rflags = 0x202, R11 = 0x202, Rax = 7, Cs = Xen.FLAT_RING3_CS64,
            Ss = Xen.FLAT_RING3_SS64, Rsp = TrapsGuest.KernelStackTop - 0x200 };
        return v;
    }

    [Fact]
    public void A_switch_saves_the_one_leaving_then_loads_the_gdt_ldt_and_selectors_of_the_one_coming()
    {
        Vcpu next = Other();
        var f = Syscall(Xen.__HYPERVISOR_sched_op, Sched.SCHEDOP_yield);
        _e.Syscall(ref f, false);
        Assert.Same(next, _e.Current);
        Assert.Equal(new[] { _g.V }, _g.T.Host.SegmentSaves);
        Assert.Equal((1, 1), (_g.T.Host.FsBaseReads, _g.T.Host.GsBaseReads));   // its bases too: nothing changed them in this trap
        Assert.Equal(new[] { next }, _g.T.Host.GdtLoads);
        Assert.Equal(new[] { next }, _g.T.Host.SegmentLoads);
        Assert.Equal(0xAAAAUL, f.Rip);                                   // no failsafe: its own frame
        Assert.False(_g.V.FsBaseLive || _g.V.GsBaseLive);
    }

    [Fact]
    public void Bases_this_trap_changed_are_not_read_back_from_the_cpu()
    {
        Other();
        // set_segment_base(FS) then a yield in one multicall: the new FS base is not in the CPU yet, the GS base is.
        _g.T.Host.LiveFsBase = 0xBAD;
        _g.T.Host.LiveGsBase = 0xFFFF_8880_0000_2000;
        Assert.Equal(0, SetSegmentBase.Do(_g.V, ArchX86.SEGBASE_FS, 0x5000));
        var f = Syscall(Xen.__HYPERVISOR_sched_op, Sched.SCHEDOP_yield);
        _e.Syscall(ref f, false);
        Assert.Equal(new[] { _g.V }, _g.T.Host.SegmentSaves);
        Assert.Equal((0, 1), (_g.T.Host.FsBaseReads, _g.T.Host.GsBaseReads));
        Assert.Equal(0x5000UL, _g.V.FsBase);
        Assert.Equal(0xFFFF_8880_0000_2000UL, _g.V.GsBaseKernel);
    }

    [Fact]
    public void Going_idle_saves_and_coming_back_loads_again()
    {
        var f = Syscall(Xen.__HYPERVISOR_sched_op, Sched.SCHEDOP_block);
        _g.V.EventCallback = 0xFFFF_FFFF_8100_0000;
        _e.Syscall(ref f, false);
        Assert.Null(_e.Current);
        Assert.Single(_g.T.Host.SegmentSaves);
        Assert.Empty(_g.T.Host.SegmentLoads);
        _g.D.EventChannels.SetPending(_g.D.EventChannels.BindIpi(0));
        var idle = new TrapFrame { Cs = 0xE008 };
        _e.Interrupt(ref idle);
        Assert.Same(_g.V, _e.Current);
        Assert.Equal(new[] { _g.V }, _g.T.Host.SegmentLoads);
    }

    [Fact]
    public void A_refused_selector_enters_the_failsafe_callback_with_the_selectors_it_had()
    {
        Vcpu next = Other(ds: 0x0F, es: 0x17, fs: 0x1F, gs: 0x2B);
        ulong info = Microhv.Hypervisor.Events.VcpuInfo.Address(next);
        _g.T.Memory.Write8(info + SharedInfo.evtchn_upcall_mask, 0);
        next.FailsafeMasksEvents = true;
        _g.T.Host.RefuseSegments = SegmentReload.DsRefused;
        var f = Syscall(Xen.__HYPERVISOR_sched_op, Sched.SCHEDOP_yield);
        _e.Syscall(ref f, false);
        Assert.Same(next, _e.Current);
        Assert.Equal(Failsafe, f.Rip);
        Assert.Equal((ulong)Xen.FLAT_KERNEL_CS64, f.Cs);
        Assert.Equal((ulong)Xen.FLAT_KERNEL_SS64, f.Ss);
        ulong sp = (TrapsGuest.KernelStackTop - 0x200) & ~0xFUL;
        Assert.Equal(sp - 88, f.Rsp);
        ulong[] want = { 0xAAAA, 0x202, 0x0F, 0x17, 0x1F, 0x2B, 0xAAAA, Xen.FLAT_RING3_CS64 & ~3UL, 0x202, TrapsGuest.KernelStackTop - 0x200, Xen.FLAT_RING3_SS64 };
        for (int i = 0; i < want.Length; i++) Assert.True(want[i] == _g.Read64(f.Rsp + (ulong)i * 8), $"word {i}: {_g.Read64(f.Rsp + (ulong)i * 8):x} want {want[i]:x}");
        Assert.Equal(1, _g.T.Memory.Read8(info + SharedInfo.evtchn_upcall_mask));   // registered with the mask flag
        Assert.False(GuestExit.CanSysret(in f));
    }

    [Fact]
    public void The_failsafe_of_a_vcpu_in_user_mode_runs_on_its_kernel_stack_in_kernel_mode()
    {
        Vcpu next = Other();
        next.KernelMode = false;
        next.GuestTableUser = _g.V.GuestTableUser;
        next.Regs.Rsp = TrapsGuest.UserStackTop - 0x40;
        next.Regs.Cs = Xen.FLAT_RING3_CS64;
        TrapFrame f = next.Regs;
        SegmentReload.Failsafe(next, ref f);
        Assert.True(next.KernelMode);
        Assert.Equal(TrapsGuest.KernelStackTop - 88, f.Rsp);
        Assert.Equal((ulong)Xen.FLAT_RING3_CS64, _g.Read64(f.Rsp + 56) & 0xFFFF);  // user CS: RPL 3 says "from user"
        Assert.Equal(TrapsGuest.UserStackTop - 0x40, _g.Read64(f.Rsp + 72));
    }

    [Fact]
    public void A_failsafe_frame_that_cannot_be_written_crashes_the_domain()
    {
        Vcpu next = Other();
        TrapFrame f = next.Regs;
        f.Rsp = 0x1000;                                                   // nothing mapped there
        SegmentReload.Failsafe(next, ref f);
        Assert.Equal(DomainState.Crashed, next.Domain.State);
    }

    [Fact]
    public void A_reset_vcpu_has_null_selectors_and_no_failsafe_mask()
    {
        Vcpu v = Other();
        v.FailsafeMasksEvents = true;
        v.Reset();
        Assert.Equal(0, v.Ds | v.Es | v.Fs | v.Gs);
        Assert.False(v.FailsafeMasksEvents);
    }
}
