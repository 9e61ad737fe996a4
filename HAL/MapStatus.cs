namespace Microhv.HAL;

/// <summary>Outcome of a <see cref="PageTable"/> operation.</summary>
public enum MapStatus
{
    Ok = 0,
    /// <summary>A present entry already maps (part of) the requested range.</summary>
    AlreadyMapped,
    /// <summary>Virtual or physical address (or range length) not aligned to the page size.</summary>
    Misaligned,
    /// <summary>Virtual address not canonical (bits 63:47 not all equal).</summary>
    NonCanonical,
    /// <summary>The frame source could not supply a frame for a new paging structure.</summary>
    OutOfMemory,
    /// <summary>The walk met a 2M/1G page at a level above the requested leaf.</summary>
    ConflictsWithLargePage,
    /// <summary>Nothing is mapped at the address (Unmap).</summary>
    NotMapped,
    /// <summary>Physical address above MAXPHYADDR (52 bits), or flags overlap the address field.</summary>
    InvalidAddress,
    /// <summary>PageSize value outside 4K/2M/1G.</summary>
    InvalidPageSize,
    /// <summary>A paging structure address lies outside memory reachable through PhysicalMemory.</summary>
    BadTableAddress,
}
