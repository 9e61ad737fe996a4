using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// GNTTABOP_cache_flush (xen/common/grant_table.c gnttab_cache_flush, _cache_flush) as Xen 4.17 serves
/// it on x86: cache maintenance of part of a page the caller owns or has pinned through someone's grant.
/// x86 keeps DMA coherent, so "clean" (with or without "invalidate") succeeds with nothing to do, and
/// "invalidate" alone is -EOPNOTSUPP, as Xen's x86 invalidate_dcache_va_range answers. The command's bits
/// above GNTTABOP_CMD_MASK are Xen's continuation argument: the grant reference a search for the caller's
/// pin of a foreign frame resumes at (Microhv's tables are smaller than one search step, 4096 entries, so
/// it never has to resume). Errors end the call: there is no status field.
/// </summary>
public static class GrantCacheFlushOp
{
    private const uint GNTTAB_CACHE_CLEAN = 1, GNTTAB_CACHE_INVAL = 2;
    private const int a = 0, offset = 8, length = 10, op_ = 12, size = 16;
    private const uint SearchStep = 1u << 12;   // GNTTABOP_CONTINUATION_ARG_SHIFT

    public static long Do(Vcpu v, ulong cmd, ulong uop, uint count)
    {
        if (!GuestMemory.AccessOk(uop, 1)) return -Errno.EFAULT;
        uint curRef = (uint)cmd & ~Gnttab.GNTTABOP_CMD_MASK;
        for (uint i = 0; i < count; i++)
        {
            ulong op = uop + (ulong)i * size;
            if (i != 0 && Continuation.PreemptCheck(v))
                return Continuation.Create(v, Xen.__HYPERVISOR_grant_table_op, Gnttab.GNTTABOP_cache_flush, op, count - i);
            if (!GuestMemory.ReadU64(v, op + a, out ulong devBusAddr)) return -Errno.EFAULT;
            if (!GuestMemory.ReadU32(v, op + offset, out uint offLen)) return -Errno.EFAULT;
            if (!GuestMemory.ReadU32(v, op + op_, out uint flags)) return -Errno.EFAULT;
            long rc = FlushOne(v.Domain, devBusAddr, (ushort)offLen, (ushort)(offLen >> 16), flags, curRef);
            if (rc < 0) return rc;
            curRef = 0;
        }
        return 0;
    }

    /// <summary>_cache_flush's checks in Xen's order: the range and the operation bits (-EINVAL); nothing to
    /// do (0, or -EILSEQ while a search was being resumed); no such frame (-EINVAL); a frame of no domain with
    /// a grant table (-EPERM); another domain's frame the caller has not pinned through a grant (-EINVAL).</summary>
    public static long FlushOne(Domain d, ulong devBusAddr, ushort off, ushort len, uint flags, uint curRef)
    {
        if (off >= Layout.PageSize || len > Layout.PageSize || off + len > (int)Layout.PageSize
            || (flags & ~(GNTTAB_CACHE_INVAL | GNTTAB_CACHE_CLEAN)) != 0)
            return -Errno.EINVAL;
        if (len == 0 || flags == 0) return curRef == 0 ? 0 : -Errno.EILSEQ;
        Machine m = d.Machine;
        ulong mfn = devBusAddr >> Layout.PageShift;
        if (!m.FrameTable.IsValid(mfn)) return -Errno.EINVAL;
        ushort ownerId = m.FrameTable.OwnerOf(mfn);
        Domain owner = ownerId == FrameTable.OwnerNone ? null : m.FindDomain(ownerId);
        GrantTable ogt = owner == null ? null : GrantTable.Of(owner);
        if (ogt == null) return -Errno.EPERM;
        if (owner != d && !PinnedFor(ogt, d.DomainId, mfn, curRef)) return -Errno.EINVAL;
        return flags == GNTTAB_CACHE_INVAL ? -Errno.EOPNOTSUPP : 0;
    }

    /// <summary>grant_map_exists: a grant of the owner pinned for <paramref name="domid"/> with this frame, from
    /// <paramref name="curRef"/> on (one search step covers every entry Microhv's tables have).</summary>
    private static bool PinnedFor(GrantTable gt, ushort domid, ulong mfn, uint curRef)
    {
        uint end = gt.NrEntries;
        if (curRef + SearchStep < end) end = curRef + SearchStep;
        for (uint r = curRef; r < end; r++)
            if (gt.IsPinned(r) && gt.ActiveDomid(r) == domid && gt.ActiveMfn(r) == mfn) return true;
        return false;
    }
}
