using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// sysctl (xen/common/sysctl.c, xen/arch/x86/sysctl.c): the toolstack's questions about the whole
/// machine, at Xen 4.17's interface version (another gets -EACCES, checked first as Xen does). Only
/// the control domain may ask (XSM's default policy: others -EPERM). Microhv answers physinfo,
/// sched_id, getdomaininfolist, cpupool info/freeinfo, numainfo, cputopoinfo, get_cpu_policy and
/// get_cpu_featureset, which `xl info`, `xl list`, `xl create` and the daemons use; every other operation is -ENOSYS, logged once per operation so a
/// boot shows what the toolstack asked for.
/// </summary>
public static class Sysctl
{
    /// <summary>Microhv's round-robin with a 30 ms slice and equal shares is what Xen's credit scheduler
    /// does with default weights (its time slice is 30 ms too), so it reports credit's id.</summary>
    public const uint SchedulerId = Public.Domctl.XEN_SCHEDULER_CREDIT;
    /// <summary>The one CPU pool every CPU and domain belongs to (Xen's Pool-0).</summary>
    public const uint Pool0 = 0;

    public static long Do(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + Public.Sysctl.cmd, out uint cmd)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU32(v, arg + Public.Sysctl.interface_version, out uint version)) return -Errno.EFAULT;
        if (version != Public.Sysctl.XEN_SYSCTL_INTERFACE_VERSION) return -Errno.EACCES;
        if (!v.Domain.IsControlDomain) return -Errno.EPERM;
        switch (cmd)
        {
            case Public.Sysctl.XEN_SYSCTL_physinfo: return PhysInfo(v, arg);
            case Public.Sysctl.XEN_SYSCTL_sched_id:
                return GuestMemory.WriteU32(v, arg + Public.Sysctl.sched_id_sched_id, SchedulerId) ? 0 : -Errno.EFAULT;
            case Public.Sysctl.XEN_SYSCTL_getdomaininfolist: return GetDomainInfoList(v, arg);
            case Public.Sysctl.XEN_SYSCTL_cpupool_op: return CpupoolOp(v, arg);
            case Public.Sysctl.XEN_SYSCTL_numainfo: return Toolstack.Topology.NumaInfo(v, arg);
            case Public.Sysctl.XEN_SYSCTL_cputopoinfo: return Toolstack.Topology.CpuTopoInfo(v, arg);
            case Public.Sysctl.XEN_SYSCTL_get_cpu_policy: return Toolstack.CpuPolicy.GetSystem(v, arg);
            case Public.Sysctl.XEN_SYSCTL_get_cpu_featureset: return Toolstack.CpuPolicy.GetFeatureset(v, arg);
            default:
                LogUnknownOnce(v.Domain.Machine, false, cmd);
                return -Errno.ENOSYS;
        }
    }

    /// <summary>
    /// Xen's physinfo: one node; the CPUs as one socket of single-thread cores; the RAM of the
    /// firmware's map as total_pages and the hypervisor's free frames as free_pages; PV and grant
    /// table versions 1 and 2 as the capabilities (no HVM, no IOMMU); the CPUID feature words in Xen's featureset
    /// order as hw_cap.
    /// </summary>
    private static long PhysInfo(Vcpu v, ulong arg)
    {
        Machine m = v.Domain.Machine;
        HypervisorHost host = m.Host;
        uint cpus = host.PhysicalCpuCount == 0 ? 1 : host.PhysicalCpuCount;
        ulong p = arg;
        for (int i = 0; i < Public.Sysctl.physinfo_size; i += 8)
            if (!GuestMemory.WriteU64(v, p + Public.Sysctl.u + (ulong)i, 0)) return -Errno.EFAULT;
        bool ok = GuestMemory.WriteU32(v, p + Public.Sysctl.physinfo_threads_per_core, 1)
            && GuestMemory.WriteU32(v, p + Public.Sysctl.physinfo_cores_per_socket, cpus)
            && GuestMemory.WriteU32(v, p + Public.Sysctl.physinfo_nr_cpus, cpus)
            && GuestMemory.WriteU32(v, p + Public.Sysctl.physinfo_max_cpu_id, cpus - 1)
            && GuestMemory.WriteU32(v, p + Public.Sysctl.physinfo_nr_nodes, 1)
            && GuestMemory.WriteU32(v, p + Public.Sysctl.physinfo_max_node_id, 0)
            && GuestMemory.WriteU32(v, p + Public.Sysctl.physinfo_cpu_khz, host.CpuKhz)
            && GuestMemory.WriteU32(v, p + Public.Sysctl.physinfo_capabilities,
                   Public.Sysctl.XEN_SYSCTL_PHYSCAP_pv | Public.Sysctl.XEN_SYSCTL_PHYSCAP_gnttab_v1 | Public.Sysctl.XEN_SYSCTL_PHYSCAP_gnttab_v2)
            && GuestMemory.WriteU64(v, p + Public.Sysctl.physinfo_total_pages, TotalPages(m))
            && GuestMemory.WriteU64(v, p + Public.Sysctl.physinfo_free_pages, m.Frames.FreeFrameCount)
            && GuestMemory.WriteU64(v, p + Public.Sysctl.physinfo_max_mfn, m.FrameTable.FrameCount == 0 ? 0 : m.FrameTable.FrameCount - 1);
        for (int w = 0; ok && w < Public.Sysctl.physinfo_hw_cap_words; w++)
            ok = GuestMemory.WriteU32(v, p + Public.Sysctl.physinfo_hw_cap + (ulong)w * 4, FeatureWord(host, w));
        return ok ? 0 : -Errno.EFAULT;
    }

    /// <summary>RAM pages of the firmware's memory map (Xen's total_pages); the frame table's size when no map was given.</summary>
    public static ulong TotalPages(Machine m)
    {
        ulong pages = 0;
        for (int i = 0; i < m.HostMemoryMap.Count; i++)
        {
            Io.E820Entry e = m.HostMemoryMap[i];
            if (e.Type != Io.E820Map.E820_RAM) continue;
            ulong first = (e.Address + 0xFFF) >> 12, end = (e.Address + e.Size) >> 12;
            if (end > first) pages += end - first;
        }
        return pages != 0 ? pages : m.FrameTable.FrameCount;
    }

    /// <summary>Word <paramref name="w"/> of Xen's featureset (cpufeatureset.h): 1d, 1c, e1d, e1c, Da1, 7b0, 7c0, e7d.</summary>
    public static uint FeatureWord(HypervisorHost host, int w)
    {
        host.CpuId(0, 0, out uint maxBasic, out _, out _, out _);
        host.CpuId(0x8000_0000, 0, out uint maxExtended, out _, out _, out _);
        uint a, b, c, d;
        switch (w)
        {
            case 0: host.CpuId(1, 0, out a, out b, out c, out d); return d;
            case 1: host.CpuId(1, 0, out a, out b, out c, out d); return c;
            case 2: if (maxExtended < 0x8000_0001) return 0; host.CpuId(0x8000_0001, 0, out a, out b, out c, out d); return d;
            case 3: if (maxExtended < 0x8000_0001) return 0; host.CpuId(0x8000_0001, 0, out a, out b, out c, out d); return c;
            case 4: if (maxBasic < 0xD) return 0; host.CpuId(0xD, 1, out a, out b, out c, out d); return a;
            case 5: if (maxBasic < 7) return 0; host.CpuId(7, 0, out a, out b, out c, out d); return b;
            case 6: if (maxBasic < 7) return 0; host.CpuId(7, 0, out a, out b, out c, out d); return c;
            case 7: if (maxExtended < 0x8000_0007) return 0; host.CpuId(0x8000_0007, 0, out a, out b, out c, out d); return d;
            default: return 0;
        }
    }

    /// <summary>Xen's getdomaininfolist: up to max_domains entries, in id order from first_domain, into the buffer; num_domains says how many.</summary>
    private static long GetDomainInfoList(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU16(v, arg + Public.Sysctl.getdomaininfolist_first_domain, out ushort first)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU32(v, arg + Public.Sysctl.getdomaininfolist_max_domains, out uint max)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU64(v, arg + Public.Sysctl.getdomaininfolist_buffer, out ulong buffer)) return -Errno.EFAULT;
        Machine m = v.Domain.Machine;
        uint n = 0;
        uint next = first;
        while (n < max)
        {
            Domain d = DomainInfo.FirstAtOrAbove(m, next);
            if (d == null) break;
            if (!DomainInfo.Write(v, buffer + (ulong)n * Public.Domctl.info_size, d)) return -Errno.EFAULT;
            n++;
            next = (uint)d.DomainId + 1;
        }
        return GuestMemory.WriteU32(v, arg + Public.Sysctl.getdomaininfolist_num_domains, n) ? 0 : -Errno.EFAULT;
    }

    /// <summary>
    /// Xen's cpupool_do_sysctl with the one pool Microhv has: INFO of the first pool at or above the id
    /// asked (-ENOENT past Pool-0) gives its scheduler, domain count and CPUs; FREEINFO gives the CPUs in
    /// no pool (none). Creating, destroying and moving between pools: -ENOSYS.
    /// </summary>
    private static long CpupoolOp(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + Public.Sysctl.cpupool_op_op, out uint op)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU32(v, arg + Public.Sysctl.cpupool_op_cpupool_id, out uint pool)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU64(v, arg + Public.Sysctl.cpupool_op_cpumap_bitmap, out ulong bitmap)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU32(v, arg + Public.Sysctl.cpupool_op_cpumap_nr_bits, out uint nrBits)) return -Errno.EFAULT;
        Machine m = v.Domain.Machine;
        uint cpus = m.Host.PhysicalCpuCount == 0 ? 1 : m.Host.PhysicalCpuCount;
        switch (op)
        {
            case Public.Sysctl.XEN_SYSCTL_CPUPOOL_OP_INFO:
                if (pool > Pool0) return -Errno.ENOENT;
                if (!GuestMemory.WriteU32(v, arg + Public.Sysctl.cpupool_op_cpupool_id, Pool0)) return -Errno.EFAULT;
                if (!GuestMemory.WriteU32(v, arg + Public.Sysctl.cpupool_op_sched_id, SchedulerId)) return -Errno.EFAULT;
                if (!GuestMemory.WriteU32(v, arg + Public.Sysctl.cpupool_op_n_dom, (uint)m.DomainCount)) return -Errno.EFAULT;
                return WriteCpuBitmap(v, bitmap, nrBits, cpus, cpus);
            case Public.Sysctl.XEN_SYSCTL_CPUPOOL_OP_FREEINFO:
                return WriteCpuBitmap(v, bitmap, nrBits, 0, cpus);
            default:
                return -Errno.ENOSYS;
        }
    }

    /// <summary>
    /// Xen's bitmap_to_xenctl_bitmap over <paramref name="nrCpus"/> CPUs (nr_cpu_ids) of which the first
    /// <paramref name="set"/> are in the map: as many bytes as both sides have, then zeros up to the
    /// guest's nr_bits.
    /// </summary>
    public static long WriteCpuBitmap(Vcpu v, ulong bitmap, uint nrBits, uint set, uint nrCpus)
    {
        ulong guestBytes = ((ulong)nrBits + 7) / 8, xenBytes = ((ulong)nrCpus + 7) / 8;
        for (ulong i = 0; i < guestBytes; i++)
        {
            byte b = 0;
            for (uint bit = 0; i < xenBytes && bit < 8; bit++)
                if (i * 8 + bit < set) b |= (byte)(1 << (int)bit);
            if (!GuestMemory.WriteU8(v, bitmap + i, b)) return -Errno.EFAULT;
        }
        return 0;
    }

    /// <summary>Says once per operation that the toolstack asked for something Microhv does not do
    /// (bits of Machine.ToolstackOpsLogged: sysctl 0-63, domctl 64-255; others are not logged).</summary>
    public static void LogUnknownOnce(Machine m, bool domctl, uint cmd)
    {
        if (domctl ? cmd >= 192 : cmd >= 64) return;
        uint bit = domctl ? 64 + cmd : cmd;
        ulong mask = 1UL << (int)(bit & 63);
        if ((m.ToolstackOpsLogged[bit >> 6] & mask) != 0) return;
        m.ToolstackOpsLogged[bit >> 6] |= mask;
        new ConsoleText(m.Host).Write(domctl ? "domctl" : "sysctl").Write(": operation ").Dec((ulong)cmd).Line(" not supported (-ENOSYS; logged once)");
    }
}
