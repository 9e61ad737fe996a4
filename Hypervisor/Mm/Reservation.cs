using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// Growing a domain (xen/common/memory.c): increase_reservation and populate_physmap give a domain
/// extents of 2^order fresh frames, either the caller itself or, from the control domain, another
/// (libxenguest's builder populates a new domain this way). For a PV domain the frame numbers go back
/// into the extent list (its gfns are MFNs), and for populate_physmap the M2P records the gpfn the
/// caller gave (Microhv's p2m too, where that entry is free). A domain that ballooned down with
/// decrease_reservation takes frames back the same way. A domain never exceeds its max_pages ("over-allocation"); an order above what the
/// caller may ask (9, 12 for the control domain) or above what the allocator can give does nothing,
/// as in Xen. The return value is the number of extents done; a long list is continued. Claims
/// (XENMEM_claim_pages) set frames aside for one domain; set_memory_map records its pseudo-physical E820.
/// </summary>
public static class Reservation
{
    public const uint DomUMaxOrder = 9, ControlDomainMaxOrder = 12;
    /// <summary>E820 entries set_memory_map takes (Xen's E820MAX is 1024; libxl gives a PV guest one to three).</summary>
    public const int MaxMapEntries = Domain.MaxMemoryMapEntries;

    public static long Grow(Vcpu v, int op, ulong arg, ulong startExtent)
    {
        if (!GuestMemory.ReadU64(v, arg + XenMem.reservation_extent_start, out ulong list)
            || !GuestMemory.ReadU64(v, arg + XenMem.reservation_nr_extents, out ulong count)
            || !GuestMemory.ReadU32(v, arg + XenMem.reservation_extent_order, out uint order)
            || !GuestMemory.ReadU32(v, arg + XenMem.reservation_mem_flags, out uint memFlags)
            || !GuestMemory.ReadU16(v, arg + XenMem.reservation_domid, out ushort domid))
            return (long)startExtent;
        if (count > (uint.MaxValue >> XenMem.MEMOP_EXTENT_SHIFT) || startExtent >= count) return (long)startExtent;
        Domain self = v.Domain;
        Domain d = domid == Xen.DOMID_SELF ? self : self.Machine.FindDomain(domid);
        if (d == null) return (long)startExtent;
        if ((memFlags & XenMem.XENMEMF_populate_on_demand) != 0) return (long)startExtent;   // PoD is HVM's
        if (d != self && !self.IsControlDomain) return -Errno.EPERM;                         // xsm_memory_adjust_reservation
        if (d.Dying) return (long)startExtent;
        uint maxOrder = self.IsControlDomain || self.IsHardwareDomain ? ControlDomainMaxOrder : DomUMaxOrder;
        if (order > maxOrder) return (long)startExtent;
        Machine m = d.Machine;
        ulong pages = 1UL << (int)order;
        ulong i = startExtent;
        for (; i < count; i++)
        {
            if (i != startExtent && Continuation.PreemptCheck(v))
            {
                Continuation.Create(v, Xen.__HYPERVISOR_memory_op, (ulong)(uint)op | (i << XenMem.MEMOP_EXTENT_SHIFT), arg);
                return (long)i;
            }
            ulong gpfn = 0, slot = list + i * 8;
            if (op == XenMem.XENMEM_populate_physmap && !GuestMemory.ReadU64(v, slot, out gpfn)) break;
            // The MFN must be able to go back before a frame is taken (Xen would leave it with the domain).
            if (list != 0 && !GuestMemory.Translate(v, slot, true, out ulong _)) break;
            if (d.NrPages + pages > d.MaxPages)
            {
                LogOverAllocation(d, pages);
                break;
            }
            if (!Allocate(m, d, order, out ulong mfn)) break;
            for (ulong k = 0; k < pages; k++)
            {
                if (op == XenMem.XENMEM_populate_physmap)
                {
                    m.SetM2p(mfn + k, gpfn + k);
                    if (d.P2m != null && gpfn + k < (ulong)d.P2m.Length && d.P2m[gpfn + k] == Domain.Invalid) d.P2m[gpfn + k] = mfn + k;
                }
                else m.SetM2p(mfn + k, XenMem.INVALID_M2P_ENTRY);
            }
            d.NrPages += pages;
            d.ClaimedPages = d.ClaimedPages > pages ? d.ClaimedPages - pages : 0;
            if (list != 0 && !GuestMemory.WriteU64(v, slot, mfn)) break;   // cannot happen after the check above
        }
        return (long)i;
    }

    /// <summary>2^order zeroed frames for <paramref name="d"/>: one at a time for order 0, a contiguous aligned run otherwise.</summary>
    private static bool Allocate(Machine m, Domain d, uint order, out ulong mfn)
    {
        mfn = 0;
        if (order == 0) return DomainBuilder.TakeFrame(m, d.DomainId, out mfn);
        if (!m.Frames.TryAllocateContiguous((int)order, ulong.MaxValue, out ulong pa)) return false;
        mfn = pa >> Layout.PageShift;
        ulong n = 1UL << (int)order;
        for (ulong k = 0; k < n; k++)
        {
            m.FrameTable.SetOwner(mfn + k, d.DomainId);
            m.FrameTable.SetType(mfn + k, FrameType.None, 0);
            m.FrameTable.SetRefCount(mfn + k, 0);
            m.FrameTable.SetPinned(mfn + k, false);
        }
        m.Memory.Fill(pa, 0, n << Layout.PageShift);
        return true;
    }

    private static void LogOverAllocation(Domain d, ulong pages)
    {
        if (d.OverAllocationLogged) return;
        d.OverAllocationLogged = true;
        var t = new ConsoleText(d.Machine.Host);
        t.Write("memory: domain ").Dec(d.DomainId).Write(" over-allocation: ").Dec(d.NrPages).Write(" + ").Dec(pages)
            .Write(" pages > max_pages ").Dec(d.MaxPages).Line(" (logged once)");
    }

    /// <summary>XENMEM_claim_pages: reserve nr_extents pages in all for the domain's build (0 releases);
    /// -EINVAL for a second claim or bad fields, -ENOMEM when the machine has not that many free.</summary>
    public static long Claim(Vcpu v, ulong arg, ulong startExtent)
    {
        if (startExtent != 0) return -Errno.EINVAL;
        if (!GuestMemory.ReadU64(v, arg + XenMem.reservation_extent_start, out ulong list)
            || !GuestMemory.ReadU64(v, arg + XenMem.reservation_nr_extents, out ulong pages)
            || !GuestMemory.ReadU32(v, arg + XenMem.reservation_extent_order, out uint order)
            || !GuestMemory.ReadU32(v, arg + XenMem.reservation_mem_flags, out uint flags)
            || !GuestMemory.ReadU16(v, arg + XenMem.reservation_domid, out ushort domid))
            return -Errno.EFAULT;
        if (list != 0 || order != 0 || flags != 0) return -Errno.EINVAL;
        Domain d = v.Domain.Machine.FindDomain(domid);
        if (d == null) return -Errno.EINVAL;
        if (!v.Domain.IsControlDomain) return -Errno.EPERM;
        if (pages == 0)
        {
            d.ClaimedPages = 0;
            return 0;
        }
        if (d.ClaimedPages != 0) return -Errno.EINVAL;
        ulong claim = pages > d.NrPages ? pages - d.NrPages : 0;
        if (claim > v.Domain.Machine.Frames.FreeFrameCount) return -Errno.ENOMEM;
        d.ClaimedPages = claim;
        return 0;
    }

    /// <summary>XENMEM_set_memory_map: the E820 the domain's memory_map will return (control domain only).</summary>
    public static long SetMemoryMap(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU16(v, arg + XenMem.foreign_memory_map_domid, out ushort domid)
            || !GuestMemory.ReadU32(v, arg + XenMem.foreign_memory_map_map + XenMem.memory_map_nr_entries, out uint n)
            || !GuestMemory.ReadU64(v, arg + XenMem.foreign_memory_map_map + XenMem.memory_map_buffer, out ulong buffer))
            return -Errno.EFAULT;
        if (n > MaxMapEntries) return -Errno.EINVAL;
        Domain self = v.Domain;
        Domain d = domid == Xen.DOMID_SELF ? self : self.Machine.FindDomain(domid);
        if (d == null) return -Errno.ESRCH;
        if (d != self && !self.IsControlDomain) return -Errno.EPERM;
        ulong[] map = Scratch;
        for (uint i = 0; i < n; i++)
        {
            ulong e = buffer + i * (ulong)XenMem.e820entry_length;
            if (!GuestMemory.ReadU64(v, e + XenMem.e820entry_addr, out map[i * 3])
                || !GuestMemory.ReadU64(v, e + XenMem.e820entry_size, out map[i * 3 + 1])
                || !GuestMemory.ReadU32(v, e + XenMem.e820entry_type, out uint type))
                return -Errno.EFAULT;
            map[i * 3 + 2] = type;
        }
        for (int i = 0; i < (int)n * 3; i++) d.MemoryMap[i] = map[i];
        d.MemoryMapEntries = (int)n;
        return 0;
    }

    /// <summary>XENMEM_memory_map with a map the toolstack set: as many entries as both sides hold.</summary>
    public static long GetMemoryMap(Vcpu v, ulong arg)
    {
        Domain d = v.Domain;
        if (!GuestMemory.ReadU32(v, arg + XenMem.memory_map_nr_entries, out uint wanted)
            || !GuestMemory.ReadU64(v, arg + XenMem.memory_map_buffer, out ulong buffer))
            return -Errno.EFAULT;
        uint n = wanted < (uint)d.MemoryMapEntries ? wanted : (uint)d.MemoryMapEntries;
        for (uint i = 0; i < n; i++)
        {
            ulong e = buffer + i * (ulong)XenMem.e820entry_length;
            if (!GuestMemory.WriteU64(v, e + XenMem.e820entry_addr, d.MemoryMap[i * 3])
                || !GuestMemory.WriteU64(v, e + XenMem.e820entry_size, d.MemoryMap[i * 3 + 1])
                || !GuestMemory.WriteU32(v, e + XenMem.e820entry_type, (uint)d.MemoryMap[i * 3 + 2]))
                return -Errno.EFAULT;
        }
        return GuestMemory.WriteU32(v, arg + XenMem.memory_map_nr_entries, n) ? 0 : -Errno.EFAULT;
    }

    private static readonly ulong[] Scratch = new ulong[MaxMapEntries * 3];
}
