using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Toolstack;

/// <summary>
/// sysctl numainfo and cputopoinfo (xen/common/sysctl.c), which `xl create` reads to place a domain:
/// Microhv's machine is one NUMA node holding all memory, whose CPUs are single-thread cores of one
/// socket (as physinfo says). Null buffers ask for the count; a count below the machine's is -ENOBUFS.
/// </summary>
public static class Topology
{
    /// <summary>Xen's node distance to itself.</summary>
    public const uint LocalDistance = 10;

    public static long NumaInfo(Vcpu v, ulong arg)
    {
        Machine m = v.Domain.Machine;
        if (!GuestMemory.ReadU32(v, arg + Public.Sysctl.numainfo_num_nodes, out uint num)
            || !GuestMemory.ReadU64(v, arg + Public.Sysctl.numainfo_meminfo, out ulong meminfo)
            || !GuestMemory.ReadU64(v, arg + Public.Sysctl.numainfo_distance, out ulong distance))
            return -Errno.EFAULT;
        const uint nodes = 1;
        if (meminfo != 0 || distance != 0)
        {
            if (num < nodes) return -Errno.ENOBUFS;
            if (meminfo != 0
                && (!GuestMemory.WriteU64(v, meminfo, Sysctl.TotalPages(m) << Layout.PageShift)
                    || !GuestMemory.WriteU64(v, meminfo + 8, m.Frames.FreeFrameCount << Layout.PageShift)))
                return -Errno.EFAULT;
            if (distance != 0 && !GuestMemory.WriteU32(v, distance, LocalDistance)) return -Errno.EFAULT;
        }
        if (num != nodes && !GuestMemory.WriteU32(v, arg + Public.Sysctl.numainfo_num_nodes, nodes)) return -Errno.EFAULT;
        return 0;
    }

    public static long CpuTopoInfo(Vcpu v, ulong arg)
    {
        Machine m = v.Domain.Machine;
        if (!GuestMemory.ReadU32(v, arg + Public.Sysctl.cputopoinfo_num_cpus, out uint num)
            || !GuestMemory.ReadU64(v, arg + Public.Sysctl.cputopoinfo_cputopo, out ulong topo))
            return -Errno.EFAULT;
        uint cpus = m.Host.PhysicalCpuCount == 0 ? 1 : m.Host.PhysicalCpuCount;
        if (topo != 0)
        {
            if (num < cpus) return -Errno.ENOBUFS;
            for (uint i = 0; i < cpus; i++)
            {
                ulong e = topo + (ulong)i * Public.Sysctl.cputopo_size;
                if (!GuestMemory.WriteU32(v, e, i) || !GuestMemory.WriteU32(v, e + 4, 0) || !GuestMemory.WriteU32(v, e + 8, 0))
                    return -Errno.EFAULT;
            }
        }
        if (num != cpus && !GuestMemory.WriteU32(v, arg + Public.Sysctl.cputopoinfo_num_cpus, cpus)) return -Errno.EFAULT;
        return 0;
    }
}
