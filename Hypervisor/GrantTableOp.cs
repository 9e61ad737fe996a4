using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// grant_table_op (xen/common/grant_table.c do_grant_table_op): setup_table, query_size and get_version
/// here; set_version and get_status_frames in GrantVersion.cs; map_grant_ref, unmap_grant_ref and
/// unmap_and_replace in GrantMapOp.cs; copy in GrantCopyOp.cs; transfer in GrantTransferOp.cs;
/// cache_flush in GrantCacheFlushOp.cs; swap_grant_ref here. Other commands (dump_table is gone
/// from Xen 4.17) -ENOSYS. Per-operation failures go in each operation's status; the call itself
/// returns 0 or an errno.
/// </summary>
public static class GrantTableOp
{
    public static long Do(Vcpu v, ulong cmd, ulong uop, ulong count)
    {
        if ((int)(uint)count < 0) return -Errno.EINVAL;
        uint n = (uint)count;
        // Only cache_flush carries a continuation argument above the command (Xen's opaque_in).
        if (((uint)cmd & Gnttab.GNTTABOP_CMD_MASK) != Gnttab.GNTTABOP_cache_flush && ((uint)cmd & ~Gnttab.GNTTABOP_CMD_MASK) != 0)
            return -Errno.EINVAL;
        switch ((int)((uint)cmd & Gnttab.GNTTABOP_CMD_MASK))
        {
            case Gnttab.GNTTABOP_setup_table: return n != 1 ? -Errno.EINVAL : SetupTable(v, uop);
            case Gnttab.GNTTABOP_query_size: return n != 1 ? -Errno.EINVAL : QuerySize(v, uop);
            // Xen does not look at the count of these two.
            case Gnttab.GNTTABOP_set_version: return GrantVersion.SetVersion(v, uop);
            case Gnttab.GNTTABOP_get_version: return GetVersion(v, uop);
            case Gnttab.GNTTABOP_get_status_frames: return GrantVersion.GetStatusFrames(v, uop, n);
            case Gnttab.GNTTABOP_map_grant_ref: return Each(v, cmd, uop, n, Gnttab.map_size, Gnttab.GNTTABOP_map_grant_ref);
            case Gnttab.GNTTABOP_unmap_grant_ref: return Each(v, cmd, uop, n, Gnttab.unmap_size, Gnttab.GNTTABOP_unmap_grant_ref);
            case Gnttab.GNTTABOP_unmap_and_replace: return Each(v, cmd, uop, n, Gnttab.unmap_and_replace_size, Gnttab.GNTTABOP_unmap_and_replace);
            case Gnttab.GNTTABOP_copy: return GrantCopyOp.Do(v, cmd, uop, n);
            case Gnttab.GNTTABOP_swap_grant_ref: return SwapGrantRefs(v, cmd, uop, n);
            case Gnttab.GNTTABOP_transfer: return GrantTransferOp.Do(v, cmd, uop, n);
            case Gnttab.GNTTABOP_cache_flush: return GrantCacheFlushOp.Do(v, cmd, uop, n);
            default: return -Errno.ENOSYS;
        }
    }

    /// <summary>The table of domain <paramref name="domid"/> (DOMID_SELF or any id), if the caller may use it.</summary>
    internal static short Target(Vcpu v, ushort domid, out GrantTable gt)
    {
        gt = null;
        Domain self = v.Domain;
        Domain d = domid == Xen.DOMID_SELF ? self : self.Machine.FindDomain(domid);
        if (d == null) return Gnttab.GNTST_bad_domain;
        if (d != self && !self.IsInitialDomain) return Gnttab.GNTST_permission_denied;
        gt = GrantTable.Of(d);
        return gt == null ? Gnttab.GNTST_general_error : Gnttab.GNTST_okay;
    }

    internal static bool WriteStatus(Vcpu v, ulong va, short status)
        => GuestMemory.WriteU8(v, va, (byte)status) && GuestMemory.WriteU8(v, va + 1, (byte)((ushort)status >> 8));

    /// <summary>GNTTABOP_setup_table: grows the table to nr_frames (in version 2 with its status frames)
    /// and lists its frames (machine frame numbers, since a PV guest maps machine frames). A frame list
    /// outside the guest's range is -EFAULT; then the domain is checked, then the limit.</summary>
    private static long SetupTable(Vcpu v, ulong op)
    {
        if (!GuestMemory.ReadU16(v, op + Gnttab.setup_table_dom, out ushort dom)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU32(v, op + Gnttab.setup_table_nr_frames, out uint nrFrames)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU64(v, op + Gnttab.setup_table_frame_list, out ulong list)) return -Errno.EFAULT;

        if (!GuestMemory.AccessOk(list, (ulong)nrFrames * 8)) return -Errno.EFAULT;

        short status = Target(v, dom, out GrantTable gt);
        if (status == Gnttab.GNTST_okay && nrFrames > GrantTable.MaxFrames) status = Gnttab.GNTST_general_error;
        if (status == Gnttab.GNTST_okay)
        {
            if (!gt.Grow((int)nrFrames)) status = Gnttab.GNTST_general_error;
            for (uint i = 0; status == Gnttab.GNTST_okay && i < nrFrames; i++)
                if (!GuestMemory.WriteU64(v, list + i * 8, gt.Frames[i])) status = Gnttab.GNTST_bad_virt_addr;
        }
        return WriteStatus(v, op + Gnttab.setup_table_status, status) ? 0 : -Errno.EFAULT;
    }

    private static long QuerySize(Vcpu v, ulong op)
    {
        if (!GuestMemory.ReadU16(v, op + Gnttab.query_size_dom, out ushort dom)) return -Errno.EFAULT;
        short status = Target(v, dom, out GrantTable gt);
        if (status == Gnttab.GNTST_okay)
        {
            if (!GuestMemory.WriteU32(v, op + Gnttab.query_size_nr_frames, (uint)gt.NrFrames)) return -Errno.EFAULT;
            if (!GuestMemory.WriteU32(v, op + Gnttab.query_size_max_nr_frames, GrantTable.MaxFrames)) return -Errno.EFAULT;
        }
        return WriteStatus(v, op + Gnttab.query_size_status, status) ? 0 : -Errno.EFAULT;
    }

    private static long GetVersion(Vcpu v, ulong op)
    {
        if (!GuestMemory.ReadU16(v, op + Gnttab.get_version_dom, out ushort dom)) return -Errno.EFAULT;
        Domain self = v.Domain;
        Domain d = dom == Xen.DOMID_SELF ? self : self.Machine.FindDomain(dom);
        if (d == null) return -Errno.ESRCH;
        if (d != self && !self.IsInitialDomain) return -Errno.EPERM;
        GrantTable gt = GrantTable.Of(d);
        return GuestMemory.WriteU32(v, op + Gnttab.get_version_version, gt == null ? 1u : gt.Version) ? 0 : -Errno.EFAULT;
    }

    /// <summary>map, unmap and unmap_and_replace over an array of <paramref name="count"/> operations; a bad
    /// operation pointer is -EFAULT. Preemptible as in Xen: the rest of the array becomes a continuation.</summary>
    private static long Each(Vcpu v, ulong cmd, ulong uop, uint count, int size, int which)
    {
        for (uint i = 0; i < count; i++)
        {
            ulong op = uop + (ulong)i * (ulong)size;
            if (i != 0 && Continuation.PreemptCheck(v)) return Continuation.Create(v, Xen.__HYPERVISOR_grant_table_op, cmd, op, count - i);
            long rc = which == Gnttab.GNTTABOP_map_grant_ref ? GrantMapOp.MapGrantRef(v, op)
                : which == Gnttab.GNTTABOP_unmap_grant_ref ? GrantMapOp.UnmapGrantRef(v, op)
                : GrantMapOp.UnmapAndReplace(v, op);
            if (rc != 0) return rc;
        }
        return 0;
    }

    /// <summary>GNTTABOP_swap_grant_ref over an array of struct gnttab_swap_grant_ref: an array whose start is
    /// outside the guest's range, an operation that cannot be read or its status written, -EFAULT; preempted
    /// like map and unmap.</summary>
    private static long SwapGrantRefs(Vcpu v, ulong cmd, ulong uop, uint count)
    {
        if (!GuestMemory.AccessOk(uop, 1)) return -Errno.EFAULT;
        for (uint i = 0; i < count; i++)
        {
            ulong op = uop + (ulong)i * Gnttab.swap_grant_ref_size;
            if (i != 0 && Continuation.PreemptCheck(v)) return Continuation.Create(v, Xen.__HYPERVISOR_grant_table_op, cmd, op, count - i);
            if (!GuestMemory.ReadU32(v, op + Gnttab.swap_grant_ref_ref_a, out uint a)) return -Errno.EFAULT;
            if (!GuestMemory.ReadU32(v, op + Gnttab.swap_grant_ref_ref_b, out uint b)) return -Errno.EFAULT;
            GrantTable gt = GrantTable.Of(v.Domain);
            short status = gt == null ? Gnttab.GNTST_general_error : Swap(gt, a, b);
            if (!WriteStatus(v, op + Gnttab.swap_grant_ref_status, status)) return -Errno.EFAULT;
        }
        return 0;
    }

    /// <summary>swap_grant_ref: both references inside the table (bad_gntref), the same one a no-op, either
    /// pinned eagain; then the two entries change places, in version 2 with their status.</summary>
    public static short Swap(GrantTable gt, uint a, uint b)
    {
        if (a >= gt.NrEntries || b >= gt.NrEntries) return Gnttab.GNTST_bad_gntref;
        if (a == b) return Gnttab.GNTST_okay;
        if (gt.IsPinned(a) || gt.IsPinned(b)) return Gnttab.GNTST_eagain;
        PhysicalMemory mem = gt.Domain.Machine.Memory;
        int words = gt.Version == 1 ? 1 : 2;
        for (int w = 0; w < words; w++)
        {
            ulong at = gt.EntryAddress(a) + (ulong)w * 8, bt = gt.EntryAddress(b) + (ulong)w * 8;
            ulong x = mem.Read64(at);
            mem.Write64(at, mem.Read64(bt));
            mem.Write64(bt, x);
        }
        if (gt.Version == 2)
        {
            ulong sa = gt.StatusAddress(a), sb = gt.StatusAddress(b);
            ushort x = mem.Read16(sa);
            mem.Write16(sa, mem.Read16(sb));
            mem.Write16(sb, x);
        }
        return Gnttab.GNTST_okay;
    }
}
