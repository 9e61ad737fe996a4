using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>What is wrong with one frame's record once every domain has ended.</summary>
public enum FrameFault : byte
{
    None = 0,
    FreeButOwned,         // free in the allocator, yet an owner is recorded
    FreeButTyped,         // free, yet a type or a type count is left
    FreeButReferenced,    // free, yet general or foreign references are left
    FreeButPinned,
    FreeButValidated,
    FreeButReleased,      // free, yet still marked as given back while the hypervisor mapped it
    OwnedByEndedDomain,   // in use, owned by a domain although none is left: a frame never given back
    PageTableWithoutDomain, // in use by no domain, yet a page-table type, a type count, a pin or the validated flag
}

/// <summary>One inconsistent frame: its number, what is wrong, and the value that shows it (owner, count, type).</summary>
public struct FrameProblem
{
    public ulong Mfn;
    public FrameFault Fault;
    public ulong Value;
}

/// <summary>
/// The frame table's self-check at shutdown (issue 13's concurrency stress test ends with it): once every
/// domain has ended, no frame may still belong to one, and every frame the allocator holds as free must be
/// blank in the frame table — no owner, no type or type count, no general or foreign reference, not pinned,
/// not validated. A frame in use by the hypervisor (owner None, DOMID_XEN or DOMID_IO) holds no page-table
/// type, no type count, no pin. Any other state means a count went wrong on the way (a reference taken twice
/// or dropped twice, a type left on a freed frame), which Xen would catch as a BUG_ON at free_domheap_pages.
/// </summary>
public static class FrameTableCheck
{
    /// <summary>Checks every frame the table covers; returns how many are inconsistent and fills
    /// <paramref name="first"/> with the first of them (up to its length). <paramref name="checkedFrames"/>
    /// is the number of frames looked at.</summary>
    public static ulong Run(FrameTable ft, FrameAllocator frames, FrameProblem[] first, out ulong checkedFrames)
    {
        ulong bad = 0;
        checkedFrames = ft.FrameCount;
        for (ulong mfn = 0; mfn < ft.FrameCount; mfn++)
        {
            FrameFault fault = Check(ft, frames.IsFree(mfn << 12), mfn, out ulong value);
            if (fault == FrameFault.None) continue;
            if (first != null && bad < (ulong)first.Length) first[bad] = new FrameProblem { Mfn = mfn, Fault = fault, Value = value };
            bad++;
        }
        return bad;
    }

    /// <summary>The first thing wrong with frame <paramref name="mfn"/>, given whether the allocator holds it as free.</summary>
    public static FrameFault Check(FrameTable ft, bool free, ulong mfn, out ulong value)
    {
        ushort owner = ft.OwnerOf(mfn);
        FrameType type = ft.TypeOf(mfn);
        uint typeCount = ft.TypeCount(mfn);
        value = 0;
        if (free)
        {
            if (owner != FrameTable.OwnerNone) { value = owner; return FrameFault.FreeButOwned; }
            if (type != FrameType.None || typeCount != 0) { value = (ulong)type << 32 | typeCount; return FrameFault.FreeButTyped; }
            if (ft.RefCount(mfn) != 0) { value = ft.RefCount(mfn); return FrameFault.FreeButReferenced; }
            if (ft.ForeignRefs(mfn) != 0) { value = ft.ForeignRefs(mfn); return FrameFault.FreeButReferenced; }
            if (ft.IsPinned(mfn)) return FrameFault.FreeButPinned;
            if (ft.IsValidated(mfn)) return FrameFault.FreeButValidated;
            if (ft.IsReleased(mfn)) return FrameFault.FreeButReleased;
            return FrameFault.None;
        }
        if (owner < Xen.DOMID_FIRST_RESERVED) { value = owner; return FrameFault.OwnedByEndedDomain; }
        if (Mm.PageTypes.IsPageTable(type) || typeCount != 0 || ft.IsPinned(mfn) || ft.IsValidated(mfn))
        {
            value = (ulong)type << 32 | typeCount;
            return FrameFault.PageTableWithoutDomain;
        }
        return FrameFault.None;
    }

    public static string Describe(FrameFault fault)
    {
        switch (fault)
        {
            case FrameFault.FreeButOwned: return "free but owned by domain";
            case FrameFault.FreeButTyped: return "free but typed (type << 32 | count)";
            case FrameFault.FreeButReferenced: return "free but referenced, count";
            case FrameFault.FreeButPinned: return "free but pinned";
            case FrameFault.FreeButValidated: return "free but validated";
            case FrameFault.FreeButReleased: return "free but marked released";
            case FrameFault.OwnedByEndedDomain: return "in use, owned by ended domain";
            case FrameFault.PageTableWithoutDomain: return "in use by no domain but typed, pinned or validated (type << 32 | count)";
            default: return "consistent";
        }
    }
}
