using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// Grant-table version 2 (xen/common/grant_table.c gnttab_set_version, gnttab_get_status_frames): a
/// domain switches its table between grant_entry_v1 and grant_entry_v2, whose GTF_reading/GTF_writing
/// live in separate status frames (one grant_status_t per entry) that a PV guest learns with
/// get_status_frames (their machine frame numbers) and maps itself; XENMEM_add_to_physmap's
/// XENMAPIDX_grant_table_status is for translated guests only (Mm/AddToPhysmap.cs refuses it, -EACCES).
/// A switch needs every grant but the eight reserved ones (the toolstack's console and xenstore
/// grants) unpinned, keeps those eight converted to the new layout and clears the rest.
/// </summary>
public static class GrantVersion
{
    /// <summary>GNTTABOP_set_version (the count is not looked at, as in Xen): the version in force is
    /// written back whatever the result.</summary>
    public static long SetVersion(Vcpu v, ulong op)
    {
        if (!GuestMemory.ReadU32(v, op + Gnttab.set_version_version, out uint version)) return -Errno.EFAULT;
        GrantTable gt = GrantTable.Of(v.Domain);
        long rc = gt == null ? (version == 1 ? 0 : -Errno.EINVAL) : Switch(gt, version);
        if (!GuestMemory.WriteU32(v, op + Gnttab.set_version_version, gt == null ? 1u : gt.Version)) return -Errno.EFAULT;
        return rc;
    }

    /// <summary>
    /// gnttab_set_version's rules in Xen's order: a version other than 1 or 2 is -EINVAL; 2 beyond the
    /// domain's maximum -ENOSYS; the version in force 0 (nothing changes); a pinned grant past the reserved
    /// ones -EBUSY. From 1: the status frames are allocated (-ENOMEM). From 2: a reserved entry that
    /// version 1 cannot hold (a transitive grant, a frame above 32 bits) is -ERANGE, and a status frame
    /// still mapped by anyone -EBUSY. Then the reserved entries are kept (their status moved between the
    /// status frame and the flags), every other entry is cleared, and the version changes.
    /// </summary>
    public static long Switch(GrantTable gt, uint version)
    {
        if (version != 1 && version != 2) return -Errno.EINVAL;
        if (version == 2 && gt.MaxVersion == 1) return -Errno.ENOSYS;
        if (gt.Version == version) return 0;
        uint entries = gt.NrEntries;
        for (uint i = GrantTable.NrReservedEntries; i < entries; i++)
            if (gt.IsPinned(i)) return -Errno.EBUSY;

        PhysicalMemory mem = gt.Domain.Machine.Memory;
        if (gt.Version == 1)
        {
            if (!gt.PopulateStatusFrames()) return -Errno.ENOMEM;
        }
        else
        {
            for (uint i = 0; i < GrantTable.NrReservedEntries; i++)
            {
                gt.ReadEntry(i, out ushort flags, out _, out ulong frame);
                int type = flags & Gnttab.GTF_type_mask;
                if (type == Gnttab.GTF_transitive || (type == Gnttab.GTF_permit_access && frame >> 32 != 0)) return -Errno.ERANGE;
            }
        }

        ulong[] saved = gt.ReservedScratch;
        for (uint i = 0; i < GrantTable.NrReservedEntries; i++)
        {
            ulong at = gt.EntryAddress(i);
            if (gt.Version == 1) { saved[i] = mem.Read64(at); continue; }
            gt.ReadEntry(i, out ushort flags, out ushort domid, out ulong frame);
            // Only a full or sub-page permit_access entry survives a switch to version 1 (others are cleared).
            saved[i] = (flags & Gnttab.GTF_type_mask) != Gnttab.GTF_permit_access ? 0
                : (ushort)(flags | mem.Read16(gt.StatusAddress(i))) | (ulong)domid << 16 | (frame & 0xFFFF_FFFFUL) << 32;
        }
        if (gt.Version == 2)
        {
            long rc = gt.UnpopulateStatusFrames();
            if (rc != 0) return rc;
        }

        for (int f = 0; f < gt.NrFrames; f++) mem.Fill(gt.Frames[f] << Layout.PageShift, 0, Layout.PageSize);
        gt.Version = version;
        const ushort inUse = Gnttab.GTF_reading | Gnttab.GTF_writing;
        for (uint i = 0; i < GrantTable.NrReservedEntries; i++)
        {
            ulong at = gt.EntryAddress(i), e = saved[i];
            if (version == 1) { mem.Write64(at, e); continue; }
            ushort flags = (ushort)e;
            mem.Write16(gt.StatusAddress(i), (ushort)(flags & inUse));
            mem.Write16(at + Gnttab.entry_v1_flags, (ushort)(flags & ~inUse));
            mem.Write16(at + Gnttab.entry_v1_domid, (ushort)(e >> 16));
            mem.Write64(at + Gnttab.entry_v2_frame, e >> 32);
        }
        return 0;
    }

    /// <summary>
    /// GNTTABOP_get_status_frames: count other than 1 -EINVAL; the struct or a frame list outside the
    /// guest's range -EFAULT; then in the status: no such domain bad_domain, another domain without
    /// privilege permission_denied, more frames than the table has (every frame in version 1, which has
    /// none) general_error, a frame that cannot be written bad_virt_addr; the list holds machine frame
    /// numbers, as setup_table's.
    /// </summary>
    public static long GetStatusFrames(Vcpu v, ulong op, uint count)
    {
        if (count != 1) return -Errno.EINVAL;
        if (!GuestMemory.ReadU32(v, op + Gnttab.get_status_frames_nr_frames, out uint nrFrames)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU16(v, op + Gnttab.get_status_frames_dom, out ushort dom)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU64(v, op + Gnttab.get_status_frames_frame_list, out ulong list)) return -Errno.EFAULT;
        if (!GuestMemory.AccessOk(list, (ulong)nrFrames * 8)) return -Errno.EFAULT;

        short status = GrantTableOp.Target(v, dom, out GrantTable gt);
        if (status == Gnttab.GNTST_okay && nrFrames > gt.NrStatusFrames) status = Gnttab.GNTST_general_error;
        for (uint i = 0; status == Gnttab.GNTST_okay && i < nrFrames; i++)
            if (!GuestMemory.WriteU64(v, list + i * 8, gt.StatusFrames[i])) status = Gnttab.GNTST_bad_virt_addr;
        return GrantTableOp.WriteStatus(v, op + Gnttab.get_status_frames_status, status) ? 0 : -Errno.EFAULT;
    }
}
