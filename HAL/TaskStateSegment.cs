using System.Runtime.InteropServices;

namespace Microhv.HAL;

/// <summary>
/// 64-bit Task-State Segment (Intel SDM Vol. 3A, 8.7, Figure 8-11), 104 bytes:
/// 0 reserved; 4 RSP0; 12 RSP1; 20 RSP2; 28 reserved; 36 IST1 .. 84 IST7 (8 bytes apart); 92 reserved;
/// 100 reserved (16 bits); 102 I/O map base address (16 bits, offset from the TSS base).
/// The 8-byte fields are not naturally aligned; the layout is packed as the SDM defines it.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 104)]
public struct TaskStateSegment
{
    public const int Size = 104;
    public const int OffsetRsp0 = 4;
    public const int OffsetRsp1 = 12;
    public const int OffsetRsp2 = 20;
    public const int OffsetIst1 = 36;
    public const int OffsetIoMapBase = 102;

    [FieldOffset(0)] public uint Reserved0;
    [FieldOffset(4)] public ulong Rsp0;
    [FieldOffset(12)] public ulong Rsp1;
    [FieldOffset(20)] public ulong Rsp2;
    [FieldOffset(28)] public ulong Reserved1;
    [FieldOffset(36)] public ulong Ist1;
    [FieldOffset(44)] public ulong Ist2;
    [FieldOffset(52)] public ulong Ist3;
    [FieldOffset(60)] public ulong Ist4;
    [FieldOffset(68)] public ulong Ist5;
    [FieldOffset(76)] public ulong Ist6;
    [FieldOffset(84)] public ulong Ist7;
    [FieldOffset(92)] public ulong Reserved2;
    [FieldOffset(100)] public ushort Reserved3;
    [FieldOffset(102)] public ushort IoMapBase;

    /// <summary>Byte offset of RSP<paramref name="ring"/> (0..2).</summary>
    public static int RspOffset(int ring) => OffsetRsp0 + 8 * ring;

    /// <summary>Byte offset of IST<paramref name="index"/> (1..7).</summary>
    public static int IstOffset(int index) => OffsetIst1 + 8 * (index - 1);

    /// <summary>Sets IST<paramref name="index"/> (1..7); false for other indices.</summary>
    public bool SetIst(int index, ulong stackTop)
    {
        switch (index)
        {
            case 1: Ist1 = stackTop; return true;
            case 2: Ist2 = stackTop; return true;
            case 3: Ist3 = stackTop; return true;
            case 4: Ist4 = stackTop; return true;
            case 5: Ist5 = stackTop; return true;
            case 6: Ist6 = stackTop; return true;
            case 7: Ist7 = stackTop; return true;
            default: return false;
        }
    }

    public ulong GetIst(int index)
    {
        switch (index)
        {
            case 1: return Ist1;
            case 2: return Ist2;
            case 3: return Ist3;
            case 4: return Ist4;
            case 5: return Ist5;
            case 6: return Ist6;
            case 7: return Ist7;
            default: return 0;
        }
    }

    /// <summary>
    /// Writes the 104 bytes at <paramref name="address"/> (reserved fields as zero). With no I/O permission
    /// bitmap, set <see cref="IoMapBase"/> to <see cref="Size"/> (at or beyond the limit: all ports trap).
    /// </summary>
    public void WriteTo(PhysicalMemory memory, ulong address)
    {
        memory.Fill(address, 0, Size);
        memory.Write64(address + OffsetRsp0, Rsp0);
        memory.Write64(address + OffsetRsp1, Rsp1);
        memory.Write64(address + OffsetRsp2, Rsp2);
        for (int i = 1; i <= 7; i++) memory.Write64(address + (ulong)IstOffset(i), GetIst(i));
        memory.Write16(address + OffsetIoMapBase, IoMapBase);
    }

    /// <summary>Reads the fields from 104 bytes at <paramref name="address"/>.</summary>
    public static TaskStateSegment ReadFrom(PhysicalMemory memory, ulong address)
    {
        TaskStateSegment t = default;
        t.Rsp0 = memory.Read64(address + OffsetRsp0);
        t.Rsp1 = memory.Read64(address + OffsetRsp1);
        t.Rsp2 = memory.Read64(address + OffsetRsp2);
        for (int i = 1; i <= 7; i++) t.SetIst(i, memory.Read64(address + (ulong)IstOffset(i)));
        t.IoMapBase = memory.Read16(address + OffsetIoMapBase);
        return t;
    }
}
