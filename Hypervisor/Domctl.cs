using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// domctl (xen/common/domctl.c): the toolstack's operations on one domain, at Xen 4.17's interface
/// version (another gets -EACCES). In Xen's order: the version, then the target domain (-ESRCH when
/// there is none, except for getdomaininfo, which takes the next one up), then the caller's privilege
/// (XSM's default policy: the control domain only, -EPERM for others). Microhv answers what `xl`
/// uses to create, build, query, pause and destroy a PV domain (Toolstack/*.cs); every other
/// operation is -ENOSYS, logged once per operation.
/// </summary>
public static class Domctl
{
    public static long Do(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + Public.Domctl.cmd, out uint cmd)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU32(v, arg + Public.Domctl.interface_version, out uint version)) return -Errno.EFAULT;
        if (version != Public.Domctl.XEN_DOMCTL_INTERFACE_VERSION) return -Errno.EACCES;
        if (!GuestMemory.ReadU16(v, arg + Public.Domctl.domain, out ushort domid)) return -Errno.EFAULT;
        Machine m = v.Domain.Machine;
        Domain d = cmd == Public.Domctl.XEN_DOMCTL_createdomain ? null : m.FindDomain(domid);
        if (d == null && cmd != Public.Domctl.XEN_DOMCTL_createdomain && cmd != Public.Domctl.XEN_DOMCTL_getdomaininfo)
            return -Errno.ESRCH;
        if (!v.Domain.IsControlDomain) return -Errno.EPERM;
        switch (cmd)
        {
            case Public.Domctl.XEN_DOMCTL_getdomaininfo: return GetDomainInfo(v, arg, d, domid);
            case Public.Domctl.XEN_DOMCTL_createdomain: return Toolstack.DomainLifecycle.Create(v, arg, domid);
            case Public.Domctl.XEN_DOMCTL_destroydomain: return Toolstack.DomainLifecycle.Destroy(v, d);
            case Public.Domctl.XEN_DOMCTL_pausedomain: return Toolstack.DomainLifecycle.Pause(v, d);
            case Public.Domctl.XEN_DOMCTL_unpausedomain: return Toolstack.DomainLifecycle.Unpause(v, d);
            case Public.Domctl.XEN_DOMCTL_max_vcpus:
                if (!GuestMemory.ReadU32(v, arg + Public.Domctl.max_vcpus_max, out uint max)) return -Errno.EFAULT;
                return Toolstack.DomainLifecycle.SetMaxVcpus(v, d, max);
            case Public.Domctl.XEN_DOMCTL_max_mem: return Toolstack.DomainSettings.MaxMem(v, d, arg);
            case Public.Domctl.XEN_DOMCTL_setvcpuaffinity: return Toolstack.DomainSettings.VcpuAffinity(v, d, arg, true);
            case Public.Domctl.XEN_DOMCTL_getvcpuaffinity: return Toolstack.DomainSettings.VcpuAffinity(v, d, arg, false);
            case Public.Domctl.XEN_DOMCTL_setnodeaffinity: return Toolstack.DomainSettings.SetNodeAffinity(v, arg);
            case Public.Domctl.XEN_DOMCTL_settscinfo: return Toolstack.DomainSettings.SetTscInfo(v, d, arg);
            case Public.Domctl.XEN_DOMCTL_gettscinfo: return Toolstack.DomainSettings.GetTscInfo(v, d, arg);
            case Public.Domctl.XEN_DOMCTL_scheduler_op: return Toolstack.DomainSettings.SchedulerOp(v, d, arg);
            case Public.Domctl.XEN_DOMCTL_set_address_size: return Toolstack.DomainSettings.SetAddressSize(v, arg);
            case Public.Domctl.XEN_DOMCTL_get_address_size: return Toolstack.DomainSettings.GetAddressSize(v, arg);
            case Public.Domctl.XEN_DOMCTL_hypercall_init: return Toolstack.DomainSettings.HypercallInit(v, d, arg);
            case Public.Domctl.XEN_DOMCTL_setdomainhandle: return Toolstack.DomainSettings.SetDomainHandle(v, d, arg);
            case Public.Domctl.XEN_DOMCTL_settimeoffset: return Toolstack.DomainSettings.SetTimeOffset(v, d, arg);
            case Public.Domctl.XEN_DOMCTL_getvcpuinfo: return Toolstack.DomainSettings.GetVcpuInfo(v, d, arg);
            case Public.Domctl.XEN_DOMCTL_setvcpucontext: return Toolstack.VcpuContext.Set(v, d, arg);
            case Public.Domctl.XEN_DOMCTL_getvcpucontext: return Toolstack.VcpuContext.Get(v, d, arg);
            case Public.Domctl.XEN_DOMCTL_get_cpu_policy: return Toolstack.CpuPolicy.GetDomain(v, d, arg);
            case Public.Domctl.XEN_DOMCTL_set_cpu_policy: return Toolstack.CpuPolicy.Set(v, d, arg);
            default:
                Sysctl.LogUnknownOnce(m, true, cmd);
                return -Errno.ENOSYS;
        }
    }

    /// <summary>
    /// The domain asked for, or else the first one with a higher id (how xenstored and libxl walk
    /// the domains); a reserved id (DOMID_SELF and above) is -EINVAL, nothing at or above it -ESRCH.
    /// The domain found is echoed in the domctl's domain field.
    /// </summary>
    private static long GetDomainInfo(Vcpu v, ulong arg, Domain d, ushort domid)
    {
        if (d == null)
        {
            if (domid >= Xen.DOMID_FIRST_RESERVED) return -Errno.EINVAL;
            d = DomainInfo.FirstAtOrAbove(v.Domain.Machine, domid);
            if (d == null) return -Errno.ESRCH;
        }
        if (!DomainInfo.Write(v, arg + Public.Domctl.u, d)) return -Errno.EFAULT;
        return GuestMemory.WriteU8(v, arg + Public.Domctl.domain, (byte)d.DomainId)
            && GuestMemory.WriteU8(v, arg + Public.Domctl.domain + 1, (byte)(d.DomainId >> 8)) ? 0 : -Errno.EFAULT;
    }
}
