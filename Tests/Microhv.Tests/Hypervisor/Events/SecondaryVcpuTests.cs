using Microhv.Hypervisor;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Microhv.Tests.Hypervisor.Services;
using Xunit;
using C = Microhv.Hypervisor.Public.VcpuGuestContext;
using E = Microhv.Hypervisor.Public.EventChannel;
using static Microhv.Hypervisor.Public.VcpuOps;

namespace Microhv.Tests.Hypervisor.Events;

/// <summary>
/// A domain with several vCPUs, as Linux brings its secondary CPUs up on Xen (arch/x86/xen/smp_pv.c):
/// VCPUOP_is_up tells which vCPUs exist, VCPUOP_initialise gives one its first context, VCPUOP_up starts
/// it; IPIs and per-vCPU VIRQs notify their own vCPU; a vCPU woken from blocking runs first; the last
/// vCPU going down powers the domain off. Xen 4.17's common_vcpu_op and event_channel.c are the reference.
/// </summary>
public sealed class SecondaryVcpuTests
{
    private const ulong Arg = ServiceGuest.Base;                 // small arguments
    private const ulong Ctx = ServiceGuest.Base + 0x2000;        // a vcpu_guest_context (5168 bytes)
    private const ulong Rip1 = 0xFFFF_FFFF_8100_1000;
    private readonly ServiceGuest _g = new(id: 0, initial: true);
    private readonly Domain _d;
    private readonly Vcpu _v0, _v1;

    public SecondaryVcpuTests()
    {
        _d = _g.D;
        _d.MaxVcpus = 2;
        _d.SharedInfoMfn = _g.Tm.NewFrame(FrameTable.OwnerXen);
        _v0 = _d.Vcpu;
        _v0.Initialised = true;
        _v1 = _d.Vcpus[1];
        _g.Tm.Machine.Scheduler.PickNext(null, true);            // vCPU 0 is on the CPU
        Assert.Same(_v0, _g.Tm.Machine.Scheduler.Running);
    }

    private long VcpuOp(int cmd, uint vcpu, ulong arg = Arg) => Microhv.Hypervisor.Events.VcpuOp.Do(_v0, (ulong)cmd, vcpu, arg);

    /// <summary>What Linux's cpu_initialize_context gives a secondary CPU: kernel mode, its stack, the kernel's L4.</summary>
    private void WriteContext(ulong rip)
    {
        for (ulong i = 0; i < (ulong)C.size; i += 8) _g.W64(Ctx + i, 0);
        _g.W64(Ctx + (ulong)C.flags, ArchX86.VGCF_in_kernel);
        _g.W64(Ctx + (ulong)C.user_regs + (ulong)C.rip, rip);
        _g.W64(Ctx + (ulong)C.user_regs + (ulong)C.rsp, 0xFFFF_C900_0000_4000);
        _g.W16(Ctx + (ulong)C.user_regs + (ulong)C.cs, Xen.FLAT_KERNEL_CS64);
        _g.W16(Ctx + (ulong)C.user_regs + (ulong)C.ss, Xen.FLAT_KERNEL_SS64);
        _g.W64(Ctx + (ulong)C.user_regs + (ulong)C.rflags, 0x1000);               // IOPL 1, as Linux sets it
        _g.W64(Ctx + (ulong)C.kernel_ss, Xen.FLAT_KERNEL_SS64);
        _g.W64(Ctx + (ulong)C.kernel_sp, 0xFFFF_C900_0000_4000);
        _g.W64(Ctx + (ulong)C.event_callback_eip, 0xFFFF_FFFF_8100_2000);
        _g.W64(Ctx + (ulong)C.gs_base_kernel, 0xFFFF_8880_0100_0000);
        _g.W64(Ctx + (ulong)C.ctrlreg + 24, _v0.GuestTable);
    }

    private void BringUp()
    {
        WriteContext(Rip1);
        Assert.Equal(0, VcpuOp(VCPUOP_initialise, 1, Ctx));
        Assert.Equal(0, VcpuOp(VCPUOP_up, 1));
    }

    private ulong VcpuInfo(int id) => _d.SharedInfoMfn * 4096 + (ulong)(id * SharedInfo.vcpu_info_size);
    private byte UpcallPending(int id) => _g.Tm.Memory.Read8(VcpuInfo(id) + SharedInfo.evtchn_upcall_pending);

    [Fact]
    public void A_domain_has_the_vcpus_it_was_given_and_no_more()
    {
        Assert.Equal(1, VcpuOp(VCPUOP_is_up, 0));
        Assert.Equal(0, VcpuOp(VCPUOP_is_up, 1));                // exists, down: Linux counts it as possible
        Assert.Equal(-Errno.ENOENT, VcpuOp(VCPUOP_is_up, 2));
        Assert.Equal(-Errno.ENOENT, VcpuOp(VCPUOP_initialise, 7));
        Assert.Equal(-Errno.EINVAL, VcpuOp(VCPUOP_up, 1));      // no context yet
        Assert.Equal(-Errno.EEXIST, VcpuOp(VCPUOP_initialise, 0));
        Assert.Equal(-Errno.ENOSYS, VcpuOp(77, 1));
    }

    [Fact]
    public void Initialise_then_up_starts_a_secondary_vcpu_which_runs_next()
    {
        WriteContext(Rip1);
        Assert.Equal(0, VcpuOp(VCPUOP_initialise, 1, Ctx));
        Assert.True(_v1.Initialised);
        Assert.False(_v1.Online);                                // down until VCPUOP_up
        Assert.Equal(Rip1, _v1.Regs.Rip);
        Assert.Equal(_v0.GuestTable, _v1.GuestTable);
        Assert.Equal(1, _v1.Iopl);
        Assert.Equal(0xFFFF_8880_0100_0000UL, _v1.GsBaseKernel);
        Assert.Equal(-Errno.EEXIST, VcpuOp(VCPUOP_initialise, 1, Ctx));
        Assert.Equal(0, VcpuOp(VCPUOP_is_up, 1));

        Assert.Equal(0, VcpuOp(VCPUOP_up, 1));
        Assert.Equal(1, VcpuOp(VCPUOP_is_up, 1));
        Assert.True(_v1.Boosted);
        // Linux's BSP yields until the new CPU reports itself online: the new vCPU runs at once.
        Assert.Same(_v1, _g.Tm.Machine.Scheduler.PickNext(_v0, true));
        Assert.Same(_v0, _g.Tm.Machine.Scheduler.PickNext(_v1, true));
    }

    [Fact]
    public void A_context_with_a_bad_address_is_refused_and_the_vcpu_stays_uninitialised()
    {
        WriteContext(0x8000_0000_0000_0000);                     // non-canonical RIP
        Assert.Equal(-Errno.EINVAL, VcpuOp(VCPUOP_initialise, 1, Ctx));
        Assert.False(_v1.Initialised);
        Assert.Equal(-Errno.EFAULT, VcpuOp(VCPUOP_initialise, 1, ServiceGuest.Unmapped));
        Assert.Equal(-Errno.EINVAL, VcpuOp(VCPUOP_up, 1));
    }

    [Fact]
    public void The_context_gives_the_data_segment_selectors_and_the_failsafe_mask()
    {
        WriteContext(Rip1);
        _g.W16(Ctx + (ulong)C.user_regs + (ulong)C.ds, 0x2B);
        _g.W16(Ctx + (ulong)C.user_regs + (ulong)C.es, 0x2B);
        _g.W16(Ctx + (ulong)C.user_regs + (ulong)C.fs, 0x0F);
        _g.W16(Ctx + (ulong)C.user_regs + (ulong)C.gs, 0x17);
        _g.W64(Ctx + (ulong)C.flags, ArchX86.VGCF_in_kernel | ArchX86.VGCF_failsafe_disables_events);
        Assert.Equal(0, VcpuOp(VCPUOP_initialise, 1, Ctx));
        Assert.Equal((0x2B, 0x2B, 0x0F, 0x17), ((int)_v1.Ds, (int)_v1.Es, (int)_v1.Fs, (int)_v1.Gs));
        Assert.True(_v1.FailsafeMasksEvents);
    }

    [Fact]
    public void The_context_sets_debug_registers_as_set_debugreg_would_ignoring_refused_values()
    {
        WriteContext(Rip1);
        _g.W64(Ctx + (ulong)C.debugreg + 0 * 8, 0x7000_1000);                 // fine
        _g.W64(Ctx + (ulong)C.debugreg + 1 * 8, 0xFFFF_8000_0000_1000);       // in the hypervisor's hole: refused, ignored
        _g.W64(Ctx + (ulong)C.debugreg + 7 * 8, 0x401);                       // L0
        Assert.Equal(0, VcpuOp(VCPUOP_initialise, 1, Ctx));
        Assert.Equal(0x7000_1000UL, _v1.Debug.Dr0);
        Assert.Equal(0UL, _v1.Debug.Dr1);
        Assert.Equal(0x401UL, _v1.Debug.Dr7 & 0x401);
        Assert.True(DebugRegisters.Active(_v1));
    }

    [Fact]
    public void Ipis_and_per_vcpu_virqs_notify_their_own_vcpu()
    {
        BringUp();
        EventChannels ec = _d.EventChannels;
        int ipi = ec.BindIpi(1);
        Assert.True(ipi > 0);
        Assert.Equal(1, ec.NotifyVcpuOf(ipi));
        Assert.Equal(-(int)Errno.ENOENT, ec.BindIpi(2));
        Assert.Equal(0, ec.Send(ipi));
        Assert.Equal(1, UpcallPending(1));
        Assert.Equal(0, UpcallPending(0));

        int t0 = ec.BindVirq(Xen.VIRQ_TIMER, 0), t1 = ec.BindVirq(Xen.VIRQ_TIMER, 1);
        Assert.True(t0 > 0 && t1 > 0 && t0 != t1);
        Assert.Equal(-(int)Errno.EEXIST, ec.BindVirq(Xen.VIRQ_TIMER, 1));
        Assert.Equal(-(int)Errno.EINVAL, ec.BindVirq(Xen.VIRQ_DOM_EXC, 1));       // global VIRQs are bound on vCPU 0
        Assert.Equal(-(int)Errno.ENOENT, ec.BindVirq(Xen.VIRQ_TIMER, 2));
        Assert.True(ec.SendVirq(Xen.VIRQ_TIMER, 1));
        Assert.True(ec.IsPending(t1));
        Assert.False(ec.IsPending(t0));
        Assert.Equal(0, ec.Close(t1));
        Assert.Equal(t0, ec.PortOfVirq(Xen.VIRQ_TIMER, 0));     // closing vCPU 1's leaves vCPU 0's
        Assert.Equal(0, ec.PortOfVirq(Xen.VIRQ_TIMER, 1));

        // bind_vcpu moves an unbound or interdomain port, never a per-vCPU VIRQ or an IPI.
        int unbound = ec.AllocUnbound(0);
        Assert.Equal(0, ec.BindVcpu(unbound, 1));
        Assert.Equal(1, ec.NotifyVcpuOf(unbound));
        Assert.Equal(-Errno.EINVAL, ec.BindVcpu(t0, 1));
        Assert.Equal(-Errno.EINVAL, ec.BindVcpu(ipi, 0));
        Assert.Equal(-Errno.ENOENT, ec.BindVcpu(unbound, 2));
    }

    [Fact]
    public void The_status_of_a_port_names_the_vcpu_it_notifies()
    {
        BringUp();
        int ipi = _d.EventChannels.BindIpi(1);
        _g.W16(Arg + (ulong)E.status_dom, Xen.DOMID_SELF);
        _g.W32(Arg + (ulong)E.status_port, (uint)ipi);
        Assert.Equal(0, EventChannelOp.Do(_v0, E.EVTCHNOP_status, Arg));
        Assert.Equal((uint)E.EVTCHNSTAT_ipi, _g.R32(Arg + (ulong)E.status_status));
        Assert.Equal(1u, _g.R32(Arg + (ulong)E.status_vcpu));
    }

    [Fact]
    public void A_blocked_vcpu_woken_by_an_ipi_preempts_the_sender()
    {
        BringUp();
        Scheduler s = _g.Tm.Machine.Scheduler;
        Assert.Same(_v1, s.PickNext(_v0, true));
        _g.Tm.Memory.Write8(VcpuInfo(1) + SharedInfo.evtchn_upcall_mask, 0);
        Assert.Equal(0, SchedOp.Do(_v1, Sched.SCHEDOP_block, 0));
        Assert.True(_v1.Blocked);
        Assert.Same(_v0, s.PickNext(_v1, true));
        _v0.PendingExitWork = ExitWork.None;

        int ipi = _d.EventChannels.BindIpi(1);
        _g.Tm.Host.NowNs += Scheduler.RatelimitNs;              // vCPU 0 has run its ratelimit
        Assert.Equal(0, _d.EventChannels.Send(ipi));
        Assert.False(_v1.Blocked);
        Assert.True(_v1.Boosted);
        Assert.True((_v0.PendingExitWork & ExitWork.Reschedule) != 0);
        Assert.Same(_v1, s.PickNext(_v0, true));
        Assert.False(_v1.Boosted);
    }

    [Fact]
    public void A_wakeup_preempts_only_after_the_running_vcpus_ratelimit()
    {
        BringUp();
        Scheduler s = _g.Tm.Machine.Scheduler;
        _g.Tm.Host.NowNs = 10_000_000;
        Assert.Same(_v1, s.PickNext(_v0, true));
        _g.Tm.Memory.Write8(VcpuInfo(1) + SharedInfo.evtchn_upcall_mask, 0);
        Assert.Equal(0, SchedOp.Do(_v1, Sched.SCHEDOP_block, 0));
        Assert.Same(_v0, s.PickNext(_v1, true));                 // vCPU 0 runs from 10 ms
        _v0.PendingExitWork = ExitWork.None;
        Assert.Equal(0, VcpuOp(VCPUOP_stop_periodic_timer, 0));
        Assert.Equal(0, VcpuOp(VCPUOP_stop_periodic_timer, 1));

        _g.Tm.Host.NowNs = 10_400_000;                           // 0.4 ms into its run: held back
        int ipi = _d.EventChannels.BindIpi(1);
        Assert.Equal(0, _d.EventChannels.Send(ipi));
        Assert.True(_v1.Boosted);
        Assert.Equal(ExitWork.TimersChanged, _v0.PendingExitWork);
        Assert.Equal(11_000_000UL, s.PreemptAt);
        Assert.Equal(11_000_000UL, Timers.NextDeadline(_g.Tm.Machine));
        _g.Tm.Host.NowNs = 10_900_000;
        Timers.Tick(_g.Tm.Machine);
        Assert.Equal(ExitWork.TimersChanged, _v0.PendingExitWork);
        _g.Tm.Host.NowNs = 11_000_000;                           // the ratelimit's end: now the switch
        Timers.Tick(_g.Tm.Machine);
        Assert.True((_v0.PendingExitWork & ExitWork.Reschedule) != 0);
        Assert.Same(_v1, s.PickNext(_v0, true));
        Assert.Equal(0UL, s.PreemptAt);
    }

    [Fact]
    public void Each_vcpu_has_its_own_timers_and_only_it_sets_its_one_shot()
    {
        BringUp();
        Assert.Same(_v1, _g.Tm.Machine.Scheduler.PickNext(_v0, true));   // the new vCPU runs: no preemption pending
        int t1 = _d.EventChannels.BindVirq(Xen.VIRQ_TIMER, 1);
        _g.W64(Arg + (ulong)singleshot_timeout_abs_ns, 5_000_000);
        _g.W32(Arg + (ulong)singleshot_flags, 0);
        Assert.Equal(-Errno.EINVAL, VcpuOp(VCPUOP_set_singleshot_timer, 1));
        Assert.Equal(-Errno.EINVAL, VcpuOp(VCPUOP_stop_singleshot_timer, 1));
        Assert.Equal(0, VcpuOp(VCPUOP_stop_periodic_timer, 0));
        Assert.Equal(0, VcpuOp(VCPUOP_stop_periodic_timer, 1));   // any vCPU's periodic timer, as in Xen
        Assert.Equal(0, Microhv.Hypervisor.Events.VcpuOp.Do(_v1, VCPUOP_set_singleshot_timer, 1, Arg));
        Assert.Equal(5_000_000UL, _v1.TimerDeadline);
        Assert.Equal(0UL, _v0.TimerDeadline);
        Assert.Equal(5_000_000UL, Timers.NextDeadline(_g.Tm.Machine));
        _g.Tm.Host.NowNs = 6_000_000;
        Timers.Tick(_g.Tm.Machine);
        Assert.True(_d.EventChannels.IsPending(t1));
    }

    [Fact]
    public void Down_takes_a_vcpu_offline_and_the_last_one_powers_the_domain_off()
    {
        BringUp();
        Assert.Equal(0, VcpuOp(VCPUOP_down, 1));
        Assert.False(_v1.Online);
        Assert.False(Scheduler.IsRunnable(_v1));
        Assert.Equal(DomainState.Running, _d.State);
        Assert.Equal(0, VcpuOp(VCPUOP_up, 1));                   // still initialised: up again
        Assert.True(_v1.Online);
        Assert.Equal(0, VcpuOp(VCPUOP_down, 1));
        Assert.Equal(0, VcpuOp(VCPUOP_down, 0));
        Assert.Equal(DomainState.Shutdown, _d.State);
        Assert.Equal(Sched.SHUTDOWN_poweroff, _d.ShutdownReason);
    }

    [Fact]
    public void Getdomaininfo_counts_online_vcpus_and_names_the_last_id()
    {
        ulong info = ServiceGuest.Base + 0x1000;
        Assert.True(DomainInfo.Write(_v0, info, _d));
        Assert.Equal(1u, _g.R32(info + (ulong)Microhv.Hypervisor.Public.Domctl.info_nr_online_vcpus));
        Assert.Equal(1u, _g.R32(info + (ulong)Microhv.Hypervisor.Public.Domctl.info_max_vcpu_id));
        BringUp();
        Assert.True(DomainInfo.Write(_v0, info, _d));
        Assert.Equal(2u, _g.R32(info + (ulong)Microhv.Hypervisor.Public.Domctl.info_nr_online_vcpus));
        _v1.Blocked = true;
        uint flags = DomainInfo.Flags(_d, _v0);
        Assert.Equal(0u, flags & Microhv.Hypervisor.Public.Domctl.XEN_DOMINF_blocked);   // vCPU 0 is not blocked
        Assert.NotEqual(0u, flags & Microhv.Hypervisor.Public.Domctl.XEN_DOMINF_running);
    }
}
