namespace Microhv.Hypervisor.Io;

/// <summary>
/// The PCI devices and MMCONFIG regions the hardware domain reported as it enumerated the buses
/// (Xen's pci_add_device and pci_mmcfg_reserved): Microhv has no IOMMU to program, but it needs to
/// know which functions exist before it writes an MSI message into one, and the debug keys list them.
/// </summary>
public sealed class PciDevices
{
    public const int MaxDevices = 256, MaxMmcfg = 8;

    private readonly uint[] _sbdf = new uint[MaxDevices];
    public int Count { get; private set; }
    private readonly ulong[] _mmcfgAddress = new ulong[MaxMmcfg];
    private readonly uint[] _mmcfgSegmentBuses = new uint[MaxMmcfg];
    public int MmcfgCount { get; private set; }

    public static uint Sbdf(uint segment, uint bus, uint devfn) => segment << 16 | bus << 8 | devfn;

    public bool Contains(uint sbdf)
    {
        for (int i = 0; i < Count; i++) if (_sbdf[i] == sbdf) return true;
        return false;
    }

    public uint this[int i] => _sbdf[i];

    /// <summary>Adds a function (again is fine); -ENOSPC when the table is full.</summary>
    public long Add(uint sbdf)
    {
        if (Contains(sbdf)) return 0;
        if (Count == MaxDevices) return -Public.Errno.ENOSPC;
        _sbdf[Count++] = sbdf;
        return 0;
    }

    public long Remove(uint sbdf)
    {
        for (int i = 0; i < Count; i++)
        {
            if (_sbdf[i] != sbdf) continue;
            _sbdf[i] = _sbdf[--Count];
            return 0;
        }
        return -Public.Errno.ENODEV;
    }

    public long AddMmcfg(ulong address, uint segment, uint startBus, uint endBus)
    {
        if (startBus > endBus || (address & 0xFFFFF) != 0) return -Public.Errno.EINVAL;
        uint key = segment << 16 | startBus << 8 | endBus;
        for (int i = 0; i < MmcfgCount; i++) if (_mmcfgSegmentBuses[i] == key && _mmcfgAddress[i] == address) return 0;
        if (MmcfgCount == MaxMmcfg) return -Public.Errno.ENOSPC;
        _mmcfgAddress[MmcfgCount] = address;
        _mmcfgSegmentBuses[MmcfgCount] = key;
        MmcfgCount++;
        return 0;
    }

    public void GetMmcfg(int i, out ulong address, out uint segment, out uint startBus, out uint endBus)
    {
        address = _mmcfgAddress[i];
        segment = _mmcfgSegmentBuses[i] >> 16;
        startBus = (_mmcfgSegmentBuses[i] >> 8) & 0xFF;
        endBus = _mmcfgSegmentBuses[i] & 0xFF;
    }
}
