namespace Microhv.HAL;

/// <summary>
/// Encoding of x86-64 4-level paging-structure entries (Intel SDM Vol. 3A, 4.5, Tables 4-15 to 4-20)
/// and of the linear-address split that selects them (Figure 4-8/4-9/4-10).
/// Levels are numbered as the SDM does: 4 = PML4, 3 = PDPT, 2 = PD, 1 = PT.
/// MAXPHYADDR is taken as the architectural maximum, 52.
/// </summary>
public static class PageTableEntry
{
    /// <summary>P, bit 0: the entry maps a page or references a table.</summary>
    public const ulong Present = 1UL << 0;
    /// <summary>R/W, bit 1: writes allowed (if 0, writes may not be allowed to the region it controls).</summary>
    public const ulong Writable = 1UL << 1;
    /// <summary>U/S, bit 2: user-mode accesses allowed.</summary>
    public const ulong User = 1UL << 2;
    /// <summary>PWT, bit 3: page-level write-through.</summary>
    public const ulong WriteThrough = 1UL << 3;
    /// <summary>PCD, bit 4: page-level cache disable.</summary>
    public const ulong CacheDisable = 1UL << 4;
    /// <summary>A, bit 5: accessed.</summary>
    public const ulong Accessed = 1UL << 5;
    /// <summary>D, bit 6: dirty (leaf entries only).</summary>
    public const ulong Dirty = 1UL << 6;
    /// <summary>PS, bit 7 of a PDPTE or PDE: the entry maps a 1 GiB / 2 MiB page instead of a table.</summary>
    public const ulong PageSize = 1UL << 7;
    /// <summary>PAT, bit 7 of a PTE (4 KiB page). Same bit as <see cref="PageSize"/>.</summary>
    public const ulong Pat4K = 1UL << 7;
    /// <summary>G, bit 8: global translation (leaf entries only).</summary>
    public const ulong Global = 1UL << 8;
    /// <summary>PAT, bit 12 of a PDPTE/PDE that maps a large page.</summary>
    public const ulong PatLarge = 1UL << 12;
    /// <summary>XD, bit 63: instruction fetches not allowed (requires IA32_EFER.NXE).</summary>
    public const ulong NoExecute = 1UL << 63;

    /// <summary>Bits 51:12: physical address of a 4 KiB page or of the next paging structure.</summary>
    public const ulong AddressMask = 0x000F_FFFF_FFFF_F000UL;
    /// <summary>Bits 51:21: physical address of a 2 MiB page (PDE with PS=1).</summary>
    public const ulong AddressMask2M = 0x000F_FFFF_FFE0_0000UL;
    /// <summary>Bits 51:30: physical address of a 1 GiB page (PDPTE with PS=1).</summary>
    public const ulong AddressMask1G = 0x000F_FFFF_C000_0000UL;

    /// <summary>Flags the page-table code understands and reports as effective flags.</summary>
    public const ulong KnownFlags = Present | Writable | User | WriteThrough | CacheDisable | Accessed | Dirty | Global | NoExecute;

    public const ulong Size4K = 0x1000UL;
    public const ulong Size2M = 0x20_0000UL;
    public const ulong Size1G = 0x4000_0000UL;

    /// <summary>Entries per paging structure (each is one 4 KiB frame of 8-byte entries).</summary>
    public const int EntriesPerTable = 512;

    /// <summary>Size in bytes of a page of the given size.</summary>
    public static ulong SizeOf(PageSize size)
    {
        if (size == HAL.PageSize.Size2M) return Size2M;
        if (size == HAL.PageSize.Size1G) return Size1G;
        return Size4K;
    }

    /// <summary>Address mask of the leaf entry mapping a page of the given size.</summary>
    public static ulong AddressMaskOf(PageSize size)
    {
        if (size == HAL.PageSize.Size2M) return AddressMask2M;
        if (size == HAL.PageSize.Size1G) return AddressMask1G;
        return AddressMask;
    }

    /// <summary>Paging level whose entry maps a page of this size: 1 (PT) for 4K, 2 (PD) for 2M, 3 (PDPT) for 1G.</summary>
    public static int LeafLevelOf(PageSize size)
    {
        if (size == HAL.PageSize.Size2M) return 2;
        if (size == HAL.PageSize.Size1G) return 3;
        return 1;
    }

    /// <summary>Entry that references a paging structure (or maps a 4 KiB page) at <paramref name="physicalAddress"/>.</summary>
    public static ulong Make(ulong physicalAddress, ulong flags) => (physicalAddress & AddressMask) | (flags & ~AddressMask);

    /// <summary>
    /// Leaf entry mapping a page of <paramref name="size"/>; for 2M/1G sets PS. For large pages
    /// <paramref name="flags"/> may carry <see cref="PatLarge"/> (bit 12).
    /// </summary>
    public static ulong MakeLeaf(ulong physicalAddress, ulong flags, PageSize size)
    {
        if (size == HAL.PageSize.Size4K) return Make(physicalAddress, flags);
        ulong mask = AddressMaskOf(size);
        return (physicalAddress & mask) | (flags & ~mask) | PageSize;
    }

    public static bool IsPresent(ulong entry) => (entry & Present) != 0;
    public static bool IsWritable(ulong entry) => (entry & Writable) != 0;
    public static bool IsUser(ulong entry) => (entry & User) != 0;
    public static bool IsNoExecute(ulong entry) => (entry & NoExecute) != 0;
    /// <summary>PS bit; meaningful only for PDPTEs and PDEs.</summary>
    public static bool IsLargePage(ulong entry) => (entry & PageSize) != 0;

    /// <summary>Physical address held in bits 51:12 (table address, or 4 KiB page frame).</summary>
    public static ulong Address(ulong entry) => entry & AddressMask;

    /// <summary>Physical address of the page mapped by a leaf entry of the given size.</summary>
    public static ulong LeafAddress(ulong entry, PageSize size) => entry & AddressMaskOf(size);

    /// <summary>Bits 47:39 of the linear address: index into the PML4.</summary>
    public static int L4Index(ulong virtualAddress) => (int)((virtualAddress >> 39) & 511);
    /// <summary>Bits 38:30: index into the PDPT.</summary>
    public static int L3Index(ulong virtualAddress) => (int)((virtualAddress >> 30) & 511);
    /// <summary>Bits 29:21: index into the page directory.</summary>
    public static int L2Index(ulong virtualAddress) => (int)((virtualAddress >> 21) & 511);
    /// <summary>Bits 20:12: index into the page table.</summary>
    public static int L1Index(ulong virtualAddress) => (int)((virtualAddress >> 12) & 511);

    /// <summary>Index into the table of the given level (4..1).</summary>
    public static int IndexAt(ulong virtualAddress, int level) => (int)((virtualAddress >> (12 + 9 * (level - 1))) & 511);

    /// <summary>
    /// Canonical with 48-bit linear addresses (SDM Vol. 1, 3.3.7.1): bits 63:47 all equal.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static bool IsCanonical(ulong virtualAddress) => (ulong)((long)(virtualAddress << 16) >> 16) == virtualAddress;   // bits 63..47 all equal
}
