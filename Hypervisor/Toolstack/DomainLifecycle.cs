using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Toolstack;

/// <summary>
/// The toolstack's domain lifecycle (xen/common/domctl.c, domain.c): createdomain makes an empty PV
/// domain, paused once by the "system controller", with no memory and its vCPU down; the toolstack
/// fills it (memory_op, mmu_update with a foreign owner, setvcpucontext) and unpauses it;
/// pausedomain/unpausedomain nest up to 255; destroydomain gives back what it holds (frames that
/// other domains still map stay until their last mapping goes) and removes it. The control domain
/// is told through VIRQ_DOM_EXC when a domain shuts down, crashes, is destroyed and is finally gone,
/// as Xen tells it (xenstored then fires @releaseDomain).
/// </summary>
public static class DomainLifecycle
{
    /// <summary>vCPUs a domain may have: Microhv's Domain.VcpuCapacity (Xen's MAX_VIRT_CPUS is 8192; a larger request is -EINVAL as there).</summary>
    public const uint MaxVcpus = Domain.VcpuCapacity;
    /// <summary>Xen's limit on the toolstack's pause nesting.</summary>
    public const int MaxPauseCount = 255;

    /// <summary>createdomain: Xen's sanitise_domain_config checks, in its order, then an id (the one
    /// asked for, or the next free one after the rover) and a pooled domain object. Returns 0 and the
    /// new id in the domctl's domain field, or Xen's errno.</summary>
    public static long Create(Vcpu v, ulong arg, ushort requested)
    {
        Machine m = v.Domain.Machine;
        if (!GuestMemory.ReadU32(v, arg + Public.Domctl.create_flags, out uint flags)
            || !GuestMemory.ReadU32(v, arg + Public.Domctl.create_iommu_opts, out uint iommuOpts)
            || !GuestMemory.ReadU32(v, arg + Public.Domctl.create_max_vcpus, out uint maxVcpus)
            || !GuestMemory.ReadU32(v, arg + Public.Domctl.create_max_grant_frames, out uint maxGrantFrames)
            || !GuestMemory.ReadU32(v, arg + Public.Domctl.create_max_maptrack_frames, out uint maxMaptrackFrames)
            || !GuestMemory.ReadU32(v, arg + Public.Domctl.create_grant_opts, out uint grantOpts)
            || !GuestMemory.ReadU32(v, arg + Public.Domctl.create_vmtrace_size, out uint vmtraceSize)
            || !GuestMemory.ReadU32(v, arg + Public.Domctl.create_cpupool_id, out uint cpupool)
            || !GuestMemory.ReadU32(v, arg + Public.Domctl.create_arch_emulation_flags, out uint emulation)
            || !GuestMemory.ReadU32(v, arg + Public.Domctl.create_arch_misc_flags, out uint misc))
            return -Errno.EFAULT;
        long rc = Sanitise(flags, iommuOpts, maxVcpus, grantOpts, vmtraceSize, misc);
        if (rc != 0) return rc;

        ushort id;
        if (requested > 0 && requested < Xen.DOMID_FIRST_RESERVED)
        {
            if (m.FindDomain(requested) != null) return -Errno.EEXIST;
            id = requested;
        }
        else
        {
            id = m.DomidRover;
            do
            {
                id++;
                if (id >= Xen.DOMID_FIRST_RESERVED) id = 1;
            } while (id != m.DomidRover && m.FindDomain(id) != null);
            if (id == m.DomidRover && m.FindDomain(id) != null) return -Errno.ENOMEM;
            m.DomidRover = id;
        }

        // domain_create's own checks: the pool exists, a PV domain takes no emulator, the grant limits.
        if (cpupool != Sysctl.Pool0) return -Errno.ESRCH;
        if (emulation != 0) return -Errno.EOPNOTSUPP;
        uint version = grantOpts & Public.Domctl.XEN_DOMCTL_GRANT_version_mask;
        if (version == 0 || version > 2) return -Errno.EINVAL;      // Xen's opt_gnttab_max_version is 2
        if ((int)maxGrantFrames >= 0 && (maxGrantFrames < 1 || maxGrantFrames > GrantTable.MaxFrames)) return -Errno.EINVAL;
        if ((int)maxMaptrackFrames >= 0 && maxMaptrackFrames > MaptrackFrames) return -Errno.EINVAL;

        if (m.Pool == null || m.DomainCount >= Machine.MaxDomains)
        {
            LogRefusal(m, "no domain object left (all in use)");
            return -Errno.ENOMEM;
        }
        Domain d = m.Pool.Take(id);
        if (d == null)
        {
            LogRefusal(m, "no domain object left (all in use)");
            return -Errno.ENOMEM;
        }
        d.CreatedByToolstack = true;
        d.MaxVcpus = (int)maxVcpus;
        d.PauseCount = 1;           // created paused by the system controller
        d.State = DomainState.Running;
        if (!GuestMemory.CopyFromGuest(v, arg + Public.Domctl.create_handle, d.Handle, 0, Public.Domctl.XEN_DOMAIN_HANDLE_LEN))
        {
            Discard(m, d);
            return -Errno.EFAULT;
        }
        if (!AllocateSharedInfo(m, d) || GrantTable.Create(d) == null)
        {
            Discard(m, d);
            LogRefusal(m, "no free frame for its shared_info or grant table");
            return -Errno.ENOMEM;
        }
        GrantTable.Of(d).MaxVersion = version;
        d.Vcpu.VcpuInfoAddress = (d.SharedInfoMfn << Layout.PageShift) + (ulong)SharedInfo.vcpu_info;
        m.AddDomain(d);
        for (int i = 0; i < d.MaxVcpus; i++)
        {
            m.Host.ResetVcpuFpu(d.Vcpus[i]);
            Events.Runstate.Reset(d.Vcpus[i], m.Host.SystemTimeNs());     // offline since its creation, as in Xen
        }
        var t = new ConsoleText(m.Host);
        t.Write("domctl: d").Dec(v.Domain.DomainId).Write(" created domain ").Dec(id).Line();
        return GuestMemory.WriteU16(v, arg + Public.Domctl.domain, id) ? 0 : -Errno.EFAULT;
    }

    /// <summary>Maptrack frames Microhv gives a domain (8-byte entries), its opt_max_maptrack_frames.</summary>
    public const uint MaptrackFrames = GrantTable.MaptrackCapacity * 8 / (uint)Layout.PageSize;

    /// <summary>sanitise_domain_config and arch_sanitise_domain_config for a PV-only hypervisor without an IOMMU,
    /// vmtrace, vPMU, TBOOT or HAP.</summary>
    public static long Sanitise(uint flags, uint iommuOpts, uint maxVcpus, uint grantOpts, uint vmtraceSize, uint misc)
    {
        const uint known = Public.Domctl.XEN_DOMCTL_CDF_hvm | Public.Domctl.XEN_DOMCTL_CDF_hap | Public.Domctl.XEN_DOMCTL_CDF_s3_integrity
            | Public.Domctl.XEN_DOMCTL_CDF_oos_off | Public.Domctl.XEN_DOMCTL_CDF_xs_domain | Public.Domctl.XEN_DOMCTL_CDF_iommu
            | Public.Domctl.XEN_DOMCTL_CDF_nested_virt | Public.Domctl.XEN_DOMCTL_CDF_vpmu;
        if ((flags & ~known) != 0) return -Errno.EINVAL;
        if ((grantOpts & ~Public.Domctl.XEN_DOMCTL_GRANT_version_mask) != 0) return -Errno.EINVAL;
        if (maxVcpus < 1) return -Errno.EINVAL;
        bool hvm = (flags & Public.Domctl.XEN_DOMCTL_CDF_hvm) != 0, hap = (flags & Public.Domctl.XEN_DOMCTL_CDF_hap) != 0;
        if (hap && !hvm) return -Errno.EINVAL;
        if ((flags & Public.Domctl.XEN_DOMCTL_CDF_iommu) != 0) return -Errno.EINVAL;      // no IOMMU
        if (iommuOpts != 0) return -Errno.EINVAL;
        if (vmtraceSize != 0) return -Errno.EINVAL;                                  // no vmtrace
        if ((flags & Public.Domctl.XEN_DOMCTL_CDF_vpmu) != 0) return -Errno.EINVAL;       // no vPMU
        if (hvm) return -Errno.EINVAL;                                               // PV only
        if (maxVcpus > MaxVcpus) return -Errno.EINVAL;
        if ((flags & Public.Domctl.XEN_DOMCTL_CDF_s3_integrity) != 0) return -Errno.EINVAL; // no TBOOT
        if ((flags & Public.Domctl.XEN_DOMCTL_CDF_nested_virt) != 0) return -Errno.EINVAL; // needs HAP
        if ((misc & ~Public.Domctl.XEN_X86_MSR_RELAXED) != 0) return -Errno.EINVAL;
        return 0;
    }

    /// <summary>max_vcpus: the number must be the one given at createdomain (Xen 4.17 sizes the vCPUs there).</summary>
    public static long SetMaxVcpus(Vcpu v, Domain d, uint max)
    {
        if (d == v.Domain || max != (uint)d.MaxVcpus) return -Errno.EINVAL;
        return 0;
    }

    /// <summary>pausedomain: one more pause of the toolstack's (not of oneself); -EOVERFLOW past 255. As Xen's
    /// domain_pause_by_systemcontroller, it returns once no processor runs a vCPU of the domain (VcpuPause.SleepSync).</summary>
    public static long Pause(Vcpu v, Domain d)
    {
        if (d == v.Domain) return -Errno.EINVAL;
        if (d.PauseCount >= MaxPauseCount) return -Errno.EOVERFLOW;
        d.PauseCount++;
        VcpuPause.SleepSync(d);
        return 0;
    }

    /// <summary>unpausedomain: undoes one pause; -EINVAL when the toolstack holds none. The domain runs
    /// when none is left and its vCPU is up.</summary>
    public static long Unpause(Vcpu v, Domain d)
    {
        if (d.PauseCount == 0) return -Errno.EINVAL;
        d.PauseCount--;
        d.CreationFinished = true;
        if (!d.Paused)
        {
            v.PendingExitWork |= Traps.ExitWork.Reschedule;
            for (int i = 0; i < d.MaxVcpus; i++) d.Machine.Scheduler.MadeRunnable(d.Vcpus[i]);   // an idle processor takes them
        }
        return 0;
    }

    /// <summary>
    /// destroydomain (domain_kill): not oneself, not the initial domain. The domain is marked dying and
    /// stops; its event channels close, its grant mappings go, every frame nobody else maps is given
    /// back. When nothing is left it leaves the machine's list and its object returns to the pool;
    /// otherwise it stays, dying, until the last foreign or grant mapping of its frames is undone.
    /// </summary>
    public static long Destroy(Vcpu v, Domain d)
    {
        if (d == v.Domain || d.IsInitialDomain) return -Errno.EINVAL;
        if (d.Dying && d.Relinquished) return FinishIfEmpty(d) ? 0 : 0;
        d.Dying = true;
        if (d.State == DomainState.Running || d.State == DomainState.Building)
        {
            d.State = DomainState.Shutdown;
            if (d.ShutdownReason < 0) d.ShutdownReason = Sched.SHUTDOWN_poweroff;
        }
        // A processor still running one of its vCPUs has its page tables loaded: it is kicked off them (the
        // vCPU cannot run any more) and the toolstack asks again, as libxc repeats a domain_kill that said EAGAIN.
        if (DomainRelinquish.AnyRunning(d)) return -Errno.EAGAIN;
        DomainRelinquish.Relinquish(d);
        var t = new ConsoleText(d.Machine.Host);
        t.Write("domctl: d").Dec(v.Domain.DomainId).Write(" destroyed domain ").Dec(d.DomainId);
        if (d.FramesKept != 0) t.Write(" (frames still mapped by other domains: ").Dec(d.FramesKept).Write(")");
        t.Line();
        NotifyDomExc(d.Machine);
        FinishIfEmpty(d);
        return 0;
    }

    /// <summary>A dying domain that holds no frame any more leaves the machine (Xen's domain_destroy): its
    /// object goes back to the pool, and the control domain hears VIRQ_DOM_EXC once more. True when it left.</summary>
    public static bool FinishIfEmpty(Domain d)
    {
        if (!d.Dying || !d.Relinquished || d.FramesKept != 0) return false;
        GrantTable gt = GrantTable.Of(d);
        if (gt != null && gt.NrFrames != 0) return false;     // grant frames still pinned by a mapping
        Machine m = d.Machine;
        if (m.FindDomain(d.DomainId) != d) return false;
        m.RemoveDomain(d);
        var t = new ConsoleText(m.Host);
        t.Write("domain ").Dec(d.DomainId).Line(": destroyed, every frame given back");
        if (d.CreatedByToolstack && m.Pool != null) m.Pool.Return(d);
        NotifyDomExc(m);
        return true;
    }

    /// <summary>send_global_virq(VIRQ_DOM_EXC): to the control domain (xenstored binds it there).</summary>
    public static void NotifyDomExc(Machine m)
    {
        for (int i = 0; i < m.DomainCount; i++)
        {
            Domain c = m.Domains[i];
            if (c.IsControlDomain && c.IsAlive && c.EventChannels != null) c.EventChannels.SendVirq(Xen.VIRQ_DOM_EXC);
        }
    }

    /// <summary>The shared_info frame of a new domain: zeroed, owned by it, with every event masked
    /// (Xen's arch_domain_create / vcpu_info defaults: evtchn_upcall_mask set).</summary>
    private static bool AllocateSharedInfo(Machine m, Domain d)
    {
        if (!DomainBuilder.TakeFrame(m, d.DomainId, out ulong mfn)) return false;
        d.SharedInfoMfn = mfn;
        DomainBuilder.WriteSharedInfo(m, d);
        return true;
    }

    /// <summary>A domain whose creation failed half-way: its frames back, its object back to the pool.</summary>
    private static void Discard(Machine m, Domain d)
    {
        DomainRelinquish.Relinquish(d);
        if (m.Pool != null) m.Pool.Return(d);
    }

    private static void LogRefusal(Machine m, string why)
    {
        var t = new ConsoleText(m.Host);
        t.Write("domctl: createdomain refused: ").Line(why);
    }
}
