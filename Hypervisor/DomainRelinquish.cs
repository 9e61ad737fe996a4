using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// What a dead domain gives back (Xen's domain_relinquish_resources). A domain the toolstack created
/// is relinquished when the toolstack destroys it (domctl destroydomain); a boot-loader domain as soon
/// as it has shut down or crashed and its vCPU has left the CPU. First its own grant mappings of other
/// domains' pages are undone (gnttab_release_mappings: pins, type and general references), then every
/// frame it owns returns to the machine's pool — except, as in Xen, a frame another domain still maps,
/// through a grant or in its own page tables (a foreign mapping, FrameTable.ForeignRefs): that one is
/// kept (Domain.FramesKept), with the dead domain's grant table while grants are mapped, until the last
/// such mapping is undone. Its event channels are closed, so peers see their ports unbound and nobody
/// writes its pages again.
/// </summary>
public static class DomainRelinquish
{
    /// <summary>Relinquishes every dead domain that has not been yet and is not <paramref name="current"/>'s
    /// (the kernel calls this after a vCPU switch, when the CPU no longer runs on the dead one's tables).</summary>
    public static void ReleaseDead(Machine m, Vcpu current)
    {
        for (int i = 0; i < m.DomainCount; i++)
        {
            Domain d = m.Domains[i];
            if (d == null || d.Relinquished || d.IsAlive || d.State == DomainState.Building) continue;
            if (current != null && current.Domain == d || AnyRunning(d)) continue;   // a processor still has its tables loaded
            if (d.CreatedByToolstack) continue;     // kept, shut down, until the toolstack destroys it
            Relinquish(d);
        }
    }

    /// <summary>Whether a processor runs one of <paramref name="d"/>'s vCPUs now (its tables are loaded there).</summary>
    public static bool AnyRunning(Domain d)
    {
        for (int i = 0; i < d.MaxVcpus; i++) if (d.Vcpus[i].RunningOn >= 0) return true;
        return false;
    }

    public static void Relinquish(Domain d)
    {
        if (d.Relinquished) return;
        d.Relinquished = true;
        Machine m = d.Machine;
        Mm.LdtShadow.DestroyAll(d);          // the hypervisor's own mappings of its LDT pages go first
        ReleaseMappings(d);
        if (d.EventChannels != null) d.EventChannels.Reset();
        d.SharedInfoMfn = 0;
        d.ConsoleRingMfn = 0;
        for (int i = 0; i < Domain.VcpuCapacity; i++) d.Vcpus[i].VcpuInfoAddress = 0;
        FrameTable ft = m.FrameTable;
        GrantTable gt = GrantTable.Of(d);
        // Frames another domain maps through a grant (and then the grant table's frames) are marked first, so the
        // walk asks one bit per frame: asking the grant table for each of a large domain's frames cost a second of
        // `xl destroy` while a backend still mapped a grant (frames x entries).
        bool granted = gt != null && MarkGranted(ft, gt, true);
        ulong kept = 0;
        for (ulong mfn = 0; mfn < ft.FrameCount; mfn++)
        {
            if (ft.OwnerOf(mfn) != d.DomainId) continue;
            if (ft.ForeignRefs(mfn) != 0 || granted && ft.IsMarked(mfn)) kept++;
            else FreeFrame(m, mfn);
        }
        if (granted) MarkGranted(ft, gt, false);
        d.FramesKept = kept;
        if (gt != null && !granted) gt.NrFrames = gt.NrStatusFrames = 0;   // its frames went with the others
        d.NrPages = 0;
        if (d.P2m != null) for (int pfn = 0; pfn < d.P2m.Length; pfn++) d.P2m[pfn] = Domain.Invalid;
    }

    /// <summary>The last foreign mapping of <paramref name="mfn"/> went: if its owner is dead, the frame goes back.</summary>
    public static void AfterForeignUnmap(Machine m, ulong mfn)
    {
        Domain owner = m.FindDomain(m.FrameTable.OwnerOf(mfn));
        if (owner == null || !owner.Relinquished || StillGranted(owner, mfn)) return;
        FreeKept(owner, mfn);
    }

    /// <summary>A kept frame of dead domain <paramref name="d"/> is free at last; when it was the last, the domain goes.</summary>
    internal static void FreeKept(Domain d, ulong mfn)
    {
        FreeFrame(d.Machine, mfn);
        if (d.FramesKept > 0) d.FramesKept--;
        if (d.FramesKept == 0) Toolstack.DomainLifecycle.FinishIfEmpty(d);
    }

    /// <summary>After another domain unmapped <paramref name="mfn"/> of dead domain <paramref name="granter"/>:
    /// the frame, and once no grant is mapped any more the grant table's frames, go back to the pool.</summary>
    public static void AfterUnmap(Domain granter, ulong mfn)
    {
        if (!granter.Relinquished) return;
        Machine m = granter.Machine;
        FrameTable ft = m.FrameTable;
        GrantTable gt = GrantTable.Of(granter);
        bool last = gt == null || !AnyPinned(gt);
        if (ft.OwnerOf(mfn) == granter.DomainId && ft.ForeignRefs(mfn) == 0 && !StillGranted(granter, mfn)
            && !(gt != null && !last && GrantTable.IsGrantFrame(granter, mfn)))
            FreeKept(granter, mfn);
        if (!last || gt == null) return;
        for (int i = 0; i < gt.NrFrames; i++)
            if (ft.OwnerOf(gt.Frames[i]) == granter.DomainId && ft.ForeignRefs(gt.Frames[i]) == 0) FreeKept(granter, gt.Frames[i]);
        for (int i = 0; i < gt.NrStatusFrames; i++)
            if (ft.OwnerOf(gt.StatusFrames[i]) == granter.DomainId && ft.ForeignRefs(gt.StatusFrames[i]) == 0) FreeKept(granter, gt.StatusFrames[i]);
        gt.NrFrames = gt.NrStatusFrames = 0;
        Toolstack.DomainLifecycle.FinishIfEmpty(granter);
    }

    /// <summary>Gives a frame back to the machine's pool: no owner, type or references; its M2P entry invalid.</summary>
    public static void FreeFrame(Machine m, ulong mfn)
    {
        FrameTable ft = m.FrameTable;
        m.Tlb.FreeingFrameOf(m.FindDomain(ft.OwnerOf(mfn)));
        ft.SetType(mfn, FrameType.None, 0);
        ft.SetRefCount(mfn, 0);
        ft.SetPinned(mfn, false);
        ft.SetValidated(mfn, false);
        ft.SetReleased(mfn, false);
        ft.SetForeignRefs(mfn, 0);
        ft.SetOwner(mfn, FrameTable.OwnerNone);
        m.SetM2p(mfn, XenMem.INVALID_M2P_ENTRY);
        m.Frames.TryFreeFrame(mfn << Layout.PageShift);   // a source that cannot take it back loses it (never reused)
    }

    /// <summary>True while another domain maps this frame through one of the dead domain's grants, or
    /// while it is a frame of a grant table some mapping still pins (its entries are still written).</summary>
    private static bool StillGranted(Domain d, ulong mfn)
    {
        GrantTable gt = GrantTable.Of(d);
        if (gt == null) return false;
        bool anyPinned = false;
        for (uint r = 0; r < gt.NrEntries; r++)
        {
            if (!gt.IsPinned(r)) continue;
            anyPinned = true;
            if (gt.ActiveMfn(r) == mfn) return true;
        }
        return anyPinned && GrantTable.IsGrantFrame(d, mfn);
    }

    /// <summary>Sets (or clears) the frame table's scratch mark on every frame a pinned grant of <paramref name="gt"/>
    /// maps and, when any is pinned, on the grant table's own frames: what <see cref="StillGranted"/> answers frame by
    /// frame, for all frames at once. True when some grant is pinned.</summary>
    private static bool MarkGranted(FrameTable ft, GrantTable gt, bool mark)
    {
        bool anyPinned = false;
        uint entries = gt.NrEntries;
        for (uint r = 0; r < entries; r++)
        {
            if (!gt.IsPinned(r)) continue;
            anyPinned = true;
            ft.SetMarked(gt.ActiveMfn(r), mark);
        }
        if (!anyPinned) return false;
        for (int i = 0; i < gt.NrFrames; i++) ft.SetMarked(gt.Frames[i], mark);
        for (int i = 0; i < gt.NrStatusFrames; i++) ft.SetMarked(gt.StatusFrames[i], mark);
        return true;
    }

    private static bool AnyPinned(GrantTable gt)
    {
        for (uint r = 0; r < gt.NrEntries; r++) if (gt.IsPinned(r)) return true;
        return false;
    }

    /// <summary>gnttab_release_mappings: every mapping the dead domain holds of another domain's grant
    /// drops its references and its pins (host and device), as an unmap would (its page tables are gone).</summary>
    private static void ReleaseMappings(Domain d)
    {
        GrantTable gt = GrantTable.Of(d);
        if (gt == null) return;
        Machine m = d.Machine;
        for (uint h = 0; h < GrantTable.MaptrackCapacity; h++)
        {
            if (!gt.GetMapping(h, out ushort dom, out uint gref, out ulong mfn, out uint flags)) continue;
            gt.SetMappingFlags(h, 0);
            Domain rd = m.FindDomain(dom);
            GrantTable rgt = rd == null ? null : GrantTable.Of(rd);
            bool readOnly = (flags & Gnttab.GNTMAP_readonly) != 0;
            int kinds = ((flags & Gnttab.GNTMAP_host_map) != 0 ? 1 : 0) + ((flags & Gnttab.GNTMAP_device_map) != 0 ? 1 : 0);
            for (int k = 0; k < kinds; k++)
            {
                GrantMapOp.PutReferences(m, mfn, readOnly);
                if (rgt != null && gref < rgt.NrEntries) GrantMapOp.ReleasePin(rgt, gref, readOnly);
            }
            if (rd != null && kinds != 0) AfterUnmap(rd, mfn);
        }
    }
}
