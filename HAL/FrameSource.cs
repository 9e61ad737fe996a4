namespace Microhv.HAL;

/// <summary>Supplier of 4 KiB physical frames (4 KiB-aligned physical addresses).</summary>
public abstract class FrameSource
{
    /// <summary>Hands out one free frame; false when none is left.</summary>
    public abstract bool TryAllocateFrame(out ulong physicalAddress);

    /// <summary>Hands out 2^<paramref name="order"/> physically contiguous frames aligned to their size,
    /// ending at or below <paramref name="addressLimit"/> (exclusive); false when no such run is free.</summary>
    public virtual bool TryAllocateContiguous(int order, ulong addressLimit, out ulong physicalAddress)
    {
        physicalAddress = 0;
        return false;
    }

    /// <summary>Frames free now (sysctl physinfo's free_pages); 0 when the source does not count them.</summary>
    public virtual ulong FreeFrameCount => 0;

    /// <summary>Takes back one frame this source handed out; false when it cannot (it is then lost, not reused).</summary>
    public virtual bool TryFreeFrame(ulong physicalAddress) => false;
}
