namespace Microhv.HAL;

/// <summary>
/// Builder and walker of x86-64 4-level paging structures (Intel SDM Vol. 3A, 4.5) kept in memory
/// reached through <see cref="PhysicalMemory"/>. The tree is identified by the physical address of its
/// PML4 (what CR3 bits 51:12 hold). New paging structures come from a <see cref="FrameSource"/> and are
/// zeroed before being linked in.
///
/// Permissions: non-leaf entries this class creates are Present|Writable, plus User when the leaf being
/// mapped is User (an existing non-leaf entry is widened the same way), so the leaf entry decides access.
/// Translate combines the levels as the CPU does (SDM 4.6.1): writable only if R/W=1 at every level,
/// user only if U/S=1 at every level, no-execute if XD=1 at any level.
///
/// The static Walk/Translate work on any tree (e.g. a guest's) and never read outside PhysicalMemory.
/// Unmap does not free paging structures and does not invalidate TLBs; the caller does (INVLPG/CR3).
/// </summary>
public sealed class PageTable
{
    private readonly PhysicalMemory _memory;
    private readonly FrameSource _frames;
    private readonly ulong _root;

    /// <summary>Wraps an existing tree whose PML4 is at <paramref name="root"/> (4 KiB aligned).</summary>
    public PageTable(PhysicalMemory memory, FrameSource frames, ulong root)
    {
        _memory = memory;
        _frames = frames;
        _root = root & PageTableEntry.AddressMask;
    }

    /// <summary>Allocates and zeroes a PML4 and returns an empty tree over it.</summary>
    public static MapStatus Create(PhysicalMemory memory, FrameSource frames, out PageTable table)
    {
        table = null;
        if (!frames.TryAllocateFrame(out ulong root)) return MapStatus.OutOfMemory;
        if ((root & 0xFFF) != 0 || !memory.Contains(root, PageTableEntry.Size4K)) return MapStatus.BadTableAddress;
        memory.Fill(root, 0, PageTableEntry.Size4K);
        table = new PageTable(memory, frames, root);
        return MapStatus.Ok;
    }

    /// <summary>Physical address of the PML4 (the value for CR3, without PCD/PWT/PCID bits).</summary>
    public ulong Root => _root;

    public PhysicalMemory Memory => _memory;

    /// <summary>
    /// Maps one page of <paramref name="size"/> at <paramref name="virtualAddress"/> to
    /// <paramref name="physicalAddress"/>. Present is always set in the leaf; PS is set for 2M/1G.
    /// <paramref name="flags"/> must not overlap the leaf's address field.
    /// </summary>
    public MapStatus Map(ulong virtualAddress, ulong physicalAddress, ulong flags, PageSize size)
    {
        if (size != PageSize.Size4K && size != PageSize.Size2M && size != PageSize.Size1G) return MapStatus.InvalidPageSize;
        if (!PageTableEntry.IsCanonical(virtualAddress)) return MapStatus.NonCanonical;
        ulong pageBytes = PageTableEntry.SizeOf(size);
        ulong offsetMask = pageBytes - 1;
        if ((virtualAddress & offsetMask) != 0 || (physicalAddress & offsetMask) != 0) return MapStatus.Misaligned;
        ulong addressMask = PageTableEntry.AddressMaskOf(size);
        if ((physicalAddress & ~addressMask) != 0) return MapStatus.InvalidAddress;
        if ((flags & addressMask) != 0) return MapStatus.InvalidAddress;

        int leafLevel = PageTableEntry.LeafLevelOf(size);
        ulong tableFlags = PageTableEntry.Present | PageTableEntry.Writable | (flags & PageTableEntry.User);
        ulong table = _root;
        for (int level = 4; level > leafLevel; level--)
        {
            ulong slot = table + (ulong)PageTableEntry.IndexAt(virtualAddress, level) * 8;
            if (!_memory.Contains(slot, 8)) return MapStatus.BadTableAddress;
            ulong entry = _memory.Read64(slot);
            if (PageTableEntry.IsPresent(entry))
            {
                if (level <= 3 && PageTableEntry.IsLargePage(entry)) return MapStatus.ConflictsWithLargePage;
                table = PageTableEntry.Address(entry);
            }
            else
            {
                if (!_frames.TryAllocateFrame(out ulong frame)) return MapStatus.OutOfMemory;
                if ((frame & 0xFFF) != 0 || !_memory.Contains(frame, PageTableEntry.Size4K)) return MapStatus.BadTableAddress;
                _memory.Fill(frame, 0, PageTableEntry.Size4K);
                _memory.Write64(slot, PageTableEntry.Make(frame, tableFlags));
                table = frame;
            }
        }

        ulong leafSlot = table + (ulong)PageTableEntry.IndexAt(virtualAddress, leafLevel) * 8;
        if (!_memory.Contains(leafSlot, 8)) return MapStatus.BadTableAddress;
        if (PageTableEntry.IsPresent(_memory.Read64(leafSlot))) return MapStatus.AlreadyMapped;
        _memory.Write64(leafSlot, PageTableEntry.MakeLeaf(physicalAddress, flags | PageTableEntry.Present, size));

        // Widen existing non-leaf entries so that the leaf decides the permissions.
        table = _root;
        for (int level = 4; level > leafLevel; level--)
        {
            ulong slot = table + (ulong)PageTableEntry.IndexAt(virtualAddress, level) * 8;
            ulong entry = _memory.Read64(slot);
            if ((entry & tableFlags) != tableFlags) _memory.Write64(slot, entry | tableFlags);
            table = PageTableEntry.Address(entry);
        }
        return MapStatus.Ok;
    }

    /// <summary>
    /// Maps [virtualAddress, virtualAddress+length) to [physicalAddress, ...) with pages of
    /// <paramref name="size"/>; <paramref name="length"/> must be a multiple of the page size.
    /// On failure every page this call mapped is unmapped again (paging structures it created stay).
    /// </summary>
    public MapStatus MapRange(ulong virtualAddress, ulong physicalAddress, ulong length, ulong flags, PageSize size)
    {
        if (size != PageSize.Size4K && size != PageSize.Size2M && size != PageSize.Size1G) return MapStatus.InvalidPageSize;
        if (length == 0) return MapStatus.Ok;
        ulong pageBytes = PageTableEntry.SizeOf(size);
        if ((length & (pageBytes - 1)) != 0) return MapStatus.Misaligned;
        if (length - 1 > ~virtualAddress) return MapStatus.NonCanonical;
        if (length - 1 > ~physicalAddress) return MapStatus.InvalidAddress;
        for (ulong done = 0; done < length; done += pageBytes)
        {
            MapStatus status = Map(virtualAddress + done, physicalAddress + done, flags, size);
            if (status != MapStatus.Ok)
            {
                for (ulong undo = 0; undo < done; undo += pageBytes) Unmap(virtualAddress + undo);
                return status;
            }
        }
        return MapStatus.Ok;
    }

    /// <summary>Removes the mapping containing <paramref name="virtualAddress"/> (a 4K page, or the whole 2M/1G page it hits).</summary>
    public MapStatus Unmap(ulong virtualAddress) => Unmap(virtualAddress, out _);

    public MapStatus Unmap(ulong virtualAddress, out PageSize size)
    {
        size = PageSize.Size4K;
        PageWalkResult walk = Walk(_memory, _root, virtualAddress, out ulong slot, out int level);
        if (walk == PageWalkResult.NonCanonical) return MapStatus.NonCanonical;
        if (walk == PageWalkResult.BadTableAddress) return MapStatus.BadTableAddress;
        if (walk != PageWalkResult.Mapped) return MapStatus.NotMapped;
        size = level == 3 ? PageSize.Size1G : level == 2 ? PageSize.Size2M : PageSize.Size4K;
        _memory.Write64(slot, 0);
        return MapStatus.Ok;
    }

    public bool Translate(ulong virtualAddress, out ulong physicalAddress, out ulong effectiveFlags, out PageSize size)
        => Translate(_memory, _root, virtualAddress, out physicalAddress, out effectiveFlags, out size);

    public PageWalkResult Walk(ulong virtualAddress, out ulong entryAddress, out int level)
        => Walk(_memory, _root, virtualAddress, out entryAddress, out level);

    /// <summary>
    /// Translates through the tree rooted at <paramref name="root"/>. <paramref name="effectiveFlags"/>
    /// holds Present, the combined Writable/User/NoExecute, and the leaf's PWT, PCD, A, D, G bits
    /// (PS and PAT are not reported). False when not mapped, non-canonical, or a table is unreachable.
    /// </summary>
    public static bool Translate(PhysicalMemory memory, ulong root, ulong virtualAddress,
        out ulong physicalAddress, out ulong effectiveFlags, out PageSize size)
    {
        WalkPath path = default;
        return Translate(memory, root, virtualAddress, out physicalAddress, out effectiveFlags, out size, ref path);
    }

    /// <summary>
    /// Translate that also records in <paramref name="path"/> the root and every entry it read, so a
    /// caller can later ask <see cref="StillTranslates"/> whether the same walk would still give the
    /// same answer (a walk is a function of the root and the entries it reads, nothing else).
    /// </summary>
    public static bool Translate(PhysicalMemory memory, ulong root, ulong virtualAddress,
        out ulong physicalAddress, out ulong effectiveFlags, out PageSize size, ref WalkPath path)
    {
        physicalAddress = 0;
        effectiveFlags = 0;
        size = PageSize.Size4K;
        path.Count = 0;
        path.Root = root;
        if (!PageTableEntry.IsCanonical(virtualAddress)) return false;
        // Writable and User must be set at every level, NoExecute at any: AND and OR of the entries.
        ulong all = ~0UL, any = 0;
        ulong table = root & PageTableEntry.AddressMask;
        for (int level = 4; level >= 1; level--)
        {
            ulong slot = table + (ulong)((virtualAddress >> (3 + 9 * level)) & 511) * 8;
            if (!memory.Contains(slot, 8)) return false;
            ulong entry = memory.Read64(slot);
            path.Set(4 - level, slot, entry);
            if ((entry & PageTableEntry.Present) == 0) return false;
            bool large = (entry & PageTableEntry.PageSize) != 0;
            if (level == 4 && large) return false;
            all &= entry;
            any |= entry;
            if (level != 1 && !large)
            {
                table = entry & PageTableEntry.AddressMask;
                continue;
            }
            size = level == 3 ? PageSize.Size1G : level == 2 ? PageSize.Size2M : PageSize.Size4K;
            ulong offsetMask = (1UL << (3 + 9 * level)) - 1;
            physicalAddress = (entry & PageTableEntry.AddressMask & ~offsetMask) | (virtualAddress & offsetMask);
            ulong passThrough = PageTableEntry.WriteThrough | PageTableEntry.CacheDisable | PageTableEntry.Accessed
                | PageTableEntry.Dirty | PageTableEntry.Global;
            effectiveFlags = PageTableEntry.Present | (entry & passThrough)
                | (all & (PageTableEntry.Writable | PageTableEntry.User)) | (any & PageTableEntry.NoExecute);
            return true;
        }
        return false;
    }

    /// <summary>True when every entry a successful <see cref="Translate(PhysicalMemory, ulong, ulong, out ulong, out ulong, out PageSize, ref WalkPath)"/>
    /// read still holds the value it read, under the same root: the translation is unchanged.</summary>
    public static bool StillTranslates(PhysicalMemory memory, ulong root, ref WalkPath path)
    {
        if (path.Count == 0 || root != path.Root) return false;
        if (memory.Read64(path.Slot0) != path.Entry0) return false;
        if (path.Count > 1 && memory.Read64(path.Slot1) != path.Entry1) return false;
        if (path.Count > 2 && memory.Read64(path.Slot2) != path.Entry2) return false;
        if (path.Count > 3 && memory.Read64(path.Slot3) != path.Entry3) return false;
        return true;
    }

    /// <summary>The root and the entries (slot address and value, L4E first) one walk read.</summary>
    public struct WalkPath
    {
        public int Count;
        public ulong Root;
        public ulong Slot0, Slot1, Slot2, Slot3;
        public ulong Entry0, Entry1, Entry2, Entry3;

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        public void Set(int i, ulong slot, ulong entry)
        {
            switch (i)
            {
                case 0: Slot0 = slot; Entry0 = entry; break;
                case 1: Slot1 = slot; Entry1 = entry; break;
                case 2: Slot2 = slot; Entry2 = entry; break;
                default: Slot3 = slot; Entry3 = entry; break;
            }
            Count = i + 1;
        }
    }

    /// <summary>
    /// Walks the tree rooted at <paramref name="root"/> for <paramref name="virtualAddress"/> and reports
    /// the last entry slot reached: its physical address and its level (4 = PML4E .. 1 = PTE).
    /// Mapped: the slot is the present leaf. NotPresent: the slot is the first entry with P=0.
    /// BadTableAddress: the slot lies outside reachable memory (not read). ReservedBitSet: the slot is a PML4E with PS=1.
    /// </summary>
    public static PageWalkResult Walk(PhysicalMemory memory, ulong root, ulong virtualAddress, out ulong entryAddress, out int level)
    {
        entryAddress = 0;
        level = 4;
        if (!PageTableEntry.IsCanonical(virtualAddress)) return PageWalkResult.NonCanonical;
        ulong table = root & PageTableEntry.AddressMask;
        for (int current = 4; current >= 1; current--)
        {
            ulong slot = table + (ulong)PageTableEntry.IndexAt(virtualAddress, current) * 8;
            entryAddress = slot;
            level = current;
            if (!memory.Contains(slot, 8)) return PageWalkResult.BadTableAddress;
            ulong entry = memory.Read64(slot);
            if (!PageTableEntry.IsPresent(entry)) return PageWalkResult.NotPresent;
            if (current == 4 && PageTableEntry.IsLargePage(entry)) return PageWalkResult.ReservedBitSet;
            if (current == 1 || (current <= 3 && PageTableEntry.IsLargePage(entry))) return PageWalkResult.Mapped;
            table = PageTableEntry.Address(entry);
        }
        return PageWalkResult.Mapped;
    }
}
