namespace Microhv.Guests.PvOps;

/// <summary>
/// The bytes a paravirt call site becomes (docs/abi-rom.md §9), as pure logic over byte pointers so the
/// hosted tests decode them with Iced. A site is a rel32 `call` (5 bytes) or, where the compiler made a
/// tail call, a rel32 `jmp`; whatever replaces it keeps its length, and a tail site returns to its
/// caller's caller as the jump would have.
/// </summary>
public static unsafe class SitePatch
{
    public const byte CallRel32 = 0xE8, JmpRel32 = 0xE9, Ret = 0xC3;

    /// <summary>DS segment override: ignored in 64-bit mode (AMD64 APM vol. 3 §1.2.4), so it pads an
    /// instruction without adding one, as assemblers pad branches for alignment.</summary>
    public const byte NullPrefix = 0x3E;
    public const int MaxPrefixes = 4;

    /// <summary>True if <paramref name="code"/> (at address <paramref name="at"/>) holds a rel32 call (or,
    /// for a tail site, jmp) to <paramref name="target"/> and nothing else in its <paramref name="length"/> bytes.</summary>
    public static bool IsBranchTo(byte* code, int length, bool tail, ulong at, ulong target)
    {
        if (length != 5 || code[0] != (tail ? JmpRel32 : CallRel32)) return false;
        return at + 5 + (ulong)(long)*(int*)(code + 1) == target;
    }

    /// <summary>A direct call (a tail site: jmp) from <paramref name="at"/> to <paramref name="target"/>,
    /// padded with one NOP; false if the target is out of rel32 reach or the site too short.</summary>
    public static bool Branch(byte* code, int length, bool tail, ulong at, ulong target)
    {
        if (length < 5 || target == 0) return false;
        long displacement = (long)(target - (at + 5));
        if (displacement < int.MinValue || displacement > int.MaxValue) return false;
        code[0] = tail ? JmpRel32 : CallRel32;
        *(int*)(code + 1) = (int)displacement;
        Nops(code + 5, length - 5);
        return true;
    }

    /// <summary>
    /// The native bytes inline, a tail site followed by `ret`. The spare bytes become DS prefixes on the
    /// first native instruction (at most four; the rest, if any, one NOP after), so the site executes exactly
    /// the native instructions. False if they do not fit: the caller then binds a call instead.
    /// </summary>
    public static bool Native(byte* code, int length, bool tail, byte* native, int nativeLength)
    {
        int used = nativeLength + (tail ? 1 : 0);
        if (nativeLength == 0 || used > length) return false;
        int prefixes = length - used < MaxPrefixes ? length - used : MaxPrefixes;
        int at = 0;
        for (int i = 0; i < prefixes; i++) code[at++] = NullPrefix;
        for (int i = 0; i < nativeLength; i++) code[at++] = native[i];
        if (tail) code[at++] = Ret;
        Nops(code + at, length - at);
        return true;
    }

    /// <summary>The operation is unnecessary: one NOP over the site (a tail site returns at once).</summary>
    public static void Nop(byte* code, int length, bool tail)
    {
        if (tail) { code[0] = Ret; Nops(code + 1, length - 1); return; }
        Nops(code, length);
    }

    /// <summary>
    /// <paramref name="length"/> bytes of NOPs, as few instructions as possible: the recommended
    /// multi-byte forms (0F 1F /0 with 66 prefixes) of up to 9 bytes each.
    /// </summary>
    public static void Nops(byte* code, int length)
    {
        while (length > 0)
        {
            int n = length > 9 ? 9 : length;
            int at = 0;
            if (n == 1) { code[0] = 0x90; }
            else if (n == 2) { code[0] = 0x66; code[1] = 0x90; }
            else
            {
                if (n == 6 || n == 9) code[at++] = 0x66;                    // 66 + the 5- or 8-byte form
                int body = n - at;                                          // 3, 4, 5, 7 or 8
                code[at++] = 0x0F; code[at++] = 0x1F;
                if (body == 3) code[at++] = 0x00;                           // nop [rax]
                else if (body == 4) { code[at++] = 0x40; code[at++] = 0; }  // nop [rax+0]
                else if (body == 5) { code[at++] = 0x44; code[at++] = 0; code[at++] = 0; }   // nop [rax+rax+0]
                else if (body == 7) { code[at++] = 0x80; for (int i = 0; i < 4; i++) code[at++] = 0; }  // nop [rax+0x0]
                else { code[at++] = 0x84; for (int i = 0; i < 5; i++) code[at++] = 0; }            // nop [rax+rax+0x0]
            }
            code += n;
            length -= n;
        }
    }
}
