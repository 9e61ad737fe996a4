using Microhv.HAL;

namespace Microhv.Hypervisor;

/// <summary>
/// The bootstrap page tables of a new PV domain, built in the domain's own frames as Xen's
/// dom0_construct_pv and setup_pv_physmap build them: leaves carry Present|Writable|Accessed|User
/// (a 64-bit PV kernel runs in ring 3), tables carry Dirty as well, and the frames holding page
/// tables are mapped read-only. Table frames are typed (L1..L4) as they are taken; their counts are
/// set once the tree is complete (<see cref="DomainBuilder"/>).
/// </summary>
public static class DomainBuildPageTables
{
    /// <summary>Xen's L1_PROT for a 64-bit guest: what every leaf of the bootstrap mapping gets.</summary>
    public const ulong LeafFlags = PageTableEntry.Present | PageTableEntry.Writable | PageTableEntry.Accessed | PageTableEntry.User;
    /// <summary>Xen's L2_PROT/L3_PROT/L4_PROT.</summary>
    public const ulong TableFlags = LeafFlags | PageTableEntry.Dirty;

    /// <summary>
    /// Maps pseudo-physical frames 0..BootstrapPages-1 at VStart.. with tables taken from the frames at
    /// VPtStart (the L4 first); the frames of the tables themselves become read-only. Returns the L4's
    /// machine frame, or false if the tables did not fit in NrPtPages (the layout guarantees they do).
    /// </summary>
    public static bool BuildBootstrap(Machine m, Domain d, in DomainBuildLayout layout, out ulong l4Mfn)
    {
        ulong next = (layout.VPtStart - layout.VStart) / DomainBuildLayout.PageSize;
        ulong limit = next + layout.NrPtPages;
        l4Mfn = d.P2m[next++];
        for (ulong pfn = 0; pfn < layout.BootstrapPages; pfn++)
        {
            ulong va = layout.VStart + pfn * DomainBuildLayout.PageSize;
            bool isTable = va >= layout.VPtStart && va < layout.VPtEnd;
            ulong flags = isTable ? LeafFlags & ~PageTableEntry.Writable : LeafFlags;
            if (!MapPage(m, d, l4Mfn, va, d.P2m[pfn], flags, ref next, limit)) return false;
        }
        return next == limit;
    }

    /// <summary>
    /// Maps the p2m list at INIT_P2M with 4 KiB pages: tables and data frames are taken in order from
    /// pseudo-physical frame <paramref name="firstPfn"/> on, as Xen's setup_pv_physmap takes fresh pages.
    /// Returns the number of frames used, or false when the domain ran out.
    /// </summary>
    public static bool MapSeparateP2m(Machine m, Domain d, in DomainBuildLayout layout, ulong l4Mfn, ulong firstPfn, out ulong used)
    {
        ulong next = firstPfn;
        used = 0;
        for (ulong page = 0; page < layout.P2mPages; page++)
        {
            ulong va = layout.VPhysmapStart + page * DomainBuildLayout.PageSize;
            if (!EnsureTables(m, d, l4Mfn, va, ref next, d.NrPages, out ulong l1Slot)) return false;
            if (next >= d.NrPages) return false;
            ulong dataMfn = d.P2m[next++];
            m.Memory.Write64(l1Slot, PageTableEntry.Make(dataMfn << Layout.PageShift, LeafFlags | PageTableEntry.Dirty));
        }
        used = next - firstPfn;
        return true;
    }

    private static bool MapPage(Machine m, Domain d, ulong l4Mfn, ulong va, ulong mfn, ulong flags, ref ulong next, ulong limit)
    {
        if (!EnsureTables(m, d, l4Mfn, va, ref next, limit, out ulong l1Slot)) return false;
        m.Memory.Write64(l1Slot, PageTableEntry.Make(mfn << Layout.PageShift, flags));
        return true;
    }

    /// <summary>Walks L4 to L1 for <paramref name="va"/>, taking a zeroed frame for every missing table.</summary>
    private static bool EnsureTables(Machine m, Domain d, ulong l4Mfn, ulong va, ref ulong next, ulong limit, out ulong l1Slot)
    {
        ulong table = l4Mfn << Layout.PageShift;
        l1Slot = 0;
        for (int level = 4; level > 1; level--)
        {
            ulong slot = table + (ulong)PageTableEntry.IndexAt(va, level) * 8;
            ulong entry = m.Memory.Read64(slot);
            if (!PageTableEntry.IsPresent(entry))
            {
                if (next >= limit) return false;
                ulong child = d.P2m[next++];
                entry = PageTableEntry.Make(child << Layout.PageShift, TableFlags);
                m.Memory.Write64(slot, entry);
            }
            table = PageTableEntry.Address(entry);
        }
        l1Slot = table + (ulong)PageTableEntry.L1Index(va) * 8;
        return true;
    }
}
