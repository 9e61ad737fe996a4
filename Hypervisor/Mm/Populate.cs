using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// XENMEM_increase_reservation and XENMEM_populate_physmap for a PV guest (xen/common/memory.c): a
/// domain that gave frames back with decrease_reservation (a balloon driver) takes new ones, up to the
/// pages it was built with (its max_pages). Each new frame is zeroed, owned by the domain with no type
/// and no reference, and its machine frame number is written back into the extent list, as Xen does for
/// a guest that is not translated; populate_physmap also points the M2P entry at the guest frame the
/// list named. Order-0 extents only: a larger order, a full reservation, an empty pool or an extent
/// that cannot be read or written back ends the batch, and the call returns the extents done;
/// a long batch is preempted and continued from its next extent, as Xen's are.
/// </summary>
public static class Populate
{
    /// <summary><paramref name="op"/>: XENMEM_increase_reservation or XENMEM_populate_physmap; <paramref name="arg"/>
    /// the guest's struct xen_memory_reservation, for a continuation from the next extent.</summary>
    public static long Do(Vcpu v, int op, ulong arg, ulong list, ulong count, uint order, ulong startExtent)
    {
        bool populate = op == XenMem.XENMEM_populate_physmap;
        if (order != 0) return (long)startExtent;
        Domain d = v.Domain;
        Machine m = d.Machine;
        ulong i = startExtent;
        for (; i < count; i++)
        {
            if (i != startExtent && Continuation.PreemptCheck(v))
                return Continuation.Create(v, Xen.__HYPERVISOR_memory_op, (ulong)op | (i << XenMem.MEMOP_EXTENT_SHIFT), arg);
            ulong slot = list + i * 8;
            if (!GuestMemory.ReadU64(v, slot, out ulong gpfn)) break;
            if (!GuestMemory.Translate(v, slot, true, out ulong _)) break;            // the MFN must go back
            if (d.NrPages >= d.MaxPages) break;                                       // max_pages reached
            if (!m.Frames.TryAllocateFrame(out ulong pa)) break;
            ulong mfn = pa >> Layout.PageShift;
            FrameTable ft = m.FrameTable;
            if (!ft.IsValid(mfn) || ft.OwnerOf(mfn) != FrameTable.OwnerNone) { m.Frames.TryFreeFrame(pa); break; }
            m.Memory.Fill(pa, 0, Layout.PageSize);                                    // nothing of its last owner
            ft.SetType(mfn, FrameType.None, 0);
            ft.SetRefCount(mfn, 0);
            ft.SetPinned(mfn, false);
            ft.SetOwner(mfn, d.DomainId);
            d.NrPages++;
            if (populate)
            {
                m.SetM2p(mfn, gpfn);
                if (d.P2m != null && gpfn < (ulong)d.P2m.Length && d.P2m[gpfn] == Domain.Invalid) d.P2m[gpfn] = mfn;
            }
            else m.SetM2p(mfn, XenMem.INVALID_M2P_ENTRY);
            GuestMemory.WriteU64(v, slot, mfn);
        }
        return (long)i;
    }
}
