namespace Microhv.HAL;

/// <summary>
/// 16-byte IA-32e interrupt/trap gate (Intel SDM Vol. 3A, 6.14.1, Figure 6-8).
/// Low qword: bits 15:0 offset 15:0; 31:16 segment selector; 34:32 IST; 39:35 zero; 43:40 type;
/// 44 zero; 46:45 DPL; 47 P; 63:48 offset 31:16. High qword: bits 31:0 offset 63:32; 63:32 reserved.
/// </summary>
public static class InterruptGate
{
    /// <summary>64-bit interrupt gate (clears IF on entry).</summary>
    public const uint TypeInterrupt = 0xE;
    /// <summary>64-bit trap gate (leaves IF alone).</summary>
    public const uint TypeTrap = 0xF;

    /// <summary>Size of one IDT entry in bytes.</summary>
    public const int Size = 16;

    /// <summary>Encodes a gate. <paramref name="ist"/> is 0 (no stack switch) or 1..7.</summary>
    public static void Encode(ulong offset, ushort selector, int ist, uint type, int dpl, bool present, out ulong low, out ulong high)
    {
        low = offset & 0xFFFFUL;
        low |= (ulong)selector << 16;
        low |= (ulong)((uint)ist & 7) << 32;
        low |= (ulong)(type & 0xF) << 40;
        low |= (ulong)((uint)dpl & 3) << 45;
        if (present) low |= 1UL << 47;
        low |= ((offset >> 16) & 0xFFFFUL) << 48;
        high = offset >> 32;
    }

    /// <summary>Present interrupt gate at DPL 0.</summary>
    public static void Interrupt(ulong offset, ushort selector, int ist, out ulong low, out ulong high)
        => Encode(offset, selector, ist, TypeInterrupt, 0, true, out low, out high);

    /// <summary>Present trap gate at <paramref name="dpl"/> (3 lets INT n from user mode reach it).</summary>
    public static void Trap(ulong offset, ushort selector, int ist, int dpl, out ulong low, out ulong high)
        => Encode(offset, selector, ist, TypeTrap, dpl, true, out low, out high);

    public static ulong Offset(ulong low, ulong high) => (low & 0xFFFFUL) | (((low >> 48) & 0xFFFFUL) << 16) | ((high & 0xFFFF_FFFFUL) << 32);
    public static ushort Selector(ulong low) => (ushort)(low >> 16);
    public static int Ist(ulong low) => (int)((low >> 32) & 7);
    public static uint Type(ulong low) => (uint)((low >> 40) & 0xF);
    public static int Dpl(ulong low) => (int)((low >> 45) & 3);
    public static bool Present(ulong low) => ((low >> 47) & 1) != 0;
}
