using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// Xen's get_pg_owner: the domain whose frames a memory hypercall maps (its foreigndom argument).
/// DOMID_SELF is the caller; naming oneself by number is refused as Xen does (-ESRCH); another
/// domain may be named only by a privileged (initial) domain. DOMID_IO names I/O space, whose
/// mappings are checked against the caller's own iomem permissions, so it stands for the caller (as
/// classic XenLinux and mini-os use it); DOMID_XEN is refused: no guest maps hypervisor frames.
/// </summary>
public static class PgOwner
{
    public static Domain Get(Domain d, ulong domid, out long rc)
    {
        rc = 0;
        ushort id = (ushort)domid;
        if (id == Xen.DOMID_SELF) return d;
        if (id == d.DomainId) { rc = -Errno.ESRCH; return null; }
        if (id == Xen.DOMID_IO) return d;
        if (id == Xen.DOMID_XEN) { rc = -Errno.EPERM; return null; }
        Domain other = d.Machine.FindDomain(id);
        if (other == null) { rc = -Errno.ESRCH; return null; }
        if (!d.IsInitialDomain) { rc = -Errno.EPERM; return null; }
        return other;
    }
}
