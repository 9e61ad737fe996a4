using Microhv.HAL;
using Microhv.Kernel.Console;
using Microhv.Kernel.Memory;

namespace Microhv.Kernel;

/// <summary>Names code addresses with the kernel ELF's own symbol table (.symtab/.strtab), which GRUB
/// loads into memory and describes in the multiboot2 ELF-sections tag.</summary>
internal static unsafe class Symbols
{
    private static ulong s_symtab, s_symtabSize, s_symtabEntrySize, s_strtab, s_strtabSize;

    public static bool Available => s_symtab != 0;

    public static void Initialize(Multiboot2Info info)
    {
        if (!info.HasElfSections) return;
        for (uint i = 0; i < info.ElfSectionCount; i++)
        {
            var sh = Elf64SectionHeader.Read(DirectMap.Instance, info.ElfSectionHeadersAddress + i * info.ElfSectionEntrySize);
            if (sh.Type != Elf64SectionHeader.SHT_SYMTAB || sh.Address == 0 || sh.Link >= info.ElfSectionCount) continue;
            var str = Elf64SectionHeader.Read(DirectMap.Instance, info.ElfSectionHeadersAddress + sh.Link * info.ElfSectionEntrySize);
            if (str.Type != Elf64SectionHeader.SHT_STRTAB || str.Address == 0) continue;
            s_symtab = sh.Address; s_symtabSize = sh.SectionSize; s_symtabEntrySize = sh.EntrySize;
            s_strtab = str.Address; s_strtabSize = str.SectionSize;
            return;
        }
    }

    /// <summary>Writes "symbol+0xoffset" for a code address, or says why it cannot.</summary>
    public static void Write(ulong address)
    {
        if (!Available) { Log.Write("(no symbol table)"); return; }
        Elf64Status s = Elf64Symbols.FindFunction(DirectMap.Instance, s_symtab, s_symtabSize, s_symtabEntrySize,
            s_strtab, s_strtabSize, address, out Elf64Symbol sym);
        if (s != Elf64Status.Ok) { Log.Write("(no symbol)"); return; }
        Log.Write(DirectMap.ToVirtual(sym.NameAddress), (int)sym.NameLength);
        Log.Write("+"); Log.HexShort(address - sym.Value);
    }
}
