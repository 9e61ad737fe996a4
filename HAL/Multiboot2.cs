namespace Microhv.HAL;

/// <summary>Outcome of <see cref="Multiboot2.Parse"/> / <see cref="Multiboot2.CheckMagic"/>.</summary>
public enum Multiboot2Status
{
    Ok = 0,
    /// <summary>EAX at entry was not 0x36d76289.</summary>
    BadMagic,
    /// <summary>The boot information is not 8-byte aligned.</summary>
    Misaligned,
    /// <summary>The structure (header or total_size bytes) is not reachable through PhysicalMemory.</summary>
    NotInMemory,
    /// <summary>total_size smaller than the 8-byte header plus an 8-byte end tag.</summary>
    TotalSizeTooSmall,
    /// <summary>A tag's size is below 8 or below the fixed fields its type defines.</summary>
    TruncatedTag,
    /// <summary>A tag (or its header) extends past total_size.</summary>
    TagOverrunsTotalSize,
    /// <summary>More memory-map entries than the info's capacity.</summary>
    TooManyEntries,
    /// <summary>More modules than the info's capacity.</summary>
    TooManyModules,
    /// <summary>Memory map entry_size below 24 / not a multiple of 8 / not dividing the entries; ELF entsize below 64.</summary>
    BadEntrySize,
    /// <summary>total_size reached without a type-0 tag.</summary>
    MissingEndTag,
    /// <summary>The type-0 tag's size is not 8.</summary>
    BadEndTag,
    /// <summary>A string (command line, loader name, module string) has no NUL inside its tag.</summary>
    UnterminatedString,
    /// <summary>A module's mod_end is below its mod_start.</summary>
    BadModuleRange,
    /// <summary>ELF-sections tag: shndx not below num.</summary>
    BadSectionIndex,
}

/// <summary>
/// Parser of the multiboot2 boot information structure (Multiboot2 Specification 2.0, section 3.6):
/// u32 total_size, u32 reserved, then tags (u32 type, u32 size, payload), each starting 8-byte aligned,
/// terminated by a tag of type 0 and size 8. Unknown tag types are skipped. Nothing outside
/// [address, address+total_size) is read.
/// </summary>
public static class Multiboot2
{
    /// <summary>Value in EAX when a multiboot2 loader enters the OS image.</summary>
    public const uint BootloaderMagic = 0x36D76289;
    /// <summary>Magic of the multiboot2 header inside the OS image.</summary>
    public const uint HeaderMagic = 0xE85250D6;

    public const uint TagEnd = 0;
    public const uint TagCommandLine = 1;
    public const uint TagBootLoaderName = 2;
    public const uint TagModule = 3;
    public const uint TagBasicMemoryInfo = 4;
    public const uint TagBootDevice = 5;
    public const uint TagMemoryMap = 6;
    public const uint TagVbeInfo = 7;
    public const uint TagFramebuffer = 8;
    public const uint TagElfSections = 9;
    public const uint TagApm = 10;
    public const uint TagEfi32SystemTable = 11;
    public const uint TagEfi64SystemTable = 12;
    public const uint TagSmbios = 13;
    public const uint TagAcpiOldRsdp = 14;
    public const uint TagAcpiNewRsdp = 15;
    public const uint TagNetwork = 16;
    public const uint TagEfiMemoryMap = 17;
    public const uint TagEfiBootServicesNotTerminated = 18;
    public const uint TagEfi32ImageHandle = 19;
    public const uint TagEfi64ImageHandle = 20;
    public const uint TagLoadBaseAddress = 21;

    // framebuffer_type values (spec 3.6.12).
    public const byte FramebufferTypeIndexed = 0;
    public const byte FramebufferTypeRgb = 1;
    public const byte FramebufferTypeEgaText = 2;

    // Memory map entry types (spec 3.6.8).
    public const uint MemoryAvailable = 1;
    public const uint MemoryReserved = 2;
    public const uint MemoryAcpiReclaimable = 3;
    public const uint MemoryNvs = 4;
    public const uint MemoryBadRam = 5;

    /// <summary>Size of one memory-map entry as version 0 defines it (u64 base_addr, u64 length, u32 type, u32 reserved).</summary>
    public const uint MemoryMapEntryMinSize = 24;
    /// <summary>Size of an Elf64_Shdr, the minimum entsize accepted in the ELF-sections tag.</summary>
    public const uint ElfSectionHeaderMinSize = 64;

    /// <summary>Name of a status code, for boot messages.</summary>
    public static string StatusName(Multiboot2Status status)
    {
        switch (status)
        {
            case Multiboot2Status.Ok: return "Ok";
            case Multiboot2Status.BadMagic: return "BadMagic";
            case Multiboot2Status.Misaligned: return "Misaligned";
            case Multiboot2Status.NotInMemory: return "NotInMemory";
            case Multiboot2Status.TotalSizeTooSmall: return "TotalSizeTooSmall";
            case Multiboot2Status.TruncatedTag: return "TruncatedTag";
            case Multiboot2Status.TagOverrunsTotalSize: return "TagOverrunsTotalSize";
            case Multiboot2Status.TooManyEntries: return "TooManyEntries";
            case Multiboot2Status.TooManyModules: return "TooManyModules";
            case Multiboot2Status.BadEntrySize: return "BadEntrySize";
            case Multiboot2Status.MissingEndTag: return "MissingEndTag";
            case Multiboot2Status.BadEndTag: return "BadEndTag";
            case Multiboot2Status.UnterminatedString: return "UnterminatedString";
            case Multiboot2Status.BadModuleRange: return "BadModuleRange";
            case Multiboot2Status.BadSectionIndex: return "BadSectionIndex";
            default: return "Unknown";
        }
    }

    public static Multiboot2Status CheckMagic(uint eax) => eax == BootloaderMagic ? Multiboot2Status.Ok : Multiboot2Status.BadMagic;

    /// <summary>
    /// Parses the boot information at physical <paramref name="address"/> into <paramref name="info"/>
    /// (cleared first). Stops at the first malformation and returns its code.
    ///
    /// ELF-sections tag (9): laid out as GRUB and the spec's multiboot2.h define it, u32 num, u32 entsize,
    /// u32 shndx, then the section headers at offset 20 (the spec's prose lists u16 fields, which no
    /// loader implements).
    /// </summary>
    public static Multiboot2Status Parse(PhysicalMemory memory, ulong address, Multiboot2Info info)
    {
        info.Clear();
        if ((address & 7) != 0) return Multiboot2Status.Misaligned;
        if (!memory.Contains(address, 8)) return Multiboot2Status.NotInMemory;
        uint totalSize = memory.Read32(address);
        if (totalSize < 16) return Multiboot2Status.TotalSizeTooSmall;
        if (!memory.Contains(address, totalSize)) return Multiboot2Status.NotInMemory;
        info.Address = address;
        info.TotalSize = totalSize;

        ulong total = totalSize;
        ulong offset = 8;
        while (true)
        {
            if (offset >= total) return Multiboot2Status.MissingEndTag;
            if (total - offset < 8) return Multiboot2Status.TagOverrunsTotalSize;
            ulong tag = address + offset;
            uint type = memory.Read32(tag);
            uint size = memory.Read32(tag + 4);
            if (size < 8) return Multiboot2Status.TruncatedTag;
            if (size > total - offset) return Multiboot2Status.TagOverrunsTotalSize;
            if (type == TagEnd) return size == 8 ? Multiboot2Status.Ok : Multiboot2Status.BadEndTag;

            Multiboot2Status status = ParseTag(memory, tag, type, size, info);
            if (status != Multiboot2Status.Ok) return status;
            offset += ((ulong)size + 7) & ~7UL;
        }
    }

    private static Multiboot2Status ParseTag(PhysicalMemory memory, ulong tag, uint type, uint size, Multiboot2Info info)
    {
        ulong length;
        Multiboot2Status status;
        switch (type)
        {
            case TagCommandLine:
                status = FindString(memory, tag + 8, size - 8, out length);
                if (status != Multiboot2Status.Ok) return status;
                info.HasCommandLine = true;
                info.CommandLineAddress = tag + 8;
                info.CommandLineLength = (uint)length;
                return Multiboot2Status.Ok;

            case TagBootLoaderName:
                status = FindString(memory, tag + 8, size - 8, out length);
                if (status != Multiboot2Status.Ok) return status;
                info.HasBootLoaderName = true;
                info.BootLoaderNameAddress = tag + 8;
                info.BootLoaderNameLength = (uint)length;
                return Multiboot2Status.Ok;

            case TagModule:
            {
                if (size < 16) return Multiboot2Status.TruncatedTag;
                uint start = memory.Read32(tag + 8);
                uint end = memory.Read32(tag + 12);
                status = FindString(memory, tag + 16, size - 16, out length);
                if (status != Multiboot2Status.Ok) return status;
                if (end < start) return Multiboot2Status.BadModuleRange;
                if (!info.AddModule(start, end, tag + 16, (uint)length)) return Multiboot2Status.TooManyModules;
                return Multiboot2Status.Ok;
            }

            case TagBasicMemoryInfo:
                if (size < 16) return Multiboot2Status.TruncatedTag;
                info.HasBasicMemoryInfo = true;
                info.MemLower = memory.Read32(tag + 8);
                info.MemUpper = memory.Read32(tag + 12);
                return Multiboot2Status.Ok;

            case TagMemoryMap:
            {
                if (size < 16) return Multiboot2Status.TruncatedTag;
                uint entrySize = memory.Read32(tag + 8);
                uint entryVersion = memory.Read32(tag + 12);
                if (entrySize < MemoryMapEntryMinSize || (entrySize & 7) != 0) return Multiboot2Status.BadEntrySize;
                uint bytes = size - 16;
                if (bytes % entrySize != 0) return Multiboot2Status.BadEntrySize;
                info.HasMemoryMap = true;
                info.MemoryMapEntrySize = entrySize;
                info.MemoryMapEntryVersion = entryVersion;
                info.MemoryMapCount = 0;
                uint count = bytes / entrySize;
                if (count > (uint)info.MemoryMapCapacity) return Multiboot2Status.TooManyEntries;
                for (uint i = 0; i < count; i++)
                {
                    ulong entry = tag + 16 + (ulong)i * entrySize;
                    info.AddMemoryMapEntry(memory.Read64(entry), memory.Read64(entry + 8), memory.Read32(entry + 16));
                }
                return Multiboot2Status.Ok;
            }

            case TagFramebuffer:
                // Common part ends with u8 framebuffer_type, u8 reserved (GRUB pads to 32).
                if (size < 31) return Multiboot2Status.TruncatedTag;
                info.HasFramebuffer = true;
                info.FramebufferAddress = memory.Read64(tag + 8);
                info.FramebufferPitch = memory.Read32(tag + 16);
                info.FramebufferWidth = memory.Read32(tag + 20);
                info.FramebufferHeight = memory.Read32(tag + 24);
                info.FramebufferBpp = memory.Read8(tag + 28);
                info.FramebufferType = memory.Read8(tag + 29);
                if (info.FramebufferType == FramebufferTypeRgb)
                {
                    // color_info follows GRUB's u16 reserved, at offset 32 (six u8 fields).
                    if (size < 38) return Multiboot2Status.TruncatedTag;
                    info.FramebufferRedPosition = memory.Read8(tag + 32);
                    info.FramebufferRedMaskSize = memory.Read8(tag + 33);
                    info.FramebufferGreenPosition = memory.Read8(tag + 34);
                    info.FramebufferGreenMaskSize = memory.Read8(tag + 35);
                    info.FramebufferBluePosition = memory.Read8(tag + 36);
                    info.FramebufferBlueMaskSize = memory.Read8(tag + 37);
                }
                return Multiboot2Status.Ok;

            case TagElfSections:
            {
                if (size < 20) return Multiboot2Status.TruncatedTag;
                uint num = memory.Read32(tag + 8);
                uint entsize = memory.Read32(tag + 12);
                uint shndx = memory.Read32(tag + 16);
                if (num != 0)
                {
                    if (entsize < ElfSectionHeaderMinSize) return Multiboot2Status.BadEntrySize;
                    if ((ulong)num * entsize > size - 20) return Multiboot2Status.TruncatedTag;
                    if (shndx >= num) return Multiboot2Status.BadSectionIndex;
                }
                info.HasElfSections = true;
                info.ElfSectionCount = num;
                info.ElfSectionEntrySize = entsize;
                info.ElfSectionStringIndex = shndx;
                info.ElfSectionHeadersAddress = tag + 20;
                return Multiboot2Status.Ok;
            }

            case TagEfi64SystemTable:
                if (size < 16) return Multiboot2Status.TruncatedTag;
                info.HasEfi64SystemTable = true;
                info.Efi64SystemTable = memory.Read64(tag + 8);
                return Multiboot2Status.Ok;

            case TagAcpiOldRsdp:
                // RSDP revision 0: 20 bytes.
                if (size < 8 + 20) return Multiboot2Status.TruncatedTag;
                info.HasAcpiOldRsdp = true;
                info.AcpiOldRsdpAddress = tag + 8;
                info.AcpiOldRsdpLength = size - 8;
                return Multiboot2Status.Ok;

            case TagAcpiNewRsdp:
                // RSDP revision 2+ (XSDP): 36 bytes.
                if (size < 8 + 36) return Multiboot2Status.TruncatedTag;
                info.HasAcpiNewRsdp = true;
                info.AcpiNewRsdpAddress = tag + 8;
                info.AcpiNewRsdpLength = size - 8;
                return Multiboot2Status.Ok;

            default:
                return Multiboot2Status.Ok;
        }
    }

    /// <summary>Length of the NUL-terminated string at <paramref name="start"/> within <paramref name="room"/> bytes.</summary>
    private static Multiboot2Status FindString(PhysicalMemory memory, ulong start, ulong room, out ulong length)
    {
        for (ulong i = 0; i < room; i++)
        {
            if (memory.Read8(start + i) == 0)
            {
                length = i;
                return Multiboot2Status.Ok;
            }
        }
        length = 0;
        return Multiboot2Status.UnterminatedString;
    }
}
