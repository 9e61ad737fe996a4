namespace Microhv.HAL;

/// <summary>A symbol found by <see cref="Elf64Symbols.FindFunction"/>.</summary>
public struct Elf64Symbol
{
    /// <summary>Physical address and length (without NUL) of the name in the string table.</summary>
    public ulong NameAddress;
    public uint NameLength;
    public ulong Value;
    public ulong Size;
    /// <summary>Queried address minus st_value.</summary>
    public ulong Offset;
    public byte Info;
    public ushort SectionIndex;
}

/// <summary>
/// Elf64_Sym lookup (gABI "Symbol Table"): u32 st_name, u8 st_info, u8 st_other, u16 st_shndx,
/// u64 st_value, u64 st_size; 24 bytes. Works on tables anywhere in memory (image file bytes, or
/// sections loaded at sh_addr as the multiboot2 ELF-sections tag describes).
/// </summary>
public static class Elf64Symbols
{
    public const int SymbolSize = 24;
    public const byte STT_NOTYPE = 0, STT_OBJECT = 1, STT_FUNC = 2;
    public const ushort SHN_UNDEF = 0;

    /// <summary>
    /// Finds the STT_FUNC symbol (defined, st_shndx != SHN_UNDEF) whose [st_value, st_value+st_size)
    /// contains <paramref name="address"/> (a zero-size symbol matches only its exact address); when several
    /// do, the one with the highest st_value. Both tables must be reachable through <paramref name="memory"/>.
    /// </summary>
    public static Elf64Status FindFunction(PhysicalMemory memory, ulong symtabAddress, ulong symtabSize, ulong entrySize,
        ulong strtabAddress, ulong strtabSize, ulong address, out Elf64Symbol symbol)
    {
        symbol = default;
        if (entrySize < SymbolSize) return Elf64Status.BadSymbolTable;
        if (!memory.Contains(symtabAddress, symtabSize) || !memory.Contains(strtabAddress, strtabSize)) return Elf64Status.NotInMemory;
        ulong count = symtabSize / entrySize;
        bool found = false;
        ulong bestEntry = 0;
        ulong bestValue = 0;
        for (ulong i = 1; i < count; i++)
        {
            ulong entry = symtabAddress + i * entrySize;
            byte info = memory.Read8(entry + 4);
            if ((info & 0xF) != STT_FUNC) continue;
            if (memory.Read16(entry + 6) == SHN_UNDEF) continue;
            ulong value = memory.Read64(entry + 8);
            ulong size = memory.Read64(entry + 16);
            if (address < value) continue;
            ulong delta = address - value;
            if (size == 0 ? delta != 0 : delta >= size) continue;
            if (found && value <= bestValue) continue;
            found = true;
            bestEntry = entry;
            bestValue = value;
        }
        if (!found) return Elf64Status.SymbolNotFound;

        Elf64Status status = StringAt(memory, strtabAddress, strtabSize, memory.Read32(bestEntry), out ulong nameAddress, out uint nameLength);
        if (status != Elf64Status.Ok) return status;
        symbol.NameAddress = nameAddress;
        symbol.NameLength = nameLength;
        symbol.Value = bestValue;
        symbol.Size = memory.Read64(bestEntry + 16);
        symbol.Offset = address - bestValue;
        symbol.Info = memory.Read8(bestEntry + 4);
        symbol.SectionIndex = memory.Read16(bestEntry + 6);
        return Elf64Status.Ok;
    }

    /// <summary>The NUL-terminated string at <paramref name="offset"/> in the string table [tableAddress, +tableSize).</summary>
    public static Elf64Status StringAt(PhysicalMemory memory, ulong tableAddress, ulong tableSize, uint offset,
        out ulong stringAddress, out uint length)
    {
        stringAddress = 0;
        length = 0;
        if (offset >= tableSize) return Elf64Status.BadStringOffset;
        for (ulong i = offset; i < tableSize; i++)
        {
            if (memory.Read8(tableAddress + i) == 0)
            {
                stringAddress = tableAddress + offset;
                length = (uint)(i - offset);
                return Elf64Status.Ok;
            }
        }
        return Elf64Status.BadStringOffset;
    }

    /// <summary>True when the <paramref name="length"/> bytes at <paramref name="address"/> spell <paramref name="text"/> (ASCII).</summary>
    public static bool BytesEqual(PhysicalMemory memory, ulong address, uint length, string text)
    {
        if (length != (uint)text.Length) return false;
        for (int i = 0; i < text.Length; i++)
        {
            if (memory.Read8(address + (ulong)i) != (byte)text[i]) return false;
        }
        return true;
    }
}
