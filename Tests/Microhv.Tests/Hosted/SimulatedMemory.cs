using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using Microhv.HAL;

namespace Microhv.Tests.Hosted;

/// <summary>Thrown (and recorded) when HAL code touches memory it must not.</summary>
public sealed class SimulatedMemoryFault : Exception
{
    public SimulatedMemoryFault(string message) : base(message) { }
}

/// <summary>
/// PhysicalMemory over a byte array mapped at <see cref="Base"/>. Any access outside the array, or a read
/// outside the optional readable window, is recorded in <see cref="Faults"/> and throws.
/// </summary>
public sealed class SimulatedMemory : PhysicalMemory
{
    public readonly byte[] Bytes;
    public readonly ulong Base;
    public readonly List<string> Faults = new();
    private ulong _windowStart;
    private ulong _windowEnd;
    public long Reads;
    public long Writes;

    public SimulatedMemory(ulong baseAddress, int size)
    {
        Base = baseAddress;
        Bytes = new byte[size];
        _windowStart = baseAddress;
        _windowEnd = baseAddress + (ulong)size;
    }

    public SimulatedMemory(ulong baseAddress, byte[] contents)
    {
        Base = baseAddress;
        Bytes = contents;
        _windowStart = baseAddress;
        _windowEnd = baseAddress + (ulong)contents.Length;
    }

    public ulong End => Base + (ulong)Bytes.Length;

    /// <summary>Restricts reads to [start, start+length) (writes still go anywhere in the array).</summary>
    public void RestrictReads(ulong start, ulong length)
    {
        _windowStart = start;
        _windowEnd = start + length;
    }

    private int Index(ulong address, int size, bool read)
    {
        bool inside = address >= Base && address - Base <= (ulong)Bytes.Length && (ulong)size <= (ulong)Bytes.Length - (address - Base);
        if (inside && read) inside = address >= _windowStart && address + (ulong)size <= _windowEnd;
        if (!inside)
        {
            string message = $"{(read ? "read" : "write")} of {size} bytes at 0x{address:X} outside [0x{(read ? _windowStart : Base):X}, 0x{(read ? _windowEnd : End):X})";
            Faults.Add(message);
            throw new SimulatedMemoryFault(message);
        }
        if (read) Reads++; else Writes++;
        return (int)(address - Base);
    }

    public override byte Read8(ulong address) => Bytes[Index(address, 1, true)];
    public override ushort Read16(ulong address) => BinaryPrimitives.ReadUInt16LittleEndian(Bytes.AsSpan(Index(address, 2, true)));
    public override uint Read32(ulong address) => BinaryPrimitives.ReadUInt32LittleEndian(Bytes.AsSpan(Index(address, 4, true)));
    public override ulong Read64(ulong address) => BinaryPrimitives.ReadUInt64LittleEndian(Bytes.AsSpan(Index(address, 8, true)));
    public override void Write8(ulong address, byte value) => Bytes[Index(address, 1, false)] = value;
    public override void Write16(ulong address, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(Bytes.AsSpan(Index(address, 2, false)), value);
    public override void Write32(ulong address, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Bytes.AsSpan(Index(address, 4, false)), value);
    public override void Write64(ulong address, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(Bytes.AsSpan(Index(address, 8, false)), value);

    public override bool Contains(ulong address, ulong length)
        => address >= Base && address - Base <= (ulong)Bytes.Length && length <= (ulong)Bytes.Length - (address - Base);

    /// <summary>Test-side raw access (not counted, not checked against the read window).</summary>
    public ulong Peek64(ulong address) => BinaryPrimitives.ReadUInt64LittleEndian(Bytes.AsSpan((int)(address - Base)));
    public void Poke64(ulong address, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(Bytes.AsSpan((int)(address - Base)), value);
}

/// <summary>Hands out consecutive 4 KiB frames from [start, start+count*4K), dirtying them first so zeroing is observable.</summary>
public sealed class BumpFrameSource : FrameSource
{
    private readonly SimulatedMemory _memory;
    private ulong _next;
    private readonly ulong _end;
    public readonly List<ulong> Handed = new();

    public BumpFrameSource(SimulatedMemory memory, ulong start, int count)
    {
        _memory = memory;
        _next = start;
        _end = start + (ulong)count * 4096;
    }

    /// <summary>When set, frames given back are handed out again (most recent first) and counted as free,
    /// as the kernel's allocator does; otherwise they are only recorded.</summary>
    public bool Reuse;

    public override ulong FreeFrameCount => (_end - _next) / 4096 + (Reuse ? (ulong)Freed.Count : 0);

    public override bool TryAllocateFrame(out ulong physicalAddress)
    {
        physicalAddress = 0;
        if (Reuse && Freed.Count > 0)
        {
            physicalAddress = Freed[^1];
            Freed.RemoveAt(Freed.Count - 1);
            for (int i = 0; i < 4096; i++) _memory.Bytes[(int)(physicalAddress - _memory.Base) + i] = 0xCC;
            return true;
        }
        if (_next >= _end) return false;
        physicalAddress = _next;
        _next += 4096;
        Handed.Add(physicalAddress);
        for (int i = 0; i < 4096; i++) _memory.Bytes[(int)(physicalAddress - _memory.Base) + i] = 0xCC;
        return true;
    }

    /// <summary>Contiguous runs come from the bump pointer too, after skipping to the run's alignment.</summary>
    public override bool TryAllocateContiguous(int order, ulong addressLimit, out ulong physicalAddress)
    {
        physicalAddress = 0;
        ulong size = 4096UL << order;
        ulong start = (_next + size - 1) & ~(size - 1);
        if (start + size > _end || start + size > addressLimit) return false;
        _next = start + size;
        for (ulong a = start; a < start + size; a += 4096) Handed.Add(a);
        physicalAddress = start;
        return true;
    }

    /// <summary>Frames given back, in order (the bump source never reuses them).</summary>
    public readonly List<ulong> Freed = new();
    public override bool TryFreeFrame(ulong physicalAddress)
    {
        if (!Handed.Contains(physicalAddress) || Freed.Contains(physicalAddress)) return false;
        Freed.Add(physicalAddress);
        return true;
    }
}
