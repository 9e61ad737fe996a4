using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Xunit;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>
/// The exit's IRETQ refused the frame the guest chose (Boot/traps.asm exit_iretq_faulted): as Xen 4.17,
/// the fault is the guest's own exception at the iret's target, bounced to its handler with the refused
/// selector in the frame, or the end of that domain alone when it has no handler.
/// </summary>
public class ExitFaultTests
{
    private const ulong Handler = 0xFFFF_FFFF_8100_0000;
    private static readonly ulong Target = TrapsGuest.Va(TrapsGuest.CodeSlot) + 0x40;

    /// <summary>The frame the stub hands over: the refused IRETQ frame with the fault's vector and error code.</summary>
    private static TrapFrame Refused(int vector, ulong error, ulong cs, ulong ss, ulong rsp) => new TrapFrame
    {
        Rip = Target, Cs = cs, Ss = ss, Rsp = rsp, Rflags = 0x202, Rcx = 0x1111, R11 = 0x2222, Rax = 0x3333,
        Vector = (ulong)vector | TrapFrame.ExitFaultFlag, ErrorCode = error,
    };

    [Fact]
    public void Refused_CS_in_kernel_mode_is_a_GP_at_the_target_with_the_selector()
    {
        var g = new TrapsGuest();
        g.Trap(13, Handler);
        g.UpcallMask = 0;
        ulong rsp = TrapsGuest.KernelStackTop - 0x100;
        var regs = Refused(13, 0x1000, 0x1003, Xen.FLAT_KERNEL_SS64, rsp);
        ExitFault.Handle(g.V, ref regs);
        Assert.Equal(DomainState.Running, g.D.State);
        Assert.Equal(13UL, regs.Vector);                          // the stub's mark is gone
        Assert.Equal(Handler, regs.Rip);
        Assert.Equal((ulong)Xen.FLAT_KERNEL_CS64, regs.Cs);
        Assert.Equal((ulong)Xen.FLAT_KERNEL_SS64, regs.Ss);
        ulong f = regs.Rsp;
        Assert.Equal(rsp - 8 * 8, f);                             // pushed on the stack the iret went to
        Assert.Equal(0x1111UL, g.Read64(f));                      // rcx, r11, error code, rip, cs, rflags, rsp, ss
        Assert.Equal(0x2222UL, g.Read64(f + 8));
        Assert.Equal(0x1000UL, g.Read64(f + 16));
        Assert.Equal(Target, g.Read64(f + 24));
        Assert.Equal(0x1000UL, g.Read64(f + 32) & 0xFFFF);       // the refused CS, RPL 0: from the kernel
        Assert.Equal(rsp, g.Read64(f + 48));
        Assert.Equal(0x3333UL, regs.Rax);
    }

    [Fact]
    public void Not_present_SS_after_an_iret_to_user_mode_bounces_on_the_kernel_stack()
    {
        var g = new TrapsGuest();
        g.Trap(12, Handler);
        g.V.KernelSp = TrapsGuest.KernelStackTop;
        g.V.KernelMode = false;                                   // Iret.Do toggled to user mode before the IRETQ
        var regs = Refused(12, 0x2008, Xen.FLAT_RING3_CS64, 0x200B, TrapsGuest.UserStackTop - 0x40);
        ExitFault.Handle(g.V, ref regs);
        Assert.Equal(DomainState.Running, g.D.State);
        Assert.True(g.V.KernelMode);
        Assert.Equal(Handler, regs.Rip);
        ulong f = regs.Rsp;
        Assert.Equal(TrapsGuest.KernelStackTop - 8 * 8, f);
        Assert.Equal(0x2008UL, g.Read64(f + 16));
        Assert.Equal((ulong)Xen.FLAT_RING3_CS64, g.Read64(f + 32) & 0xFFFF);   // user mode: RPL 3 kept
        Assert.Equal(0x200BUL, g.Read64(f + 56) & 0xFFFF);
    }

    [Fact]
    public void No_handler_crashes_only_that_domain_and_says_why()
    {
        var g = new TrapsGuest();
        Domain other = g.T.AddDomain(2);
        var regs = Refused(13, 0x0004, 0x0007, Xen.FLAT_KERNEL_SS64, TrapsGuest.KernelStackTop - 0x100);
        ExitFault.Handle(g.V, ref regs);
        Assert.Equal(DomainState.Crashed, g.D.State);
        Assert.Contains("returning to the guest", g.D.CrashReason);
        Assert.Contains("#GP", g.D.CrashReason);
        Assert.NotEqual(DomainState.Crashed, other.State);

        g = new TrapsGuest();
        regs = Refused(11, 0x1000, 0x1003, Xen.FLAT_KERNEL_SS64, TrapsGuest.KernelStackTop - 0x100);
        ExitFault.Handle(g.V, ref regs);
        Assert.Equal(DomainState.Crashed, g.D.State);
        Assert.Contains("#NP", g.D.CrashReason);
    }

    [Fact]
    public void A_frame_that_cannot_be_written_where_the_iret_went_crashes_only_that_domain()
    {
        // The iret context named a stack in the hypervisor's range, or one that is not mapped: Xen's
        // create_bounce_frame crashes the domain, as it would for any exception there.
        var g = new TrapsGuest();
        g.Trap(13, Handler);
        var regs = Refused(13, 0x1000, 0x1003, Xen.FLAT_KERNEL_SS64, 0xFFFF_8000_0001_0000);
        ExitFault.Handle(g.V, ref regs);
        Assert.Equal(DomainState.Crashed, g.D.State);

        g = new TrapsGuest();
        g.Trap(13, Handler);
        regs = Refused(13, 0x1000, 0x1003, Xen.FLAT_KERNEL_SS64, 0x20_0000);
        ExitFault.Handle(g.V, ref regs);
        Assert.Equal(DomainState.Crashed, g.D.State);
        Assert.Contains("bounce frame", g.D.CrashReason);
    }

    [Fact]
    public void Non_canonical_RIP_is_a_GP_0_at_that_RIP_after_the_emulator_declines()
    {
        var g = new TrapsGuest();
        g.Trap(13, Handler);
        var regs = Refused(13, 0, Xen.FLAT_KERNEL_CS64, Xen.FLAT_KERNEL_SS64, TrapsGuest.KernelStackTop - 0x100);
        regs.Rip = 0x0000_8000_0000_0000;
        ExitFault.Handle(g.V, ref regs);
        Assert.Equal(DomainState.Running, g.D.State);
        Assert.Equal(Handler, regs.Rip);
        Assert.Equal(0x0000_8000_0000_0000UL, g.Read64(regs.Rsp + 24));
        Assert.Equal(0UL, g.Read64(regs.Rsp + 16));
    }

    [Fact]
    public void GuestEntry_counts_it_and_leaves_to_the_handler()
    {
        var g = new TrapsGuest();
        g.Trap(13, Handler);
        var e = new GuestEntry(g.T.Machine) { Current = g.V };
        g.T.Machine.Scheduler.PickNext(null, true);
        var regs = Refused(13, 0x1000, 0x1003, Xen.FLAT_KERNEL_SS64, TrapsGuest.KernelStackTop - 0x100);
        ExitActions a = e.ExitFaulted(ref regs);
        Assert.Equal(1UL, e.ExitFaults);
        Assert.Equal(Handler, regs.Rip);
        Assert.Equal(DomainState.Running, g.D.State);
        Assert.Equal(0, (int)(a & ExitActions.ReportCrash));

        g.V.TrapTable[13] = default;                             // no handler: the crash is reported by the exit
        regs = Refused(13, 0x1000, 0x1003, Xen.FLAT_KERNEL_SS64, TrapsGuest.KernelStackTop - 0x100);
        a = e.ExitFaulted(ref regs);
        Assert.Equal(DomainState.Crashed, g.D.State);
        Assert.NotEqual(0, (int)(a & ExitActions.ReportCrash));
    }
}
