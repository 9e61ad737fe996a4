using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// XENMEM_add_to_physmap and add_to_physmap_batch (xen/common/memory.c) for PV domains: they place a
/// page (a grant-table or status frame with XENMAPIDX_grant_table_status, shared_info, another
/// domain's frame) at a guest frame number of a translated guest, so Xen refuses them for a PV
/// domain, which maps machine frames itself, with -EACCES (xatp_permission_check) after its argument
/// checks: a continuation start beyond 16 bits -EDOM, an unreadable argument -EFAULT, a mapping space
/// the call never takes (gmfn_foreign alone, gmfn_range in a batch), no such domain -ESRCH.
/// </summary>
public static class AddToPhysmap
{
    public static long Do(Vcpu v, int op, ulong arg, ulong startExtent)
    {
        if (startExtent > 0xFFFF) return -Errno.EDOM;
        bool batch = op == XenMem.XENMEM_add_to_physmap_batch;
        int size = batch ? XenMem.add_to_physmap_batch_size : XenMem.add_to_physmap_size;
        for (int i = 0; i < size; i += 8)
            if (!GuestMemory.ReadU64(v, arg + (ulong)i, out _)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU16(v, arg + XenMem.add_to_physmap_domid, out ushort domid)) return -Errno.EFAULT;
        uint space;
        if (batch)
        {
            if (!GuestMemory.ReadU16(v, arg + XenMem.add_to_physmap_batch_space, out ushort s)) return -Errno.EFAULT;
            space = s;
            if (space == XenMem.XENMAPSPACE_gmfn_range) return -Errno.EOPNOTSUPP;
        }
        else
        {
            if (!GuestMemory.ReadU32(v, arg + XenMem.add_to_physmap_space, out space)) return -Errno.EFAULT;
            if (space == XenMem.XENMAPSPACE_gmfn_foreign) return -Errno.ENOSYS;
        }
        Domain self = v.Domain;
        Domain d = domid == Xen.DOMID_SELF ? self : self.Machine.FindDomain(domid);
        if (d == null) return -Errno.ESRCH;
        return -Errno.EACCES;       // not a translated (HVM) domain
    }
}
