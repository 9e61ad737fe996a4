namespace Microhv.HAL;

/// <summary>Outcome of a <see cref="FrameAllocator"/> set-up or free operation.</summary>
public enum FrameStatus
{
    Ok = 0,
    /// <summary>The frame is managed and already free.</summary>
    DoubleFree,
    /// <summary>The frame was never usable, is reserved, or lies outside the covered range.</summary>
    NotManaged,
    /// <summary>Address not 4 KiB aligned (Free, Create's base address).</summary>
    Misaligned,
    /// <summary>The caller's bitmap array is shorter than <see cref="FrameAllocator.BitmapWordsFor"/>.</summary>
    BitmapTooSmall,
    /// <summary>The covered range wraps around the 64-bit address space.</summary>
    BadRange,
}

/// <summary>
/// Bitmap allocator of 4 KiB physical frames covering [BaseAddress, BaseAddress + FrameCount*4K).
///
/// Storage: a caller-supplied <c>ulong[]</c> of at least <see cref="BitmapWordsFor"/>(frameCount) words,
/// i.e. two bits per frame. Words [0, W) are the "free" bitmap and words [W, 2W) the "held" bitmap
/// (W = ceil(frameCount/64)); a frame's state is (free, held):
/// (0,0) unmanaged, (1,0) free, (0,1) allocated, (1,1) reserved.
/// Every frame starts unmanaged. <see cref="AddUsableRange"/> turns unmanaged frames free (only frames
/// wholly inside the range). <see cref="ReserveRange"/> turns every frame it touches reserved, whatever it
/// was, so reservations win regardless of call order. Allocate/Free never allocate.
/// </summary>
public sealed class FrameAllocator : FrameSource
{
    public const ulong FrameSize = 4096;

    private readonly ulong[] _bits;
    private readonly ulong _base;
    private readonly ulong _frameCount;
    private readonly int _words;
    private ulong _freeCount;
    private int _searchWord;

    private FrameAllocator(ulong[] bitmap, ulong baseAddress, ulong frameCount)
    {
        _bits = bitmap;
        _base = baseAddress;
        _frameCount = frameCount;
        _words = (int)((frameCount + 63) / 64);
        for (int i = 0; i < 2 * _words; i++) _bits[i] = 0;
    }

    /// <summary>Number of <c>ulong</c> words the bitmap needs for <paramref name="frameCount"/> frames.</summary>
    public static ulong BitmapWordsFor(ulong frameCount) => 2 * ((frameCount + 63) / 64);

    /// <summary>Creates an allocator with every frame unmanaged. Clears the used part of <paramref name="bitmap"/>.</summary>
    public static FrameStatus Create(ulong[] bitmap, ulong baseAddress, ulong frameCount, out FrameAllocator allocator)
    {
        allocator = null;
        if ((baseAddress & (FrameSize - 1)) != 0) return FrameStatus.Misaligned;
        if (frameCount > (0xFFFF_FFFF_FFFF_FFFFUL - baseAddress) / FrameSize + 1 || frameCount > 0x000F_FFFF_FFFF_FFFFUL)
            return FrameStatus.BadRange;
        if ((ulong)bitmap.Length < BitmapWordsFor(frameCount)) return FrameStatus.BitmapTooSmall;
        allocator = new FrameAllocator(bitmap, baseAddress, frameCount);
        return FrameStatus.Ok;
    }

    public ulong BaseAddress => _base;
    public ulong FrameCount => _frameCount;
    /// <summary>Frames currently free.</summary>
    public ulong FreeFrames => _freeCount;
    public override ulong FreeFrameCount => _freeCount;

    /// <summary>
    /// Marks usable the frames lying wholly inside [start, start+length) (clamped to the covered range).
    /// Reserved and allocated frames are left alone.
    /// </summary>
    public FrameStatus AddUsableRange(ulong start, ulong length)
    {
        // Round start up, end down: a partial frame is not usable.
        if (!Clamp(start, length, true, out ulong first, out ulong end)) return FrameStatus.Ok;
        for (ulong f = first; f < end; f++)
        {
            if (IsBit(0, f) || IsBit(_words, f)) continue;
            SetBit(0, f);
            _freeCount++;
        }
        return FrameStatus.Ok;
    }

    /// <summary>
    /// Reserves every frame overlapping [start, start+length) (clamped to the covered range): it is never
    /// handed out and Free refuses it. Reserving an allocated frame also takes it out of management.
    /// </summary>
    public FrameStatus ReserveRange(ulong start, ulong length)
    {
        // Round start down, end up: any frame touched is reserved.
        if (!Clamp(start, length, false, out ulong first, out ulong end)) return FrameStatus.Ok;
        for (ulong f = first; f < end; f++)
        {
            if (IsBit(0, f) && !IsBit(_words, f)) _freeCount--;
            SetBit(0, f);
            SetBit(_words, f);
        }
        return FrameStatus.Ok;
    }

    /// <summary>
    /// Turns the reserved frames lying wholly inside [start, start+length) free again (boot modules once their
    /// domains are built, as Xen's discard_initial_images). Free, allocated and unmanaged frames are left alone;
    /// the caller passes only ranges it knows are RAM. Returns how many frames became free.
    /// </summary>
    public ulong ReleaseReservedRange(ulong start, ulong length)
    {
        if (!Clamp(start, length, true, out ulong first, out ulong end)) return 0;
        ulong released = 0;
        for (ulong f = first; f < end; f++)
        {
            if (!IsBit(0, f) || !IsBit(_words, f)) continue;
            ClearBit(_words, f);
            _freeCount++;
            released++;
        }
        if (released != 0 && (int)(first / 64) < _searchWord) _searchWord = (int)(first / 64);
        return released;
    }

    public override bool TryAllocateFrame(out ulong physicalAddress) => Allocate(out physicalAddress);

    /// <summary>Takes the lowest-numbered free frame at or after the search hint; false when none is free.</summary>
    public bool Allocate(out ulong physicalAddress)
    {
        physicalAddress = 0;
        if (_freeCount == 0) return false;
        Fence?.BeforeReuse();
        for (int n = 0; n < _words; n++)
        {
            int w = _searchWord + n;
            if (w >= _words) w -= _words;
            ulong candidates = _bits[w] & ~_bits[_words + w];
            if (candidates == 0) continue;
            int bit = LowestSetBit(candidates);
            ulong frame = (ulong)w * 64 + (ulong)bit;
            _bits[w] &= ~(1UL << bit);
            _bits[_words + w] |= 1UL << bit;
            _freeCount--;
            _searchWord = w;
            physicalAddress = _base + frame * FrameSize;
            return true;
        }
        return false;
    }

    /// <summary>
    /// The lowest free run of 2^<paramref name="order"/> frames aligned to its size that ends at or below
    /// <paramref name="addressLimit"/>: what a guest's DMA buffers need (Xen's alloc_domheap_pages with
    /// MEMF_bits). A linear scan: it serves rare requests (swiotlb-xen at a domain's boot).
    /// </summary>
    public override bool TryAllocateContiguous(int order, ulong addressLimit, out ulong physicalAddress)
    {
        physicalAddress = 0;
        if (order < 0 || order > 18) return false;
        ulong run = 1UL << order;
        if (_freeCount < run) return false;
        Fence?.BeforeReuse();
        ulong limitFrames = addressLimit <= _base ? 0 : (addressLimit - _base) / FrameSize;
        if (limitFrames > _frameCount) limitFrames = _frameCount;
        ulong alignedBase = ((_base / FrameSize + run - 1) & ~(run - 1)) - _base / FrameSize;   // first frame whose address is aligned
        for (ulong start = alignedBase; start + run <= limitFrames; start += run)
        {
            ulong f = 0;
            while (f < run && IsBit(0, start + f) && !IsBit(_words, start + f)) f++;
            if (f < run) continue;
            for (f = 0; f < run; f++)
            {
                ClearBit(0, start + f);
                SetBit(_words, start + f);
            }
            _freeCount -= run;
            physicalAddress = _base + start * FrameSize;
            return true;
        }
        return false;
    }

    public override bool TryFreeFrame(ulong physicalAddress) => Free(physicalAddress) == FrameStatus.Ok;

    /// <summary>Returns an allocated frame. Refuses unaligned, unmanaged, reserved and already-free frames.</summary>
    public FrameStatus Free(ulong physicalAddress)
    {
        if ((physicalAddress & (FrameSize - 1)) != 0) return FrameStatus.Misaligned;
        if (physicalAddress < _base) return FrameStatus.NotManaged;
        ulong frame = (physicalAddress - _base) / FrameSize;
        if (frame >= _frameCount) return FrameStatus.NotManaged;
        bool free = IsBit(0, frame), held = IsBit(_words, frame);
        if (free && !held) return FrameStatus.DoubleFree;
        if (!held) return FrameStatus.NotManaged;
        if (free) return FrameStatus.NotManaged; // reserved
        SetBit(0, frame);
        ClearBit(_words, frame);
        _freeCount++;
        if ((int)(frame / 64) < _searchWord) _searchWord = (int)(frame / 64);
        Fence?.Freed();
        return FrameStatus.Ok;
    }

    /// <summary>True when the frame containing <paramref name="physicalAddress"/> is managed and free.</summary>
    public bool IsFree(ulong physicalAddress)
    {
        if (physicalAddress < _base) return false;
        ulong frame = (physicalAddress - _base) / FrameSize;
        if (frame >= _frameCount) return false;
        return IsBit(0, frame) && !IsBit(_words, frame);
    }

    /// <summary>True when the frame containing <paramref name="physicalAddress"/> is reserved.</summary>
    public bool IsReserved(ulong physicalAddress)
    {
        if (physicalAddress < _base) return false;
        ulong frame = (physicalAddress - _base) / FrameSize;
        if (frame >= _frameCount) return false;
        return IsBit(0, frame) && IsBit(_words, frame);
    }

    private bool Clamp(ulong start, ulong length, bool inner, out ulong first, out ulong end)
    {
        first = 0;
        end = 0;
        if (length == 0) return false;
        ulong limit = _base + _frameCount * FrameSize; // exclusive; may be 0 when covering the top
        ulong last = length - 1 > ~start ? 0xFFFF_FFFF_FFFF_FFFFUL : start + (length - 1); // inclusive
        if (last < _base) return false;
        if (limit != 0 && start >= limit) return false;
        ulong s = start < _base ? _base : start;
        ulong firstFrame, endFrame; // endFrame exclusive, relative to base
        if (inner)
        {
            ulong rel = s - _base;
            firstFrame = (rel + FrameSize - 1) / FrameSize;
            ulong lastRel = last - _base; // inclusive byte
            // Frames wholly inside end at the frame whose last byte is <= last.
            endFrame = (lastRel + 1) / FrameSize;
            if (lastRel == 0xFFFF_FFFF_FFFF_FFFFUL) endFrame = 0x0010_0000_0000_0000UL;
        }
        else
        {
            firstFrame = (s - _base) / FrameSize;
            endFrame = (last - _base) / FrameSize + 1;
        }
        if (endFrame > _frameCount) endFrame = _frameCount;
        if (firstFrame >= endFrame) return false;
        first = firstFrame;
        end = endFrame;
        return true;
    }

    private bool IsBit(int wordOffset, ulong frame) => (_bits[wordOffset + (int)(frame >> 6)] & (1UL << (int)(frame & 63))) != 0;
    private void SetBit(int wordOffset, ulong frame) => _bits[wordOffset + (int)(frame >> 6)] |= 1UL << (int)(frame & 63);
    private void ClearBit(int wordOffset, ulong frame) => _bits[wordOffset + (int)(frame >> 6)] &= ~(1UL << (int)(frame & 63));

    private static int LowestSetBit(ulong value)
    {
        int n = 0;
        if ((value & 0xFFFF_FFFFUL) == 0) { n += 32; value >>= 32; }
        if ((value & 0xFFFFUL) == 0) { n += 16; value >>= 16; }
        if ((value & 0xFFUL) == 0) { n += 8; value >>= 8; }
        if ((value & 0xFUL) == 0) { n += 4; value >>= 4; }
        if ((value & 0x3UL) == 0) { n += 2; value >>= 2; }
        if ((value & 0x1UL) == 0) { n += 1; }
        return n;
    }
}
