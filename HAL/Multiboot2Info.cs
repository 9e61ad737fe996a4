namespace Microhv.HAL;

/// <summary>
/// What <see cref="Multiboot2.Parse"/> extracted from a multiboot2 boot information structure.
/// Strings and tables are not copied: they are reported as physical address + length inside the
/// structure (strings exclude the terminating NUL). Fixed capacities are set at construction
/// (allocate it once, before parsing); exceeding them is reported by Parse as TooManyEntries/TooManyModules.
/// </summary>
public sealed class Multiboot2Info
{
    public const int DefaultMemoryMapCapacity = 64;
    public const int DefaultModuleCapacity = 16;

    private readonly ulong[] _mmapBase;
    private readonly ulong[] _mmapLength;
    private readonly uint[] _mmapType;
    private readonly ulong[] _modStart;
    private readonly ulong[] _modEnd;
    private readonly ulong[] _modString;
    private readonly uint[] _modStringLength;

    public Multiboot2Info() : this(DefaultMemoryMapCapacity, DefaultModuleCapacity) { }

    public Multiboot2Info(int memoryMapCapacity, int moduleCapacity)
    {
        _mmapBase = new ulong[memoryMapCapacity];
        _mmapLength = new ulong[memoryMapCapacity];
        _mmapType = new uint[memoryMapCapacity];
        _modStart = new ulong[moduleCapacity];
        _modEnd = new ulong[moduleCapacity];
        _modString = new ulong[moduleCapacity];
        _modStringLength = new uint[moduleCapacity];
    }

    public int MemoryMapCapacity => _mmapBase.Length;
    public int ModuleCapacity => _modStart.Length;

    /// <summary>Physical address of the structure and its total_size (reserve [Address, Address+TotalSize)).</summary>
    public ulong Address;
    public uint TotalSize;

    // Tag 1: boot command line.
    public bool HasCommandLine;
    public ulong CommandLineAddress;
    public uint CommandLineLength;

    // Tag 2: boot loader name.
    public bool HasBootLoaderName;
    public ulong BootLoaderNameAddress;
    public uint BootLoaderNameLength;

    // Tag 3: modules.
    public int ModuleCount;

    // Tag 4: basic memory information (KiB).
    public bool HasBasicMemoryInfo;
    public uint MemLower;
    public uint MemUpper;

    // Tag 6: memory map.
    public bool HasMemoryMap;
    public uint MemoryMapEntrySize;
    public uint MemoryMapEntryVersion;
    public int MemoryMapCount;

    // Tag 8: framebuffer info (common part).
    public bool HasFramebuffer;
    public ulong FramebufferAddress;
    public uint FramebufferPitch;
    public uint FramebufferWidth;
    public uint FramebufferHeight;
    public byte FramebufferBpp;
    public byte FramebufferType;
    // Colour info of framebuffer_type 1 (direct RGB): bit position and width of each channel.
    public byte FramebufferRedPosition;
    public byte FramebufferRedMaskSize;
    public byte FramebufferGreenPosition;
    public byte FramebufferGreenMaskSize;
    public byte FramebufferBluePosition;
    public byte FramebufferBlueMaskSize;

    // Tag 9: ELF section headers of the kernel image.
    public bool HasElfSections;
    public uint ElfSectionCount;
    public uint ElfSectionEntrySize;
    public uint ElfSectionStringIndex;
    /// <summary>Physical address of the first section header (inside the boot information).</summary>
    public ulong ElfSectionHeadersAddress;

    // Tag 12: EFI 64-bit system table pointer.
    public bool HasEfi64SystemTable;
    public ulong Efi64SystemTable;

    // Tag 14 / 15: copies of the ACPI RSDP (v1: 20 bytes; v2+: XSDP).
    public bool HasAcpiOldRsdp;
    public ulong AcpiOldRsdpAddress;
    public uint AcpiOldRsdpLength;
    public bool HasAcpiNewRsdp;
    public ulong AcpiNewRsdpAddress;
    public uint AcpiNewRsdpLength;

    /// <summary>Module <paramref name="index"/>: [start, end) physical range and its string. False when out of range.</summary>
    public bool GetModule(int index, out ulong start, out ulong end, out ulong stringAddress, out uint stringLength)
    {
        start = end = stringAddress = 0;
        stringLength = 0;
        if (index < 0 || index >= ModuleCount) return false;
        start = _modStart[index];
        end = _modEnd[index];
        stringAddress = _modString[index];
        stringLength = _modStringLength[index];
        return true;
    }

    /// <summary>Memory-map entry <paramref name="index"/>. False when out of range.</summary>
    public bool GetMemoryMapEntry(int index, out ulong baseAddress, out ulong length, out uint type)
    {
        baseAddress = length = 0;
        type = 0;
        if (index < 0 || index >= MemoryMapCount) return false;
        baseAddress = _mmapBase[index];
        length = _mmapLength[index];
        type = _mmapType[index];
        return true;
    }

    internal bool AddModule(ulong start, ulong end, ulong stringAddress, uint stringLength)
    {
        if (ModuleCount >= _modStart.Length) return false;
        _modStart[ModuleCount] = start;
        _modEnd[ModuleCount] = end;
        _modString[ModuleCount] = stringAddress;
        _modStringLength[ModuleCount] = stringLength;
        ModuleCount++;
        return true;
    }

    internal bool AddMemoryMapEntry(ulong baseAddress, ulong length, uint type)
    {
        if (MemoryMapCount >= _mmapBase.Length) return false;
        _mmapBase[MemoryMapCount] = baseAddress;
        _mmapLength[MemoryMapCount] = length;
        _mmapType[MemoryMapCount] = type;
        MemoryMapCount++;
        return true;
    }

    /// <summary>Forgets everything from a previous parse.</summary>
    public void Clear()
    {
        Address = 0; TotalSize = 0;
        HasCommandLine = false; CommandLineAddress = 0; CommandLineLength = 0;
        HasBootLoaderName = false; BootLoaderNameAddress = 0; BootLoaderNameLength = 0;
        ModuleCount = 0;
        HasBasicMemoryInfo = false; MemLower = 0; MemUpper = 0;
        HasMemoryMap = false; MemoryMapEntrySize = 0; MemoryMapEntryVersion = 0; MemoryMapCount = 0;
        HasFramebuffer = false; FramebufferAddress = 0; FramebufferPitch = 0; FramebufferWidth = 0; FramebufferHeight = 0;
        FramebufferBpp = 0; FramebufferType = 0;
        FramebufferRedPosition = 0; FramebufferRedMaskSize = 0; FramebufferGreenPosition = 0;
        FramebufferGreenMaskSize = 0; FramebufferBluePosition = 0; FramebufferBlueMaskSize = 0;
        HasElfSections = false; ElfSectionCount = 0; ElfSectionEntrySize = 0; ElfSectionStringIndex = 0; ElfSectionHeadersAddress = 0;
        HasEfi64SystemTable = false; Efi64SystemTable = 0;
        HasAcpiOldRsdp = false; AcpiOldRsdpAddress = 0; AcpiOldRsdpLength = 0;
        HasAcpiNewRsdp = false; AcpiNewRsdpAddress = 0; AcpiNewRsdpLength = 0;
    }
}
