using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Xunit;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>create_bounce_frame's 64-bit layout {RCX, R11, [err], RIP, CS|mask&lt;&lt;32, RFLAGS, RSP, SS}, and event upcalls.</summary>
public class TrapBounceTests
{
    private const ulong Handler = 0xFFFF_FFFF_8100_0000;

    [Fact]
    public void PageFaultFromKernelModeBuildsXensFrameOnTheCurrentStack()
    {
        var g = new TrapsGuest();
        g.Trap(14, Handler);
        g.UpcallMask = 0;
        var regs = g.KernelFrame();
        ulong oldRsp = regs.Rsp, oldRip = regs.Rip;
        Assert.True(TrapBounce.Bounce(g.V, ref regs, 14, true, 0x7, 0xDEAD000));

        ulong frame = oldRsp - 8 * 8;
        Assert.Equal(frame, regs.Rsp);
        Assert.Equal(0x1111UL, g.Read64(frame));                 // RCX
        Assert.Equal(0x2222UL, g.Read64(frame + 8));             // R11
        Assert.Equal(0x3UL, g.Read64(frame + 16));               // error code: user bit cleared (guest kernel)
        Assert.Equal(oldRip, g.Read64(frame + 24));              // RIP
        Assert.Equal((ulong)Xen.FLAT_KERNEL_CS64 & ~3UL, g.Read64(frame + 32));  // CS with RPL 0 = "from kernel", mask 0
        Assert.Equal(0x202UL, g.Read64(frame + 40));             // RFLAGS: IF = !mask
        Assert.Equal(oldRsp, g.Read64(frame + 48));              // RSP
        Assert.Equal((ulong)Xen.FLAT_KERNEL_SS64, g.Read64(frame + 56));
        Assert.Equal(Handler, regs.Rip);
        Assert.Equal((ulong)Xen.FLAT_KERNEL_CS64, regs.Cs);
        Assert.Equal((ulong)Xen.FLAT_KERNEL_SS64, regs.Ss);
        Assert.Equal(0xDEAD000UL, g.Cr2);
        Assert.Equal(0, g.UpcallMask);                            // no mask-events flag in the trap table
    }

    [Fact]
    public void SavedMaskGoesToCsHighBitsAndClearsIf_AndTrapFlagMasksEvents()
    {
        var g = new TrapsGuest();
        g.Trap(3, Handler, flags: 4 | 3);
        g.UpcallMask = 1;
        var regs = g.KernelFrame();
        regs.Rflags = 0x202 | 0x100 | 0x3000;                     // TF and IOPL set by the guest
        ulong oldRsp = regs.Rsp;
        Assert.True(TrapBounce.Bounce(g.V, ref regs, 3, false, 0, 0));
        ulong frame = oldRsp - 7 * 8;
        Assert.Equal(frame, regs.Rsp);
        Assert.Equal(((ulong)Xen.FLAT_KERNEL_CS64 & ~3UL) | (1UL << 32), g.Read64(frame + 24));
        Assert.Equal(0x102UL, g.Read64(frame + 32));              // IF clear (events were masked), IOPL cleared
        Assert.Equal(0UL, regs.Rflags & 0x100);                   // TF cleared for the handler
        Assert.Equal(1, g.UpcallMask);

        g.UpcallMask = 0;
        regs = g.KernelFrame();
        Assert.True(TrapBounce.Bounce(g.V, ref regs, 3, false, 0, 0));
        Assert.Equal(1, g.UpcallMask);                            // trap_info flag bit 2 masks events
    }

    [Fact]
    public void FromUserModeSwitchesToKernelStackAndTables()
    {
        var g = new TrapsGuest();
        g.Trap(6, Handler);
        g.V.KernelMode = false;
        var regs = g.KernelFrame();
        regs.Rsp = TrapsGuest.UserStackTop - 0x48;                 // not 16-byte aligned: the kernel stack is used anyway
        ulong userRsp = regs.Rsp;
        Assert.True(TrapBounce.Bounce(g.V, ref regs, 6, false, 0, 0));
        Assert.True(g.V.KernelMode);
        Assert.Equal(g.L4 << 12, g.T.Host.LoadedPageTableBases[^1]);
        ulong frame = TrapsGuest.KernelStackTop - 7 * 8;
        Assert.Equal(frame, regs.Rsp);
        Assert.Equal((ulong)Xen.FLAT_RING3_CS64, g.Read64(frame + 24) & 0xFFFF);   // RPL 3 = "from user"
        Assert.Equal(userRsp, g.Read64(frame + 40));
    }

    [Fact]
    public void StackIsAlignedDown()
    {
        var g = new TrapsGuest();
        g.Trap(0, Handler);
        var regs = g.KernelFrame();
        regs.Rsp -= 8;
        ulong aligned = regs.Rsp & ~0xFUL;
        Assert.True(TrapBounce.Bounce(g.V, ref regs, 0, false, 0, 0));
        Assert.Equal(aligned - 56, regs.Rsp);
    }

    [Fact]
    public void NoHandlerOrUnwritableOrHypervisorStackCrashesTheDomain()
    {
        var g = new TrapsGuest();
        var regs = g.KernelFrame();
        Assert.False(TrapBounce.Bounce(g.V, ref regs, 13, true, 0, 0));
        Assert.Equal(DomainState.Crashed, g.D.State);
        Assert.Contains("#GP", g.D.CrashReason);

        g = new TrapsGuest();
        g.Trap(13, Handler);
        regs = g.KernelFrame();
        regs.Rsp = 0x10_0000;                                      // unmapped
        Assert.False(TrapBounce.Bounce(g.V, ref regs, 13, true, 0, 0));
        Assert.Equal(DomainState.Crashed, g.D.State);

        g = new TrapsGuest();
        g.Trap(13, Handler);
        regs = g.KernelFrame();
        regs.Rsp = 0xFFFF_8000_0010_0000;                          // inside Xen's range
        Assert.False(TrapBounce.Bounce(g.V, ref regs, 13, true, 0, 0));
        Assert.Equal(DomainState.Crashed, g.D.State);
    }

    [Fact]
    public void EventUpcallIsDeliveredOnlyWhenPendingAndUnmasked()
    {
        var g = new TrapsGuest();
        g.V.EventCallback = Handler + 0x40;
        var regs = g.KernelFrame();
        ulong rip = regs.Rip;

        g.UpcallPending = 0; g.UpcallMask = 0;
        Assert.False(TrapBounce.DeliverEventUpcall(g.V, ref regs));
        g.UpcallPending = 1; g.UpcallMask = 1;
        Assert.False(TrapBounce.DeliverEventUpcall(g.V, ref regs));
        Assert.Equal(rip, regs.Rip);

        g.UpcallMask = 0;
        ulong oldRsp = regs.Rsp;
        Assert.True(TrapBounce.DeliverEventUpcall(g.V, ref regs));
        Assert.Equal(Handler + 0x40, regs.Rip);
        Assert.Equal(oldRsp - 56, regs.Rsp);                      // no error code
        Assert.Equal(rip, g.Read64(regs.Rsp + 16));
        Assert.Equal(0x202UL, g.Read64(regs.Rsp + 32));           // interrupted with events enabled
        Assert.Equal(1, g.UpcallMask);                             // masked during delivery
        Assert.False(TrapBounce.DeliverEventUpcall(g.V, ref regs)); // and so not delivered twice

        g = new TrapsGuest();
        g.UpcallPending = 1; g.UpcallMask = 0;
        regs = g.KernelFrame();
        Assert.False(TrapBounce.DeliverEventUpcall(g.V, ref regs)); // no callback registered yet
    }

    [Fact]
    public void SyscallFromUserGoesToTheSyscallCallbackMaskingIfAsked()
    {
        var g = new TrapsGuest();
        Assert.Equal(0, CallbackOp.Register(g.V, Callback.CALLBACKTYPE_syscall, Callback.CALLBACKF_mask_events, Handler + 0x80));
        g.V.KernelMode = false;
        g.UpcallMask = 0;
        var regs = g.KernelFrame();
        regs.Rsp = TrapsGuest.UserStackTop - 0x20;
        regs.Rflags = 0x202 | 0x400;                               // DF
        GuestTraps.HandleUserSyscall(g.V, ref regs);
        Assert.Equal(DomainState.Running, g.D.State);
        Assert.Equal(Handler + 0x80, regs.Rip);
        Assert.True(g.V.KernelMode);
        Assert.Equal(1, g.UpcallMask);
        Assert.Equal(0UL, regs.Rflags & 0x400);
    }
}
