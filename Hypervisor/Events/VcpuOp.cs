using Microhv.HAL;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using static Microhv.Hypervisor.Public.VcpuOps;

namespace Microhv.Hypervisor.Events;

/// <summary>
/// vcpu_op(cmd, vcpuid, arg) (xen/common/domain.c do_vcpu_op, arch_do_vcpu_op): every Microhv
/// domain has exactly vCPU 0, always up, so other ids are -ENOENT like absent vCPUs on Xen, and
/// hotplug reduces to answers. The rest are the vCPU's timers, runstate area and vcpu_info.
/// </summary>
public static class VcpuOp
{
    public static long Do(Vcpu v, ulong cmd, ulong vcpuId, ulong arg)
    {
        if ((uint)vcpuId != 0) return -Errno.ENOENT;
        switch ((int)(uint)cmd)
        {
            case VCPUOP_initialise: return -Errno.EEXIST;              // vCPU 0 was initialised by the domain builder
            case VCPUOP_up: return 0;
            case VCPUOP_down:
                SchedOp.Shutdown(v.Domain, Sched.SHUTDOWN_poweroff);   // Xen: the last vCPU going down powers off
                return 0;
            case VCPUOP_is_up: return 1;
            case VCPUOP_get_runstate_info:
                return Runstate.Write(v, arg, v.Domain.Machine.Host.SystemTimeNs(), false) ? 0 : -Errno.EFAULT;
            case VCPUOP_register_runstate_memory_area: return RegisterRunstate(v, arg);
            case VCPUOP_set_periodic_timer: return SetPeriodicTimer(v, arg);
            case VCPUOP_stop_periodic_timer:
                Timers.SetPeriodic(v, 0);
                return 0;
            case VCPUOP_set_singleshot_timer: return SetSingleshotTimer(v, arg);
            case VCPUOP_stop_singleshot_timer:
                v.TimerDeadline = 0;
                return 0;
            case VCPUOP_register_vcpu_info: return RegisterVcpuInfo(v, arg);
            case VCPUOP_get_physid: return -Errno.EINVAL;               // Xen answers only for pinned hardware-domain vCPUs
            default: return -Errno.ENOSYS;                              // send_nmi, register_vcpu_time_memory_area
        }
    }

    private static long SetPeriodicTimer(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU64(v, arg + periodic_period_ns, out ulong period)) return -Errno.EFAULT;
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
    private static long RegisterRunstate(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU64(v, arg + runstate_area_addr, out ulong va)) return -Errno.EFAULT;
        if (va != 0)
        {
            ulong last = va + runstate_size - 1;
            if (last < va || !PageTableEntry.IsCanonical(va) || !PageTableEntry.IsCanonical(last)
                || Layout.InHypervisorHole(va) || Layout.InHypervisorHole(last))
                return -Errno.EFAULT;
        }
        v.Domain.EventChannels.RunstateArea = va;
        Runstate.Update(v, v.Domain.Machine.Host.SystemTimeNs());
        return 0;
    }

    /// <summary>
    /// Moves vcpu_info into one of the guest's own frames (for a PV guest "mfn" is a machine frame).
    /// The frame gets a writable-type reference for good, so it can never become a page table the
    /// hypervisor would then scribble on. The old contents move over and every event is marked
    /// pending, as Xen does, so nothing raised during the move is lost.
    /// </summary>
    private static long RegisterVcpuInfo(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU64(v, arg + register_vcpu_info_mfn, out ulong mfn)
            || !GuestMemory.ReadU32(v, arg + register_vcpu_info_offset, out uint offset))
            return -Errno.EFAULT;
        Domain d = v.Domain;
        if (offset > Layout.PageSize - SharedInfo.vcpu_info_size) return -Errno.EINVAL;
        if (d.EventChannels.VcpuInfoRegistered) return -Errno.EINVAL;
        if (PageTypes.GetPageAndType(d.Machine, d, mfn, FrameType.Writable) != 0) return -Errno.EINVAL;

        PhysicalMemory mem = d.Machine.Memory;
        ulong target = (mfn << Layout.PageShift) + offset;
        ulong old = VcpuInfo.Address(v);
        for (ulong i = 0; i < SharedInfo.vcpu_info_size; i += 8)
            mem.Write64(target + i, old == 0 ? 0 : mem.Read64(old + i));
        v.VcpuInfoAddress = target;
        d.EventChannels.VcpuInfoRegistered = true;
        mem.Write64(target + SharedInfo.evtchn_pending_sel, 0xFFFF_FFFF_FFFF_FFFF);
        VcpuInfo.MarkEventsPending(v);
        TimeInfo.Update(v);
        return 0;
    }
}
