namespace Microhv.Hypervisor;

/// <summary>
/// Xen's frame_table (struct page_info), one record per machine frame: who owns it, what type it
/// has (page table level, descriptor page, writable) and how many references hold that type.
/// </summary>
public sealed class FrameTable
{
    public const ushort OwnerNone = 0xFFFF;
    public const ushort OwnerXen = 0x7FF2;      // DOMID_XEN

    private readonly ushort[] _owner;
    public readonly ulong FrameCount;

    public FrameTable(ulong frameCount)
    {
        FrameCount = frameCount;
        _owner = new ushort[frameCount];
        for (ulong i = 0; i < frameCount; i++) _owner[i] = OwnerNone;
    }

    public bool IsValid(ulong mfn) => mfn < FrameCount;
    public ushort OwnerOf(ulong mfn) => mfn < FrameCount ? _owner[mfn] : OwnerNone;
    public void SetOwner(ulong mfn, ushort owner) { if (mfn < FrameCount) _owner[mfn] = owner; }
}
