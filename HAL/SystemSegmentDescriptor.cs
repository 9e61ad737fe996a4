namespace Microhv.HAL;

/// <summary>
/// 16-byte system-segment descriptor of IA-32e mode (TSS/LDT; Intel SDM Vol. 3A, 8.2.3, Figure 8-4).
/// Low qword: as a legacy descriptor with S=0 (limit 15:0, base 23:0, type, DPL, P, limit 19:16, AVL, G, base 31:24).
/// High qword: bits 31:0 base 63:32; bits 39:32 reserved; bits 44:40 must be zero; 63:45 reserved.
/// </summary>
public static class SystemSegmentDescriptor
{
    // System types in IA-32e mode (SDM Table 3-2).
    public const uint TypeLdt = 0x2;
    /// <summary>64-bit TSS (available).</summary>
    public const uint TypeTssAvailable = 0x9;
    /// <summary>64-bit TSS (busy).</summary>
    public const uint TypeTssBusy = 0xB;

    public static void Encode(ulong baseAddress, uint limit, uint type, int dpl, bool present, bool available, bool granularity,
        out ulong low, out ulong high)
    {
        low = limit & 0xFFFFUL;
        low |= (baseAddress & 0xFF_FFFFUL) << 16;
        low |= (ulong)(type & 0xF) << 40;
        low |= (ulong)((uint)dpl & 3) << 45;
        if (present) low |= 1UL << 47;
        low |= (ulong)((limit >> 16) & 0xF) << 48;
        if (available) low |= 1UL << 52;
        if (granularity) low |= 1UL << 55;
        low |= ((baseAddress >> 24) & 0xFFUL) << 56;
        high = baseAddress >> 32;
    }

    /// <summary>Available 64-bit TSS descriptor, DPL 0, byte granularity, limit = <paramref name="size"/>-1.</summary>
    public static void Tss(ulong baseAddress, uint size, out ulong low, out ulong high)
        => Encode(baseAddress, size - 1, TypeTssAvailable, 0, true, false, false, out low, out high);

    public static ulong Base(ulong low, ulong high) => ((low >> 16) & 0xFF_FFFFUL) | (((low >> 56) & 0xFF) << 24) | ((high & 0xFFFF_FFFFUL) << 32);
    public static uint Limit(ulong low) => (uint)(low & 0xFFFF) | (uint)((low >> 48) & 0xF) << 16;
    public static uint Type(ulong low) => (uint)((low >> 40) & 0xF);
    /// <summary>S (bit 44); must be 0 for a system descriptor.</summary>
    public static bool S(ulong low) => ((low >> 44) & 1) != 0;
    public static int Dpl(ulong low) => (int)((low >> 45) & 3);
    public static bool Present(ulong low) => ((low >> 47) & 1) != 0;
    public static bool Granularity(ulong low) => ((low >> 55) & 1) != 0;
}
