using Microhv.HAL;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using static Microhv.Hypervisor.Public.VcpuOps;

namespace Microhv.Hypervisor.Events;

/// <summary>
/// vcpu_op(cmd, vcpuid, arg) (xen/common/domain.c common_vcpu_op, x86's do_vcpu_op) on any vCPU of
/// the calling domain: bringing a secondary vCPU up (initialise with a vcpu_guest_context, up, down,
/// is_up), its timers, runstate area and vcpu_info. An id the domain does not have is -ENOENT; the
/// one-shot timer can only be set or stopped by the vCPU itself, as in Xen.
/// </summary>
public static class VcpuOp
{
    public static long Do(Vcpu caller, ulong cmd, ulong vcpuId, ulong arg)
    {
        Vcpu v = caller.Domain.VcpuById((uint)vcpuId);
        if (v == null) return -Errno.ENOENT;
        switch ((int)(uint)cmd)
        {
            case VCPUOP_initialise: return Initialise(caller, v, arg);
            case VCPUOP_up: return Up(v);
            case VCPUOP_down: return Down(v);
            case VCPUOP_is_up: return v.Online ? 1 : 0;
            case VCPUOP_get_runstate_info:
                return Runstate.Write(caller, v, arg, v.Domain.Machine.Host.SystemTimeNs(), false) ? 0 : -Errno.EFAULT;
            case VCPUOP_register_runstate_memory_area: return RegisterRunstate(caller, v, arg);
            case VCPUOP_set_periodic_timer: return SetPeriodicTimer(caller, v, arg);
            case VCPUOP_stop_periodic_timer:
                Timers.SetPeriodic(v, 0);
                return 0;
            case VCPUOP_set_singleshot_timer:
                if (v != caller) return -Errno.EINVAL;
                return SetSingleshotTimer(v, arg);
            case VCPUOP_stop_singleshot_timer:
                if (v != caller) return -Errno.EINVAL;
                v.TimerDeadline = 0;
                return 0;
            case VCPUOP_register_vcpu_info: return RegisterVcpuInfo(caller, v, arg);
            case VCPUOP_get_physid: return -Errno.EINVAL;               // Xen answers only for pinned hardware-domain vCPUs
            default: return -Errno.ENOSYS;                              // send_nmi, register_vcpu_time_memory_area
        }
    }

    /// <summary>Xen's default_initialise_vcpu: a vCPU not yet given a context takes the guest's
    /// vcpu_guest_context (checked as setvcpucontext checks it) and stays down until VCPUOP_up.</summary>
    private static long Initialise(Vcpu caller, Vcpu v, ulong arg)
    {
        if (VcpuInfo.Address(v) == 0) return -Errno.EINVAL;              // no vcpu_info slot (Xen's dummy_vcpu_info)
        if (v.Initialised) return -Errno.EEXIST;
        return Toolstack.VcpuContext.Apply(caller, v, arg);
    }

    /// <summary>An initialised vCPU comes online and runs.</summary>
    private static long Up(Vcpu v)
    {
        if (!v.Initialised) return -Errno.EINVAL;
        if (!v.Online)
        {
            v.Online = true;
            Runstate.Change(v, Runstate.StateOf(v), v.Domain.Machine.Host.SystemTimeNs());
            v.Domain.Machine.Scheduler.WokeUp(v);
        }
        return 0;
    }

    /// <summary>The vCPU goes down; the last online vCPU going down powers the domain off, as in Xen.</summary>
    private static long Down(Vcpu v)
    {
        Domain d = v.Domain;
        bool othersUp = false;
        for (int i = 0; i < d.MaxVcpus; i++)
            if (i != v.Id && d.Vcpus[i].Online) othersUp = true;
        if (!othersUp)
        {
            SchedOp.Shutdown(d, Sched.SHUTDOWN_poweroff);
            return 0;
        }
        if (v.Online)
        {
            v.Online = false;
            if (!Scheduler.IsRunning(v)) Runstate.Change(v, VcpuOps.RUNSTATE_offline, d.Machine.Host.SystemTimeNs());
            v.PendingExitWork |= Traps.ExitWork.Reschedule;
        }
        return 0;
    }

    private static long SetPeriodicTimer(Vcpu caller, Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU64(caller, arg + periodic_period_ns, out ulong period)) return -Errno.EFAULT;
        if (period < Timers.MinPeriodNs || period > 0x7FFF_FFFF_FFFF_FFFF) return -Errno.EINVAL;
        Timers.SetPeriodic(v, period);
        return 0;
    }

    private static long SetSingleshotTimer(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU64(v, arg + singleshot_timeout_abs_ns, out ulong timeout)
            || !GuestMemory.ReadU32(v, arg + singleshot_flags, out uint flags))
            return -Errno.EFAULT;
        ulong now = v.Domain.Machine.Host.SystemTimeNs();
        if ((flags & VCPU_SSHOTTMR_future) != 0 && timeout < now) return -Errno.ETIME;
        Timers.SetSingleshot(v, timeout, now);
        return 0;
    }

    /// <summary>Records the guest virtual address (0 unregisters) and writes it once now; like Xen,
    /// only an address the guest could never reach is refused, a later write fault is ignored.</summary>
    private static long RegisterRunstate(Vcpu caller, Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU64(caller, arg + runstate_area_addr, out ulong va)) return -Errno.EFAULT;
        if (va != 0)
        {
            ulong last = va + runstate_size - 1;
            if (last < va || !PageTableEntry.IsCanonical(va) || !PageTableEntry.IsCanonical(last)
                || Layout.InHypervisorHole(va) || Layout.InHypervisorHole(last))
                return -Errno.EFAULT;
        }
        v.RunstateArea = va;
        // Written once now through the caller's address space, as Xen's copy_to_guest does (another
        // vCPU's tables may not exist yet: Linux registers each CPU's area before bringing it up).
        if (va != 0 && v.Initialised) Runstate.Update(v, v.Domain.Machine.Host.SystemTimeNs());
        else if (va != 0) Runstate.Write(caller, v, va, v.Domain.Machine.Host.SystemTimeNs(), false);
        return 0;
    }

    /// <summary>
    /// Moves vcpu_info into one of the guest's own frames (for a PV guest "mfn" is a machine frame).
    /// The frame gets a writable-type reference for good, so it can never become a page table the
    /// hypervisor would then scribble on. The old contents move over and every event is marked
    /// pending, as Xen does, so nothing raised during the move is lost.
    /// </summary>
    private static long RegisterVcpuInfo(Vcpu caller, Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU64(caller, arg + register_vcpu_info_mfn, out ulong mfn)
            || !GuestMemory.ReadU32(caller, arg + register_vcpu_info_offset, out uint offset))
            return -Errno.EFAULT;
        Domain d = v.Domain;
        if (offset > Layout.PageSize - SharedInfo.vcpu_info_size) return -Errno.EINVAL;
        if (v.VcpuInfoRegistered) return -Errno.EINVAL;
        if (PageTypes.GetPageAndType(d.Machine, d, mfn, FrameType.Writable) != 0) return -Errno.EINVAL;

        PhysicalMemory mem = d.Machine.Memory;
        ulong target = (mfn << Layout.PageShift) + offset;
        ulong old = VcpuInfo.Address(v);
        for (ulong i = 0; i < SharedInfo.vcpu_info_size; i += 8)
            mem.Write64(target + i, old == 0 ? 0 : mem.Read64(old + i));
        v.VcpuInfoAddress = target;
        v.VcpuInfoRegistered = true;
        mem.Write64(target + SharedInfo.evtchn_pending_sel, 0xFFFF_FFFF_FFFF_FFFF);
        VcpuInfo.MarkEventsPending(v);
        TimeInfo.Update(v);
        return 0;
    }
}
