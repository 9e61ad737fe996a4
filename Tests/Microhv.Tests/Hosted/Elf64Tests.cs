using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using Iced.Intel;
using Microhv.HAL;
using Xunit;

namespace Microhv.Tests.Hosted;

public class Elf64Tests
{
    private const ulong ImageAddress = 0x20_0000;

    private static Elf64Status Open(byte[] bytes, out Elf64Image image, out SimulatedMemory mem)
    {
        mem = new SimulatedMemory(ImageAddress, bytes);
        return Elf64Image.Parse(mem, ImageAddress, (ulong)bytes.Length, out image);
    }

    private static Elf64Image OpenReal(out SimulatedMemory mem)
    {
        Assert.Equal(Elf64Status.Ok, Open(RealElf.Bytes(), out Elf64Image image, out mem));
        return image;
    }

    private static string Str(SimulatedMemory mem, ulong address, uint length)
        => Encoding.ASCII.GetString(mem.Bytes, (int)(address - mem.Base), (int)length);

    private static void Put16(byte[] b, int at, ushort v) => BitConverter.TryWriteBytes(b.AsSpan(at), v);
    private static void Put32(byte[] b, int at, uint v) => BitConverter.TryWriteBytes(b.AsSpan(at), v);
    private static void Put64(byte[] b, int at, ulong v) => BitConverter.TryWriteBytes(b.AsSpan(at), v);

    // Offsets in the real image (readelf): program headers at 64, section headers at 688.
    private const int Ph0 = 64, Ph1 = 64 + 56, Sh = 688;
    private static int SectionAt(int index) => Sh + 64 * index;

    [Fact]
    public void HeaderOfARealExecutable()
    {
        Elf64Image e = OpenReal(out var mem);
        Assert.Equal(Elf64Image.ET_EXEC, e.Type);
        Assert.Equal((ushort)62, e.Machine);
        Assert.Equal(0x40013AUL, e.Entry);
        Assert.Equal(64UL, e.ProgramHeaderOffset);
        Assert.Equal(688UL, e.SectionHeaderOffset);
        Assert.Equal((ushort)64, e.ElfHeaderSize);
        Assert.Equal((ushort)56, e.ProgramHeaderEntrySize);
        Assert.Equal((ushort)3, e.ProgramHeaderCount);
        Assert.Equal((ushort)64, e.SectionHeaderEntrySize);
        Assert.Equal((ushort)7, e.SectionHeaderCount);
        Assert.Equal((ushort)6, e.SectionNameStringIndex);
        Assert.Empty(mem.Faults);
    }

    [Fact]
    public void ProgramHeadersOfARealExecutable()
    {
        Elf64Image e = OpenReal(out _);
        Assert.Equal(Elf64Status.Ok, e.GetProgramHeader(0, out var load));
        Assert.Equal(Elf64ProgramHeader.PT_LOAD, load.Type);
        Assert.Equal(Elf64ProgramHeader.PF_R | Elf64ProgramHeader.PF_X, load.Flags);
        Assert.Equal(0UL, load.Offset);
        Assert.Equal(0x400000UL, load.VirtualAddress);
        Assert.Equal(0x400000UL, load.PhysicalAddress);
        Assert.Equal(0x157UL, load.FileSize);
        Assert.Equal(0x157UL, load.MemorySize);
        Assert.Equal(0x1000UL, load.Align);

        Assert.Equal(Elf64Status.Ok, e.GetProgramHeader(1, out var note));
        Assert.Equal(Elf64ProgramHeader.PT_NOTE, note.Type);
        Assert.Equal(0xE8UL, note.Offset);
        Assert.Equal(0x4000E8UL, note.VirtualAddress);
        Assert.Equal(0x24UL, note.FileSize);
        Assert.Equal(4UL, note.Align);

        Assert.Equal(Elf64Status.Ok, e.GetProgramHeader(2, out var stack));
        Assert.Equal(0x6474E551u, stack.Type); // PT_GNU_STACK
        Assert.Equal(Elf64ProgramHeader.PF_R | Elf64ProgramHeader.PF_W, stack.Flags);

        Assert.Equal(Elf64Status.IndexOutOfRange, e.GetProgramHeader(3, out _));
        Assert.Equal(Elf64Status.IndexOutOfRange, e.GetProgramHeader(-1, out _));
    }

    [Fact]
    public void SectionsOfARealExecutable()
    {
        Elf64Image e = OpenReal(out var mem);
        string[] names = { "", ".note.gnu.build-id", ".text", ".comment", ".symtab", ".strtab", ".shstrtab" };
        uint[] types = { 0, 7, 1, 1, 2, 3, 3 };
        for (int i = 0; i < names.Length; i++)
        {
            Assert.Equal(Elf64Status.Ok, e.GetSectionHeader(i, out var sh));
            Assert.Equal(types[i], sh.Type);
            Assert.Equal(Elf64Status.Ok, e.GetSectionName(sh, out ulong na, out uint nl));
            Assert.Equal(names[i], Str(mem, na, nl));
        }
        Assert.Equal(Elf64Status.Ok, e.FindSection(".text", out var text, out int textIndex));
        Assert.Equal(2, textIndex);
        Assert.Equal(0x40010CUL, text.Address);
        Assert.Equal(0x10CUL, text.Offset);
        Assert.Equal(0x4BUL, text.SectionSize);
        Assert.Equal(Elf64Status.Ok, e.FindSection(".symtab", out var symtab, out _));
        Assert.Equal(0x180UL, symtab.Offset);
        Assert.Equal(0xC0UL, symtab.SectionSize);
        Assert.Equal(0x18UL, symtab.EntrySize);
        Assert.Equal(5u, symtab.Link);
        Assert.Equal(Elf64Status.SectionNotFound, e.FindSection(".data", out _, out _));
        Assert.Equal(Elf64Status.SectionNotFound, e.FindSection(".tex", out _, out _));
        Assert.Equal(Elf64Status.Ok, e.FindSectionByType(Elf64SectionHeader.SHT_STRTAB, out _, out int strIndex));
        Assert.Equal(5, strIndex);
        Assert.Empty(mem.Faults);
    }

    [Fact]
    public void BuildIdNoteOfARealExecutable()
    {
        Elf64Image e = OpenReal(out var mem);
        Assert.Equal(Elf64Status.Ok, e.GetProgramHeader(1, out var seg));
        Assert.Equal(Elf64Status.Ok, e.GetNotes(seg, out var notes));
        Assert.Equal(Elf64Status.Ok, notes.Next(out Elf64Note n));
        Assert.Equal(4u, n.NameSize);
        Assert.Equal(20u, n.DescriptorSize);
        Assert.Equal(3u, n.Type); // NT_GNU_BUILD_ID
        Assert.True(n.NameIs(mem, "GNU"));
        Assert.False(n.NameIs(mem, "GN"));
        Assert.Equal("3f456e24fcaca805152feaf0b6fbad4353981432",
            Convert.ToHexString(mem.Bytes, (int)(n.DescriptorAddress - mem.Base), 20).ToLowerInvariant());
        Assert.Equal(Elf64Status.EndOfNotes, notes.Next(out _));
        Assert.Equal(Elf64Status.EndOfNotes, notes.Next(out _));

        Assert.Equal(Elf64Status.Ok, e.GetProgramHeader(0, out var load));
        Assert.Equal(Elf64Status.WrongType, e.GetNotes(load, out _));
    }

    [Theory]
    [InlineData(0x40010CUL, "helper", 0UL)]
    [InlineData(0x400110UL, "helper", 4UL)]
    [InlineData(0x400111UL, "compute", 0UL)]
    [InlineData(0x400133UL, "compute", 0x22UL)]
    [InlineData(0x400156UL, "_start", 0x1CUL)]
    public void FunctionSymbolLookup(ulong address, string name, ulong offset)
    {
        Elf64Image e = OpenReal(out var mem);
        Assert.Equal(Elf64Status.Ok, e.FindFunctionSymbol(address, out Elf64Symbol s));
        Assert.Equal(name, Str(mem, s.NameAddress, s.NameLength));
        Assert.Equal(offset, s.Offset);
        Assert.Equal(address - offset, s.Value);
        Assert.Equal(Elf64Symbols.STT_FUNC, (byte)(s.Info & 0xF));
        Assert.Equal((ushort)2, s.SectionIndex);
    }

    [Theory]
    [InlineData(0x400000UL)] // before any function
    [InlineData(0x400157UL)] // just past _start (only NOTYPE __bss_start/_edata there)
    [InlineData(0xFFFF_FFFF_FFFF_FFFFUL)]
    public void AddressesOutsideFunctionsAreNotFound(ulong address)
    {
        Elf64Image e = OpenReal(out _);
        Assert.Equal(Elf64Status.SymbolNotFound, e.FindFunctionSymbol(address, out _));
    }

    [Fact]
    public void CallTargetDecodedWithIcedResolvesToItsFunction()
    {
        Elf64Image e = OpenReal(out var mem);
        byte[] bytes = RealElf.Bytes();
        // _start at 0x40013a; its file offset is 0x13a (LOAD maps offset 0 at 0x400000).
        var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(bytes, 0x13A, 29));
        decoder.IP = 0x40013A;
        ulong target = 0;
        while (decoder.IP < 0x40013A + 29)
        {
            Instruction insn = decoder.Decode();
            if (insn.Mnemonic == Mnemonic.Call) { target = insn.NearBranchTarget; break; }
        }
        Assert.Equal(0x400111UL, target);
        Assert.Equal(Elf64Status.Ok, e.FindFunctionSymbol(target, out var s));
        Assert.Equal("compute", Str(mem, s.NameAddress, s.NameLength));
        Assert.Equal(0UL, s.Offset);
    }

    [Fact]
    public void SymbolLookupOverLoadedSections()
    {
        // The multiboot2 ELF-sections path: tables sit somewhere in memory, described by section headers.
        byte[] bytes = RealElf.Bytes();
        var mem = new SimulatedMemory(0x50_0000, 0x1000);
        Array.Copy(bytes, 0x180, mem.Bytes, 0x100, 0xC0); // .symtab
        Array.Copy(bytes, 0x240, mem.Bytes, 0x400, 0x2C); // .strtab
        Assert.Equal(Elf64Status.Ok, Elf64Symbols.FindFunction(mem, 0x50_0100, 0xC0, 24, 0x50_0400, 0x2C, 0x400120, out var s));
        Assert.Equal("compute", Str(mem, s.NameAddress, s.NameLength));
        Assert.Equal(0xFUL, s.Offset);
        Assert.Equal(Elf64Status.NotInMemory, Elf64Symbols.FindFunction(mem, 0x50_0F80, 0xC0, 24, 0x50_0400, 0x2C, 0x400120, out _));
        Assert.Equal(Elf64Status.BadSymbolTable, Elf64Symbols.FindFunction(mem, 0x50_0100, 0xC0, 16, 0x50_0400, 0x2C, 0x400120, out _));
        Assert.Empty(mem.Faults);
    }

    public static IEnumerable<object[]> HeaderCorruptions()
    {
        yield return new object[] { (Action<byte[]>)(b => b[1] = (byte)'X'), Elf64Status.BadMagic };
        yield return new object[] { (Action<byte[]>)(b => b[4] = 1), Elf64Status.BadClass };
        yield return new object[] { (Action<byte[]>)(b => b[5] = 2), Elf64Status.BadDataEncoding };
        yield return new object[] { (Action<byte[]>)(b => b[6] = 0), Elf64Status.BadVersion };
        yield return new object[] { (Action<byte[]>)(b => Put32(b, 20, 2)), Elf64Status.BadVersion };
        yield return new object[] { (Action<byte[]>)(b => Put16(b, 16, 1)), Elf64Status.BadType };       // ET_REL
        yield return new object[] { (Action<byte[]>)(b => Put16(b, 18, 3)), Elf64Status.BadMachine };    // EM_386
        yield return new object[] { (Action<byte[]>)(b => Put16(b, 52, 52)), Elf64Status.BadHeaderSize };
        yield return new object[] { (Action<byte[]>)(b => Put16(b, 54, 32)), Elf64Status.BadProgramHeaderSize };
        yield return new object[] { (Action<byte[]>)(b => Put64(b, 32, (ulong)b.Length - 8)), Elf64Status.ProgramHeadersOutOfBounds };
        yield return new object[] { (Action<byte[]>)(b => Put64(b, 32, 0xFFFF_FFFF_FFFF_FFF0)), Elf64Status.ProgramHeadersOutOfBounds };
        yield return new object[] { (Action<byte[]>)(b => Put16(b, 56, 0xFFFF)), Elf64Status.ProgramHeadersOutOfBounds };
        yield return new object[] { (Action<byte[]>)(b => Put16(b, 58, 40)), Elf64Status.BadSectionHeaderSize };
        yield return new object[] { (Action<byte[]>)(b => Put64(b, 40, (ulong)b.Length)), Elf64Status.SectionHeadersOutOfBounds };
        yield return new object[] { (Action<byte[]>)(b => Put16(b, 60, 8)), Elf64Status.SectionHeadersOutOfBounds };
        yield return new object[] { (Action<byte[]>)(b => Put16(b, 62, 7)), Elf64Status.BadStringTableIndex };
    }

    [Theory]
    [MemberData(nameof(HeaderCorruptions))]
    public void CorruptHeadersAreRejected(Action<byte[]> corrupt, Elf64Status expected)
    {
        byte[] b = RealElf.Bytes();
        corrupt(b);
        Assert.Equal(expected, Open(b, out _, out var mem));
        Assert.Empty(mem.Faults);
    }

    [Fact]
    public void TooSmallAndUnreachableImages()
    {
        byte[] b = RealElf.Bytes();
        var mem = new SimulatedMemory(ImageAddress, b);
        Assert.Equal(Elf64Status.TooSmall, Elf64Image.Parse(mem, ImageAddress, 63, out _));
        Assert.Equal(Elf64Status.NotInMemory, Elf64Image.Parse(mem, ImageAddress, (ulong)b.Length + 1, out _));
        Assert.Equal(Elf64Status.NotInMemory, Elf64Image.Parse(mem, ImageAddress - 0x1000, 0x2000, out _));
        // Truncated file: section headers (at 688) no longer fit.
        Assert.Equal(Elf64Status.SectionHeadersOutOfBounds, Elf64Image.Parse(mem, ImageAddress, 700, out _));
        Assert.Empty(mem.Faults);
    }

    [Fact]
    public void CorruptSegmentsAndSections()
    {
        byte[] b = RealElf.Bytes();
        Put64(b, Ph0 + 32, 0xFFFF_FFFF_FFFF_FF00); // LOAD p_filesz: would wrap
        Put64(b, Ph1 + 8, 0x10000);                // NOTE p_offset past the image
        Put64(b, SectionAt(2) + 24, 0xFFFF_FFFF_FFFF_FFF0); // .text sh_offset
        Assert.Equal(Elf64Status.Ok, Open(b, out var e, out var mem));
        Assert.Equal(Elf64Status.SegmentOutOfBounds, e.GetProgramHeader(0, out _));
        Assert.Equal(Elf64Status.SegmentOutOfBounds, e.GetProgramHeader(1, out _));
        Assert.Equal(Elf64Status.SectionOutOfBounds, e.GetSectionHeader(2, out _));
        Assert.Equal(Elf64Status.SectionOutOfBounds, e.FindSection(".symtab", out _, out _));

        byte[] c = RealElf.Bytes();
        Put64(c, Ph0 + 40, 0x100); // p_memsz < p_filesz
        Assert.Equal(Elf64Status.Ok, Open(c, out e, out _));
        Assert.Equal(Elf64Status.BadSegment, e.GetProgramHeader(0, out _));
        Assert.Empty(mem.Faults);
    }

    [Fact]
    public void CorruptSymbolTables()
    {
        byte[] noSymtab = RealElf.Bytes();
        Put32(noSymtab, SectionAt(4) + 4, 1); // .symtab -> PROGBITS
        Assert.Equal(Elf64Status.Ok, Open(noSymtab, out var e, out _));
        Assert.Equal(Elf64Status.NoSymbolTable, e.FindFunctionSymbol(0x400111, out _));

        byte[] smallEntries = RealElf.Bytes();
        Put64(smallEntries, SectionAt(4) + 56, 8);
        Assert.Equal(Elf64Status.Ok, Open(smallEntries, out e, out _));
        Assert.Equal(Elf64Status.BadSymbolTable, e.FindFunctionSymbol(0x400111, out _));

        byte[] badLink = RealElf.Bytes();
        Put32(badLink, SectionAt(4) + 40, 3); // sh_link -> .comment (PROGBITS)
        Assert.Equal(Elf64Status.Ok, Open(badLink, out e, out _));
        Assert.Equal(Elf64Status.BadSymbolTable, e.FindFunctionSymbol(0x400111, out _));
        Put32(badLink, SectionAt(4) + 40, 99);
        Assert.Equal(Elf64Status.Ok, Open(badLink, out e, out _));
        Assert.Equal(Elf64Status.BadSymbolTable, e.FindFunctionSymbol(0x400111, out _));

        byte[] badName = RealElf.Bytes();
        Put32(badName, 0x180 + 3 * 24, 0x2C); // compute's st_name = strtab size
        Assert.Equal(Elf64Status.Ok, Open(badName, out e, out var mem));
        Assert.Equal(Elf64Status.BadStringOffset, e.FindFunctionSymbol(0x400111, out _));
        Assert.Equal(Elf64Status.Ok, e.FindFunctionSymbol(0x40010C, out _)); // helper unaffected

        byte[] unterminated = RealElf.Bytes();
        unterminated[0x240 + 0x2B] = (byte)'x'; // strtab's last NUL (end of "_end")
        Assert.Equal(Elf64Status.Ok, Open(unterminated, out e, out _));
        Put32(unterminated, 0x180 + 3 * 24, 0x27); // point compute's name at "_end" (offset 0x27)
        Assert.Equal(Elf64Status.Ok, Open(unterminated, out e, out mem));
        Assert.Equal(Elf64Status.BadStringOffset, e.FindFunctionSymbol(0x400111, out _));
        Assert.Empty(mem.Faults);
    }

    [Fact]
    public void TruncatedNote()
    {
        byte[] b = RealElf.Bytes();
        Put32(b, 0xE8 + 4, 0x100); // descsz larger than the segment
        Assert.Equal(Elf64Status.Ok, Open(b, out var e, out var mem));
        Assert.Equal(Elf64Status.Ok, e.GetProgramHeader(1, out var seg));
        Assert.Equal(Elf64Status.Ok, e.GetNotes(seg, out var notes));
        Assert.Equal(Elf64Status.NoteTruncated, notes.Next(out _));
        Put32(b, 0xE8 + 4, 20);
        Put32(b, 0xE8, 0xFFFF_FFFF); // namesz huge: must not wrap
        Assert.Equal(Elf64Status.Ok, Open(b, out e, out mem));
        Assert.Equal(Elf64Status.Ok, e.GetNotes(seg, out notes));
        Assert.Equal(Elf64Status.NoteTruncated, notes.Next(out _));
        Assert.Empty(mem.Faults);
    }

    /// <summary>Minimal ET_EXEC with one PT_NOTE segment holding <paramref name="notes"/>, aligned as <paramref name="align"/>.</summary>
    private static byte[] ElfWithNotes(byte[] notes, ulong align)
    {
        var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        w.Write(new byte[] { 0x7F, (byte)'E', (byte)'L', (byte)'F', 2, 1, 1, 0 }); w.Write(0UL);
        w.Write((ushort)2); w.Write((ushort)62); w.Write(1u);
        w.Write(0x401000UL); w.Write(64UL); w.Write(0UL); w.Write(0u);
        w.Write((ushort)64); w.Write((ushort)56); w.Write((ushort)1); w.Write((ushort)64); w.Write((ushort)0); w.Write((ushort)0);
        // PT_NOTE at offset 120
        w.Write(4u); w.Write(4u); w.Write(120UL); w.Write(0x400078UL); w.Write(0x400078UL);
        w.Write((ulong)notes.Length); w.Write((ulong)notes.Length); w.Write(align);
        w.Write(notes);
        return ms.ToArray();
    }

    private static void Note(BinaryWriter w, string name, byte[] desc, uint type, int align)
    {
        byte[] n = name == null ? Array.Empty<byte>() : Encoding.ASCII.GetBytes(name + "\0");
        long start = w.BaseStream.Position;
        w.Write((uint)n.Length); w.Write((uint)desc.Length); w.Write(type); w.Write(n);
        while ((w.BaseStream.Position - start) % align != 0) w.Write((byte)0);
        w.Write(desc);
        while ((w.BaseStream.Position - start) % align != 0) w.Write((byte)0);
    }

    [Fact]
    public void IteratesSeveralFourByteAlignedNotes()
    {
        var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        Note(w, "Xen", new byte[] { 1, 2, 3, 4 }, 0x12, 4);
        Note(w, "microhv", new byte[] { 9, 8, 7, 6, 5, 4 }, 7, 4); // name 8 bytes, desc padded 6 -> 8
        Note(w, null, Array.Empty<byte>(), 0x99, 4);            // empty name and desc
        byte[] notes = ms.ToArray();
        Assert.Equal(20 + 28 + 12, notes.Length); // (12+4+4) + (12+8+8) + 12 per the gABI padding rules

        Assert.Equal(Elf64Status.Ok, Open(ElfWithNotes(notes, 4), out var e, out var mem));
        Assert.Equal(Elf64Status.Ok, e.GetProgramHeader(0, out var seg));
        Assert.Equal(Elf64Status.Ok, e.GetNotes(seg, out var it));

        Assert.Equal(Elf64Status.Ok, it.Next(out var n1));
        Assert.True(n1.NameIs(mem, "Xen"));
        Assert.Equal(0x12u, n1.Type);
        Assert.Equal(ImageAddress + 120 + 16, n1.DescriptorAddress);
        Assert.Equal(4u, n1.DescriptorSize);

        Assert.Equal(Elf64Status.Ok, it.Next(out var n2));
        Assert.True(n2.NameIs(mem, "microhv"));
        Assert.Equal(7u, n2.Type);
        Assert.Equal(ImageAddress + 120 + 20 + 12 + 8, n2.DescriptorAddress);
        Assert.Equal(new byte[] { 9, 8, 7, 6, 5, 4 }, mem.Bytes.AsSpan((int)(n2.DescriptorAddress - mem.Base), 6).ToArray());

        Assert.Equal(Elf64Status.Ok, it.Next(out var n3));
        Assert.Equal(0u, n3.NameSize);
        Assert.Equal(0x99u, n3.Type);
        Assert.Equal(Elf64Status.EndOfNotes, it.Next(out _));
        Assert.Empty(mem.Faults);
    }

    [Fact]
    public void EightByteAlignedNotesLikeGnuProperty()
    {
        // .note.gnu.property: namesz 4 "GNU", descsz 16, type 5; desc starts at 16 (8-aligned), total 32.
        var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        Note(w, "GNU", new byte[16] { 2, 0, 0, 0xC0, 4, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0 }, 5, 8);
        Note(w, "Go", new byte[3] { 0xA, 0xB, 0xC }, 4, 8);
        byte[] notes = ms.ToArray();
        Assert.Equal(32 + 24, notes.Length);
        Assert.Equal(Elf64Status.Ok, Open(ElfWithNotes(notes, 8), out var e, out var mem));
        Assert.Equal(Elf64Status.Ok, e.GetProgramHeader(0, out var seg));
        Assert.Equal(Elf64Status.Ok, e.GetNotes(seg, out var it));
        Assert.Equal(Elf64Status.Ok, it.Next(out var n1));
        Assert.True(n1.NameIs(mem, "GNU"));
        Assert.Equal(5u, n1.Type);
        Assert.Equal(ImageAddress + 120 + 16, n1.DescriptorAddress);
        Assert.Equal(Elf64Status.Ok, it.Next(out var n2));
        Assert.True(n2.NameIs(mem, "Go"));
        Assert.Equal(ImageAddress + 120 + 32 + 16, n2.DescriptorAddress);
        Assert.Equal((byte)0xA, mem.Bytes[(int)(n2.DescriptorAddress - mem.Base)]);
        Assert.Equal(Elf64Status.EndOfNotes, it.Next(out _));
    }

    [Fact]
    public void HostBinaryParsesIfPresent()
    {
        // /bin/ls on the build host: an x86-64 ET_DYN with GNU notes. Only invariants are checked.
        const string path = "/bin/ls";
        if (!File.Exists(path) || !OperatingSystem.IsLinux() || System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture != System.Runtime.InteropServices.Architecture.X64)
            return;
        byte[] b = File.ReadAllBytes(path);
        Assert.Equal(Elf64Status.Ok, Open(b, out var e, out var mem));
        Assert.True(e.Type == Elf64Image.ET_DYN || e.Type == Elf64Image.ET_EXEC);
        int loads = 0, notes = 0;
        for (int i = 0; i < e.ProgramHeaderCount; i++)
        {
            Assert.Equal(Elf64Status.Ok, e.GetProgramHeader(i, out var ph));
            if (ph.Type == Elf64ProgramHeader.PT_LOAD) loads++;
            if (ph.Type != Elf64ProgramHeader.PT_NOTE) continue;
            Assert.Equal(Elf64Status.Ok, e.GetNotes(ph, out var it));
            Elf64Status st;
            while ((st = it.Next(out var n)) == Elf64Status.Ok)
            {
                notes++;
                if (n.NameIs(mem, "GNU") && n.Type == 3) Assert.True(n.DescriptorSize >= 8); // build id
            }
            Assert.Equal(Elf64Status.EndOfNotes, st);
        }
        Assert.True(loads >= 1);
        Assert.True(notes >= 1);
        Assert.Equal(Elf64Status.Ok, e.FindSection(".text", out _, out _));
        Assert.Empty(mem.Faults);
    }

    [Fact]
    public void RandomCorruptionNeverReadsOutsideTheImage()
    {
        byte[] original = RealElf.Bytes();
        var rng = new Random(42);
        for (int round = 0; round < 2000; round++)
        {
            byte[] b = (byte[])original.Clone();
            int flips = rng.Next(1, 8);
            for (int i = 0; i < flips; i++)
            {
                // Bias toward the headers and tables, where the structure lives.
                int at = rng.Next(3) == 0 ? rng.Next(b.Length) : (rng.Next(2) == 0 ? rng.Next(64 + 3 * 56) : 688 + rng.Next(7 * 64));
                b[at] = (byte)rng.Next(256);
            }
            if (Open(b, out var e, out var mem) != Elf64Status.Ok) { Assert.Empty(mem.Faults); continue; }
            for (int i = 0; i < e.ProgramHeaderCount; i++)
            {
                if (e.GetProgramHeader(i, out var ph) != Elf64Status.Ok || ph.Type != Elf64ProgramHeader.PT_NOTE) continue;
                if (e.GetNotes(ph, out var it) != Elf64Status.Ok) continue;
                for (int k = 0; k < 100 && it.Next(out _) == Elf64Status.Ok; k++) { }
            }
            for (int i = 0; i < e.SectionHeaderCount; i++)
                if (e.GetSectionHeader(i, out var sh) == Elf64Status.Ok) e.GetSectionName(sh, out _, out _);
            e.FindSection(".text", out _, out _);
            e.FindFunctionSymbol(0x400120, out _);
            Assert.Empty(mem.Faults);
        }
    }
}
