using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Xunit;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>set_debugreg / get_debugreg and MOV to and from %drN with Xen 4.17's checks, and when the exit
/// loads the registers (DebugRegisters.cs).</summary>
public class DebugRegistersTests
{
    private const ulong Handler = 0xFFFF_FFFF_8100_0000;
    private readonly TrapsGuest _g = new();
    private Vcpu V => _g.V;

    private long Set(uint reg, ulong value) => DebugRegisters.Set(V, reg, value);
    private ulong Get(uint reg) { Assert.True(DebugRegisters.Get(V, reg, out ulong value)); return value; }

    [Fact]
    public void A_new_vcpu_has_the_reset_values()
    {
        Assert.Equal(0UL, Get(0));
        Assert.Equal(0xFFFF0FF0UL, Get(6));
        Assert.Equal(0x400UL, Get(7));
        Assert.False(DebugRegisters.Active(V));
    }

    [Theory]
    [InlineData(0UL, 0L)]
    [InlineData(0x0000_7FFF_FFFF_FFFFUL, 0L)]                 // the top of the lower half
    [InlineData(0x0000_8000_0000_0000UL, -1L)]                // non-canonical: -EPERM
    [InlineData(0xFFFF_8000_0000_0000UL, -1L)]                // the hypervisor's hole: -EPERM
    [InlineData(0xFFFF_82D0_8000_0000UL, -1L)]                // Microhv's own image
    [InlineData(0xFFFF_87FF_FFFF_FFFFUL, -1L)]
    [InlineData(0xFFFF_8800_0000_0000UL, 0L)]                 // above the hole: the guest kernel's half
    [InlineData(0xFFFF_FFFF_8000_0000UL, 0L)]
    public void Breakpoint_addresses_must_be_the_guests(ulong address, long rc)
    {
        for (uint reg = 0; reg < 4; reg++)
        {
            Assert.Equal(rc, Set(reg, address));
            Assert.Equal(rc == 0 ? address : 0, Get(reg));
        }
    }

    [Fact]
    public void Dr6_takes_32_bits_with_its_reserved_bits_forced()
    {
        Assert.Equal(-Errno.EINVAL, Set(6, 1UL << 32));
        Assert.Equal(0, Set(6, 0));
        Assert.Equal(0xFFFF0FF0UL, Get(6));                       // reserved-one bits set
        Assert.Equal(0, Set(6, 0xFFFF_FFFF));
        Assert.Equal(0xFFFF_EFFFUL, Get(6));                      // bit 12 reserved zero
        Assert.Equal(0, Set(6, 0x4001));                           // BS, B0
        Assert.Equal(0xFFFF_4FF1UL, Get(6));
        Assert.Equal(0, Set(4, 0));                                // %dr4 is %dr6 without CR4.DE
        Assert.Equal(0xFFFF0FF0UL, Get(4));
    }

    [Fact]
    public void Dr7_takes_32_bits_refuses_general_detect_and_io_breakpoints()
    {
        Assert.Equal(-Errno.EINVAL, Set(7, 1UL << 32));
        Assert.Equal(-Errno.EPERM, Set(7, 1UL << 13));            // GD
        Assert.Equal(-Errno.EPERM, Set(7, 0x1 | 2UL << 16));      // L0 with R/W0 = I/O: needs CR4.DE
        Assert.Equal(0, Set(7, 2UL << 16));                        // the same, not enabled: no check
        Assert.Equal(0x400UL | 2UL << 16, Get(7));
        Assert.Equal(0, Set(7, 0xFFFF_FFFF & ~(1UL << 13) & ~0xAAAA0000UL));   // every bit but GD, no I/O type
        Assert.Equal(0x5555_07FFUL, Get(7));                                    // bits 11, 12, 14, 15 reserved zero
        Assert.True(DebugRegisters.Active(V));
        Assert.Equal(0, Set(5, 0));                                // %dr5 is %dr7
        Assert.Equal(0x400UL, Get(7));
        Assert.False(DebugRegisters.Active(V));
    }

    [Fact]
    public void Other_registers_do_not_exist()
    {
        Assert.Equal(-Errno.ENODEV, Set(8, 0));
        Assert.Equal(-Errno.ENODEV, Set(0xFFFF_FFFF, 0));
        Assert.False(DebugRegisters.Get(V, 8, out _));
        Assert.Equal(-Errno.ENODEV, DebugRegisters.GetHypercall(V, 0xFFFF_FFFF_FFFF_FFFF));   // int reg = -1
    }

    [Fact]
    public void The_hypercalls_through_the_table_record_the_change_for_the_exit()
    {
        TrapFrame r = default;
        Assert.Equal(0, Hypercalls.Call(V, ref r, Xen.__HYPERVISOR_set_debugreg, 0, 0x40_1000, 0, 0, 0));
        Assert.True((V.PendingExitWork & ExitWork.DebugRegisters) != 0);
        Assert.Equal(0x40_1000L, Hypercalls.Call(V, ref r, Xen.__HYPERVISOR_get_debugreg, 0, 0, 0, 0, 0));
        Assert.Equal(-Errno.EPERM, Hypercalls.Call(V, ref r, Xen.__HYPERVISOR_set_debugreg, 1, 0xFFFF_8300_0000_0000, 0, 0, 0));
        Assert.Equal(0x400L, Hypercalls.Call(V, ref r, Xen.__HYPERVISOR_get_debugreg, 7, 0, 0, 0, 0));
    }

    [Fact]
    public void A_guest_debug_exception_accumulates_dr6_as_Xen_does()
    {
        Assert.Equal(0, Set(6, 0x4000));                           // BS left from before
        DebugRegisters.OnGuestDebugException(V, 0xFFFF0FF1);       // B0 hit now
        Assert.Equal(0xFFFF4FF1UL, Get(6));
        DebugRegisters.OnGuestDebugException(V, 0xFFFE0FF0);       // RTM bit 16 cleared by the CPU: cleared here too
        Assert.Equal(0xFFFE4FF1UL, Get(6));
    }

    private static TrapFrame MovDr(TrapsGuest g, params byte[] code)
    {
        g.WriteBytes(TrapsGuest.Va(TrapsGuest.CodeSlot), code);
        var regs = g.KernelFrame();
        regs.Vector = 13;
        return regs;
    }

    [Fact]
    public void Mov_to_and_from_debug_registers_is_emulated_with_the_same_checks()
    {
        _g.Trap(13, Handler);
        _g.Trap(6, Handler + 0x100);
        var regs = MovDr(_g, 0x0F, 0x23, 0xC0);                   // mov dr0, rax
        regs.Rax = 0x40_2000;
        ulong rip = regs.Rip;
        GuestTraps.HandleException(V, ref regs, 0);
        Assert.Equal(rip + 3, regs.Rip);
        Assert.Equal(0x40_2000UL, Get(0));

        regs = MovDr(_g, 0x0F, 0x21, 0xC3);                        // mov rbx, dr0
        GuestTraps.HandleException(V, ref regs, 0);
        Assert.Equal(0x40_2000UL, regs.Rbx);

        regs = MovDr(_g, 0x0F, 0x23, 0xF9);                        // mov dr7, rcx
        regs.Rcx = 1UL << 13;                                     // GD: #GP
        GuestTraps.HandleException(V, ref regs, 0);
        Assert.Equal(Handler, regs.Rip);
        Assert.Equal(0x400UL, Get(7));

        regs = MovDr(_g, 0x44, 0x0F, 0x23, 0xC0);                  // mov dr8, rax: no such register, #UD
        GuestTraps.HandleException(V, ref regs, 0);
        Assert.Equal(Handler + 0x100, regs.Rip);
    }

    [Fact]
    public void The_exit_loads_the_registers_when_they_change_and_when_a_vcpu_with_breakpoints_comes_or_goes()
    {
        var e = new GuestEntry(_g.T.Machine) { Current = V };
        _g.T.Machine.Scheduler.PickNext(null, true);
        Domain other = _g.T.AddDomain(2);
        other.Vcpu.GuestTable = 0x77000;
        other.Vcpu.Regs = new TrapFrame { Rip = 0xAAAA, Rcx = 0xAAAA, Rflags = 0x202, R11 = 0x202, Cs = Xen.FLAT_RING3_CS64, Ss = Xen.FLAT_RING3_SS64 };

        TrapFrame f = Call(Xen.__HYPERVISOR_set_debugreg, 0, 0x40_1000);
        Assert.True(e.Syscall(ref f, false).HasFlag(ExitActions.LoadDebugRegisters));
        f = Call(Xen.__HYPERVISOR_xen_version, 0, 0);
        Assert.False(e.Syscall(ref f, false).HasFlag(ExitActions.LoadDebugRegisters));

        f = Call(Xen.__HYPERVISOR_sched_op, Sched.SCHEDOP_yield, 0);        // neither has a breakpoint enabled
        ExitActions x = e.Syscall(ref f, false);
        Assert.True(x.HasFlag(ExitActions.Switch));
        Assert.False(x.HasFlag(ExitActions.LoadDebugRegisters));

        e.Current.Debug.Dr7 = 0x401;                                      // the other one enables DR0
        f = Call(Xen.__HYPERVISOR_sched_op, Sched.SCHEDOP_yield, 0);
        x = e.Syscall(ref f, false);
        Assert.Same(V, e.Current);
        Assert.True(x.HasFlag(ExitActions.Switch | ExitActions.LoadDebugRegisters));   // leaving it: DR7 off
    }

    private TrapFrame Call(ulong nr, ulong a1, ulong a2)
    {
        ulong code = TrapsGuest.Va(TrapsGuest.CodeSlot) + 0x10;
        return new TrapFrame
        {
            Rax = nr, Rdi = a1, Rsi = a2, Rip = code, Rcx = code, Rflags = 0x246, R11 = 0x246,
            Cs = Xen.FLAT_RING3_CS64, Ss = Xen.FLAT_RING3_SS64, Rsp = TrapsGuest.KernelStackTop - 0x100, Vector = TrapFrame.SyscallVector,
        };
    }
}
