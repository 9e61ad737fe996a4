namespace Microhv.HAL;

/// <summary>Supplier of 4 KiB physical frames (4 KiB-aligned physical addresses).</summary>
public abstract class FrameSource
{
    /// <summary>Hands out one free frame; false when none is left.</summary>
    public abstract bool TryAllocateFrame(out ulong physicalAddress);
}
