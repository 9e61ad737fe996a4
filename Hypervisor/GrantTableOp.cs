using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// grant_table_op (xen/common/grant_table.c do_grant_table_op), version 1. setup_table, query_size,
/// set_version and get_version work; map_grant_ref and unmap_grant_ref install and remove PV host
/// mappings (GNTMAP_host_map, optionally read-only or by PTE address with GNTMAP_contains_pte; the
/// page-table half is Mm/GrantHostMapping.cs). Device mappings, copy, transfer and the v2 commands
/// are not offered (general_error / -ENOSYS). Per-operation failures go in each operation's status; the call itself
/// returns 0, -EFAULT, -EINVAL or -ENOSYS.
/// </summary>
public static class GrantTableOp
{
    private const ulong CmdMask = 0xFFF;   // the bits above are a continuation's argument

    public static long Do(Vcpu v, ulong cmd, ulong uop, ulong count)
    {
        if ((int)(uint)count < 0) return -Errno.EINVAL;
        uint n = (uint)count;
        switch ((int)(cmd & CmdMask))
        {
            case Gnttab.GNTTABOP_setup_table: return n != 1 ? -Errno.EINVAL : SetupTable(v, uop);
            case Gnttab.GNTTABOP_query_size: return n != 1 ? -Errno.EINVAL : QuerySize(v, uop);
            case Gnttab.GNTTABOP_set_version: return n != 1 ? -Errno.EINVAL : SetVersion(v, uop);
            case Gnttab.GNTTABOP_get_version: return n != 1 ? -Errno.EINVAL : GetVersion(v, uop);
            case Gnttab.GNTTABOP_map_grant_ref: return Each(v, cmd, uop, n, Gnttab.map_size, true);
            case Gnttab.GNTTABOP_unmap_grant_ref: return Each(v, cmd, uop, n, Gnttab.unmap_size, false);
            default: return -Errno.ENOSYS;
        }
    }

    /// <summary>The table of domain <paramref name="domid"/> (DOMID_SELF or any id), if the caller may use it.</summary>
    private static short Target(Vcpu v, ushort domid, out GrantTable gt)
    {
        gt = null;
        Domain self = v.Domain;
        Domain d = domid == Xen.DOMID_SELF ? self : self.Machine.FindDomain(domid);
        if (d == null) return Gnttab.GNTST_bad_domain;
        if (d != self && !self.IsInitialDomain) return Gnttab.GNTST_permission_denied;
        gt = GrantTable.Of(d);
        return gt == null ? Gnttab.GNTST_general_error : Gnttab.GNTST_okay;
    }

    private static bool WriteStatus(Vcpu v, ulong va, short status)
        => GuestMemory.WriteU8(v, va, (byte)status) && GuestMemory.WriteU8(v, va + 1, (byte)((ushort)status >> 8));

    /// <summary>GNTTABOP_setup_table: grows the table to nr_frames and lists its frames (machine frame
    /// numbers, since a PV guest maps machine frames).</summary>
    private static long SetupTable(Vcpu v, ulong op)
    {
        if (!GuestMemory.ReadU16(v, op + Gnttab.setup_table_dom, out ushort dom)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU32(v, op + Gnttab.setup_table_nr_frames, out uint nrFrames)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU64(v, op + Gnttab.setup_table_frame_list, out ulong list)) return -Errno.EFAULT;

        GrantTable gt = null;
        short status = nrFrames > GrantTable.MaxFrames ? Gnttab.GNTST_general_error : Target(v, dom, out gt);
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

    /// <summary>Version 1 only: asking for 2 is -ENOSYS, as Xen answers when its maximum version is 1;
    /// the version in force is written back either way.</summary>
    private static long SetVersion(Vcpu v, ulong op)
    {
        if (!GuestMemory.ReadU32(v, op + Gnttab.set_version_version, out uint version)) return -Errno.EFAULT;
        GrantTable gt = GrantTable.Of(v.Domain);
        long rc = version == 1 ? 0 : version == 2 ? -Errno.ENOSYS : -Errno.EINVAL;
        if (!GuestMemory.WriteU32(v, op + Gnttab.set_version_version, gt == null ? 1u : gt.Version)) return -Errno.EFAULT;
        return rc;
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

    /// <summary>map/unmap over an array of <paramref name="count"/> operations; a bad operation pointer
    /// is -EFAULT. Preemptible as in Xen: the rest of the array becomes a continuation.</summary>
    private static long Each(Vcpu v, ulong cmd, ulong uop, uint count, int size, bool map)
    {
        for (uint i = 0; i < count; i++)
        {
            ulong op = uop + (ulong)i * (ulong)size;
            if (i != 0 && Continuation.PreemptCheck(v)) return Continuation.Create(v, Xen.__HYPERVISOR_grant_table_op, cmd, op, count - i);
            long rc = map ? MapGrantRef(v, op) : UnmapGrantRef(v, op);
            if (rc != 0) return rc;
        }
        return 0;
    }

    private static long MapGrantRef(Vcpu v, ulong op)
    {
        if (!GuestMemory.ReadU64(v, op + Gnttab.map_host_addr, out ulong hostAddr)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU32(v, op + Gnttab.map_flags, out uint flags)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU32(v, op + Gnttab.map_ref, out uint gref)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU16(v, op + Gnttab.map_dom, out ushort dom)) return -Errno.EFAULT;
        short status = Map(v, hostAddr, flags, gref, dom, out int handle, out ulong mfn);
        if (status == Gnttab.GNTST_okay)
        {
            if (!GuestMemory.WriteU32(v, op + Gnttab.map_handle, (uint)handle)) return -Errno.EFAULT;
            if (!GuestMemory.WriteU64(v, op + Gnttab.map_dev_bus_addr, mfn << Layout.PageShift)) return -Errno.EFAULT;
        }
        return WriteStatus(v, op + Gnttab.map_status, status) ? 0 : -Errno.EFAULT;
    }

    /// <summary>
    /// map_grant_ref for a host mapping, in Xen's order: flags, granter, a maptrack handle, the
    /// reference's bound, then the grant entry (checked when the grant gets its first pin, or its first
    /// writable pin): GTF_permit_access for this domain, not read-only for a writable map; a bad entry
    /// is general_error, as in Xen. The entry's frame must be the granter's (bad_page). The mapping
    /// takes a reference on the frame, and a writable type reference unless read-only, so the granter
    /// can neither free the frame nor make it a page table while it is mapped; then the PTE is written.
    /// Device mappings (GNTMAP_device_map) need an IOMMU Microhv does not drive: general_error.
    /// </summary>
    private static short Map(Vcpu v, ulong hostAddr, uint flags, uint gref, ushort dom, out int handle, out ulong mfn)
    {
        handle = 0;
        mfn = 0;
        if ((flags & (Gnttab.GNTMAP_device_map | Gnttab.GNTMAP_host_map)) == 0) return Gnttab.GNTST_bad_gntref;
        Domain ld = v.Domain;
        Machine m = ld.Machine;
        Domain rd = m.FindDomain(dom);
        if (rd == null) return Gnttab.GNTST_bad_domain;
        GrantTable lgt = GrantTable.Of(ld);
        handle = lgt == null ? -1 : lgt.AllocateHandle();
        if (handle < 0) return Gnttab.GNTST_no_space;
        GrantTable rgt = GrantTable.Of(rd);
        if (rgt == null) return Gnttab.GNTST_general_error;
        if (gref >= rgt.NrEntries) return Gnttab.GNTST_bad_gntref;
        if ((flags & Gnttab.GNTMAP_device_map) != 0) return Gnttab.GNTST_general_error;

        bool readOnly = (flags & Gnttab.GNTMAP_readonly) != 0;
        bool pinned = rgt.IsPinned(gref);
        if (pinned && (rgt.ActiveDomid(gref) != ld.DomainId
            || rgt.ReadPins(gref) >= GrantTable.MaxPins || rgt.WritePins(gref) >= GrantTable.MaxPins))
            return Gnttab.GNTST_general_error;
        if (!pinned || (!readOnly && rgt.WritePins(gref) == 0))
        {
            rgt.ReadEntry(gref, out ushort gflags, out ushort domid, out uint frame);
            if ((gflags & Gnttab.GTF_type_mask) != Gnttab.GTF_permit_access || domid != ld.DomainId) return Gnttab.GNTST_general_error;
            if (!readOnly && (gflags & Gnttab.GTF_readonly) != 0) return Gnttab.GNTST_general_error;
            if (!pinned)
            {
                if (!m.FrameTable.IsValid(frame) || m.FrameTable.OwnerOf(frame) != rd.DomainId) return Gnttab.GNTST_bad_page;
                rgt.Activate(gref, ld.DomainId, frame);
            }
            rgt.SetEntryFlags(gref, readOnly ? Gnttab.GTF_reading : (ushort)(Gnttab.GTF_reading | Gnttab.GTF_writing));
        }
        rgt.Pin(gref, readOnly);
        mfn = rgt.ActiveMfn(gref);

        short status = Gnttab.GNTST_general_error;
        if (Mm.PageTypes.GetPage(m, mfn, rd.DomainId))
        {
            if (readOnly || Mm.PageTypes.GetPageType(m, rd, mfn, FrameType.Writable) == 0)
            {
                status = Mm.GrantHostMapping.Create(v, hostAddr, mfn, flags);
                if (status != Gnttab.GNTST_okay && !readOnly) Mm.PageTypes.PutPageType(m, mfn);
            }
            if (status != Gnttab.GNTST_okay) Mm.PageTypes.PutPage(m, mfn);
        }
        if (status != Gnttab.GNTST_okay)
        {
            ReleasePin(rgt, gref, readOnly);
            return status;
        }
        lgt.SetMapping(handle, rd.DomainId, gref, mfn, flags);
        return Gnttab.GNTST_okay;
    }

    /// <summary>Drops one pin and clears GTF_writing / GTF_reading in the granter's entry when the last
    /// writable pin / the last pin goes, so the granter sees the frame is no longer accessed.</summary>
    internal static void ReleasePin(GrantTable rgt, uint gref, bool readOnly)
    {
        rgt.Unpin(gref, readOnly);
        ushort clear = 0;
        if (!readOnly && rgt.WritePins(gref) == 0) clear |= Gnttab.GTF_writing;
        if (!rgt.IsPinned(gref)) clear |= Gnttab.GTF_reading;
        if (clear != 0) rgt.ClearEntryFlags(gref, clear);
    }

    private static long UnmapGrantRef(Vcpu v, ulong op)
    {
        if (!GuestMemory.ReadU64(v, op + Gnttab.unmap_host_addr, out ulong hostAddr)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU64(v, op + Gnttab.unmap_dev_bus_addr, out ulong devBusAddr)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU32(v, op + Gnttab.unmap_handle, out uint handle)) return -Errno.EFAULT;
        short status = Unmap(v, hostAddr, devBusAddr, handle);
        return WriteStatus(v, op + Gnttab.unmap_status, status) ? 0 : -Errno.EFAULT;
    }

    /// <summary>
    /// unmap_common and its completion: the handle must name a live mapping (bad_handle); a non-zero
    /// dev_bus_addr must be the frame's address; a non-zero host_addr must still hold the grant PTE,
    /// which is cleared (and its translation flushed) before the mapping's references and pin are
    /// dropped. With host_addr 0 nothing is unmapped and the handle stays, as in Xen.
    /// </summary>
    private static short Unmap(Vcpu v, ulong hostAddr, ulong devBusAddr, uint handle)
    {
        Domain ld = v.Domain;
        Machine m = ld.Machine;
        GrantTable lgt = GrantTable.Of(ld);
        if (lgt == null || !lgt.GetMapping(handle, out ushort dom, out uint gref, out ulong mfn, out uint flags))
            return Gnttab.GNTST_bad_handle;
        // Domains are never removed (a dead one keeps its grant table while its grants are mapped), so the granter is found.
        Domain rd = m.FindDomain(dom);
        GrantTable rgt = rd == null ? null : GrantTable.Of(rd);
        if (rgt == null) return Gnttab.GNTST_general_error;
        if (gref >= rgt.NrEntries) return Gnttab.GNTST_bad_handle;
        if (devBusAddr != 0 && devBusAddr != mfn << Layout.PageShift) return Gnttab.GNTST_general_error;
        if (hostAddr == 0 || (flags & Gnttab.GNTMAP_host_map) == 0) return Gnttab.GNTST_okay;

        short status = Mm.GrantHostMapping.Destroy(v, hostAddr, mfn, flags);
        if (status != Gnttab.GNTST_okay) return status;
        bool readOnly = (flags & Gnttab.GNTMAP_readonly) != 0;
        uint left = flags & ~Gnttab.GNTMAP_host_map;
        lgt.SetMappingFlags(handle, (left & Gnttab.GNTMAP_device_map) == 0 ? 0 : left);
        if (!readOnly) Mm.PageTypes.PutPageType(m, mfn);
        Mm.PageTypes.PutPage(m, mfn);
        ReleasePin(rgt, gref, readOnly);
        DomainRelinquish.AfterUnmap(rd, mfn);     // a dead granter's frame goes back once unmapped
        return Gnttab.GNTST_okay;
    }
}
