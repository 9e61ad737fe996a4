using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Toolstack;

/// <summary>
/// The domctl settings `xl create` makes before a domain runs, with Xen 4.17's checks and answers
/// (xen/common/domctl.c, xen/common/sched/core.c, xen/arch/x86/domctl.c, time.c): memory limit,
/// vCPU and node affinity, TSC mode, credit scheduler parameters, address size, the hypercall page,
/// the domain handle, the time offset and per-vCPU information.
/// </summary>
public static class DomainSettings
{
    /// <summary>max_mem: the limit in KiB, as pages; allocations past it are refused (a lower limit than
    /// what the domain holds only stops it growing, as in Xen).</summary>
    public static long MaxMem(Vcpu v, Domain d, ulong arg)
    {
        if (!GuestMemory.ReadU64(v, arg + Public.Domctl.max_mem_max_memkb, out ulong kb)) return -Errno.EFAULT;
        d.MaxPages = kb >> (Layout.PageShift - 10);
        return 0;
    }

    /// <summary>setvcpuaffinity/getvcpuaffinity: hard and/or soft masks (xenctl_bitmap). Setting returns
    /// what the scheduler will use: the hard mask within the online CPUs, the soft one within both.</summary>
    public static long VcpuAffinity(Vcpu v, Domain d, ulong arg, bool set)
    {
        if (!GuestMemory.ReadU32(v, arg + Public.Domctl.vcpuaffinity_vcpu, out uint vcpu)
            || !GuestMemory.ReadU32(v, arg + Public.Domctl.vcpuaffinity_flags, out uint flags))
            return -Errno.EFAULT;
        if (vcpu >= (uint)d.MaxVcpus) return -Errno.EINVAL;
        bool hard = (flags & Public.Domctl.XEN_VCPUAFFINITY_HARD) != 0, soft = (flags & Public.Domctl.XEN_VCPUAFFINITY_SOFT) != 0;
        ulong hardMap = arg + Public.Domctl.vcpuaffinity_hard, softMap = arg + Public.Domctl.vcpuaffinity_soft;
        if (!GuestMemory.ReadU64(v, hardMap + Public.Domctl.bitmap_bitmap, out ulong hardPtr)
            || !GuestMemory.ReadU64(v, softMap + Public.Domctl.bitmap_bitmap, out ulong softPtr))
            return -Errno.EFAULT;
        // vcpuaffinity_params_invalid
        if (!hard && !soft || hard && hardPtr == 0 || soft && softPtr == 0) return -Errno.EINVAL;
        Vcpu target = d.Vcpus[vcpu];
        ulong online = OnlineMask(d.Machine);
        long rc;
        if (!set)
        {
            if (hard && (rc = WriteBitmap(v, hardMap, target.HardAffinity & online)) != 0) return rc;
            if (soft && (rc = WriteBitmap(v, softMap, target.SoftAffinity & online)) != 0) return rc;
            return 0;
        }
        ulong oldHard = target.HardAffinity;
        if (hard)
        {
            if ((rc = ReadBitmap(v, hardMap, out ulong mask)) != 0) return rc;
            if ((mask & online) == 0) return -Errno.EINVAL;    // vcpu_set_hard_affinity: no online CPU left
            target.HardAffinity = mask;
            d.Machine.Scheduler.AffinityChanged(target);
            if ((rc = WriteBitmap(v, hardMap, mask & online)) != 0) return rc;
        }
        if (soft)
        {
            rc = ReadBitmap(v, softMap, out ulong mask);
            if (rc != 0)
            {
                target.HardAffinity = oldHard;
                d.Machine.Scheduler.AffinityChanged(target);
                return rc;
            }
            target.SoftAffinity = mask;
            if ((rc = WriteBitmap(v, softMap, mask & online & target.HardAffinity)) != 0) return rc;
        }
        return 0;
    }

    /// <summary>setnodeaffinity: Microhv's machine is one node (0); a map without it is -EINVAL, as
    /// domain_set_node_affinity refuses a mask with no online node.</summary>
    public static long SetNodeAffinity(Vcpu v, ulong arg)
    {
        long rc = ReadBitmap(v, arg + Public.Domctl.nodeaffinity_nodemap, out ulong nodes);
        if (rc != 0) return rc;
        return (nodes & 1) == 0 ? -Errno.EINVAL : 0;
    }

    /// <summary>settscinfo: Microhv gives every PV guest the host's TSC (Xen's vtsc = 0), which is what
    /// the default and never-emulate modes ask for at the host's frequency; emulating the TSC (always
    /// emulate, or another frequency after a migration) is not done: -EOPNOTSUPP.</summary>
    public static long SetTscInfo(Vcpu v, Domain d, ulong arg)
    {
        if (d == v.Domain) return -Errno.EINVAL;
        if (!GuestMemory.ReadU32(v, arg + Public.Domctl.tsc_mode, out uint mode)
            || !GuestMemory.ReadU32(v, arg + Public.Domctl.tsc_gtsc_khz, out uint khz)
            || !GuestMemory.ReadU32(v, arg + Public.Domctl.tsc_incarnation, out uint incarnation))
            return -Errno.EFAULT;
        if (d.IsHardwareDomain) return 0;
        switch (mode)
        {
            case Public.Domctl.XEN_CPUID_TSC_MODE_DEFAULT:
                if (khz != 0 && khz != d.Machine.Host.CpuKhz) return -Errno.EOPNOTSUPP;
                break;
            case Public.Domctl.XEN_CPUID_TSC_MODE_NEVER_EMULATE: break;
            case Public.Domctl.XEN_CPUID_TSC_MODE_ALWAYS_EMULATE: return -Errno.EOPNOTSUPP;
            default: return -Errno.EINVAL;
        }
        d.TscMode = mode;
        d.TscIncarnation = incarnation + 1;
        return 0;
    }

    /// <summary>gettscinfo: the mode, the incarnation, and for the native TSC the host frequency and the
    /// TSC scaled to ns.</summary>
    public static long GetTscInfo(Vcpu v, Domain d, ulong arg)
    {
        if (d == v.Domain) return -Errno.EINVAL;
        HypervisorHost host = d.Machine.Host;
        bool never = d.TscMode == Public.Domctl.XEN_CPUID_TSC_MODE_NEVER_EMULATE;
        ulong elapsed = never ? 0 : host.SystemTimeNs();
        uint khz = never ? 0 : host.CpuKhz;
        return GuestMemory.WriteU32(v, arg + Public.Domctl.tsc_mode, d.TscMode)
            && GuestMemory.WriteU32(v, arg + Public.Domctl.tsc_gtsc_khz, khz)
            && GuestMemory.WriteU32(v, arg + Public.Domctl.tsc_incarnation, d.TscIncarnation)
            && GuestMemory.WriteU32(v, arg + Public.Domctl.tsc_pad, 0)
            && GuestMemory.WriteU64(v, arg + Public.Domctl.tsc_elapsed_nsec, elapsed) ? 0 : -Errno.EFAULT;
    }

    /// <summary>scheduler_op for the credit scheduler: getinfo/putinfo of weight (1-65535) and cap (0-10000,
    /// at most 100 per vCPU); another scheduler's id is -EINVAL, per-vCPU commands -EINVAL for credit.</summary>
    public static long SchedulerOp(Vcpu v, Domain d, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + Public.Domctl.sched_op_sched_id, out uint schedId)
            || !GuestMemory.ReadU32(v, arg + Public.Domctl.sched_op_cmd, out uint cmd))
            return -Errno.EFAULT;
        if (schedId != Sysctl.SchedulerId) return -Errno.EINVAL;
        switch (cmd)
        {
            case Public.Domctl.XEN_DOMCTL_SCHEDOP_getinfo:
                return GuestMemory.WriteU16(v, arg + Public.Domctl.sched_op_credit_weight, (ushort)d.SchedWeight)
                    && GuestMemory.WriteU16(v, arg + Public.Domctl.sched_op_credit_cap, (ushort)d.SchedCap) ? 0 : -Errno.EFAULT;
            case Public.Domctl.XEN_DOMCTL_SCHEDOP_putinfo:
                if (!GuestMemory.ReadU16(v, arg + Public.Domctl.sched_op_credit_weight, out ushort weight)
                    || !GuestMemory.ReadU16(v, arg + Public.Domctl.sched_op_credit_cap, out ushort cap))
                    return -Errno.EFAULT;
                // csched_dom_cntl: a cap above 100% per vCPU is -EINVAL; weight 0 and cap ~0 leave the value.
                if (cap != 0xFFFF && cap > 100 * DomainLifecycle.MaxVcpus) return -Errno.EINVAL;
                if (weight != 0) d.SchedWeight = weight;
                if (cap != 0xFFFF) d.SchedCap = cap;
                return 0;
            default: return -Errno.EINVAL;
        }
    }

    /// <summary>set_address_size: a 64-bit PV domain stays 64-bit; 32-bit (compat) PV is not offered, as a
    /// Xen built without CONFIG_PV32 answers switch_compat: -EOPNOTSUPP.</summary>
    public static long SetAddressSize(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + Public.Domctl.address_size_size, out uint size)) return -Errno.EFAULT;
        if (size == 64) return 0;
        return size == 32 ? -Errno.EOPNOTSUPP : -Errno.EINVAL;
    }

    public static long GetAddressSize(Vcpu v, ulong arg)
        => GuestMemory.WriteU32(v, arg + Public.Domctl.address_size_size, 64) ? 0 : -Errno.EFAULT;

    /// <summary>hypercall_init: writes the hypercall page into the domain's frame gmfn (a PV gfn is its
    /// MFN): -EINVAL when it is not the domain's, -EPERM when it cannot be writable (a page table).</summary>
    public static long HypercallInit(Vcpu v, Domain d, ulong arg)
    {
        if (!GuestMemory.ReadU64(v, arg + Public.Domctl.hypercall_init_gmfn, out ulong mfn)) return -Errno.EFAULT;
        Machine m = d.Machine;
        if (!m.FrameTable.IsValid(mfn) || !d.OwnsFrame(mfn)) return -Errno.EINVAL;
        FrameType t = m.FrameTable.TypeOf(mfn);
        if (t != FrameType.None && t != FrameType.Writable && m.FrameTable.TypeCount(mfn) != 0) return -Errno.EPERM;
        HypercallPage.Initialise(m.Memory, mfn << Layout.PageShift);
        return 0;
    }

    public static long SetDomainHandle(Vcpu v, Domain d, ulong arg)
        => GuestMemory.CopyFromGuest(v, arg + Public.Domctl.setdomainhandle_handle, d.Handle, 0, Public.Domctl.XEN_DOMAIN_HANDLE_LEN) ? 0 : -Errno.EFAULT;

    /// <summary>settimeoffset: the domain's wall clock runs this many seconds from the host's.</summary>
    public static long SetTimeOffset(Vcpu v, Domain d, ulong arg)
    {
        if (!GuestMemory.ReadU64(v, arg + Public.Domctl.settimeoffset_seconds, out ulong seconds)) return -Errno.EFAULT;
        d.TimeOffsetSeconds = (long)seconds;
        TimeInfo.UpdateWallclock(d);
        return 0;
    }

    /// <summary>getvcpuinfo: online, blocked, running, its running time and CPU (Xen's v->processor: the one it
    /// runs on, else the one it ran on last; `xl vcpu-list`'s CPU column) (-EINVAL past max_vcpus).</summary>
    public static long GetVcpuInfo(Vcpu v, Domain d, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + Public.Domctl.getvcpuinfo_vcpu, out uint vcpu)) return -Errno.EFAULT;
        if (vcpu >= (uint)d.MaxVcpus) return -Errno.EINVAL;
        Vcpu t = d.Vcpus[vcpu];
        bool running = t == v || Scheduler.IsRunning(t);
        ulong time = d.Machine.Scheduler.RunTime(t);
        return GuestMemory.WriteU8(v, arg + Public.Domctl.getvcpuinfo_online, (byte)(t.Online ? 1 : 0))
            && GuestMemory.WriteU8(v, arg + Public.Domctl.getvcpuinfo_blocked, (byte)(t.Blocked ? 1 : 0))
            && GuestMemory.WriteU8(v, arg + Public.Domctl.getvcpuinfo_running, (byte)(running ? 1 : 0))
            && GuestMemory.WriteU64(v, arg + Public.Domctl.getvcpuinfo_cpu_time, time)
            && GuestMemory.WriteU32(v, arg + Public.Domctl.getvcpuinfo_cpu, (uint)(t.RunningOn >= 0 ? t.RunningOn : t.LastCpu)) ? 0 : -Errno.EFAULT;
    }

    /// <summary>The CPUs of the domain's cpupool (bit n = CPU n; Xen's cpupool_domain_master_cpumask): every
    /// processor the boot started, joined yet or not, the set the scheduler judges a hard affinity against.</summary>
    public static ulong OnlineMask(Machine m) => m.Scheduler.Started;

    /// <summary>xenctl_bitmap_to_bitmap: the first 64 bits of the guest's map (bits past nr_bits are 0).</summary>
    private static long ReadBitmap(Vcpu v, ulong map, out ulong mask)
    {
        mask = 0;
        if (!GuestMemory.ReadU64(v, map + Public.Domctl.bitmap_bitmap, out ulong ptr)
            || !GuestMemory.ReadU32(v, map + Public.Domctl.bitmap_nr_bits, out uint bits))
            return -Errno.EFAULT;
        uint bytes = (bits + 7) / 8;
        for (uint i = 0; i < bytes && i < 8; i++)
        {
            if (!GuestMemory.ReadU8(v, ptr + i, out byte b)) return -Errno.EFAULT;
            mask |= (ulong)b << (int)(8 * i);
        }
        if (bits < 64) mask &= (1UL << (int)bits) - 1;
        return 0;
    }

    /// <summary>cpumask_to_xenctl_bitmap: the mask into the guest's map, as many bytes as nr_bits needs
    /// (bytes past the mask are 0, bits past nr_bits in the last byte cleared).</summary>
    private static long WriteBitmap(Vcpu v, ulong map, ulong mask)
    {
        if (!GuestMemory.ReadU64(v, map + Public.Domctl.bitmap_bitmap, out ulong ptr)
            || !GuestMemory.ReadU32(v, map + Public.Domctl.bitmap_nr_bits, out uint bits))
            return -Errno.EFAULT;
        uint bytes = (bits + 7) / 8;
        for (uint i = 0; i < bytes; i++)
        {
            byte b = i < 8 ? (byte)(mask >> (int)(8 * i)) : (byte)0;
            if (i == bytes - 1 && (bits & 7) != 0) b &= (byte)((1 << (int)(bits & 7)) - 1);
            if (!GuestMemory.WriteU8(v, ptr + i, b)) return -Errno.EFAULT;
        }
        return 0;
    }
}
