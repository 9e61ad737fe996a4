namespace Microhv.HAL;

/// <summary>Where a walk of the paging structures for one linear address stopped.</summary>
public enum PageWalkResult
{
    /// <summary>Reached a present leaf entry (PTE, or PDE/PDPTE with PS=1).</summary>
    Mapped = 0,
    /// <summary>Reached an entry with P=0; the slot returned is that entry.</summary>
    NotPresent,
    /// <summary>The linear address is not canonical; no entry was read.</summary>
    NonCanonical,
    /// <summary>A paging-structure entry lies outside memory reachable through PhysicalMemory.</summary>
    BadTableAddress,
    /// <summary>A present PML4E has PS (bit 7) set, which is reserved (SDM Table 4-15).</summary>
    ReservedBitSet,
}
