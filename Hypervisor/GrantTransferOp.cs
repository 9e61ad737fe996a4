using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// GNTTABOP_transfer (xen/common/grant_table.c gnttab_transfer, gnttab_prepare_for_transfer): a PV
/// domain gives one of its frames to another domain that offered a GTF_accept_transfer grant for it
/// (netfront's old page-flipping receive path). The frame is first taken from the caller as Xen's
/// steal_page takes it (an ordinary page nothing maps, references, pins or the hypervisor uses; else
/// bad_page); from then on a failure frees it, as in Xen: no such receiver bad_domain; a receiver that
/// is dying, at its max_pages, or whose entry is not exactly GTF_accept_transfer for the caller (or past
/// its table) general_error. On success the frame is the receiver's, its M2P entry is the frame number
/// the receiver wrote in the entry, the entry's frame (v1 frame or v2 full_page.frame) is the MFN, and
/// the flags gain GTF_transfer_committed then GTF_transfer_completed.
/// </summary>
public static class GrantTransferOp
{
    public static long Do(Vcpu v, ulong cmd, ulong uop, uint count)
    {
        if (!GuestMemory.AccessOk(uop, 1)) return -Errno.EFAULT;
        for (uint i = 0; i < count; i++)
        {
            ulong op = uop + (ulong)i * Gnttab.transfer_size;
            if (i != 0 && Continuation.PreemptCheck(v)) return Continuation.Create(v, Xen.__HYPERVISOR_grant_table_op, cmd, op, count - i);
            if (!GuestMemory.ReadU64(v, op + Gnttab.transfer_mfn, out ulong mfn)) return -Errno.EFAULT;
            if (!GuestMemory.ReadU16(v, op + Gnttab.transfer_domid, out ushort domid)) return -Errno.EFAULT;
            if (!GuestMemory.ReadU32(v, op + Gnttab.transfer_ref, out uint gref)) return -Errno.EFAULT;
            short status = Transfer(v.Domain, mfn, domid, gref);
            if (!GrantTableOp.WriteStatus(v, op + Gnttab.transfer_status, status)) return -Errno.EFAULT;
        }
        return 0;
    }

    public static short Transfer(Domain d, ulong mfn, ushort domid, uint gref)
    {
        Machine m = d.Machine;
        if (!m.FrameTable.IsValid(mfn) || !MemoryOp.CanGiveBack(d, mfn)) return Gnttab.GNTST_bad_page;
        // steal_page and guest_physmap_remove_page: the frame leaves the caller.
        if (MemoryOp.FindPfn(d, mfn, out ulong pfn)) d.P2m[pfn] = Domain.Invalid;
        m.SetM2p(mfn, XenMem.INVALID_M2P_ENTRY);
        if (d.NrPages > 0) d.NrPages--;
        // gnttab_flush_tlb: no processor of the caller may still translate through it once it goes elsewhere.
        m.Host.FlushTlb();
        m.Tlb.FlushDomain(d, ulong.MaxValue);

        Domain e = m.FindDomain(domid);
        short status = e == null ? Gnttab.GNTST_bad_domain : Gnttab.GNTST_okay;
        GrantTable egt = e == null ? null : GrantTable.Of(e);
        if (status == Gnttab.GNTST_okay && (e.Dying || e.Relinquished || egt == null || e.NrPages >= e.MaxPages))
            status = Gnttab.GNTST_general_error;
        if (status == Gnttab.GNTST_okay && !PrepareForTransfer(egt, d.DomainId, gref)) status = Gnttab.GNTST_general_error;
        if (status != Gnttab.GNTST_okay)
        {
            DomainRelinquish.FreeFrame(m, mfn);
            return status;
        }

        // assign_pages and guest_physmap_add_page: the receiver owns it at the frame number it asked for.
        m.FrameTable.SetOwner(mfn, e.DomainId);
        m.FrameTable.SetType(mfn, FrameType.None, 0);
        e.NrPages++;
        ulong at = egt.EntryAddress(gref);
        PhysicalMemory mem = m.Memory;
        ulong gfn = egt.Version == 1 ? mem.Read32(at + Gnttab.entry_v1_frame) : mem.Read64(at + Gnttab.entry_v2_frame);
        m.SetM2p(mfn, gfn);
        if (e.P2m != null && gfn < (ulong)e.P2m.Length && e.P2m[gfn] == Domain.Invalid) e.P2m[gfn] = mfn;
        if (egt.Version == 1) mem.Write32(at + Gnttab.entry_v1_frame, (uint)mfn);
        else mem.Write64(at + Gnttab.entry_v2_frame, mfn);
        mem.Write16(at + Gnttab.entry_v1_flags, (ushort)(mem.Read16(at + Gnttab.entry_v1_flags) | Gnttab.GTF_transfer_completed));
        return Gnttab.GNTST_okay;
    }

    /// <summary>gnttab_prepare_for_transfer: the entry must be exactly GTF_accept_transfer (no other flag)
    /// for <paramref name="ldomid"/>; it becomes committed.</summary>
    private static bool PrepareForTransfer(GrantTable gt, ushort ldomid, uint gref)
    {
        if (gref >= gt.NrEntries) return false;
        gt.ReadEntry(gref, out ushort flags, out ushort domid, out _);
        if (flags != Gnttab.GTF_accept_transfer || domid != ldomid) return false;
        gt.Domain.Machine.Memory.Write16(gt.EntryAddress(gref) + Gnttab.entry_v1_flags, (ushort)(flags | Gnttab.GTF_transfer_committed));
        return true;
    }
}
