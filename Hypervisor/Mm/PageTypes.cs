using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// Xen's reference counting of frames (get_page / get_page_type and their puts, xen/arch/x86/mm.c).
/// A general reference (RefCount) says "someone uses this frame"; a type reference (TypeCount) says
/// "someone uses it as this type". A frame changes type only when its type count is 0, and taking the
/// first reference of a page-table type validates the frame's contents, so a frame is never a page
/// table and writable at once. Dropping the last type reference of a page table drops every
/// reference its entries held.
/// </summary>
public static class PageTypes
{
    private const uint MaxCount = 0x7FFF_FFFF;

    public static bool IsPageTable(FrameType type) => type >= FrameType.L1PageTable && type <= FrameType.L4PageTable;

    /// <summary>Paging level (1..4) of a page-table type, 0 for the others.</summary>
    public static int LevelOf(FrameType type) => IsPageTable(type) ? (int)type : 0;

    public static FrameType TypeOfLevel(int level) => (FrameType)level;

    /// <summary>get_page: a general reference on a frame <paramref name="owner"/> owns; false if it does not.</summary>
    public static bool GetPage(Machine m, ulong mfn, ushort owner)
    {
        FrameTable ft = m.FrameTable;
        if (!ft.IsValid(mfn) || ft.OwnerOf(mfn) != owner) return false;
        uint count = ft.RefCount(mfn);
        if (count >= MaxCount) return false;
        ft.SetRefCount(mfn, count + 1);
        return true;
    }

    /// <summary>A general reference that ignores the owner: for frames the hypervisor shares with a
    /// guest it does not own (the domain's shared_info page).</summary>
    public static bool GetPageUnowned(Machine m, ulong mfn)
    {
        FrameTable ft = m.FrameTable;
        if (!ft.IsValid(mfn)) return false;
        uint count = ft.RefCount(mfn);
        if (count >= MaxCount) return false;
        ft.SetRefCount(mfn, count + 1);
        return true;
    }

    /// <summary>put_page: one general reference less. The last one of a frame its owner gave back while the
    /// hypervisor still mapped it (FrameTable.IsReleased) frees it, as Xen frees a page without PGC_allocated.</summary>
    public static void PutPage(Machine m, ulong mfn)
    {
        FrameTable ft = m.FrameTable;
        uint count = ft.RefCount(mfn);
        if (count == 0) return;
        ft.SetRefCount(mfn, count - 1);
        if (count == 1 && ft.IsReleased(mfn)) FreeReleased(m, mfn);
    }

    /// <summary>The frame leaves its owner now, which then holds one page less (Xen's tot_pages drops at the free);
    /// the owner's teardown kept it (another domain mapped it meanwhile): one frame less to wait for.</summary>
    private static void FreeReleased(Machine m, ulong mfn)
    {
        Domain d = m.FindDomain(m.FrameTable.OwnerOf(mfn));
        if (d != null && d.Relinquished && d.FramesKept > 0)
        {
            DomainRelinquish.FreeKept(d, mfn);
            return;
        }
        DomainRelinquish.FreeFrame(m, mfn);
        if (d != null && d.NrPages > 0) d.NrPages--;
    }

    /// <summary>
    /// get_page_type: one more reference of <paramref name="type"/> on a frame. With the count at 0 the
    /// frame takes the new type and, for a page table, its contents are validated for the domain
    /// <paramref name="d"/> (which takes the references its entries need). Returns 0 or -errno:
    /// -EINVAL when the frame holds another type, or the validation error.
    /// </summary>
    public static long GetPageType(Machine m, Domain d, ulong mfn, FrameType type)
    {
        FrameTable ft = m.FrameTable;
        if (!ft.IsValid(mfn) || type == FrameType.None) return -Errno.EINVAL;
        FrameType current = ft.TypeOf(mfn);
        uint count = ft.TypeCount(mfn);
        if (count != 0)
        {
            // A frame being validated has count 1 but no Validated flag: a table that references
            // itself (or an ancestor) at another level lands here and is refused.
            if (current != type || !ft.IsValidated(mfn) || count >= MaxCount) return -Errno.EINVAL;
            ft.SetType(mfn, type, count + 1);
            return 0;
        }

        // The TLB may still hold translations from the frame's previous use (a writable mapping, or
        // a paging-structure cache entry through it); flush before it is trusted in its new role: this
        // processor, and every other one running its owner that has not flushed since the frame lost its last
        // type reference.
        if (current != type && current != FrameType.None)
        {
            m.Host.FlushTlb();
            m.Tlb.FlushStale(mfn);
        }
        ft.SetType(mfn, type, 1);
        if (IsPageTable(type))
        {
            long rc = PageTableValidator.ValidateTable(m, d, mfn, LevelOf(type));
            if (rc != 0)
            {
                ft.SetType(mfn, FrameType.None, 0);
                return rc;
            }
        }
        ft.SetValidated(mfn, true);
        return 0;
    }

    /// <summary>put_page_type: drops one type reference; the last one of a page table releases its entries.</summary>
    public static void PutPageType(Machine m, ulong mfn)
    {
        FrameTable ft = m.FrameTable;
        uint count = ft.TypeCount(mfn);
        if (count == 0) return;
        FrameType type = ft.TypeOf(mfn);
        if (count == 1 && IsPageTable(type) && ft.IsValidated(mfn))
        {
            ft.SetValidated(mfn, false);
            PageTableValidator.ReleaseTable(m, mfn, LevelOf(type));
        }
        ft.SetType(mfn, type, count - 1);
    }

    /// <summary>get_page_and_type: a general and a type reference on a frame <paramref name="d"/> owns;
    /// -EINVAL when it does not own it, else GetPageType's result.</summary>
    public static long GetPageAndType(Machine m, Domain d, ulong mfn, FrameType type)
    {
        if (!GetPage(m, mfn, d.DomainId)) return -Errno.EINVAL;
        long rc = GetPageType(m, d, mfn, type);
        if (rc != 0) PutPage(m, mfn);
        return rc;
    }

    public static void PutPageAndType(Machine m, ulong mfn)
    {
        PutPageType(m, mfn);
        PutPage(m, mfn);
    }

    /// <summary>
    /// For the domain builder: takes the bootstrap L4 as the vCPU's page-table base the way Xen's
    /// builder leaves it, validated (every table and mapping below it gets its types and references)
    /// and pinned, so the guest may later switch away from it and unpin it. Returns 0 or -errno.
    /// </summary>
    public static long AdoptInitialPageTables(Domain d, ulong l4Mfn)
    {
        Machine m = d.Machine;
        long rc = GetPageAndType(m, d, l4Mfn, FrameType.L4PageTable);
        if (rc != 0) return rc;
        rc = GetPageAndType(m, d, l4Mfn, FrameType.L4PageTable);
        if (rc != 0)
        {
            PutPageAndType(m, l4Mfn);
            return rc;
        }
        m.FrameTable.SetPinned(l4Mfn, true);
        d.Vcpu.GuestTable = l4Mfn << Layout.PageShift;
        return 0;
    }
}
