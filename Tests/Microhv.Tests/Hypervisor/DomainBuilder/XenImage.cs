using System;
using System.Collections.Generic;
using System.Text;
using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Tests.Hosted;

namespace Microhv.Tests.Hypervisor.DomainBuilder;

/// <summary>Builds a synthetic Xen PV kernel ELF: an ELF64 header, PT_LOAD segments and one PT_NOTE holding "Xen" notes.</summary>
public sealed class XenImage
{
    public sealed class Segment
    {
        public ulong PhysicalAddress, VirtualAddress, MemorySize;
        public byte[] Bytes = Array.Empty<byte>();
        public uint Flags = Elf64ProgramHeader.PF_R | Elf64ProgramHeader.PF_X;
    }

    public readonly List<(string Name, uint Type, byte[] Desc)> Notes = new();
    public readonly List<Segment> Segments = new();
    public ulong ElfEntry;

    public XenImage Note(uint type, ulong value, int size = 8)
    {
        var b = new byte[size];
        for (int i = 0; i < size; i++) b[i] = (byte)(value >> (8 * i));
        Notes.Add(("Xen", type, b));
        return this;
    }

    /// <summary>A string note; <paramref name="nul"/> false mimics Linux's .ascii FEATURES (no terminator).</summary>
    public XenImage Note(uint type, string value, bool nul = true)
    {
        byte[] text = Encoding.ASCII.GetBytes(value);
        var b = new byte[text.Length + (nul ? 1 : 0)];
        text.CopyTo(b, 0);
        Notes.Add(("Xen", type, b));
        return this;
    }

    public XenImage RawNote(string name, uint type, byte[] desc)
    {
        Notes.Add((name, type, desc));
        return this;
    }

    public XenImage Load(ulong paddr, ulong vaddr, byte[] bytes, ulong memsz, uint flags = Elf64ProgramHeader.PF_R | Elf64ProgramHeader.PF_X)
    {
        Segments.Add(new Segment { PhysicalAddress = paddr, VirtualAddress = vaddr, Bytes = bytes, MemorySize = memsz, Flags = flags });
        return this;
    }

    public static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        for (int i = 0; i < length; i++) b[i] = (byte)(i * 7 + seed + (i >> 8));
        return b;
    }

    public byte[] Build()
    {
        var notes = new List<byte>();
        foreach (var (name, type, desc) in Notes)
        {
            byte[] n = Encoding.ASCII.GetBytes(name + "\0");
            Add32(notes, (uint)n.Length);
            Add32(notes, (uint)desc.Length);
            Add32(notes, type);
            notes.AddRange(n);
            while (notes.Count % 4 != 0) notes.Add(0);
            notes.AddRange(desc);
            while (notes.Count % 4 != 0) notes.Add(0);
        }
        int phnum = Segments.Count + 1;
        int notesOffset = 64 + phnum * 56;
        int dataOffset = (notesOffset + notes.Count + 0xFFF) & ~0xFFF;
        var segOffsets = new int[Segments.Count];
        int end = dataOffset;
        for (int i = 0; i < Segments.Count; i++)
        {
            segOffsets[i] = end;
            end = (end + Segments[i].Bytes.Length + 0xFFF) & ~0xFFF;
        }
        var image = new byte[end];
        // ELF header.
        image[0] = 0x7F; image[1] = (byte)'E'; image[2] = (byte)'L'; image[3] = (byte)'F';
        image[4] = 2; image[5] = 1; image[6] = 1;
        Put16(image, 16, 2);            // ET_EXEC
        Put16(image, 18, 62);           // EM_X86_64
        Put32(image, 20, 1);
        Put64(image, 24, ElfEntry);
        Put64(image, 32, 64);           // e_phoff
        Put16(image, 52, 64);
        Put16(image, 54, 56);
        Put16(image, 56, (ushort)phnum);
        for (int i = 0; i < Segments.Count; i++)
        {
            var s = Segments[i];
            int p = 64 + i * 56;
            Put32(image, p, Elf64ProgramHeader.PT_LOAD);
            Put32(image, p + 4, s.Flags);
            Put64(image, p + 8, (ulong)segOffsets[i]);
            Put64(image, p + 16, s.VirtualAddress);
            Put64(image, p + 24, s.PhysicalAddress);
            Put64(image, p + 32, (ulong)s.Bytes.Length);
            Put64(image, p + 40, s.MemorySize);
            Put64(image, p + 48, 0x1000);
            s.Bytes.CopyTo(image, segOffsets[i]);
        }
        int np = 64 + Segments.Count * 56;
        Put32(image, np, Elf64ProgramHeader.PT_NOTE);
        Put32(image, np + 4, Elf64ProgramHeader.PF_R);
        Put64(image, np + 8, (ulong)notesOffset);
        Put64(image, np + 32, (ulong)notes.Count);
        Put64(image, np + 40, (ulong)notes.Count);
        Put64(image, np + 48, 4);
        notes.CopyTo(image, notesOffset);
        return image;
    }

    private static void Add32(List<byte> l, uint v) { for (int i = 0; i < 4; i++) l.Add((byte)(v >> (8 * i))); }
    public static void Put16(byte[] b, int o, ushort v) { b[o] = (byte)v; b[o + 1] = (byte)(v >> 8); }
    public static void Put32(byte[] b, int o, uint v) { for (int i = 0; i < 4; i++) b[o + i] = (byte)(v >> (8 * i)); }
    public static void Put64(byte[] b, int o, ulong v) { for (int i = 0; i < 8; i++) b[o + i] = (byte)(v >> (8 * i)); }
}

/// <summary>
/// A 64 MiB machine over simulated memory at physical 0 whose frames come from the HAL's bitmap
/// FrameAllocator (so the builder can give frames back); the first 4 MiB are reserved and hold the image.
/// </summary>
public sealed class BuilderMachine
{
    public const int Bytes = 64 << 20;
    public const ulong ImageAddress = 0x10_0000;
    public readonly SimulatedMemory Memory = new(0, Bytes);
    public readonly FrameTable FrameTable = new((ulong)Bytes / 4096);
    public readonly RecordingHost Host = new();
    public readonly FrameAllocator Frames;
    public readonly Machine Machine;
    public ulong ImageLength;

    public BuilderMachine()
    {
        ulong frames = (ulong)Bytes / 4096;
        FrameAllocator.Create(new ulong[FrameAllocator.BitmapWordsFor(frames)], 0, frames, out Frames);
        Frames.AddUsableRange(0, (ulong)Bytes);
        Frames.ReserveRange(0, 4 << 20);
        // Leave stale bytes in every free frame so the builder's zeroing is observable.
        for (int i = 4 << 20; i < Bytes; i++) Memory.Bytes[i] = 0xA5;
        Machine = new Machine(Memory, Frames, FrameTable, Host);
        for (int i = 0; i < Microhv.Hypervisor.Layout.HypervisorL4SlotCount; i++)
            Machine.HypervisorL4Slots[i] = 0x3F0_0000UL + (ulong)i * 0x1000 + 0x63; // recognisable, present
    }

    public void Place(byte[] image)
    {
        Array.Copy(image, 0, Memory.Bytes, (int)ImageAddress, image.Length);
        ImageLength = (ulong)image.Length;
    }

    public DomainBuildStatus Build(byte[] image, ulong nrPages, bool initial, out Domain d, string cmdline = "console=hvc0", ushort id = 0)
    {
        Place(image);
        byte[] c = Encoding.ASCII.GetBytes(cmdline);
        return Microhv.Hypervisor.DomainBuilder.Build(Machine, id, ImageAddress, ImageLength, nrPages, initial, c, c.Length, out d);
    }
}
