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

    /// <summary>Told of every frame given back and asked before one is handed out again (the hypervisor's
    /// TLB-flush clock: no processor may still translate to a frame its next owner receives); null: none.</summary>
    public ReuseFence Fence;
}

/// <summary>What a frame source tells the user of its frames: a frame came back (<see cref="Freed"/>), and a
/// frame is about to be handed out again (<see cref="BeforeReuse"/>), which may have to wait for others to
/// let go of it first.</summary>
public abstract class ReuseFence
{
    public abstract void Freed();
    public abstract void BeforeReuse();
}
