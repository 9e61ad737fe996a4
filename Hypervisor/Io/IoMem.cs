using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Io;

/// <summary>
/// Which machine frames outside RAM a domain may map (Xen's iomem_caps and mmio_ro_ranges). Frames
/// that are not RAM the hypervisor manages (beyond the frame table, or owned by DOMID_IO: the low
/// 1 MiB and the firmware's non-RAM ranges) are I/O space. The hardware domain may map I/O space
/// below the CPU's physical address width except the pages Microhv drives itself (its local APIC,
/// the IO-APICs, the HPET, the MSI window) and UNUSABLE ranges; read-only ranges (MSI-X tables) may
/// be mapped only without write access: a writable entry naming one is installed read-only, as Xen
/// forces (the guest's later write faults). No other domain maps I/O space.
/// </summary>
public sealed class IoMem
{
    public const int MaxRanges = 64;

    private struct Range { public ulong First, Last; public string Owner; public bool ReadOnly; }
    private readonly Range[] _ranges = new Range[MaxRanges];
    public int Count { get; private set; }

    /// <summary>Frames at or above this are beyond the CPU's physical address width (set by the kernel from CPUID).</summary>
    public ulong MfnLimit = 1UL << (36 - 12);

    /// <summary>Denies frames <paramref name="firstMfn"/>..<paramref name="lastMfn"/> to every domain.</summary>
    public bool Deny(ulong firstMfn, ulong lastMfn, string owner) => Add(firstMfn, lastMfn, owner, false);

    /// <summary>Lets the hardware domain map frames <paramref name="firstMfn"/>..<paramref name="lastMfn"/> read-only only.</summary>
    public bool ReadOnly(ulong firstMfn, ulong lastMfn, string owner) => Add(firstMfn, lastMfn, owner, true);

    private bool Add(ulong first, ulong last, string owner, bool readOnly)
    {
        if (Count == MaxRanges || first > last) return false;
        _ranges[Count].First = first;
        _ranges[Count].Last = last;
        _ranges[Count].Owner = owner;
        _ranges[Count].ReadOnly = readOnly;
        Count++;
        return true;
    }

    public void Get(int i, out ulong firstMfn, out ulong lastMfn, out string owner, out bool readOnly)
    {
        firstMfn = _ranges[i].First;
        lastMfn = _ranges[i].Last;
        owner = _ranges[i].Owner;
        readOnly = _ranges[i].ReadOnly;
    }

    /// <summary>True when the frame is I/O space rather than RAM the hypervisor manages.</summary>
    public static bool IsIoFrame(Machine m, ulong mfn)
        => !m.FrameTable.IsValid(mfn) || m.FrameTable.OwnerOf(mfn) == FrameTable.OwnerIo;

    /// <summary>
    /// The I/O-frame half of get_page_from_l1e: 0 when <paramref name="d"/> may map I/O frame
    /// <paramref name="mfn"/>, else -EPERM (with one log line for a domain that is not the hardware
    /// domain). I/O frames take no references, as in Xen.
    /// </summary>
    public long CheckMapping(Machine m, Domain d, ulong mfn)
    {
        if (!d.IsHardwareDomain) return DeviceRefusal.Refuse(d, DeviceRefusal.IoMemory, "map I/O memory");
        if (mfn >= MfnLimit) return -Errno.EPERM;
        if (m.HostMemoryMap.IsUnusable(mfn) && mfn >= 0x100) return -Errno.EPERM;
        for (int i = 0; i < Count; i++)
            if (mfn >= _ranges[i].First && mfn <= _ranges[i].Last && !_ranges[i].ReadOnly) return -Errno.EPERM;
        return 0;
    }

    /// <summary>True when <paramref name="mfn"/> lies in a read-only range (its mappings lose write access).</summary>
    public bool IsReadOnly(ulong mfn)
    {
        for (int i = 0; i < Count; i++)
            if (_ranges[i].ReadOnly && mfn >= _ranges[i].First && mfn <= _ranges[i].Last) return true;
        return false;
    }
}
