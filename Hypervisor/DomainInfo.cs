using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// Xen's getdomaininfo (xen/common/domctl.c): one domain's struct xen_domctl_getdomaininfo, as domctl
/// getdomaininfo and sysctl getdomaininfolist return it to the toolstack (`xl list`, xenstored's
/// @releaseDomain check). Domains are found as Xen walks its id-sorted list: the first with an id at
/// or above the one asked for.
/// </summary>
public static class DomainInfo
{
    /// <summary>The domain with the smallest id >= <paramref name="first"/>, or null.</summary>
    public static Domain FirstAtOrAbove(Machine m, uint first)
    {
        Domain best = null;
        for (int i = 0; i < m.DomainCount; i++)
        {
            Domain d = m.Domains[i];
            if (d.DomainId >= first && (best == null || d.DomainId < best.DomainId)) best = d;
        }
        return best;
    }

    /// <summary>
    /// Xen's flags: blocked unless the vCPU is runnable, running when it is on the CPU (the caller's
    /// always is), shutdown with the reason in bits 16-23. Like Xen, a domain that has not shut down
    /// carries SHUTDOWN_CODE_INVALID (~0) shifted into bits 16-31. A domain still being built has its
    /// vCPU down: no online vCPU and no run-state bits.
    /// </summary>
    public static uint Flags(Domain d, Vcpu caller)
    {
        uint flags = 0;
        bool shutDown = d.State == DomainState.Shutdown || d.State == DomainState.Crashed;
        if (OnlineVcpus(d) != 0)
        {
            // Xen: blocked when every online vCPU is blocked, running when one is on a CPU.
            bool allBlocked = true, running = false;
            for (int i = 0; i < d.MaxVcpus; i++)
            {
                Vcpu v = d.Vcpus[i];
                if (!v.Online) continue;
                if (!v.Blocked) allBlocked = false;
                if (v == caller || Scheduler.IsRunning(v)) running = true;
            }
            if (allBlocked) flags |= Public.Domctl.XEN_DOMINF_blocked;
            if (!shutDown && running) flags |= Public.Domctl.XEN_DOMINF_running;
        }
        if (shutDown) flags |= Public.Domctl.XEN_DOMINF_shutdown;
        if (d.Paused) flags |= Public.Domctl.XEN_DOMINF_paused;
        if (d.Dying) flags |= Public.Domctl.XEN_DOMINF_dying;
        return flags | (uint)d.ShutdownReason << Public.Domctl.XEN_DOMINF_shutdownshift;
    }

    /// <summary>Writes <paramref name="d"/>'s getdomaininfo at guest address <paramref name="va"/>; false on a fault.</summary>
    public static bool Write(Vcpu caller, ulong va, Domain d)
    {
        // Zero the whole structure first (Xen memsets it): padding, outstanding/shared/paged pages, ssidref, handle, arch_config.
        for (int i = 0; i < Public.Domctl.info_size; i += 8)
            if (!GuestMemory.WriteU64(caller, va + (ulong)i, 0)) return false;
        ulong cpuTime = 0;
        for (int i = 0; i < d.MaxVcpus; i++) cpuTime += d.Machine.Scheduler.RunTime(d.Vcpus[i]);
        HypervisorHost host = d.Machine.Host;
        for (int i = 0; i < Public.Domctl.XEN_DOMAIN_HANDLE_LEN; i++)
            if (!GuestMemory.WriteU8(caller, va + Public.Domctl.info_handle + (ulong)i, d.Handle[i])) return false;
        return GuestMemory.WriteU32(caller, va + Public.Domctl.info_domain, d.DomainId)
            && GuestMemory.WriteU32(caller, va + Public.Domctl.info_flags, Flags(d, caller))
            && GuestMemory.WriteU64(caller, va + Public.Domctl.info_tot_pages, d.NrPages)
            && GuestMemory.WriteU64(caller, va + Public.Domctl.info_max_pages, d.MaxPages)
            && GuestMemory.WriteU64(caller, va + Public.Domctl.info_outstanding_pages, d.ClaimedPages)
            // A PV domain's gfn of a frame is its MFN.
            && GuestMemory.WriteU64(caller, va + Public.Domctl.info_shared_info_frame, d.SharedInfoMfn)
            // The time its vCPUs have run (Xen's sum of the vCPUs' running time).
            && GuestMemory.WriteU64(caller, va + Public.Domctl.info_cpu_time, cpuTime)
            && GuestMemory.WriteU32(caller, va + Public.Domctl.info_nr_online_vcpus, OnlineVcpus(d))
            && GuestMemory.WriteU32(caller, va + Public.Domctl.info_max_vcpu_id, (uint)(d.MaxVcpus - 1))
            && GuestMemory.WriteU8(caller, va + Public.Domctl.info_gpaddr_bits, (byte)PhysicalAddressBits(host));
    }

    /// <summary>The vCPUs that are up (none while the domain is built or dying).</summary>
    public static uint OnlineVcpus(Domain d)
    {
        if (d.State == DomainState.Building || d.Dying) return 0;
        uint n = 0;
        for (int i = 0; i < d.MaxVcpus; i++) if (d.Vcpus[i].Online) n++;
        return n;
    }

    /// <summary>The CPU's physical address width (CPUID 0x80000008), Xen's paddr_bits; 36 when the leaf is missing.</summary>
    public static uint PhysicalAddressBits(HypervisorHost host)
    {
        host.CpuId(0x8000_0000, 0, out uint maxExtended, out _, out _, out _);
        if (maxExtended < 0x8000_0008) return 36;
        host.CpuId(0x8000_0008, 0, out uint a, out _, out _, out _);
        uint bits = a & 0xFF;
        return bits == 0 ? 36 : bits;
    }
}
