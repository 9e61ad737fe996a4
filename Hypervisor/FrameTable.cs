namespace Microhv.Hypervisor;

/// <summary>Xen's page types (PGT_*): what a frame is currently used as.</summary>
public enum FrameType : byte
{
    None = 0,
    L1PageTable = 1,
    L2PageTable = 2,
    L3PageTable = 3,
    L4PageTable = 4,
    SegDesc = 5,      // a GDT/LDT page (PGT_seg_desc_page)
    Writable = 6,     // mapped writable somewhere (PGT_writable_page)
}

/// <summary>
/// Xen's frame_table (struct page_info), one record per machine frame: who owns it, its type, how
/// many references hold that type (type count), whether the guest pinned it, and whether its
/// contents were validated for the type. The memory-management code (Hypervisor/Mm) keeps the
/// invariants: a frame has one type at a time; a page-table frame is never mapped writable.
/// </summary>
public sealed class FrameTable
{
    public const ushort OwnerNone = 0xFFFF;
    public const ushort OwnerXen = 0x7FF2;      // DOMID_XEN
    /// <summary>DOMID_IO: frames that are not RAM the hypervisor manages (the low 1 MiB, firmware ranges); see Io/IoMem.</summary>
    public const ushort OwnerIo = 0x7FF1;

    private readonly ushort[] _owner;
    private readonly FrameType[] _type;
    private readonly uint[] _typeCount;
    private readonly uint[] _refCount;
    private readonly byte[] _flags;
    /// <summary>Mappings of the frame in page tables of domains other than its owner (privcmd's foreign
    /// maps): while any remains, a dead owner's frame is kept, not given back.</summary>
    private readonly uint[] _foreignRefs;
    /// <summary>The TLB-flush clock when the frame's last type reference went (Mm/TlbFlushClock.cs).</summary>
    private readonly uint[] _stamp;
    /// <summary>The clock that stamps frames; null in hosted tests that do not need it.</summary>
    public Mm.TlbFlushClock Clock;
    private const byte FlagPinned = 1, FlagValidated = 2, FlagMarked = 4, FlagReleased = 8;
    public readonly ulong FrameCount;

    public FrameTable(ulong frameCount)
    {
        FrameCount = frameCount;
        _owner = new ushort[frameCount];
        _type = new FrameType[frameCount];
        _typeCount = new uint[frameCount];
        _refCount = new uint[frameCount];
        _flags = new byte[frameCount];
        _foreignRefs = new uint[frameCount];
        _stamp = new uint[frameCount];
        for (ulong i = 0; i < frameCount; i++) _owner[i] = OwnerNone;
    }

    public bool IsValid(ulong mfn) => mfn < FrameCount;
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public ushort OwnerOf(ulong mfn) => mfn < FrameCount ? _owner[mfn] : OwnerNone;
    public void SetOwner(ulong mfn, ushort owner) { if (mfn < FrameCount) _owner[mfn] = owner; }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public FrameType TypeOf(ulong mfn) => mfn < FrameCount ? _type[mfn] : FrameType.None;
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public uint TypeCount(ulong mfn) => mfn < FrameCount ? _typeCount[mfn] : 0;
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public uint RefCount(ulong mfn) => mfn < FrameCount ? _refCount[mfn] : 0;
    public uint ForeignRefs(ulong mfn) => mfn < FrameCount ? _foreignRefs[mfn] : 0;
    public void SetForeignRefs(ulong mfn, uint count) { if (mfn < FrameCount) _foreignRefs[mfn] = count; }
    /// <summary>When the frame last lost its type (the TLB-flush clock then; 0 = never since boot).</summary>
    public uint Stamp(ulong mfn) => mfn < FrameCount ? _stamp[mfn] : 0;
    public bool IsPinned(ulong mfn) => mfn < FrameCount && (_flags[mfn] & FlagPinned) != 0;
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public bool IsValidated(ulong mfn) => mfn < FrameCount && (_flags[mfn] & FlagValidated) != 0;

    /// <summary>Raw setters for the memory-management code; they keep no invariants themselves.</summary>
    public void SetType(ulong mfn, FrameType type, uint typeCount)
    {
        if (mfn >= FrameCount) return;
        if (typeCount == 0 && _typeCount[mfn] != 0 && Clock != null) _stamp[mfn] = Clock.Now;
        _type[mfn] = type;
        _typeCount[mfn] = typeCount;
        if (typeCount == 0) _flags[mfn] = (byte)(_flags[mfn] & ~FlagValidated);
    }
    public void SetRefCount(ulong mfn, uint count) { if (mfn < FrameCount) _refCount[mfn] = count; }
    public void SetPinned(ulong mfn, bool pinned) { if (mfn < FrameCount) _flags[mfn] = (byte)(pinned ? _flags[mfn] | FlagPinned : _flags[mfn] & ~FlagPinned); }
    public void SetValidated(ulong mfn, bool validated) { if (mfn < FrameCount) _flags[mfn] = (byte)(validated ? _flags[mfn] | FlagValidated : _flags[mfn] & ~FlagValidated); }

    /// <summary>A scratch mark for one walk over the frames that must not ask a per-frame question of another
    /// structure (DomainRelinquish marks a dead domain's still-granted frames, walks, then clears the marks);
    /// clear between walks.</summary>
    public bool IsReleased(ulong mfn) => mfn < FrameCount && (_flags[mfn] & FlagReleased) != 0;
    /// <summary>The owner gave the frame back with decrease_reservation while the hypervisor still mapped it (Xen's page
    /// without PGC_allocated): it is freed when its last reference goes (Mm/PageTypes.PutPage).</summary>
    public void SetReleased(ulong mfn, bool released) { if (mfn < FrameCount) _flags[mfn] = (byte)(released ? _flags[mfn] | FlagReleased : _flags[mfn] & ~FlagReleased); }

    public bool IsMarked(ulong mfn) => mfn < FrameCount && (_flags[mfn] & FlagMarked) != 0;
    public void SetMarked(ulong mfn, bool marked) { if (mfn < FrameCount) _flags[mfn] = (byte)(marked ? _flags[mfn] | FlagMarked : _flags[mfn] & ~FlagMarked); }
}
