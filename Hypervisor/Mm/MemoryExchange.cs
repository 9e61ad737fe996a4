using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// XENMEM_exchange (Xen's memory_exchange, common/memory.c): the domain hands back extents of its
/// memory and receives the same amount as extents of another size, allocated below an address width.
/// Linux dom0's swiotlb-xen trades 64 scattered frames for one machine-contiguous 256 KiB extent a
/// device can DMA into (xen_create_contiguous_region), and trades it back when done. For a PV domain
/// extents are machine frame numbers: the input frames must be ordinary, unmapped pages of the domain
/// (Xen's steal_page); the output frames are written back over the output list, the guest-physical
/// frames the list named are recorded in the M2P (and in Microhv's copy of the p2m when they lie in
/// the domain's original range), and the guest fixes its own p2m and mappings.
/// Work is done chunk by chunk (the larger of the two extent sizes); a chunk that fails is undone, and
/// nr_exchanged says how many input extents were exchanged, as Xen's contract requires. Only the
/// hardware domain exchanges memory (issue 11's rule: machine-contiguous low memory is for DMA, and
/// only that domain has devices); others get -EPERM.
/// </summary>
public static class MemoryExchange
{
    /// <summary>Xen's max_order for the hardware domain (CONFIG_HWDOM_MAX_ORDER).</summary>
    public const int MaxOrder = 12;

    public static long Do(Vcpu v, ulong arg)
    {
        Domain d = v.Domain;
        if (!GuestMemory.ReadU64(v, arg + XenMem.exchange_nr_exchanged, out ulong done)) return -Errno.EFAULT;
        if (!ReadHalf(v, arg + XenMem.exchange_in, out ulong inList, out ulong inCount, out uint inOrder, out _, out ushort inDom)
            || !ReadHalf(v, arg + XenMem.exchange_out, out ulong outList, out ulong outCount, out uint outOrder, out uint outFlags, out ushort outDom))
            return -Errno.EFAULT;

        if (!d.IsHardwareDomain) return Io.DeviceRefusal.Refuse(d, Io.DeviceRefusal.MemoryExchange, "exchange memory");
        if (inOrder > MaxOrder || outOrder > MaxOrder) return Finish(v, arg, done, -Errno.EPERM);
        if (done > inCount || inDom != outDom
            || (ulong.MaxValue >> (int)inOrder) < inCount || (ulong.MaxValue >> (int)outOrder) < outCount
            || (inCount << (int)inOrder) != (outCount << (int)outOrder))
            return Finish(v, arg, done, -Errno.EINVAL);
        if (done == inCount) return 0;
        if (inDom != Xen.DOMID_SELF && inDom != d.DomainId)
            return Finish(v, arg, done, d.Machine.FindDomain(inDom) == null ? -Errno.ESRCH : -Errno.EPERM);

        // A chunk is one extent of the larger order: 2^inChunk input extents, 2^outChunk output extents.
        int inChunk = inOrder <= outOrder ? (int)(outOrder - inOrder) : 0;
        int outChunk = inOrder <= outOrder ? 0 : (int)(inOrder - outOrder);
        uint bits = outFlags & 0xFF;                           // XENMEMF_address_bits; 0: no limit
        ulong limit = bits == 0 || bits >= 64 ? ulong.MaxValue : 1UL << (int)bits;

        for (ulong chunk = done >> inChunk; chunk < inCount >> inChunk; chunk++)
        {
            long rc = ExchangeChunk(v, d, chunk, inList, inOrder, inChunk, outList, outOrder, outChunk, limit);
            if (rc != 0) return Finish(v, arg, chunk << inChunk, rc);
        }
        return Finish(v, arg, inCount, 0);
    }

    private static long Finish(Vcpu v, ulong arg, ulong exchanged, long rc)
        => GuestMemory.WriteU64(v, arg + XenMem.exchange_nr_exchanged, exchanged) ? rc : -Errno.EFAULT;

    /// <summary>One struct xen_memory_reservation of the exchange.</summary>
    private static bool ReadHalf(Vcpu v, ulong at, out ulong list, out ulong count, out uint order, out uint flags, out ushort domid)
    {
        count = 0; order = flags = 0; domid = 0;
        return GuestMemory.ReadU64(v, at + XenMem.reservation_extent_start, out list)
            && GuestMemory.ReadU64(v, at + XenMem.reservation_nr_extents, out count)
            && GuestMemory.ReadU32(v, at + XenMem.reservation_extent_order, out order)
            && GuestMemory.ReadU32(v, at + XenMem.reservation_mem_flags, out flags)
            && GuestMemory.ReadU16(v, at + XenMem.reservation_domid, out domid);
    }

    /// <summary>Checks every input frame first, allocates every output extent, and only then commits, so
    /// a failing chunk leaves the domain as it was.</summary>
    private static long ExchangeChunk(Vcpu v, Domain d, ulong chunk, ulong inList, uint inOrder, int inChunk,
                                      ulong outList, uint outOrder, int outChunk, ulong limit)
    {
        Machine m = d.Machine;
        ulong inExtents = 1UL << inChunk, inFrames = 1UL << (int)inOrder;
        for (ulong j = 0; j < inExtents; j++)
        {
            if (!GuestMemory.ReadU64(v, inList + ((chunk << inChunk) + j) * 8, out ulong mfn)) return -Errno.EFAULT;
            for (ulong k = 0; k < inFrames; k++)
                if (!MemoryOp.CanGiveBack(d, mfn + k)) return -Errno.EINVAL;
        }
        ulong outExtents = 1UL << outChunk, outFrames = 1UL << (int)outOrder;
        for (ulong j = 0; j < outExtents; j++)
        {
            ulong slot = outList + ((chunk << outChunk) + j) * 8;
            if (!GuestMemory.ReadU64(v, slot, out ulong gpfn)) return -Errno.EFAULT;
            if (!GuestMemory.Translate(v, slot, true, out _)) return -Errno.EFAULT;
            if (gpfn + outFrames < gpfn) return -Errno.EINVAL;
        }

        // Allocate every output extent before giving anything up.
        ulong[] extents = m.ExchangeScratch;
        if (outExtents > (ulong)extents.Length) return -Errno.EINVAL;
        for (ulong j = 0; j < outExtents; j++)
        {
            if (m.Frames.TryAllocateContiguous((int)outOrder, limit, out ulong pa)) { extents[j] = pa >> Layout.PageShift; continue; }
            for (ulong u = 0; u < j; u++)
                for (ulong k = 0; k < outFrames; k++) m.Frames.TryFreeFrame((extents[u] + k) << Layout.PageShift);
            return -Errno.ENOMEM;
        }

        // Commit: the input frames leave the domain and go back to the allocator...
        for (ulong j = 0; j < inExtents; j++)
        {
            GuestMemory.ReadU64(v, inList + ((chunk << inChunk) + j) * 8, out ulong mfn);
            for (ulong k = 0; k < inFrames; k++)
            {
                if (MemoryOp.FindPfn(d, mfn + k, out ulong pfn)) d.P2m[pfn] = Domain.Invalid;
                m.SetM2p(mfn + k, XenMem.INVALID_M2P_ENTRY);
                m.FrameTable.SetOwner(mfn + k, FrameTable.OwnerNone);
                m.FrameTable.SetType(mfn + k, FrameType.None, 0);
                m.Frames.TryFreeFrame((mfn + k) << Layout.PageShift);
            }
        }
        // ...and the output extents join it at the guest frames the list named.
        for (ulong j = 0; j < outExtents; j++)
        {
            ulong slot = outList + ((chunk << outChunk) + j) * 8;
            GuestMemory.ReadU64(v, slot, out ulong gpfn);
            for (ulong k = 0; k < outFrames; k++)
            {
                ulong mfn = extents[j] + k;
                m.Memory.Fill(mfn << Layout.PageShift, 0, Layout.PageSize);
                m.FrameTable.SetOwner(mfn, d.DomainId);
                m.FrameTable.SetType(mfn, FrameType.None, 0);
                m.FrameTable.SetRefCount(mfn, 0);
                if (gpfn + k < (ulong)d.P2m.Length) d.P2m[gpfn + k] = mfn;
                m.SetM2p(mfn, gpfn + k);
            }
            GuestMemory.WriteU64(v, slot, extents[j]);
        }
        return 0;
    }
}
