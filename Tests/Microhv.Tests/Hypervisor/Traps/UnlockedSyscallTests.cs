using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Xunit;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>
/// A guest's system call and its iret, served without the hypervisor's lock when several processors take guests
/// (GuestEntry.CanRunUnlocked / SyscallUnlocked): which entries may, and that the unlocked path decides exactly
/// what the locked one does (same frame, guest memory, mode, page-table loads and exit record), each scenario run
/// on two identical guests, one per path. A crash on the way takes the lock (HypervisorHost.Serialize) and leaves
/// by the locked exit.
/// </summary>
public class UnlockedSyscallTests
{
    private const ulong Callback = 0xFFFF_FFFF_8100_0080, EventHandler = 0xFFFF_FFFF_8100_0100;
    private static readonly ulong IretSp = TrapsGuest.KernelStackTop - 0x200;

    /// <summary>One guest with its entry state, in guest user space with syscall and event callbacks.</summary>
    private sealed class Side
    {
        public readonly TrapsGuest G = new();
        public readonly GuestEntry E;

        public Side()
        {
            E = new GuestEntry(G.T.Machine) { Current = G.V };
            G.T.Machine.Scheduler.PickNext(null, true);
            G.V.SyscallCallback = Callback;
            G.V.EventCallback = EventHandler;
            G.V.KernelMode = false;
            G.UpcallMask = 0;
            G.V.GsBaseUser = 0xBEEF;
            G.V.GsBaseKernel = 0xCAFE;
            G.V.FsBase = 0x7000;
        }

        public TrapFrame UserFrame() => new TrapFrame
        {
            Rip = TrapsGuest.Va(TrapsGuest.CodeSlot) + 0x10, Rcx = TrapsGuest.Va(TrapsGuest.CodeSlot) + 0x10, Rflags = 0x246, R11 = 0x246,
            Cs = Xen.FLAT_RING3_CS64, Ss = Xen.FLAT_RING3_SS64, Rsp = TrapsGuest.UserStackTop - 0x20, Rax = 39, Vector = TrapFrame.SyscallVector,
        };

        /// <summary>HYPERVISOR_iret from the guest kernel to user space, its context at IretSp.</summary>
        public TrapFrame IretFrame(ulong flags)
        {
            G.V.KernelMode = true;
            G.Write64(IretSp + ArchX86.iret_rax, 7); G.Write64(IretSp + ArchX86.iret_r11, 0x99); G.Write64(IretSp + ArchX86.iret_rcx, 0x88);
            G.Write64(IretSp + ArchX86.iret_flags, flags); G.Write64(IretSp + ArchX86.iret_rip, 0x40_1000);
            G.Write64(IretSp + ArchX86.iret_cs, Xen.FLAT_RING3_CS64); G.Write64(IretSp + ArchX86.iret_rflags, 0x202);
            G.Write64(IretSp + ArchX86.iret_rsp, TrapsGuest.UserStackTop - 8); G.Write64(IretSp + ArchX86.iret_ss, Xen.FLAT_RING3_SS64);
            return new TrapFrame
            {
                Rax = Xen.__HYPERVISOR_iret, Rip = TrapsGuest.Va(TrapsGuest.CodeSlot) + 0x10, Rcx = TrapsGuest.Va(TrapsGuest.CodeSlot) + 0x10,
                Rflags = 0x246, R11 = 0x246, Cs = Xen.FLAT_KERNEL_CS64, Ss = Xen.FLAT_KERNEL_SS64, Rsp = IretSp, Vector = TrapFrame.SyscallVector,
            };
        }
    }

    /// <summary>Runs <paramref name="frameOf"/>'s entry locked on one guest and unlocked on another, and checks they agree.</summary>
    private static (Side Unlocked, ExitActions Actions, TrapFrame Frame) Both(System.Func<Side, TrapFrame> frameOf, System.Action<Side> setup = null)
    {
        var locked = new Side();
        var unlocked = new Side();
        setup?.Invoke(locked);
        setup?.Invoke(unlocked);
        TrapFrame fl = frameOf(locked), fu = frameOf(unlocked);
        Assert.True(unlocked.E.CanRunUnlocked(in fu));
        ExitActions a = locked.E.Syscall(ref fl, false);
        unlocked.E.Unlocked = true;
        ExitActions b = unlocked.E.SyscallUnlocked(ref fu);
        Assert.Equal(a, b);
        Assert.Equal(fl, fu);
        Assert.Equal(locked.G.V.KernelMode, unlocked.G.V.KernelMode);
        Assert.Equal(locked.G.T.Host.LoadedPageTableBases, unlocked.G.T.Host.LoadedPageTableBases);
        Assert.Equal(locked.E.Record.Actions, unlocked.E.Record.Actions);
        if ((a & (ExitActions.LoadFsBase | ExitActions.LoadGsBase)) != 0)
            Assert.Equal((locked.E.Record.FsBase, locked.E.Record.GsBase), (unlocked.E.Record.FsBase, unlocked.E.Record.GsBase));
        for (int slot = 0; slot < TrapsGuest.Slots; slot++)
            for (ulong off = 0; off < 4096; off += 8)
                Assert.Equal(locked.G.Read64(TrapsGuest.Va(slot) + off), unlocked.G.Read64(TrapsGuest.Va(slot) + off));
        Assert.Equal(locked.G.UpcallMask, unlocked.G.UpcallMask);
        Assert.Equal(locked.G.D.HypercallCounts[Xen.__HYPERVISOR_iret], unlocked.G.D.HypercallCounts[Xen.__HYPERVISOR_iret]);
        return (unlocked, b, fu);
    }

    [Fact]
    public void A_system_call_from_user_space_bounces_to_the_kernel_as_under_the_lock()
    {
        var (u, actions, f) = Both(s => s.UserFrame());
        Assert.Equal(ExitActions.LoadFsBase | ExitActions.LoadGsBase, actions);
        Assert.True(u.G.V.KernelMode);
        Assert.Equal(Callback, f.Rip);
        Assert.Equal(0xCAFEUL, u.E.Record.GsBase);
        Assert.True(u.E.Unlocked);                                 // nothing took the lock
    }

    [Fact]
    public void An_iret_to_user_space_returns_as_under_the_lock()
    {
        var (u, actions, _) = Both(s => s.IretFrame(0));
        Assert.Equal(ExitActions.LoadFsBase | ExitActions.LoadGsBase, actions);         // IRETQ: RCX/R11 are the context's
        Assert.False(u.G.V.KernelMode);
        Assert.Equal(0xBEEFUL, u.E.Record.GsBase);
        Assert.Equal(1UL, u.G.D.HypercallCounts[Xen.__HYPERVISOR_iret]);

        (u, actions, _) = Both(s => s.IretFrame(ArchX86.VGCF_in_syscall));
        Assert.Equal(ExitActions.LoadFsBase | ExitActions.LoadGsBase | ExitActions.Sysret, actions);
        Assert.True(u.E.Unlocked);
    }

    [Fact]
    public void A_pending_event_is_delivered_on_the_way_out_as_under_the_lock()
    {
        var (u, actions, _) = Both(s => s.UserFrame(), s => s.G.UpcallPending = 1);
        Assert.Equal(ExitActions.LoadFsBase | ExitActions.LoadGsBase | ExitActions.Upcall, actions);
        Assert.Equal(1, u.G.UpcallMask);

        (u, actions, _) = Both(s => s.IretFrame(0), s => s.G.UpcallPending = 1);
        Assert.True((actions & ExitActions.Upcall) != 0);            // unmasked by the iret, delivered at once
        Assert.True(u.G.V.KernelMode);
    }

    [Fact]
    public void A_crash_on_the_way_takes_the_lock_and_leaves_by_the_locked_exit()
    {
        var u = new Side();
        u.G.V.KernelSp = 0x7F00_0000_0000;                           // unmapped: the bounce frame cannot be written
        TrapFrame f = u.UserFrame();
        Assert.True(u.E.CanRunUnlocked(in f));
        u.E.Unlocked = true;
        ExitActions a = u.E.SyscallUnlocked(ref f);
        Assert.Equal(DomainState.Crashed, u.G.D.State);
        Assert.True(u.G.T.Host.Serializations > 0);
        Assert.True((a & ExitActions.ReportCrash) != 0);
        Assert.True((a & ExitActions.Switch) != 0);                   // off the dead domain, under the lock
    }

    [Fact]
    public void Only_a_user_system_call_or_an_iret_with_nothing_waiting_runs_unlocked()
    {
        var s = new Side();
        TrapFrame f = s.UserFrame();
        Assert.True(s.E.CanRunUnlocked(in f));
        s.G.V.SyscallCallback = 0;                                   // #UD at the SYSCALL: a bounce through the trap table
        Assert.False(s.E.CanRunUnlocked(in f));
        s.G.V.SyscallCallback = Callback;
        s.G.V.PendingExitWork = ExitWork.Reschedule;                 // another processor asked for a decision
        Assert.False(s.E.CanRunUnlocked(in f));
        s.G.V.PendingExitWork = ExitWork.None;
        s.G.D.PauseCount = 1;                                        // paused by the toolstack
        Assert.False(s.E.CanRunUnlocked(in f));
        s.G.D.PauseCount = 0;

        f = s.IretFrame(0);
        Assert.True(s.E.CanRunUnlocked(in f));
        f.Rax = Xen.__HYPERVISOR_xen_version;                        // any other hypercall takes the lock
        Assert.False(s.E.CanRunUnlocked(in f));
        s.E.Current = null;
        Assert.False(s.E.CanRunUnlocked(in f));
    }
    /// <summary>No processor writes through a vCPU another processor runs: Runstate.Update (every processor's tick
    /// refreshed every vCPU's area) flipped the vCPU's guest mode for the write, and an unlocked entry on the vCPU's
    /// own processor read the flipped mode (dom0 on -smp 4 then took a user system call for a hypercall and crashed).</summary>
    [Fact]
    public void A_vcpu_running_on_another_processor_is_left_to_it()
    {
        var s = new Side();
        ulong area = TrapsGuest.Va(TrapsGuest.ArgsSlot);
        s.G.V.RunstateArea = area;
        s.G.V.RunstateState = VcpuOps.RUNSTATE_running;
        s.G.V.RunstateEntry = 5;
        s.G.T.Machine.Scheduler.Join(1);
        s.G.V.RunningOn = 1;                                          // on CPU 1; the hypervisor acts for CPU 0
        s.G.T.Machine.Cpu = 0;
        Runstate.Update(s.G.V, 100);
        Assert.Equal(0UL, s.G.Read64(area + VcpuOps.runstate_state_entry_time));
        s.G.V.RunningOn = 0;                                          // its own processor writes it
        Runstate.Update(s.G.V, 100);
        Assert.Equal(5UL, s.G.Read64(area + VcpuOps.runstate_state_entry_time));
        Assert.False(s.G.V.KernelMode);
    }
}
