namespace Microhv.HAL;

/// <summary>
/// One ELF note (gABI "Note Section"): u32 namesz, u32 descsz, u32 type, name (namesz bytes incl. NUL),
/// padding, desc (descsz bytes), padding to the segment's note alignment (4, or 8 for p_align 8). Addresses are physical.
/// </summary>
public struct Elf64Note
{
    public uint NameSize;
    public uint DescriptorSize;
    public uint Type;
    public ulong NameAddress;
    public ulong DescriptorAddress;

    /// <summary>True when the name is exactly <paramref name="name"/> followed by its NUL (namesz = length+1).</summary>
    public bool NameIs(PhysicalMemory memory, string name)
    {
        if (NameSize != (uint)name.Length + 1) return false;
        if (memory.Read8(NameAddress + (ulong)name.Length) != 0) return false;
        return Elf64Symbols.BytesEqual(memory, NameAddress, (uint)name.Length, name);
    }
}

/// <summary>Walks the notes in [start, start+size); never reads outside that range.</summary>
public struct Elf64NoteIterator
{
    private readonly PhysicalMemory _memory;
    private readonly ulong _end;
    private readonly uint _alignment;
    private ulong _position;

    /// <summary><paramref name="alignment"/> is 4 or 8 (anything else is taken as 4).</summary>
    public Elf64NoteIterator(PhysicalMemory memory, ulong start, ulong size, uint alignment)
    {
        _memory = memory;
        _position = start;
        _end = start + size;
        _alignment = alignment == 8 ? 8u : 4u;
    }

    /// <summary>Ok with the next note, EndOfNotes when done, NoteTruncated when a note overruns the range.</summary>
    public Elf64Status Next(out Elf64Note note)
    {
        note = default;
        if (_memory == null || _position >= _end) return Elf64Status.EndOfNotes;
        ulong room = _end - _position;
        if (room < 12) return Elf64Status.NoteTruncated;
        ulong mask = _alignment - 1;
        uint nameSize = _memory.Read32(_position);
        uint descSize = _memory.Read32(_position + 4);
        uint type = _memory.Read32(_position + 8);
        // Offsets relative to the note's start (itself aligned): desc at align(12 + namesz), next note at
        // align(desc + descsz), as binutils/glibc compute them (for 4-byte alignment this is the gABI's
        // "namesz padded to 4").
        ulong descOffset = (12 + (ulong)nameSize + mask) & ~mask;
        if (descOffset > room || descSize > room - descOffset) return Elf64Status.NoteTruncated;
        note.NameSize = nameSize;
        note.DescriptorSize = descSize;
        note.Type = type;
        note.NameAddress = _position + 12;
        note.DescriptorAddress = _position + descOffset;
        ulong next = (descOffset + descSize + mask) & ~mask;
        _position = next >= room ? _end : _position + next;
        return Elf64Status.Ok;
    }
}
