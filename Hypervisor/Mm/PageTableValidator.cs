using Microhv.HAL;
using Microhv.Hypervisor.Io;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// Xen's validation of guest page tables (get_page_from_lNe, promote_lN_table, mod_lN_entry in
/// xen/arch/x86/mm.c). Every present entry a guest installs is checked before the hardware can use
/// it: its flags are ones a PV guest may set, the frame it names belongs to the guest, a writable
/// leaf names a frame that may become writable (never a page table or descriptor page), and a
/// non-leaf entry names a frame that validates as the next lower level. L4 slots 256..271 are the
/// hypervisor's. Superpages and linear (self-referencing) page tables are refused; Xen allows the
/// latter read-only under CONFIG_PV_LINEAR_PT, we do not.
/// </summary>
public static class PageTableValidator
{
    public const int EntriesPerTable = 512;

    /// <summary>Flags any level may carry (Xen's base_disallow_mask is the complement): P, RW, US, A, D,
    /// the available bits 9-11 and 52-62, and NX.</summary>
    public const ulong BaseAllowed = PageTableEntry.Present | PageTableEntry.Writable | PageTableEntry.User
        | PageTableEntry.Accessed | PageTableEntry.Dirty | 0xE00UL | 0x7FF0_0000_0000_0000UL | PageTableEntry.NoExecute;

    /// <summary>Cache attributes of a 4 KiB leaf (PWT, PCD, PAT): only a domain with device access may choose them.</summary>
    public const ulong CacheAttributes = PageTableEntry.WriteThrough | PageTableEntry.CacheDisable | PageTableEntry.Pat4K;

    private const ulong FlagsMask = ~PageTableEntry.AddressMask;

    /// <summary>Xen's FASTPATH_FLAG_WHITELIST: leaf bits that change no reference (NX, the available
    /// bits, G, D, A, U); a change confined to them keeps the old entry's references.</summary>
    public const ulong FastPathFlags = PageTableEntry.NoExecute | 0x7FF0_0000_0000_0000UL | 0xE00UL
        | PageTableEntry.Global | PageTableEntry.Dirty | PageTableEntry.Accessed | PageTableEntry.User;

    /// <summary>FASTPATH_PDE_FLAG_WHITELIST: for L2-L4 entries Writable too, since linear page tables
    /// are refused and a non-leaf entry's references do not depend on it.</summary>
    public const ulong FastPathPdeFlags = FastPathFlags | PageTableEntry.Writable;

    /// <summary>Flags a leaf entry of domain <paramref name="d"/> may set: Global too, and cache
    /// attributes for the initial domain (Xen's l1_disallow_mask).</summary>
    public static ulong L1Allowed(Domain d)
        => BaseAllowed | PageTableEntry.Global | (d.IsInitialDomain ? CacheAttributes : 0);

    public static ulong MfnOf(ulong entry) => (entry & PageTableEntry.AddressMask) >> Layout.PageShift;

    /// <summary>
    /// get_page_from_lNe: takes the references a present entry at <paramref name="level"/> needs, or
    /// returns the errno Xen returns: -EINVAL for forbidden flags or a child that does not validate,
    /// -EPERM for a frame outside RAM the hypervisor manages that the domain may not map (Io/IoMem), -EBUSY for a leaf naming a frame that is
    /// not <paramref name="pgOwner"/>'s or cannot be made writable. Non-present entries need nothing.
    /// </summary>
    public static long GetPageFromEntry(Machine m, Domain d, Domain pgOwner, ulong entry, int level)
    {
        if (!PageTableEntry.IsPresent(entry)) return 0;
        ulong mfn = MfnOf(entry);
        if (level == 1)
        {
            if ((entry & FlagsMask & ~L1Allowed(d)) != 0) return -Errno.EINVAL;
            // I/O space (beyond RAM, the low 1 MiB, firmware ranges): only with the domain's iomem
            // permission, and without references, as Xen's get_page_from_l1e does for dom_io frames.
            if (IoMem.IsIoFrame(m, mfn)) return m.IoMem.CheckMapping(m, pgOwner, mfn);
            bool shared = pgOwner.SharedInfoMfn != 0 && mfn == pgOwner.SharedInfoMfn;
            bool referenced = shared ? PageTypes.GetPageUnowned(m, mfn) : PageTypes.GetPage(m, mfn, pgOwner.DomainId);
            if (!referenced) return -Errno.EBUSY;
            if (PageTableEntry.IsWritable(entry) && PageTypes.GetPageType(m, pgOwner, mfn, FrameType.Writable) != 0)
            {
                PageTypes.PutPage(m, mfn);
                return -Errno.EBUSY;
            }
            if (pgOwner != d) m.FrameTable.SetForeignRefs(mfn, m.FrameTable.ForeignRefs(mfn) + 1);
            return 0;
        }
        if ((entry & FlagsMask & ~BaseAllowed) != 0) return -Errno.EINVAL;     // PSE, PWT, PCD, G
        return PageTypes.GetPageAndType(m, d, mfn, PageTypes.TypeOfLevel(level - 1));
    }

    /// <summary>put_page_from_lNe: drops what GetPageFromEntry took for an entry that was installed in a
    /// table of domain <paramref name="tableOwner"/>; the last foreign mapping of a dead domain's kept
    /// frame gives it back (DomainRelinquish.AfterForeignUnmap).</summary>
    public static void PutPageFromEntry(Machine m, ulong entry, int level, ushort tableOwner)
    {
        if (!PageTableEntry.IsPresent(entry)) return;
        ulong mfn = MfnOf(entry);
        if (IoMem.IsIoFrame(m, mfn)) return;                 // I/O frames hold no references
        if (level == 1)
        {
            if (PageTableEntry.IsWritable(entry)) PageTypes.PutPageType(m, mfn);
            PageTypes.PutPage(m, mfn);
            FrameTable ft = m.FrameTable;
            uint foreign = ft.ForeignRefs(mfn);
            if (foreign != 0 && ft.OwnerOf(mfn) != tableOwner)
            {
                ft.SetForeignRefs(mfn, foreign - 1);
                if (foreign == 1) DomainRelinquish.AfterForeignUnmap(m, mfn);
            }
            return;
        }
        PageTypes.PutPageAndType(m, mfn);
    }

    /// <summary>
    /// adjust_guest_lNe: a 64-bit PV kernel runs in ring 3, so every present entry gets User; an L4
    /// entry also gets Accessed. Unlike Xen, Global is cleared on leaves: the host's TLB flush
    /// (HypervisorHost.FlushTlb) keeps global entries, and a stale global translation must not outlive
    /// a type change of its frame.
    /// </summary>
    public static ulong AdjustEntry(ulong entry, int level)
    {
        if (!PageTableEntry.IsPresent(entry)) return entry;
        entry |= PageTableEntry.User;
        if (level == 1) entry &= ~PageTableEntry.Global;
        if (level == 4) entry |= PageTableEntry.Accessed;
        return entry;
    }

    /// <summary>A leaf naming read-only I/O memory (MSI-X tables, the HPET) is installed without write
    /// access, as Xen's get_page_from_l1e forces ("Forcing read-only access to MFN").</summary>
    private static ulong ForceReadOnlyIo(Machine m, ulong entry, int level)
    {
        if (level != 1 || !PageTableEntry.IsPresent(entry) || !PageTableEntry.IsWritable(entry)) return entry;
        ulong mfn = MfnOf(entry);
        return IoMem.IsIoFrame(m, mfn) && m.IoMem.IsReadOnly(mfn) ? entry & ~PageTableEntry.Writable : entry;
    }

    /// <summary>
    /// promote_lN_table: validates every guest entry of the table at <paramref name="mfn"/>, taking
    /// their references and adjusting them; on the first failure every reference already taken is
    /// dropped and the error returned. A validated L4 gets the hypervisor's slots 256..271 written
    /// over whatever the guest left there (Xen's init_xen_l4_slots).
    /// </summary>
    public static long ValidateTable(Machine m, Domain d, ulong mfn, int level)
    {
        PhysicalMemory mem = m.Memory;
        ulong table = mfn << Layout.PageShift;
        if (!mem.Contains(table, Layout.PageSize)) return -Errno.EINVAL;
        for (int i = 0; i < EntriesPerTable; i++)
        {
            if (level == 4 && Layout.IsHypervisorL4Slot(i)) continue;
            ulong slot = table + (ulong)i * 8;
            ulong entry = mem.Read64(slot);
            if (!PageTableEntry.IsPresent(entry)) continue;     // takes nothing and is not adjusted: most of a new table
            long rc = GetPageFromEntry(m, d, d, entry, level);
            if (rc != 0)
            {
                for (int j = i - 1; j >= 0; j--)
                {
                    if (level == 4 && Layout.IsHypervisorL4Slot(j)) continue;
                    PutPageFromEntry(m, mem.Read64(table + (ulong)j * 8), level, d.DomainId);
                }
                return rc;
            }
            mem.Write64(slot, ForceReadOnlyIo(m, AdjustEntry(entry, level), level));
        }
        if (level == 4) WriteHypervisorSlots(m, table);
        return 0;
    }

    /// <summary>free_lN_table: drops the references every guest entry of a table that loses its last type reference held.</summary>
    public static void ReleaseTable(Machine m, ulong mfn, int level)
    {
        PhysicalMemory mem = m.Memory;
        ulong table = mfn << Layout.PageShift;
        if (!mem.Contains(table, Layout.PageSize)) return;
        ushort owner = m.FrameTable.OwnerOf(mfn);
        for (int i = 0; i < EntriesPerTable; i++)
        {
            if (level == 4 && Layout.IsHypervisorL4Slot(i)) continue;
            ulong entry = mem.Read64(table + (ulong)i * 8);
            if (PageTableEntry.IsPresent(entry)) PutPageFromEntry(m, entry, level, owner);
        }
    }

    public static void WriteHypervisorSlots(Machine m, ulong l4Table)
    {
        for (int i = 0; i < Layout.HypervisorL4SlotCount; i++)
            m.Memory.Write64(l4Table + (ulong)(Layout.FirstHypervisorL4Slot + i) * 8, m.HypervisorL4Slots[i]);
    }

    /// <summary>
    /// mod_lN_entry: replaces entry <paramref name="index"/> of the validated table at
    /// <paramref name="mfn"/> (level <paramref name="level"/>) with <paramref name="entry"/>: the new
    /// entry is validated and referenced first, then written, then the old entry's references are
    /// dropped. Like Xen, a present entry whose flags are allowed and that differs from the old one
    /// only in bits that take no references (<see cref="FastPathFlags"/>) is written without taking
    /// and dropping them again: same frame, same Present and Writable, same cache attributes.
    /// <paramref name="preserveAd"/> keeps the old Accessed/Dirty bits.
    /// </summary>
    public static long ModEntry(Machine m, Domain d, Domain pgOwner, ulong mfn, int index, int level, ulong entry, bool preserveAd)
    {
        if ((uint)index >= EntriesPerTable || level < 1 || level > 4) return -Errno.EINVAL;
        if (level == 4 && Layout.IsHypervisorL4Slot(index)) return -Errno.EINVAL;
        ulong slot = (mfn << Layout.PageShift) + (ulong)index * 8;
        if (!m.Memory.Contains(slot, 8)) return -Errno.EINVAL;
        ulong old = m.Memory.Read64(slot);
        if (PageTableEntry.IsPresent(entry))
        {
            ulong allowed = level == 1 ? L1Allowed(d) : BaseAllowed;
            if ((entry & FlagsMask & ~allowed) != 0) return -Errno.EINVAL;
            ulong adjusted = AdjustEntry(entry, level);
            ulong same = level == 1 ? FastPathFlags : FastPathPdeFlags;
            if (((old ^ adjusted) & ~same) == 0)
            {
                if (preserveAd) adjusted |= old & (PageTableEntry.Accessed | PageTableEntry.Dirty);
                m.Memory.Write64(slot, adjusted);
                return 0;
            }
        }
        long rc = GetPageFromEntry(m, d, pgOwner, entry, level);
        if (rc != 0) return rc;
        entry = ForceReadOnlyIo(m, AdjustEntry(entry, level), level);
        if (preserveAd) entry |= old & (PageTableEntry.Accessed | PageTableEntry.Dirty);
        m.Memory.Write64(slot, entry);
        PutPageFromEntry(m, old, level, d.DomainId);
        return 0;
    }

    /// <summary>True when the frame is in use as a validated table of <paramref name="level"/> (Xen's page_lock condition).</summary>
    public static bool IsLiveTable(Machine m, ulong mfn, int level)
    {
        FrameTable ft = m.FrameTable;
        return ft.TypeOf(mfn) == PageTypes.TypeOfLevel(level) && ft.TypeCount(mfn) != 0 && ft.IsValidated(mfn);
    }
}
