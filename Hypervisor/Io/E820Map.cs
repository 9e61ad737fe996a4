namespace Microhv.Hypervisor.Io;

/// <summary>One range of the host's physical address map (BIOS E820 types; multiboot2 uses the same numbers).</summary>
public struct E820Entry
{
    public ulong Address, Size;
    public uint Type;
}

/// <summary>
/// The machine's physical memory map as the firmware reported it. The hardware domain reads it
/// through XENMEM_machine_memory_map (as Linux dom0 does instead of its own pseudo-physical map), and
/// it decides which frames are RAM the hypervisor manages and which are I/O space (Xen's dom_io).
/// </summary>
public sealed class E820Map
{
    public const uint E820_RAM = 1, E820_RESERVED = 2, E820_ACPI = 3, E820_NVS = 4, E820_UNUSABLE = 5;
    public const int MaxEntries = 128;

    private readonly E820Entry[] _entries = new E820Entry[MaxEntries];
    public int Count { get; private set; }

    /// <summary>Adds a range; false when the map is full (the rest of the firmware's map is dropped).</summary>
    public bool Add(ulong address, ulong size, uint type)
    {
        if (Count == MaxEntries || size == 0) return false;
        _entries[Count].Address = address;
        _entries[Count].Size = size;
        _entries[Count].Type = type;
        Count++;
        return true;
    }

    public E820Entry this[int i] => _entries[i];

    /// <summary>True when the whole frame lies in a RAM range.</summary>
    public bool IsRam(ulong mfn)
    {
        ulong start = mfn << 12, end = start + 4096;
        for (int i = 0; i < Count; i++)
            if (_entries[i].Type == E820_RAM && _entries[i].Address <= start && end <= _entries[i].Address + _entries[i].Size)
                return true;
        return false;
    }

    /// <summary>True when any part of the frame lies in an UNUSABLE range (Xen never lets dom0 map those above 1 MiB).</summary>
    public bool IsUnusable(ulong mfn)
    {
        ulong start = mfn << 12, end = start + 4096;
        for (int i = 0; i < Count; i++)
            if (_entries[i].Type == E820_UNUSABLE && _entries[i].Address < end && start < _entries[i].Address + _entries[i].Size)
                return true;
        return false;
    }
}
