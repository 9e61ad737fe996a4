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
}
