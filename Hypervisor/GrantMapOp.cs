using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// GNTTABOP_map_grant_ref, unmap_grant_ref and unmap_and_replace (xen/common/grant_table.c
/// map_grant_ref, unmap_common, unmap_common_complete) for PV domains. A mapping is a host mapping
/// (a PTE, written by Mm/GrantHostMapping.cs), a device mapping (the frame's bus address, which is
/// its machine address: Microhv drives no IOMMU, as Xen without one), or both. Each kind pins the
/// grant once and holds a general reference on the frame, plus a writable type reference unless
/// read-only, so the granter can neither free the frame nor make it a page table while it is mapped.
/// </summary>
public static class GrantMapOp
{
    private const uint Kinds = Gnttab.GNTMAP_device_map | Gnttab.GNTMAP_host_map;

    public static long MapGrantRef(Vcpu v, ulong op)
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
        return GrantTableOp.WriteStatus(v, op + Gnttab.map_status, status) ? 0 : -Errno.EFAULT;
    }

    /// <summary>Mapping kinds in <paramref name="flags"/>: one pin and one set of references each.</summary>
    private static int KindsIn(uint flags)
        => ((flags & Gnttab.GNTMAP_device_map) != 0 ? 1 : 0) + ((flags & Gnttab.GNTMAP_host_map) != 0 ? 1 : 0);

    /// <summary>
    /// map_grant_ref in Xen's order: flags (neither kind: bad_gntref), granter, a maptrack handle, the
    /// reference's bound, then the grant entry (checked when the grant gets its first pin, or its first
    /// writable pin): GTF_permit_access for this domain, not read-only for a writable map; a bad entry
    /// is general_error. The entry's frame must be the granter's (bad_page). Then each kind's
    /// references, then the PTE of a host mapping; any failure undoes everything (general_error).
    /// </summary>
    private static short Map(Vcpu v, ulong hostAddr, uint flags, uint gref, ushort dom, out int handle, out ulong mfn)
    {
        handle = 0;
        mfn = 0;
        int kinds = KindsIn(flags);
        if (kinds == 0) return Gnttab.GNTST_bad_gntref;
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

        bool readOnly = (flags & Gnttab.GNTMAP_readonly) != 0;
        bool pinned = rgt.IsPinned(gref);
        if (pinned && (rgt.ActiveDomid(gref) != ld.DomainId || rgt.IsSubPage(gref)
            || rgt.ReadPins(gref) + kinds > GrantTable.MaxPins || rgt.WritePins(gref) + kinds > GrantTable.MaxPins))
            return Gnttab.GNTST_general_error;
        if (!pinned || (!readOnly && rgt.WritePins(gref) == 0))
        {
            short entry = rgt.CheckEntry(gref, ld.DomainId, readOnly, pinned, true, out ulong frame);
            if (entry != Gnttab.GNTST_okay) return entry;
            if (!pinned)
            {
                if (!m.FrameTable.IsValid(frame) || m.FrameTable.OwnerOf(frame) != rd.DomainId) return Gnttab.GNTST_bad_page;
                rgt.Activate(gref, ld.DomainId, frame);
            }
            rgt.MarkInUse(gref, readOnly);
        }
        for (int k = 0; k < kinds; k++) rgt.Pin(gref, readOnly);
        mfn = rgt.ActiveMfn(gref);

        int held = 0;
        while (held < kinds && GetReferences(m, rd, mfn, readOnly)) held++;
        short status = held == kinds ? Gnttab.GNTST_okay : Gnttab.GNTST_general_error;
        if (status == Gnttab.GNTST_okay && (flags & Gnttab.GNTMAP_host_map) != 0)
            status = Mm.GrantHostMapping.Create(v, hostAddr, mfn, flags);
        if (status != Gnttab.GNTST_okay)
        {
            for (int k = 0; k < held; k++) PutReferences(m, mfn, readOnly);
            for (int k = 0; k < kinds; k++) ReleasePin(rgt, gref, readOnly);
            return status;
        }
        lgt.SetMapping(handle, rd.DomainId, gref, mfn, flags);
        return Gnttab.GNTST_okay;
    }

    /// <summary>One mapping kind's references: get_page, and get_page_type(writable) unless read-only.</summary>
    private static bool GetReferences(Machine m, Domain rd, ulong mfn, bool readOnly)
    {
        if (!Mm.PageTypes.GetPage(m, mfn, rd.DomainId)) return false;
        if (readOnly || Mm.PageTypes.GetPageType(m, rd, mfn, FrameType.Writable) == 0) return true;
        Mm.PageTypes.PutPage(m, mfn);
        return false;
    }

    internal static void PutReferences(Machine m, ulong mfn, bool readOnly)
    {
        if (!readOnly) Mm.PageTypes.PutPageType(m, mfn);
        Mm.PageTypes.PutPage(m, mfn);
    }

    /// <summary>Drops one pin and clears GTF_writing / GTF_reading in the granter's entry when the last
    /// writable pin / the last pin goes (reduce_status_for_pin), so the granter sees the frame is free.</summary>
    internal static void ReleasePin(GrantTable rgt, uint gref, bool readOnly)
    {
        rgt.Unpin(gref, readOnly);
        ushort clear = 0;
        if (!readOnly && rgt.WritePins(gref) == 0) clear |= Gnttab.GTF_writing;
        if (!rgt.IsPinned(gref)) clear |= Gnttab.GTF_reading;
        if (clear != 0) rgt.ClearStatusFlags(gref, clear);
    }

    /// <summary>unmap_grant_ref: struct gnttab_unmap_grant_ref; only the status is written back.</summary>
    public static long UnmapGrantRef(Vcpu v, ulong op)
    {
        if (!GuestMemory.ReadU64(v, op + Gnttab.unmap_host_addr, out ulong hostAddr)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU64(v, op + Gnttab.unmap_dev_bus_addr, out ulong devBusAddr)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU32(v, op + Gnttab.unmap_handle, out uint handle)) return -Errno.EFAULT;
        short status = Unmap(v, hostAddr, devBusAddr, 0, handle);
        return GrantTableOp.WriteStatus(v, op + Gnttab.unmap_status, status) ? 0 : -Errno.EFAULT;
    }

    /// <summary>unmap_and_replace: struct gnttab_unmap_and_replace. The host mapping's PTE is replaced by
    /// the one at new_addr, which is cleared (new_addr 0: the PTE is cleared, as an unmap); no device unmap.</summary>
    public static long UnmapAndReplace(Vcpu v, ulong op)
    {
        if (!GuestMemory.ReadU64(v, op + Gnttab.unmap_and_replace_host_addr, out ulong hostAddr)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU64(v, op + Gnttab.unmap_and_replace_new_addr, out ulong newAddr)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU32(v, op + Gnttab.unmap_and_replace_handle, out uint handle)) return -Errno.EFAULT;
        short status = Unmap(v, hostAddr, 0, newAddr, handle);
        return GrantTableOp.WriteStatus(v, op + Gnttab.unmap_and_replace_status, status) ? 0 : -Errno.EFAULT;
    }

    /// <summary>
    /// unmap_common and its completion: the handle must name a live mapping (bad_handle). A non-zero
    /// host_addr of a host mapping must still hold the grant PTE, which is cleared or replaced (else
    /// general_error, and nothing changes); a non-zero dev_bus_addr of a device mapping must be the
    /// frame's address (bad_dev_addr) and ends it. What was ended drops its references and pin; the
    /// handle is freed when neither kind is left. Zero addresses end nothing, as in Xen.
    /// </summary>
    private static short Unmap(Vcpu v, ulong hostAddr, ulong devBusAddr, ulong newAddr, uint handle)
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
        bool device = devBusAddr != 0 && (flags & Gnttab.GNTMAP_device_map) != 0;
        if (device && devBusAddr != mfn << Layout.PageShift) return Gnttab.GNTST_bad_dev_addr;
        bool host = hostAddr != 0 && (flags & Gnttab.GNTMAP_host_map) != 0;
        if (host)
        {
            short status = Mm.GrantHostMapping.Replace(v, hostAddr, mfn, newAddr, flags);
            if (status != Gnttab.GNTST_okay) return status;
        }
        uint left = flags;
        if (host) left &= ~Gnttab.GNTMAP_host_map;
        if (device) left &= ~Gnttab.GNTMAP_device_map;
        lgt.SetMappingFlags(handle, (left & Kinds) == 0 ? 0 : left);

        bool readOnly = (flags & Gnttab.GNTMAP_readonly) != 0;
        int ended = (host ? 1 : 0) + (device ? 1 : 0);
        for (int k = 0; k < ended; k++)
        {
            PutReferences(m, mfn, readOnly);
            ReleasePin(rgt, gref, readOnly);
        }
        if (ended != 0) DomainRelinquish.AfterUnmap(rd, mfn);     // a dead granter's frame goes back once unmapped
        return Gnttab.GNTST_okay;
    }
}
