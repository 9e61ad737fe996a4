using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// GNTTABOP_copy (xen/common/grant_table.c gnttab_copy): bytes copied between two pages, each named
/// either by a grant reference of some domain (GNTCOPY_source_gref / GNTCOPY_dest_gref) or, for the
/// caller's own memory only, by its frame number (DOMID_SELF; a PV guest's gmfn is the MFN). It is how
/// Linux's netback moves packets: TX reads the frontend's grant into dom0's own page, RX writes dom0's
/// page into the frontend's grant. While one copy runs the grant is pinned for the caller and carries
/// GTF_reading (and GTF_writing as destination), the frame holds a general reference and, as
/// destination, a writable type reference, so a page table or descriptor page is never written.
/// Each operation gets a status in Xen's order; the call returns 0, -EFAULT, or is continued.
/// </summary>
public static class GrantCopyOp
{
    /// <summary>One side of a copy once claimed (struct gnttab_copy_buf): the frame and the part of it
    /// the grant allows, and what must be given back.</summary>
    private struct Buf
    {
        public Domain Domain;
        public ulong Mfn;
        public ushort Start, Length;
        public bool ReadOnly, HavePage, HaveType, HaveGrant;
        public uint Ref;
    }

    /// <summary>An array of <paramref name="count"/> struct gnttab_copy at <paramref name="uop"/>. As Xen's
    /// guest_handle_okay only the array's start is checked up front (-EFAULT); an operation that cannot be
    /// read, or whose status cannot be written, ends the call with -EFAULT. Preempted like map and unmap.</summary>
    public static long Do(Vcpu v, ulong cmd, ulong uop, uint count)
    {
        if (!GuestMemory.AccessOk(uop, 1)) return -Errno.EFAULT;
        for (uint i = 0; i < count; i++)
        {
            ulong op = uop + (ulong)i * Gnttab.copy_size;
            if (i != 0 && Continuation.PreemptCheck(v)) return Continuation.Create(v, Xen.__HYPERVISOR_grant_table_op, cmd, op, count - i);
            if (!GuestMemory.ReadU64(v, op + Gnttab.copy_source + Gnttab.copy_ptr_u, out ulong srcU)) return -Errno.EFAULT;
            if (!GuestMemory.ReadU32(v, op + Gnttab.copy_source + Gnttab.copy_ptr_domid, out uint srcDomOff)) return -Errno.EFAULT;
            if (!GuestMemory.ReadU64(v, op + Gnttab.copy_dest + Gnttab.copy_ptr_u, out ulong dstU)) return -Errno.EFAULT;
            if (!GuestMemory.ReadU32(v, op + Gnttab.copy_dest + Gnttab.copy_ptr_domid, out uint dstDomOff)) return -Errno.EFAULT;
            if (!GuestMemory.ReadU64(v, op + Gnttab.copy_len, out ulong tail)) return -Errno.EFAULT;
            short status = CopyOne(v, srcU, (ushort)srcDomOff, (ushort)(srcDomOff >> 16),
                dstU, (ushort)dstDomOff, (ushort)(dstDomOff >> 16), (ushort)tail, (ushort)(tail >> 16));
            if (!GrantTableOp.WriteStatus(v, op + Gnttab.copy_status, status)) return -Errno.EFAULT;
        }
        return 0;
    }

    /// <summary>
    /// gnttab_copy_one for one operation: both domains (source first), then the source claimed, then the
    /// destination, then the ranges (GNTST_bad_copy_arg past the page, general_error outside a sub-page
    /// grant), then the bytes. Whatever was claimed is given back before the status is returned.
    /// </summary>
    public static short CopyOne(Vcpu v, ulong srcU, ushort srcDomid, ushort srcOffset,
        ulong dstU, ushort dstDomid, ushort dstOffset, ushort len, ushort flags)
    {
        Buf src = default, dst = default;
        short rc = LockDomain(v, srcDomid, (flags & Gnttab.GNTCOPY_source_gref) != 0, out src.Domain);
        if (rc == Gnttab.GNTST_okay) rc = LockDomain(v, dstDomid, (flags & Gnttab.GNTCOPY_dest_gref) != 0, out dst.Domain);
        if (rc == Gnttab.GNTST_okay) rc = Claim(v, srcU, (flags & Gnttab.GNTCOPY_source_gref) != 0, true, ref src);
        if (rc == Gnttab.GNTST_okay) rc = Claim(v, dstU, (flags & Gnttab.GNTCOPY_dest_gref) != 0, false, ref dst);
        if (rc == Gnttab.GNTST_okay) rc = CopyBytes(v.Domain.Machine, ref src, srcOffset, ref dst, dstOffset, len);
        Release(ref src);
        Release(ref dst);
        return rc;
    }

    /// <summary>gnttab_copy_lock_domain: a frame may only be named in the caller's own memory, through
    /// DOMID_SELF (permission_denied otherwise, even with the caller's own id); an unknown domain, or one
    /// that has died and given its memory back, is bad_domain.</summary>
    private static short LockDomain(Vcpu v, ushort domid, bool isGref, out Domain d)
    {
        d = null;
        if (domid != Xen.DOMID_SELF && !isGref) return Gnttab.GNTST_permission_denied;
        d = domid == Xen.DOMID_SELF ? v.Domain : v.Domain.Machine.FindDomain(domid);
        if (d == null || d.Relinquished) return Gnttab.GNTST_bad_domain;
        return Gnttab.GNTST_okay;
    }

    /// <summary>gnttab_copy_claim_buf: the grant acquired for the caller, or the frame (the whole page),
    /// with a general reference; a destination also takes a writable type reference (general_error when
    /// the frame is a page table or a descriptor page).</summary>
    private static short Claim(Vcpu v, ulong u, bool isGref, bool readOnly, ref Buf buf)
    {
        Machine m = buf.Domain.Machine;
        buf.ReadOnly = readOnly;
        if (isGref)
        {
            short rc = AcquireGrant(buf.Domain, (uint)u, v.Domain.DomainId, readOnly, true, out buf.Mfn, out buf.Start, out buf.Length);
            if (rc != Gnttab.GNTST_okay) return rc;
            buf.HaveGrant = true;
            buf.HavePage = true;
            buf.Ref = (uint)u;
        }
        else
        {
            if (!Mm.PageTypes.GetPage(m, u, buf.Domain.DomainId)) return Gnttab.GNTST_bad_page;
            buf.HavePage = true;
            buf.Mfn = u;
            buf.Start = 0;
            buf.Length = (ushort)Layout.PageSize;
        }
        if (!readOnly)
        {
            if (Mm.PageTypes.GetPageType(m, buf.Domain, buf.Mfn, FrameType.Writable) != 0) return Gnttab.GNTST_general_error;
            buf.HaveType = true;
        }
        return Gnttab.GNTST_okay;
    }

    /// <summary>
    /// acquire_grant_for_copy: the reference's bound (bad_gntref); a grant already pinned must be pinned
    /// for the caller and not at its limit (general_error). At the first pin, or the first writable pin,
    /// the entry is checked as for a map but sub-page grants are allowed (general_error), its frame must
    /// be the granter's (bad_page), and GTF_reading / GTF_writing are set; otherwise the pinned frame must
    /// still be the granter's (bad_domain). One pin and a general reference are taken; the frame and the
    /// granted range are those recorded at the first pin. A version-2 transitive entry goes through
    /// <see cref="AcquireTransitive"/> (when <paramref name="allowTransitive"/>: one level only).
    /// </summary>
    private static short AcquireGrant(Domain rd, uint gref, ushort ldom, bool readOnly, bool allowTransitive,
        out ulong mfn, out ushort start, out ushort length)
    {
        mfn = 0; start = 0; length = 0;
        Machine m = rd.Machine;
        GrantTable rgt = GrantTable.Of(rd);
        if (rgt == null) return Gnttab.GNTST_general_error;
        if (gref >= rgt.NrEntries) return Gnttab.GNTST_bad_gntref;
        bool pinned = rgt.IsPinned(gref);
        if (pinned && (rgt.ActiveDomid(gref) != ldom || (readOnly ? rgt.ReadPins(gref) : rgt.WritePins(gref)) >= GrantTable.MaxPins))
            return Gnttab.GNTST_general_error;
        rgt.ReadEntry(gref, out ushort entryFlags, out _, out _);
        if (rgt.Version == 2 && (entryFlags & Gnttab.GTF_type_mask) == Gnttab.GTF_transitive)
            return AcquireTransitive(rd, rgt, gref, ldom, readOnly, allowTransitive, out mfn, out start, out length);
        if (!pinned || (!readOnly && rgt.WritePins(gref) == 0))
        {
            short entry = rgt.CheckEntry(gref, ldom, readOnly, pinned, false, out ulong frame);
            if (entry != Gnttab.GNTST_okay) return entry;
            rgt.MarkInUse(gref, readOnly);
            // Xen takes its reference (and a destination's type) on the entry's frame even when the grant is
            // already pinned with another; Microhv checks that frame as Xen does, but holds the one it writes.
            if (!Mm.PageTypes.GetPage(m, frame, rd.DomainId))
            {
                ReduceStatus(rgt, gref, readOnly);
                return Gnttab.GNTST_bad_page;
            }
            if (pinned)
            {
                Mm.PageTypes.PutPage(m, frame);
                if (!Mm.PageTypes.GetPage(m, rgt.ActiveMfn(gref), rd.DomainId))
                {
                    ReduceStatus(rgt, gref, readOnly);
                    return Gnttab.GNTST_bad_domain;
                }
            }
            else
            {
                ReadRange(rgt, gref, out bool subPage, out ushort off, out ushort len);
                rgt.Activate(gref, ldom, frame, subPage, off, len);
            }
        }
        else if (!Mm.PageTypes.GetPage(m, rgt.ActiveMfn(gref), rd.DomainId))
            return Gnttab.GNTST_bad_domain;
        rgt.Pin(gref, readOnly);
        mfn = rgt.ActiveMfn(gref);
        start = rgt.ActiveStart(gref);
        length = rgt.ActiveLength(gref);
        return Gnttab.GNTST_okay;
    }

    /// <summary>
    /// The transitive branch of acquire_grant_for_copy: the entry is checked and marked as any (first pin
    /// or first writable pin), then refused with general_error when transitivity is not allowed (a grant
    /// reached through another), when it names its own granter, or an unknown domain; then the grant it
    /// names is acquired for the granter (<paramref name="rd"/>), and its failure is returned as is. The
    /// first pin records that grant's frame and range, and always counts as a sub-page grant, so a
    /// transitive grant is never mapped. A grant already pinned that now leads elsewhere is general_error
    /// (Xen asks the caller to retry, ERESTART, which cannot succeed while the pin stays).
    /// </summary>
    private static short AcquireTransitive(Domain rd, GrantTable rgt, uint gref, ushort ldom, bool readOnly, bool allowTransitive,
        out ulong mfn, out ushort start, out ushort length)
    {
        mfn = 0; start = 0; length = 0;
        bool pinned = rgt.IsPinned(gref);
        if (!pinned || (!readOnly && rgt.WritePins(gref) == 0))
        {
            short entry = rgt.CheckEntry(gref, ldom, readOnly, pinned, false, out _);
            if (entry != Gnttab.GNTST_okay) return entry;
            rgt.MarkInUse(gref, readOnly);
        }
        rgt.ReadTransitive(gref, out ushort transDomid, out uint transGref);
        Domain td = !allowTransitive || transDomid == rd.DomainId ? null : rd.Machine.FindDomain(transDomid);
        if (td == null)
        {
            ReduceStatus(rgt, gref, readOnly);
            return Gnttab.GNTST_general_error;
        }
        short rc = AcquireGrant(td, transGref, rd.DomainId, readOnly, false, out ulong grantMfn, out ushort off, out ushort len);
        if (rc != Gnttab.GNTST_okay)
        {
            ReduceStatus(rgt, gref, readOnly);
            return rc;
        }
        if (pinned && (rgt.ActiveMfn(gref) != grantMfn || rgt.ActiveStart(gref) != off || rgt.ActiveLength(gref) != len
            || rgt.ActiveTransDomid(gref) != transDomid || rgt.ActiveTransGref(gref) != transGref || !rgt.IsSubPage(gref)))
        {
            ReleaseGrant(td, transGref, readOnly);
            Mm.PageTypes.PutPage(rd.Machine, grantMfn);
            ReduceStatus(rgt, gref, readOnly);
            return Gnttab.GNTST_general_error;
        }
        if (!pinned) rgt.Activate(gref, ldom, grantMfn, true, off, len, transDomid, transGref);
        rgt.Pin(gref, readOnly);
        mfn = grantMfn; start = off; length = len;
        return Gnttab.GNTST_okay;
    }

    /// <summary>release_grant_for_copy: the pin (GTF_writing / GTF_reading cleared with the last such pin),
    /// then the pin of the grant a transitive grant led to.</summary>
    private static void ReleaseGrant(Domain d, uint gref, bool readOnly)
    {
        GrantTable gt = GrantTable.Of(d);
        ushort transDomid = gt.ActiveTransDomid(gref);
        uint transGref = gt.ActiveTransGref(gref);
        GrantMapOp.ReleasePin(gt, gref, readOnly);
        if (transDomid == d.DomainId) return;
        Domain td = d.Machine.FindDomain(transDomid);
        GrantTable tgt = td == null ? null : GrantTable.Of(td);
        if (tgt != null && transGref < tgt.NrEntries) GrantMapOp.ReleasePin(tgt, transGref, readOnly);
    }

    /// <summary>reduce_status_for_pin after a failed first (writable) pin: GTF_writing goes unless a
    /// writable pin remains, GTF_reading unless any pin does.</summary>
    private static void ReduceStatus(GrantTable rgt, uint gref, bool readOnly)
    {
        ushort clear = rgt.IsPinned(gref) ? (ushort)0 : Gnttab.GTF_reading;
        if (!readOnly && rgt.WritePins(gref) == 0) clear |= Gnttab.GTF_writing;
        if (clear != 0) rgt.ClearStatusFlags(gref, clear);
    }

    /// <summary>The part of the page a grant covers: all of it, or version 2's sub_page range.</summary>
    private static void ReadRange(GrantTable gt, uint gref, out bool subPage, out ushort start, out ushort length)
    {
        gt.ReadEntry(gref, out ushort flags, out _, out _);
        subPage = gt.Version == 2 && (flags & Gnttab.GTF_sub_page) != 0;
        start = 0;
        length = (ushort)Layout.PageSize;
        if (subPage) gt.ReadSubPage(gref, out start, out length);
    }

    /// <summary>gnttab_copy_buf: both ranges inside the page (bad_copy_arg), then inside what each side
    /// may reach (general_error), then the copy.</summary>
    private static short CopyBytes(Machine m, ref Buf src, ushort srcOffset, ref Buf dst, ushort dstOffset, ushort len)
    {
        if (srcOffset + len > (int)Layout.PageSize || dstOffset + len > (int)Layout.PageSize) return Gnttab.GNTST_bad_copy_arg;
        if (srcOffset < src.Start || srcOffset + len > src.Start + src.Length) return Gnttab.GNTST_general_error;
        if (dstOffset < dst.Start || dstOffset + len > dst.Start + dst.Length) return Gnttab.GNTST_general_error;
        m.Memory.Copy((dst.Mfn << Layout.PageShift) + dstOffset, (src.Mfn << Layout.PageShift) + srcOffset, len);
        return Gnttab.GNTST_okay;
    }

    /// <summary>gnttab_copy_release_buf: the pin (release_grant_for_copy), the type reference, the general reference.</summary>
    private static void Release(ref Buf buf)
    {
        if (buf.Domain == null) return;
        Machine m = buf.Domain.Machine;
        if (buf.HaveGrant) ReleaseGrant(buf.Domain, buf.Ref, buf.ReadOnly);
        if (buf.HaveType) Mm.PageTypes.PutPageType(m, buf.Mfn);
        if (buf.HavePage) Mm.PageTypes.PutPage(m, buf.Mfn);
        buf = default;
    }
}
