namespace Microhv.HAL;

/// <summary>Outcome of an ELF64 operation.</summary>
public enum Elf64Status
{
    Ok = 0,
    /// <summary>The image range is not reachable through PhysicalMemory.</summary>
    NotInMemory,
    /// <summary>Shorter than the 64-byte ELF header.</summary>
    TooSmall,
    /// <summary>e_ident[0..3] is not 0x7F 'E' 'L' 'F'.</summary>
    BadMagic,
    /// <summary>EI_CLASS is not ELFCLASS64 (2).</summary>
    BadClass,
    /// <summary>EI_DATA is not ELFDATA2LSB (1).</summary>
    BadDataEncoding,
    /// <summary>EI_VERSION or e_version is not EV_CURRENT (1).</summary>
    BadVersion,
    /// <summary>e_machine is not EM_X86_64 (62).</summary>
    BadMachine,
    /// <summary>e_type is neither ET_EXEC (2) nor ET_DYN (3).</summary>
    BadType,
    /// <summary>e_ehsize below 64.</summary>
    BadHeaderSize,
    /// <summary>e_phentsize below 56 while e_phnum is non-zero.</summary>
    BadProgramHeaderSize,
    /// <summary>The program header table extends past the image.</summary>
    ProgramHeadersOutOfBounds,
    /// <summary>e_shentsize below 64 while e_shnum is non-zero.</summary>
    BadSectionHeaderSize,
    /// <summary>The section header table extends past the image.</summary>
    SectionHeadersOutOfBounds,
    /// <summary>e_shstrndx is not below e_shnum (and not SHN_UNDEF).</summary>
    BadStringTableIndex,
    /// <summary>Program/section header index out of range.</summary>
    IndexOutOfRange,
    /// <summary>A segment's file bytes (p_offset, p_filesz) extend past the image.</summary>
    SegmentOutOfBounds,
    /// <summary>A PT_LOAD segment has p_memsz below p_filesz.</summary>
    BadSegment,
    /// <summary>A section's bytes (sh_offset, sh_size) extend past the image.</summary>
    SectionOutOfBounds,
    /// <summary>The segment/section is not of the type the operation needs.</summary>
    WrongType,
    /// <summary>A note header, name or descriptor extends past its segment.</summary>
    NoteTruncated,
    /// <summary>No more notes in the segment.</summary>
    EndOfNotes,
    /// <summary>No section of that name/type.</summary>
    SectionNotFound,
    /// <summary>No SHT_SYMTAB section.</summary>
    NoSymbolTable,
    /// <summary>Symbol table entsize below 24, or its sh_link is not an SHT_STRTAB section.</summary>
    BadSymbolTable,
    /// <summary>A name offset lies outside its string table, or the name has no NUL before the table's end.</summary>
    BadStringOffset,
    /// <summary>No function symbol contains the address.</summary>
    SymbolNotFound,
}

/// <summary>An Elf64_Phdr (System V gABI, "Program Header").</summary>
public struct Elf64ProgramHeader
{
    public const uint PT_NULL = 0, PT_LOAD = 1, PT_DYNAMIC = 2, PT_INTERP = 3, PT_NOTE = 4, PT_PHDR = 6;
    public const uint PF_X = 1, PF_W = 2, PF_R = 4;
    public const int Size = 56;

    public uint Type;
    public uint Flags;
    public ulong Offset;
    public ulong VirtualAddress;
    public ulong PhysicalAddress;
    public ulong FileSize;
    public ulong MemorySize;
    public ulong Align;

    public static Elf64ProgramHeader Read(PhysicalMemory memory, ulong address)
    {
        Elf64ProgramHeader p;
        p.Type = memory.Read32(address);
        p.Flags = memory.Read32(address + 4);
        p.Offset = memory.Read64(address + 8);
        p.VirtualAddress = memory.Read64(address + 16);
        p.PhysicalAddress = memory.Read64(address + 24);
        p.FileSize = memory.Read64(address + 32);
        p.MemorySize = memory.Read64(address + 40);
        p.Align = memory.Read64(address + 48);
        return p;
    }
}

/// <summary>An Elf64_Shdr (System V gABI, "Sections").</summary>
public struct Elf64SectionHeader
{
    public const uint SHT_NULL = 0, SHT_PROGBITS = 1, SHT_SYMTAB = 2, SHT_STRTAB = 3, SHT_NOTE = 7, SHT_NOBITS = 8, SHT_DYNSYM = 11;
    public const ulong SHF_WRITE = 0x1, SHF_ALLOC = 0x2, SHF_EXECINSTR = 0x4;
    public const int Size = 64;

    public uint Name;
    public uint Type;
    public ulong Flags;
    public ulong Address;
    public ulong Offset;
    public ulong SectionSize;
    public uint Link;
    public uint Info;
    public ulong AddressAlign;
    public ulong EntrySize;

    /// <summary>Reads a section header at <paramref name="address"/> (e.g. from the multiboot2 ELF-sections tag).</summary>
    public static Elf64SectionHeader Read(PhysicalMemory memory, ulong address)
    {
        Elf64SectionHeader s;
        s.Name = memory.Read32(address);
        s.Type = memory.Read32(address + 4);
        s.Flags = memory.Read64(address + 8);
        s.Address = memory.Read64(address + 16);
        s.Offset = memory.Read64(address + 24);
        s.SectionSize = memory.Read64(address + 32);
        s.Link = memory.Read32(address + 40);
        s.Info = memory.Read32(address + 44);
        s.AddressAlign = memory.Read64(address + 48);
        s.EntrySize = memory.Read64(address + 56);
        return s;
    }
}

/// <summary>
/// A validated little-endian x86-64 ELF64 image (ET_EXEC or ET_DYN) lying at physical
/// [Address, Address+Length). Every read is checked against Length first.
/// </summary>
public struct Elf64Image
{
    public const ushort ET_EXEC = 2, ET_DYN = 3;
    public const ushort EM_X86_64 = 62;
    public const int HeaderSize = 64;

    public PhysicalMemory Memory;
    public ulong Address;
    public ulong Length;

    public ushort Type;
    public ushort Machine;
    public ulong Entry;
    public ulong ProgramHeaderOffset;
    public ulong SectionHeaderOffset;
    public uint Flags;
    public ushort ElfHeaderSize;
    public ushort ProgramHeaderEntrySize;
    public ushort ProgramHeaderCount;
    public ushort SectionHeaderEntrySize;
    public ushort SectionHeaderCount;
    public ushort SectionNameStringIndex;

    /// <summary>True when [offset, offset+size) lies inside [0, length).</summary>
    public static bool InBounds(ulong offset, ulong size, ulong length) => offset <= length && size <= length - offset;

    public static Elf64Status Parse(PhysicalMemory memory, ulong address, ulong length, out Elf64Image image)
    {
        image = default;
        if (length < HeaderSize) return Elf64Status.TooSmall;
        if (!memory.Contains(address, length)) return Elf64Status.NotInMemory;
        if (memory.Read8(address) != 0x7F || memory.Read8(address + 1) != (byte)'E'
            || memory.Read8(address + 2) != (byte)'L' || memory.Read8(address + 3) != (byte)'F')
            return Elf64Status.BadMagic;
        if (memory.Read8(address + 4) != 2) return Elf64Status.BadClass;
        if (memory.Read8(address + 5) != 1) return Elf64Status.BadDataEncoding;
        if (memory.Read8(address + 6) != 1 || memory.Read32(address + 20) != 1) return Elf64Status.BadVersion;

        Elf64Image e;
        e.Memory = memory;
        e.Address = address;
        e.Length = length;
        e.Type = memory.Read16(address + 16);
        e.Machine = memory.Read16(address + 18);
        e.Entry = memory.Read64(address + 24);
        e.ProgramHeaderOffset = memory.Read64(address + 32);
        e.SectionHeaderOffset = memory.Read64(address + 40);
        e.Flags = memory.Read32(address + 48);
        e.ElfHeaderSize = memory.Read16(address + 52);
        e.ProgramHeaderEntrySize = memory.Read16(address + 54);
        e.ProgramHeaderCount = memory.Read16(address + 56);
        e.SectionHeaderEntrySize = memory.Read16(address + 58);
        e.SectionHeaderCount = memory.Read16(address + 60);
        e.SectionNameStringIndex = memory.Read16(address + 62);

        if (e.Type != ET_EXEC && e.Type != ET_DYN) return Elf64Status.BadType;
        if (e.Machine != EM_X86_64) return Elf64Status.BadMachine;
        if (e.ElfHeaderSize < HeaderSize) return Elf64Status.BadHeaderSize;
        if (e.ProgramHeaderCount != 0)
        {
            if (e.ProgramHeaderEntrySize < Elf64ProgramHeader.Size) return Elf64Status.BadProgramHeaderSize;
            if (!InBounds(e.ProgramHeaderOffset, (ulong)e.ProgramHeaderCount * e.ProgramHeaderEntrySize, length))
                return Elf64Status.ProgramHeadersOutOfBounds;
        }
        if (e.SectionHeaderCount != 0)
        {
            if (e.SectionHeaderEntrySize < Elf64SectionHeader.Size) return Elf64Status.BadSectionHeaderSize;
            if (!InBounds(e.SectionHeaderOffset, (ulong)e.SectionHeaderCount * e.SectionHeaderEntrySize, length))
                return Elf64Status.SectionHeadersOutOfBounds;
            if (e.SectionNameStringIndex >= e.SectionHeaderCount) return Elf64Status.BadStringTableIndex;
        }
        image = e;
        return Elf64Status.Ok;
    }

    /// <summary>Program header <paramref name="index"/>, with its file bytes checked to lie in the image.</summary>
    public Elf64Status GetProgramHeader(int index, out Elf64ProgramHeader header)
    {
        header = default;
        if (index < 0 || index >= ProgramHeaderCount) return Elf64Status.IndexOutOfRange;
        header = Elf64ProgramHeader.Read(Memory, Address + ProgramHeaderOffset + (ulong)index * ProgramHeaderEntrySize);
        if (!InBounds(header.Offset, header.FileSize, Length)) return Elf64Status.SegmentOutOfBounds;
        if (header.Type == Elf64ProgramHeader.PT_LOAD && header.MemorySize < header.FileSize) return Elf64Status.BadSegment;
        return Elf64Status.Ok;
    }

    /// <summary>Section header <paramref name="index"/>; unless SHT_NULL/SHT_NOBITS its bytes are checked to lie in the image.</summary>
    public Elf64Status GetSectionHeader(int index, out Elf64SectionHeader header)
    {
        header = default;
        if (index < 0 || index >= SectionHeaderCount) return Elf64Status.IndexOutOfRange;
        header = Elf64SectionHeader.Read(Memory, Address + SectionHeaderOffset + (ulong)index * SectionHeaderEntrySize);
        if (header.Type != Elf64SectionHeader.SHT_NULL && header.Type != Elf64SectionHeader.SHT_NOBITS
            && !InBounds(header.Offset, header.SectionSize, Length))
            return Elf64Status.SectionOutOfBounds;
        return Elf64Status.Ok;
    }

    /// <summary>Physical address and length (without NUL) of the name of <paramref name="section"/> in .shstrtab.</summary>
    public Elf64Status GetSectionName(in Elf64SectionHeader section, out ulong nameAddress, out uint nameLength)
    {
        nameAddress = 0;
        nameLength = 0;
        if (SectionHeaderCount == 0 || SectionNameStringIndex == 0) return Elf64Status.SectionNotFound;
        Elf64Status status = GetSectionHeader(SectionNameStringIndex, out Elf64SectionHeader strtab);
        if (status != Elf64Status.Ok) return status;
        if (strtab.Type != Elf64SectionHeader.SHT_STRTAB) return Elf64Status.WrongType;
        return Elf64Symbols.StringAt(Memory, Address + strtab.Offset, strtab.SectionSize, section.Name, out nameAddress, out nameLength);
    }

    /// <summary>First section whose name equals <paramref name="name"/> (e.g. ".symtab").</summary>
    public Elf64Status FindSection(string name, out Elf64SectionHeader section, out int index)
    {
        section = default;
        for (index = 1; index < SectionHeaderCount; index++)
        {
            Elf64Status status = GetSectionHeader(index, out section);
            if (status != Elf64Status.Ok) return status;
            status = GetSectionName(section, out ulong nameAddress, out uint nameLength);
            if (status != Elf64Status.Ok) return status;
            if (Elf64Symbols.BytesEqual(Memory, nameAddress, nameLength, name)) return Elf64Status.Ok;
        }
        section = default;
        index = -1;
        return Elf64Status.SectionNotFound;
    }

    /// <summary>First section of type <paramref name="type"/> (e.g. SHT_SYMTAB).</summary>
    public Elf64Status FindSectionByType(uint type, out Elf64SectionHeader section, out int index)
    {
        section = default;
        for (index = 1; index < SectionHeaderCount; index++)
        {
            Elf64Status status = GetSectionHeader(index, out section);
            if (status != Elf64Status.Ok) return status;
            if (section.Type == type) return Elf64Status.Ok;
        }
        section = default;
        index = -1;
        return Elf64Status.SectionNotFound;
    }

    /// <summary>
    /// Iterator over the notes of a PT_NOTE segment. Notes are aligned to 8 when p_align is 8
    /// (e.g. .note.gnu.property), otherwise to 4.
    /// </summary>
    public Elf64Status GetNotes(in Elf64ProgramHeader segment, out Elf64NoteIterator notes)
    {
        notes = default;
        if (segment.Type != Elf64ProgramHeader.PT_NOTE) return Elf64Status.WrongType;
        if (!InBounds(segment.Offset, segment.FileSize, Length)) return Elf64Status.SegmentOutOfBounds;
        notes = new Elf64NoteIterator(Memory, Address + segment.Offset, segment.FileSize, segment.Align == 8 ? 8u : 4u);
        return Elf64Status.Ok;
    }

    /// <summary>
    /// The STT_FUNC symbol of .symtab (the SHT_SYMTAB section; strings from its sh_link) whose
    /// [st_value, st_value+st_size) contains <paramref name="address"/>.
    /// </summary>
    public Elf64Status FindFunctionSymbol(ulong address, out Elf64Symbol symbol)
    {
        symbol = default;
        Elf64Status status = FindSectionByType(Elf64SectionHeader.SHT_SYMTAB, out Elf64SectionHeader symtab, out _);
        if (status == Elf64Status.SectionNotFound) return Elf64Status.NoSymbolTable;
        if (status != Elf64Status.Ok) return status;
        if (symtab.Link == 0 || symtab.Link >= SectionHeaderCount) return Elf64Status.BadSymbolTable;
        status = GetSectionHeader((int)symtab.Link, out Elf64SectionHeader strtab);
        if (status != Elf64Status.Ok) return status;
        if (strtab.Type != Elf64SectionHeader.SHT_STRTAB) return Elf64Status.BadSymbolTable;
        return Elf64Symbols.FindFunction(Memory, Address + symtab.Offset, symtab.SectionSize, symtab.EntrySize,
            Address + strtab.Offset, strtab.SectionSize, address, out symbol);
    }
}
