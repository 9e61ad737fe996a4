namespace Microhv.HAL;

/// <summary>
/// 8-byte code/data segment descriptor (Intel SDM Vol. 3A, 3.4.5, Figure 3-8):
/// bits 15:0 limit 15:0; 39:16 base 23:0; 43:40 type; 44 S; 46:45 DPL; 47 P; 51:48 limit 19:16;
/// 52 AVL; 53 L; 54 D/B; 55 G; 63:56 base 31:24.
/// In 64-bit mode base and limit are ignored for CS/DS/ES/SS; L=1 with D=0 selects a 64-bit code segment.
/// </summary>
public static class SegmentDescriptor
{
    // Type field for S=1 (SDM Table 3-1).
    /// <summary>Type bit 0: accessed.</summary>
    public const uint TypeAccessed = 0x1;
    /// <summary>Data read/write (type 0010b).</summary>
    public const uint TypeDataReadWrite = 0x2;
    /// <summary>Data read-only (type 0000b).</summary>
    public const uint TypeDataReadOnly = 0x0;
    /// <summary>Code execute/read (type 1010b).</summary>
    public const uint TypeCodeExecuteRead = 0xA;
    /// <summary>Code execute-only (type 1000b).</summary>
    public const uint TypeCodeExecuteOnly = 0x8;

    /// <summary>The null descriptor (GDT entry 0).</summary>
    public const ulong Null = 0;

    /// <summary>Encodes a descriptor. <paramref name="limit"/> is 20 bits, <paramref name="type"/> 4 bits, <paramref name="dpl"/> 0..3.</summary>
    public static ulong Encode(uint baseAddress, uint limit, uint type, bool descriptorTypeS, int dpl, bool present,
        bool available, bool longMode, bool defaultBig, bool granularity)
    {
        ulong d = limit & 0xFFFFUL;
        d |= (ulong)(baseAddress & 0xFF_FFFF) << 16;
        d |= (ulong)(type & 0xF) << 40;
        if (descriptorTypeS) d |= 1UL << 44;
        d |= (ulong)((uint)dpl & 3) << 45;
        if (present) d |= 1UL << 47;
        d |= (ulong)((limit >> 16) & 0xF) << 48;
        if (available) d |= 1UL << 52;
        if (longMode) d |= 1UL << 53;
        if (defaultBig) d |= 1UL << 54;
        if (granularity) d |= 1UL << 55;
        d |= (ulong)((baseAddress >> 24) & 0xFF) << 56;
        return d;
    }

    /// <summary>Flat 64-bit code segment (base 0, limit 0xFFFFF, G=1, L=1, D=0, execute/read) at <paramref name="dpl"/>.</summary>
    public static ulong Code64(int dpl) => Encode(0, 0xF_FFFF, TypeCodeExecuteRead, true, dpl, true, false, true, false, true);

    /// <summary>Flat data segment (base 0, limit 0xFFFFF, G=1, D/B=1, read/write) at <paramref name="dpl"/>.</summary>
    public static ulong Data(int dpl) => Encode(0, 0xF_FFFF, TypeDataReadWrite, true, dpl, true, false, false, true, true);

    public static ulong KernelCode64 => Code64(0);
    public static ulong KernelData => Data(0);
    public static ulong UserCode64 => Code64(3);
    public static ulong UserData => Data(3);

    public static uint Base(ulong d) => (uint)((d >> 16) & 0xFF_FFFF) | (uint)((d >> 56) & 0xFF) << 24;
    public static uint Limit(ulong d) => (uint)(d & 0xFFFF) | (uint)((d >> 48) & 0xF) << 16;
    public static uint Type(ulong d) => (uint)((d >> 40) & 0xF);
    public static bool S(ulong d) => ((d >> 44) & 1) != 0;
    public static int Dpl(ulong d) => (int)((d >> 45) & 3);
    public static bool Present(ulong d) => ((d >> 47) & 1) != 0;
    public static bool Available(ulong d) => ((d >> 52) & 1) != 0;
    public static bool LongMode(ulong d) => ((d >> 53) & 1) != 0;
    public static bool DefaultBig(ulong d) => ((d >> 54) & 1) != 0;
    public static bool Granularity(ulong d) => ((d >> 55) & 1) != 0;

    /// <summary>Segment selector: index*8 | TI | RPL (SDM 3.4.2).</summary>
    public static ushort Selector(int index, bool localTable, int rpl)
        => (ushort)((index << 3) | (localTable ? 4 : 0) | (rpl & 3));
}
