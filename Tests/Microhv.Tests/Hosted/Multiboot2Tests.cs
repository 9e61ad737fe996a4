using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using Microhv.HAL;
using Xunit;

namespace Microhv.Tests.Hosted;

/// <summary>Builds multiboot2 boot information blobs laid out as Multiboot2 Specification 2.0, 3.6 describes.</summary>
public sealed class Mb2Builder
{
    private readonly MemoryStream _body = new();
    public bool EndTag = true;
    public uint EndTagSize = 8;
    public uint? TotalSizeOverride;

    public Mb2Builder Tag(uint type, byte[] payload, uint? sizeOverride = null)
    {
        var w = new BinaryWriter(_body);
        w.Write(type);
        w.Write(sizeOverride ?? (uint)(8 + payload.Length));
        w.Write(payload);
        while (_body.Length % 8 != 0) w.Write((byte)0);
        return this;
    }

    public static byte[] Bytes(Action<BinaryWriter> write)
    {
        var ms = new MemoryStream();
        write(new BinaryWriter(ms));
        return ms.ToArray();
    }

    public static byte[] CString(string s) => Encoding.ASCII.GetBytes(s + "\0");

    public Mb2Builder CommandLine(string s) => Tag(1, CString(s));
    public Mb2Builder LoaderName(string s) => Tag(2, CString(s));
    public Mb2Builder Module(uint start, uint end, string s) => Tag(3, Bytes(w => { w.Write(start); w.Write(end); w.Write(CString(s)); }));
    public Mb2Builder BasicMemInfo(uint lower, uint upper) => Tag(4, Bytes(w => { w.Write(lower); w.Write(upper); }));

    public Mb2Builder MemoryMap(uint entrySize, params (ulong Base, ulong Length, uint Type)[] entries)
        => Tag(6, Bytes(w =>
        {
            w.Write(entrySize);
            w.Write(0u); // entry_version
            foreach (var e in entries)
            {
                w.Write(e.Base); w.Write(e.Length); w.Write(e.Type); w.Write(0u);
                for (uint i = 24; i < entrySize; i++) w.Write((byte)0xA5);
            }
        }));

    public byte[] Build()
    {
        var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        int endLength = EndTag ? 8 : 0;
        w.Write(TotalSizeOverride ?? (uint)(8 + _body.Length + endLength));
        w.Write(0u);
        w.Write(_body.ToArray());
        if (EndTag) { w.Write(0u); w.Write(EndTagSize); }
        return ms.ToArray();
    }
}

public class Multiboot2Tests
{
    private const ulong InfoAddress = 0x0001_0000;

    /// <summary>Places the blob at InfoAddress in memory exactly as large as the blob (any stray read faults).</summary>
    private static Multiboot2Status Parse(byte[] blob, out Multiboot2Info info, out SimulatedMemory mem, Multiboot2Info into = null)
    {
        mem = new SimulatedMemory(InfoAddress, blob);
        info = into ?? new Multiboot2Info();
        return Multiboot2.Parse(mem, InfoAddress, info);
    }

    private static string ReadString(SimulatedMemory mem, ulong address, uint length)
        => Encoding.ASCII.GetString(mem.Bytes, (int)(address - mem.Base), (int)length);

    private static byte[] WellFormed()
    {
        var b = new Mb2Builder()
            .CommandLine("microhv.log=debug microhv.selftest=timer")
            .LoaderName("GRUB 2.12")
            .Module(0x20_0000, 0x20_1234, "/boot/guest.bin")
            .Module(0x30_0000, 0x30_0000, "")
            .BasicMemInfo(639, 130048)
            .Tag(21, Mb2Builder.Bytes(w => w.Write(0x10_0000u))) // load base address: not parsed, must be skipped
            .Tag(0x1234, new byte[3])                              // unknown type with unpadded size
            .MemoryMap(24, (0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0x10_0000, 0x7EE_0000, 1), (0xFEC0_0000, 0x1000, 4))
            .Tag(8, Mb2Builder.Bytes(w =>
            {
                w.Write(0xFD00_0000UL); w.Write(4096u); w.Write(1024u); w.Write(768u); w.Write((byte)32); w.Write((byte)1); w.Write((ushort)0);
                w.Write(new byte[] { 16, 8, 8, 8, 0, 8 }); // red pos/size, green pos/size, blue pos/size (x8r8g8b8)
            }))
            .Tag(9, Mb2Builder.Bytes(w =>
            {
                w.Write(3u); w.Write(64u); w.Write(2u);
                for (int i = 0; i < 3; i++) { w.Write((uint)(i * 10)); w.Write((uint)i); w.Write(new byte[56]); }
            }))
            .Tag(12, Mb2Builder.Bytes(w => w.Write(0x7FF0_1234UL)))
            .Tag(14, Mb2Builder.Bytes(w => { w.Write(Encoding.ASCII.GetBytes("RSD PTR ")); w.Write(new byte[12]); }))
            .Tag(15, Mb2Builder.Bytes(w => { w.Write(Encoding.ASCII.GetBytes("RSD PTR ")); w.Write(new byte[28]); }));
        return b.Build();
    }

    [Fact]
    public void MagicIsTheSpecValue()
    {
        Assert.Equal(0x36D76289u, Multiboot2.BootloaderMagic);
        Assert.Equal(Multiboot2Status.Ok, Multiboot2.CheckMagic(0x36D76289));
        Assert.Equal(Multiboot2Status.BadMagic, Multiboot2.CheckMagic(0x2BADB002)); // multiboot1
        Assert.Equal(0xE85250D6u, Multiboot2.HeaderMagic);
    }

    [Fact]
    public void ParsesAWellFormedBlob()
    {
        byte[] blob = WellFormed();
        Assert.Equal(Multiboot2Status.Ok, Parse(blob, out var info, out var mem));
        Assert.Empty(mem.Faults);
        Assert.Equal(InfoAddress, info.Address);
        Assert.Equal((uint)blob.Length, info.TotalSize);

        Assert.True(info.HasCommandLine);
        Assert.Equal("microhv.log=debug microhv.selftest=timer", ReadString(mem, info.CommandLineAddress, info.CommandLineLength));
        Assert.Equal(InfoAddress + 16, info.CommandLineAddress); // first tag right after the 8-byte header, string at +8
        Assert.True(info.HasBootLoaderName);
        Assert.Equal("GRUB 2.12", ReadString(mem, info.BootLoaderNameAddress, info.BootLoaderNameLength));

        Assert.Equal(2, info.ModuleCount);
        Assert.True(info.GetModule(0, out ulong s, out ulong e, out ulong str, out uint len));
        Assert.Equal(0x20_0000UL, s);
        Assert.Equal(0x20_1234UL, e);
        Assert.Equal("/boot/guest.bin", ReadString(mem, str, len));
        Assert.True(info.GetModule(1, out _, out _, out _, out len));
        Assert.Equal(0u, len);
        Assert.False(info.GetModule(2, out _, out _, out _, out _));

        Assert.True(info.HasBasicMemoryInfo);
        Assert.Equal(639u, info.MemLower);
        Assert.Equal(130048u, info.MemUpper);

        Assert.True(info.HasMemoryMap);
        Assert.Equal(24u, info.MemoryMapEntrySize);
        Assert.Equal(0u, info.MemoryMapEntryVersion);
        Assert.Equal(4, info.MemoryMapCount);
        Assert.True(info.GetMemoryMapEntry(2, out ulong mb, out ulong ml, out uint mt));
        Assert.Equal(0x10_0000UL, mb);
        Assert.Equal(0x7EE_0000UL, ml);
        Assert.Equal(Multiboot2.MemoryAvailable, mt);
        Assert.True(info.GetMemoryMapEntry(3, out mb, out _, out mt));
        Assert.Equal(0xFEC0_0000UL, mb);
        Assert.Equal(Multiboot2.MemoryNvs, mt);
        Assert.False(info.GetMemoryMapEntry(4, out _, out _, out _));

        Assert.True(info.HasFramebuffer);
        Assert.Equal(0xFD00_0000UL, info.FramebufferAddress);
        Assert.Equal(4096u, info.FramebufferPitch);
        Assert.Equal(1024u, info.FramebufferWidth);
        Assert.Equal(768u, info.FramebufferHeight);
        Assert.Equal((byte)32, info.FramebufferBpp);
        Assert.Equal((byte)1, info.FramebufferType);
        Assert.Equal((byte)16, info.FramebufferRedPosition);
        Assert.Equal((byte)8, info.FramebufferRedMaskSize);
        Assert.Equal((byte)8, info.FramebufferGreenPosition);
        Assert.Equal((byte)8, info.FramebufferGreenMaskSize);
        Assert.Equal((byte)0, info.FramebufferBluePosition);
        Assert.Equal((byte)8, info.FramebufferBlueMaskSize);

        Assert.True(info.HasElfSections);
        Assert.Equal(3u, info.ElfSectionCount);
        Assert.Equal(64u, info.ElfSectionEntrySize);
        Assert.Equal(2u, info.ElfSectionStringIndex);
        Elf64SectionHeader sh = Elf64SectionHeader.Read(mem, info.ElfSectionHeadersAddress + 2 * 64);
        Assert.Equal(20u, sh.Name);
        Assert.Equal(2u, sh.Type);

        Assert.True(info.HasEfi64SystemTable);
        Assert.Equal(0x7FF0_1234UL, info.Efi64SystemTable);
        Assert.True(info.HasAcpiOldRsdp);
        Assert.Equal(20u, info.AcpiOldRsdpLength);
        Assert.Equal("RSD PTR ", ReadString(mem, info.AcpiOldRsdpAddress, 8));
        Assert.True(info.HasAcpiNewRsdp);
        Assert.Equal(36u, info.AcpiNewRsdpLength);
        Assert.Equal("RSD PTR ", ReadString(mem, info.AcpiNewRsdpAddress, 8));
    }

    [Fact]
    public void EgaTextFramebufferNeedsNoColourInfo()
    {
        byte[] blob = new Mb2Builder().Tag(8, Mb2Builder.Bytes(w => { w.Write(0xB8000UL); w.Write(160u); w.Write(80u); w.Write(25u); w.Write((byte)16); w.Write((byte)2); w.Write((ushort)0); })).Build();
        Assert.Equal(Multiboot2Status.Ok, Parse(blob, out var info, out _));
        Assert.Equal(Multiboot2.FramebufferTypeEgaText, info.FramebufferType);
        Assert.Equal(80u, info.FramebufferWidth);
        Assert.Equal((byte)0, info.FramebufferRedMaskSize);
    }

    [Fact]
    public void StatusNamesAreTheEnumNames()
    {
        var names = new System.Collections.Generic.HashSet<string>();
        foreach (Multiboot2Status s in Enum.GetValues<Multiboot2Status>())
        {
            Assert.Equal(s.ToString(), Multiboot2.StatusName(s));
            Assert.True(names.Add(Multiboot2.StatusName(s)));
        }
        Assert.Equal("Unknown", Multiboot2.StatusName((Multiboot2Status)999));
    }

    [Fact]
    public void ReparsingClearsEarlierResults()
    {
        var info = new Multiboot2Info();
        Assert.Equal(Multiboot2Status.Ok, Parse(WellFormed(), out _, out _, info));
        Assert.Equal(Multiboot2Status.Ok, Parse(new Mb2Builder().Build(), out _, out _, info));
        Assert.False(info.HasCommandLine);
        Assert.Equal(0, info.ModuleCount);
        Assert.Equal(0, info.MemoryMapCount);
        Assert.False(info.HasAcpiNewRsdp);
        Assert.Equal(16u, info.TotalSize);
    }

    [Fact]
    public void LargerEntrySizeIsSteppedOver()
    {
        byte[] blob = new Mb2Builder().MemoryMap(32, (0x1000, 0x2000, 1), (0x5000, 0x6000, 3)).Build();
        Assert.Equal(Multiboot2Status.Ok, Parse(blob, out var info, out _));
        Assert.Equal(2, info.MemoryMapCount);
        Assert.True(info.GetMemoryMapEntry(1, out ulong b, out ulong l, out uint t));
        Assert.Equal((0x5000UL, 0x6000UL, 3u), (b, l, t));
    }

    [Fact]
    public void MisalignedAndUnreachableStructures()
    {
        byte[] blob = new Mb2Builder().Build();
        var mem = new SimulatedMemory(InfoAddress, 64);
        Array.Copy(blob, 0, mem.Bytes, 4, blob.Length);
        Assert.Equal(Multiboot2Status.Misaligned, Multiboot2.Parse(mem, InfoAddress + 4, new Multiboot2Info()));
        Assert.Equal(Multiboot2Status.NotInMemory, Multiboot2.Parse(mem, InfoAddress + 64, new Multiboot2Info()));
        var big = new Mb2Builder { TotalSizeOverride = 4096 }.Build();
        Assert.Equal(Multiboot2Status.NotInMemory, Parse(big, out _, out var m2));
        Assert.Empty(m2.Faults);
    }

    [Fact]
    public void TotalSizeTooSmall()
    {
        Assert.Equal(Multiboot2Status.TotalSizeTooSmall, Parse(new Mb2Builder { TotalSizeOverride = 8 }.Build(), out _, out _));
        Assert.Equal(Multiboot2Status.TotalSizeTooSmall, Parse(new Mb2Builder { TotalSizeOverride = 0 }.Build(), out _, out _));
    }

    public static IEnumerable<object[]> TruncatedTags()
    {
        yield return new object[] { new Mb2Builder().Tag(1, Array.Empty<byte>(), sizeOverride: 4) };           // size < 8
        yield return new object[] { new Mb2Builder().Tag(3, new byte[8], sizeOverride: 12) };                 // module: < 16
        yield return new object[] { new Mb2Builder().Tag(4, new byte[8], sizeOverride: 12) };                 // meminfo: < 16
        yield return new object[] { new Mb2Builder().Tag(6, new byte[8], sizeOverride: 12) };                 // mmap: < 16
        yield return new object[] { new Mb2Builder().Tag(8, new byte[24], sizeOverride: 28) };                // framebuffer: < 31
        yield return new object[] { new Mb2Builder().Tag(8, Mb2Builder.Bytes(w => { w.Write(0xB8000UL); w.Write(160u); w.Write(80u); w.Write(25u); w.Write((byte)16); w.Write((byte)1); w.Write((ushort)0); w.Write(new byte[4]); })) }; // RGB without all 6 colour bytes
        yield return new object[] { new Mb2Builder().Tag(9, new byte[8], sizeOverride: 16) };                 // elf: < 20
        yield return new object[] { new Mb2Builder().Tag(9, Mb2Builder.Bytes(w => { w.Write(2u); w.Write(64u); w.Write(0u); w.Write(new byte[64]); })) }; // 2 headers, room for 1
        yield return new object[] { new Mb2Builder().Tag(12, new byte[4]) };                                  // efi64: < 16
        yield return new object[] { new Mb2Builder().Tag(14, new byte[19]) };                                 // RSDP v1: < 20 bytes
        yield return new object[] { new Mb2Builder().Tag(15, new byte[20]) };                                 // RSDP v2: < 36 bytes
    }

    [Theory]
    [MemberData(nameof(TruncatedTags))]
    public void TruncatedTag(Mb2Builder builder)
    {
        Assert.Equal(Multiboot2Status.TruncatedTag, Parse(builder.Build(), out _, out var mem));
        Assert.Empty(mem.Faults);
    }

    [Fact]
    public void TagOverrunningTotalSizeIsCaughtWithoutReadingPastIt()
    {
        // A command-line tag claiming 64 bytes in a 40-byte structure; memory beyond total_size holds
        // non-zero bytes and reads there fault.
        byte[] blob = new Mb2Builder().Tag(1, Mb2Builder.CString("abc"), sizeOverride: 64).Build();
        var mem = new SimulatedMemory(InfoAddress, 256);
        Array.Copy(blob, mem.Bytes, blob.Length);
        for (int i = blob.Length; i < 256; i++) mem.Bytes[i] = 0x41;
        mem.RestrictReads(InfoAddress, (ulong)blob.Length);
        Assert.Equal(Multiboot2Status.TagOverrunsTotalSize, Multiboot2.Parse(mem, InfoAddress, new Multiboot2Info()));
        Assert.Empty(mem.Faults);

        // Tag header itself cut by total_size: 4 bytes left after the last tag.
        byte[] cut = new Mb2Builder { EndTag = false, TotalSizeOverride = 8 + 16 + 4 }.CommandLine("x").Build();
        var mem2 = new SimulatedMemory(InfoAddress, 64);
        Array.Copy(cut, mem2.Bytes, cut.Length);
        mem2.RestrictReads(InfoAddress, 28);
        Assert.Equal(Multiboot2Status.TagOverrunsTotalSize, Multiboot2.Parse(mem2, InfoAddress, new Multiboot2Info()));
        Assert.Empty(mem2.Faults);
    }

    [Fact]
    public void TooManyEntriesAndModules()
    {
        var entries = new (ulong, ulong, uint)[65];
        for (int i = 0; i < entries.Length; i++) entries[i] = ((ulong)i << 20, 0x1000, 1);
        Assert.Equal(Multiboot2Status.TooManyEntries, Parse(new Mb2Builder().MemoryMap(24, entries).Build(), out _, out _));
        Assert.Equal(Multiboot2Status.Ok, Parse(new Mb2Builder().MemoryMap(24, entries[..64]).Build(), out var ok, out _));
        Assert.Equal(64, ok.MemoryMapCount);

        var small = new Multiboot2Info(4, 1);
        byte[] twoModules = new Mb2Builder().Module(0x1000, 0x2000, "a").Module(0x3000, 0x4000, "b").Build();
        Assert.Equal(Multiboot2Status.TooManyModules, Parse(twoModules, out _, out _, small));
        Assert.Equal(Multiboot2Status.Ok, Parse(twoModules, out var two, out _));
        Assert.Equal(2, two.ModuleCount);
    }

    [Theory]
    [InlineData(16u)] // below 24
    [InlineData(28u)] // not a multiple of 8
    [InlineData(0u)]
    public void BadMemoryMapEntrySize(uint entrySize)
    {
        byte[] blob = new Mb2Builder().Tag(6, Mb2Builder.Bytes(w => { w.Write(entrySize); w.Write(0u); w.Write(new byte[56]); })).Build();
        Assert.Equal(Multiboot2Status.BadEntrySize, Parse(blob, out _, out _));
    }

    [Fact]
    public void EntriesNotFillingTheTagAndSmallElfEntsizeAreBadEntrySize()
    {
        byte[] ragged = new Mb2Builder().Tag(6, Mb2Builder.Bytes(w => { w.Write(24u); w.Write(0u); w.Write(new byte[24 + 16]); })).Build();
        Assert.Equal(Multiboot2Status.BadEntrySize, Parse(ragged, out _, out _));
        byte[] elf = new Mb2Builder().Tag(9, Mb2Builder.Bytes(w => { w.Write(1u); w.Write(40u); w.Write(0u); w.Write(new byte[40]); })).Build();
        Assert.Equal(Multiboot2Status.BadEntrySize, Parse(elf, out _, out _));
    }

    [Fact]
    public void EndTagProblems()
    {
        Assert.Equal(Multiboot2Status.MissingEndTag, Parse(new Mb2Builder { EndTag = false }.CommandLine("x").Build(), out _, out _));
        Assert.Equal(Multiboot2Status.MissingEndTag, Parse(new Mb2Builder { EndTag = false }.Tag(99, Array.Empty<byte>()).Build(), out _, out _));
        var bad = new Mb2Builder { EndTagSize = 16 }.Build();
        Assert.Equal(Multiboot2Status.TagOverrunsTotalSize, Parse(bad, out _, out _)); // claims more than is left
        var badButFits = new Mb2Builder { EndTagSize = 16, TotalSizeOverride = 24 }.Build().Concat8();
        Assert.Equal(Multiboot2Status.BadEndTag, Parse(badButFits, out _, out _));
    }

    [Fact]
    public void UnterminatedStringsModuleRangeAndSectionIndex()
    {
        Assert.Equal(Multiboot2Status.UnterminatedString, Parse(new Mb2Builder().Tag(1, Encoding.ASCII.GetBytes("abcdefgh")).Build(), out _, out _));
        Assert.Equal(Multiboot2Status.UnterminatedString, Parse(new Mb2Builder().Tag(2, Encoding.ASCII.GetBytes("GRUB")).Build(), out _, out _));
        Assert.Equal(Multiboot2Status.UnterminatedString, Parse(new Mb2Builder().Tag(3, Mb2Builder.Bytes(w => { w.Write(1u); w.Write(2u); w.Write((byte)'m'); })).Build(), out _, out _));
        Assert.Equal(Multiboot2Status.BadModuleRange, Parse(new Mb2Builder().Module(0x5000, 0x4000, "m").Build(), out _, out _));
        byte[] elf = new Mb2Builder().Tag(9, Mb2Builder.Bytes(w => { w.Write(1u); w.Write(64u); w.Write(1u); w.Write(new byte[64]); })).Build();
        Assert.Equal(Multiboot2Status.BadSectionIndex, Parse(elf, out _, out _));
    }

    [Fact]
    public void EveryTruncationOfAValidBlobFailsCleanly()
    {
        byte[] blob = WellFormed();
        for (int cut = 16; cut < blob.Length; cut += 4)
        {
            byte[] copy = (byte[])blob.Clone();
            BitConverter.TryWriteBytes(copy.AsSpan(0, 4), (uint)cut);
            var mem = new SimulatedMemory(InfoAddress, copy);
            mem.RestrictReads(InfoAddress, (ulong)cut);
            var status = Multiboot2.Parse(mem, InfoAddress, new Multiboot2Info());
            Assert.NotEqual(Multiboot2Status.Ok, status);
            Assert.Empty(mem.Faults);
        }
    }

    [Fact]
    public void RandomCorruptionNeverReadsOutsideTheStructure()
    {
        byte[] blob = WellFormed();
        var rng = new Random(1234);
        for (int round = 0; round < 3000; round++)
        {
            byte[] copy = (byte[])blob.Clone();
            int flips = rng.Next(1, 6);
            for (int i = 0; i < flips; i++) copy[rng.Next(copy.Length)] = (byte)rng.Next(256);
            var mem = new SimulatedMemory(InfoAddress, copy.Length + 64);
            Array.Copy(copy, mem.Bytes, copy.Length);
            uint total = BitConverter.ToUInt32(copy, 0);
            mem.RestrictReads(InfoAddress, Math.Min(total, (uint)mem.Bytes.Length));
            Multiboot2.Parse(mem, InfoAddress, new Multiboot2Info());
            Assert.Empty(mem.Faults);
        }
    }
}

internal static class ByteArrayExtensions
{
    /// <summary>Pads to a multiple of 8 and appends 8 zero bytes (room that total_size may or may not cover).</summary>
    public static byte[] Concat8(this byte[] a)
    {
        int len = (a.Length + 7) / 8 * 8 + 8;
        var r = new byte[len];
        Array.Copy(a, r, a.Length);
        return r;
    }
}
