using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Xunit;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>CR4.FSGSBASE for PV guests as Xen 4.17 offers it (pv_fixup_guest_cr4, pv_make_cr4, toggle_guest_mode).</summary>
public class PvCr4Tests
{
    private static readonly ulong Code = TrapsGuest.Va(TrapsGuest.CodeSlot);
    private readonly TrapsGuest _g = new();
    private readonly GuestEntry _e;

    public PvCr4Tests()
    {
        _e = new GuestEntry(_g.T.Machine);
        _e.Current = _g.V;
        _g.T.Machine.Scheduler.PickNext(null, true);
        _g.V.SegmentBasesLive = true;                                  // as after the exit that started it
    }

    private GuestExit Run(ExitActions returned)
    {
        Assert.Equal(returned, _e.Record.Actions);
        return _e.Record;
    }

    private void OfferFsgsbase()
    {
        _g.T.Host.CpuIdLeaves[0] = (7, 0, 0, 0);
        _g.T.Host.CpuIdLeaves[7] = (0, 1, 0, 0);                       // EBX bit 0: FSGSBASE
    }

    /// <summary>mov cr4, rax (0F 22 E0) or mov rax, cr4 (0F 20 E0) in the guest kernel: #GP, emulated.</summary>
    private GuestExit MovCr4(bool write, ref TrapFrame f)
    {
        _g.WriteBytes(Code, 0x0F, (byte)(write ? 0x22 : 0x20), 0xE0);
        f.Rip = Code;
        f.Vector = 13;
        f.ErrorCode = 0;
        return Run(_e.Exception(ref f, 0));
    }

    private ulong ReadCr4()
    {
        var f = _g.KernelFrame();
        MovCr4(false, ref f);
        return f.Rax;
    }

    [Fact]
    public void Fsgsbase_is_dropped_unless_the_policy_shows_it()
    {
        var f = _g.KernelFrame();
        f.Rax = PvCr4.CR4_FSGSBASE | (1UL << 7) | (1UL << 2);          // FSGSBASE, PGE, TSD
        GuestExit x = MovCr4(true, ref f);
        Assert.Equal(DomainState.Running, _g.D.State);
        Assert.False(x.Has(ExitActions.LoadCr4));
        Assert.Equal(EmulatePrivOp.GuestCr4, ReadCr4());
    }

    [Fact]
    public void A_guest_that_sets_it_runs_with_it_and_reads_it_back()
    {
        OfferFsgsbase();
        var f = _g.KernelFrame();
        f.Rax = EmulatePrivOp.GuestCr4 | PvCr4.CR4_FSGSBASE | (1UL << 7);
        GuestExit x = MovCr4(true, ref f);
        Assert.True(x.Has(ExitActions.LoadCr4));
        Assert.True(x.Fsgsbase);
        Assert.Equal(Code + 3, f.Rip);
        Assert.Equal(EmulatePrivOp.GuestCr4 | PvCr4.CR4_FSGSBASE, ReadCr4());

        f = _g.KernelFrame();
        f.Rax = EmulatePrivOp.GuestCr4;                                // and clears it again
        x = MovCr4(true, ref f);
        Assert.True(x.Has(ExitActions.LoadCr4));
        Assert.False(x.Fsgsbase);
        Assert.Equal(EmulatePrivOp.GuestCr4, ReadCr4());
    }

    [Fact]
    public void The_bases_the_guest_wrote_survive_a_return_to_user_mode_and_back()
    {
        OfferFsgsbase();
        _g.V.Cr4 = PvCr4.CR4_FSGSBASE;
        _g.V.GsBaseUser = 0x7000_0000;
        // The kernel wrote FS and its GS with WRFSBASE/WRGSBASE, then irets to user space.
        _g.T.Host.LiveFsBase = 0x1111_0000;
        _g.T.Host.LiveGsBase = 0xFFFF_8880_0000_0000;
        var f = _g.KernelFrame();
        f.Rsp = TrapsGuest.KernelStackTop - 0x200;
        ulong[] ctx = { 0, 0, 0, 0, 0x401000, Xen.FLAT_RING3_CS64, 0x202, TrapsGuest.UserStackTop, Xen.FLAT_RING3_SS64 };
        for (int i = 0; i < ctx.Length; i++) _g.Write64(f.Rsp + (ulong)i * 8, ctx[i]);
        f.Rax = Xen.__HYPERVISOR_iret;
        f.Vector = TrapFrame.SyscallVector;
        GuestExit x = Run(_e.Syscall(ref f, false));
        Assert.False(_g.V.KernelMode);
        Assert.True(x.Has(ExitActions.LoadSegmentBases));
        Assert.Equal(0x1111_0000UL, x.FsBase);                         // kept, not the stale copy
        Assert.Equal(0x7000_0000UL, x.GsBase);                         // the user's GS
        Assert.Equal(0xFFFF_8880_0000_0000UL, _g.V.GsBaseKernel);
        Assert.True(_g.V.SegmentBasesLive);

        // User space changes FS itself; a syscall back into the kernel keeps that FS and the kernel's GS.
        _g.T.Host.LiveFsBase = 0x2222_0000;
        _g.T.Host.LiveGsBase = 0x7100_0000;
        _g.V.SyscallCallback = 0xFFFF_FFFF_8100_0000;
        f = new TrapFrame { Rax = Xen.__HYPERVISOR_xen_version, Rip = 0x401000, Rcx = 0x401000, R11 = 0x202, Rflags = 0x202,
            Cs = Xen.FLAT_RING3_CS64, Ss = Xen.FLAT_RING3_SS64, Rsp = TrapsGuest.UserStackTop - 0x40, Vector = TrapFrame.SyscallVector };
        x = Run(_e.Syscall(ref f, false));
        Assert.True(_g.V.KernelMode);
        Assert.Equal(0x2222_0000UL, x.FsBase);
        Assert.Equal(0xFFFF_8880_0000_0000UL, x.GsBase);
        Assert.Equal(0x7100_0000UL, _g.V.GsBaseUser);
    }

    [Fact]
    public void An_iret_to_user_that_meets_an_upcall_keeps_the_user_gs_base()
    {
        // Two changes of mode in one trap: the iret to user space reads the kernel's bases back, the
        // upcall delivered on the way out goes back to the kernel; the CPU is not read a second time.
        OfferFsgsbase();
        _g.V.Cr4 = PvCr4.CR4_FSGSBASE;
        _g.V.GsBaseUser = 0x7000_0000;
        _g.V.EventCallback = 0xFFFF_FFFF_8100_0000;
        _g.UpcallMask = 1;
        int port = _g.D.EventChannels.BindIpi(0);
        _g.D.EventChannels.SetPending(port);
        _g.T.Host.LiveFsBase = 0x1111_0000;
        _g.T.Host.LiveGsBase = 0xFFFF_8880_0000_0000;
        var f = _g.KernelFrame();
        f.Rsp = TrapsGuest.KernelStackTop - 0x200;
        ulong[] ctx = { 0, 0, 0, 0, 0x401000, Xen.FLAT_RING3_CS64, 0x202, TrapsGuest.UserStackTop, Xen.FLAT_RING3_SS64 };
        for (int i = 0; i < ctx.Length; i++) _g.Write64(f.Rsp + (ulong)i * 8, ctx[i]);
        f.Rax = Xen.__HYPERVISOR_iret;
        f.Vector = TrapFrame.SyscallVector;
        GuestExit x = Run(_e.Syscall(ref f, false));
        Assert.True(x.Has(ExitActions.Upcall));
        Assert.True(_g.V.KernelMode);
        Assert.Equal(1, _g.T.Host.SegmentBaseReads);
        Assert.Equal(0x7000_0000UL, _g.V.GsBaseUser);
        Assert.Equal(0x1111_0000UL, x.FsBase);
        Assert.Equal(0xFFFF_8880_0000_0000UL, x.GsBase);
        Assert.True(x.Has(ExitActions.LoadSegmentBases));
    }

    [Fact]
    public void A_vcpu_without_it_never_has_its_bases_read_back()
    {
        var f = _g.KernelFrame();
        f.Rax = Xen.__HYPERVISOR_set_segment_base; f.Rdi = ArchX86.SEGBASE_GS_USER; f.Rsi = 0x5000;
        f.Vector = TrapFrame.SyscallVector;
        _g.T.Host.LiveFsBase = 0xBAD;
        _g.V.FsBase = 0x3000;
        GuestExit x = Run(_e.Syscall(ref f, false));
        Assert.Equal(0x3000UL, x.FsBase);
        Assert.Equal(0, _g.T.Host.SegmentBaseReads);
    }

    [Fact]
    public void Set_segment_base_keeps_the_fs_base_the_guest_wrote()
    {
        OfferFsgsbase();
        _g.V.Cr4 = PvCr4.CR4_FSGSBASE;
        _g.T.Host.LiveFsBase = 0x4444_0000;
        _g.T.Host.LiveGsBase = 0xFFFF_8880_0000_1000;
        var f = _g.KernelFrame();
        f.Rax = Xen.__HYPERVISOR_set_segment_base; f.Rdi = ArchX86.SEGBASE_GS_USER; f.Rsi = 0x5000;
        f.Vector = TrapFrame.SyscallVector;
        GuestExit x = Run(_e.Syscall(ref f, false));
        Assert.Equal(0x4444_0000UL, x.FsBase);
        Assert.Equal(0xFFFF_8880_0000_1000UL, x.GsBase);
        Assert.Equal(0x5000UL, _g.V.GsBaseUser);
    }
}
