using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Xunit;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>do_iret: iret_context {rax, r11, rcx, flags, rip, cs, rflags, rsp, ss} at RSP.</summary>
public class IretTests
{
    private static TrapFrame PushContext(TrapsGuest g, ulong flags, ulong rip, ulong cs, ulong rflags, ulong rsp, ulong ss)
    {
        var regs = g.KernelFrame();
        regs.Rsp = TrapsGuest.KernelStackTop - 0x200;
        ulong[] ctx = { 0xAAAA, 0xBBBB, 0xCCCC, flags, rip, cs, rflags, rsp, ss };
        for (int i = 0; i < ctx.Length; i++) g.Write64(regs.Rsp + (ulong)i * 8, ctx[i]);
        regs.Rax = 23;
        return regs;
    }

    [Fact]
    public void ReturnToKernelRestoresRegistersAndEventMask()
    {
        var g = new TrapsGuest();
        g.UpcallMask = 1;
        var regs = PushContext(g, 0, 0x401234, 0xE030, 0x3202, 0x405000, 0xE028);
        Iret.Do(g.V, ref regs);
        Assert.Equal(DomainState.Running, g.D.State);
        Assert.Equal(0xAAAAUL, regs.Rax);
        Assert.Equal(0xBBBBUL, regs.R11);
        Assert.Equal(0xCCCCUL, regs.Rcx);
        Assert.Equal(0x401234UL, regs.Rip);
        Assert.Equal(0xE033UL, regs.Cs);                          // RPL forced to 3
        Assert.Equal(0xE02BUL, regs.Ss);
        Assert.Equal(0x405000UL, regs.Rsp);
        Assert.Equal(0x202UL, regs.Rflags);                       // IOPL stripped
        Assert.True(g.V.KernelMode);                              // RPL 0 in the frame: stays in the kernel
        Assert.Equal(0, g.UpcallMask);                            // IF set in the frame re-enables events
    }

    [Fact]
    public void MulticallEntryThatIsIretIsPerformedAndEndsTheBatch()
    {
        // Xen's pv_do_multicall_call: an iret entry is mc_exit. The frame comes from the stack the
        // multicall was made on, its RAX is the entry's result and the multicall's, later entries never run.
        var g = new TrapsGuest();
        g.UpcallMask = 1;
        var regs = PushContext(g, 0, 0x401234, 0xE030, 0x3202, 0x405000, 0xE028);
        ulong list = TrapsGuest.KernelStackTop - 0x1000;
        ulong[] entries = { Xen.__HYPERVISOR_xen_version, 0xDEAD, 0, 0, 0, 0, 0, 0,
                            Xen.__HYPERVISOR_iret, 0xDEAD, 0, 0, 0, 0, 0, 0,
                            Xen.__HYPERVISOR_xen_version, 0xDEAD, 0, 0, 0, 0, 0, 0 };
        for (int i = 0; i < entries.Length; i++) g.Write64(list + (ulong)i * 8, entries[i]);
        long rc = Multicall.Do(g.V, ref regs, list, 3);
        Assert.Equal(DomainState.Running, g.D.State);
        Assert.Equal(0xAAAAL, rc);
        Assert.Equal(0x0004_0011UL, g.Read64(list + 8));
        Assert.Equal(0xAAAAUL, g.Read64(list + 64 + 8));
        Assert.Equal(0xDEADUL, g.Read64(list + 128 + 8));         // not made
        Assert.Equal(0x401234UL, regs.Rip);
        Assert.Equal(0x405000UL, regs.Rsp);
        Assert.Equal(0xBBBBUL, regs.R11);
        Assert.Equal(0, g.UpcallMask);
    }

    [Fact]
    public void ReturnToUserSwitchesTablesAndIfClearKeepsEventsMasked()
    {
        var g = new TrapsGuest();
        g.UpcallMask = 0;
        var regs = PushContext(g, 0, 0x401000, Xen.FLAT_RING3_CS64, 0x2, TrapsGuest.UserStackTop, Xen.FLAT_RING3_SS64);
        Iret.Do(g.V, ref regs);
        Assert.False(g.V.KernelMode);
        Assert.Equal(g.UserL4 << 12, g.T.Host.LoadedPageTableBases[^1]);
        Assert.Equal(0x202UL, regs.Rflags);                       // IF always on in the real frame
        Assert.Equal(1, g.UpcallMask);                            // ... but events stay masked
    }

    [Fact]
    public void InSyscallFlagReturnsLikeSysret()
    {
        var g = new TrapsGuest();
        var regs = PushContext(g, ArchX86.VGCF_in_syscall, 0x401000, Xen.FLAT_RING3_CS64, 0x246, TrapsGuest.UserStackTop, Xen.FLAT_RING3_SS64);
        Iret.Do(g.V, ref regs);
        Assert.Equal(0x401000UL, regs.Rcx);
        Assert.Equal(0x246UL, regs.R11);
    }

    [Fact]
    public void InSyscallFlagLeavesOnTheFlatSelectorsAsSysretDoes()
    {
        // Xen's restore_all_guest SYSRETs for such a frame whatever CS and SS it names (SYSRETL for
        // FLAT_RING3_CS32: RIP's low half); with a non-canonical RIP it IRETQs the frame as it is.
        var g = new TrapsGuest();
        var regs = PushContext(g, ArchX86.VGCF_in_syscall, 0x401000, 0x1000, 0x246, TrapsGuest.UserStackTop, 0x2000);
        Iret.Do(g.V, ref regs);
        Assert.Equal((ulong)Xen.FLAT_RING3_CS64, regs.Cs);
        Assert.Equal((ulong)Xen.FLAT_RING3_SS64, regs.Ss);
        Assert.True(GuestExit.CanSysret(in regs));

        g = new TrapsGuest();
        regs = PushContext(g, ArchX86.VGCF_in_syscall, 0x1_0040_1000, Xen.FLAT_RING3_CS32, 0x246, TrapsGuest.UserStackTop, 0x2000);
        Iret.Do(g.V, ref regs);
        Assert.Equal((ulong)Xen.FLAT_RING3_CS32, regs.Cs);
        Assert.Equal((ulong)Xen.FLAT_RING3_SS64, regs.Ss);
        Assert.Equal(0x40_1000UL, regs.Rip);

        g = new TrapsGuest();
        regs = PushContext(g, ArchX86.VGCF_in_syscall, 0x0000_8000_0000_0000, 0x1000, 0x246, TrapsGuest.UserStackTop, 0x2000);
        Iret.Do(g.V, ref regs);
        Assert.Equal(0x1003UL, regs.Cs);
        Assert.Equal(0x2003UL, regs.Ss);
        Assert.False(GuestExit.CanSysret(in regs));
    }

    [Fact]
    public void UserReturnWithoutUserTablesOrUnreadableFrameCrashes()
    {
        var g = new TrapsGuest();
        g.V.GuestTableUser = 0;
        var regs = PushContext(g, 0, 0x401000, Xen.FLAT_RING3_CS64, 0x202, 0x1000, Xen.FLAT_RING3_SS64);
        Iret.Do(g.V, ref regs);
        Assert.Equal(DomainState.Crashed, g.D.State);

        g = new TrapsGuest();
        regs = g.KernelFrame();
        regs.Rsp = 0x20_0000;                                      // unmapped
        Iret.Do(g.V, ref regs);
        Assert.Equal(DomainState.Crashed, g.D.State);
    }

    [Fact]
    public void BounceFromUserThenIretBackRestoresUserState()
    {
        var g = new TrapsGuest();
        g.Trap(14, 0xFFFF_FFFF_8100_0000);
        g.V.KernelMode = false;
        g.UpcallMask = 0;
        var regs = g.KernelFrame(0x401800);
        regs.Rsp = TrapsGuest.UserStackTop - 0x30;
        ulong userRsp = regs.Rsp;
        Assert.True(TrapBounce.Bounce(g.V, ref regs, 14, true, 0x2, 0x1234));
        // The guest handler turns the bounce frame into an iret context: drop rcx, r11, err; push rax, r11, rcx, flags.
        ulong f = regs.Rsp;
        ulong rip = g.Read64(f + 24), cs = g.Read64(f + 32), rflags = g.Read64(f + 40), rsp = g.Read64(f + 48), ss = g.Read64(f + 56);
        Assert.Equal(0x6UL, g.Read64(f + 16));                    // user bit set: the fault came from guest user mode
        ulong ctx = f - 0x80;
        ulong[] words = { 1, 2, 3, 0, rip, cs, rflags, rsp, ss };
        for (int i = 0; i < words.Length; i++) g.Write64(ctx + (ulong)i * 8, words[i]);
        regs.Rsp = ctx;
        Iret.Do(g.V, ref regs);
        Assert.False(g.V.KernelMode);
        Assert.Equal(0x401800UL, regs.Rip);
        Assert.Equal(userRsp, regs.Rsp);
        Assert.Equal(0, g.UpcallMask);
    }
}
