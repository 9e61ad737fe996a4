using Microhv.HAL;
using Microhv.Hypervisor.Traps;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// The stores a guest kernel makes straight into a page-table entry and that writable page tables
/// emulate: mov, xchg and cmpxchg, the logic read-modify-writes (or, and, xor) and the bit
/// operations (bts, btr, btc). Linux's ptep_set_wrprotect is a one-byte `lock and`, its
/// ptep_test_and_clear_young a `lock btr`. Xen emulates any instruction with its x86_emulate; these
/// are the ones a PV kernel uses on page tables. A sub-word store is merged into the 8-byte entry,
/// as Xen's ptwr_emulated_update does.
/// </summary>
public static class PteWriteInstruction
{
    public const ulong ArithmeticFlags = 0x8D5;       // CF PF AF ZF SF OF
    private const ulong CF = 1, PF = 1 << 2, AF = 1 << 4, ZF = 1 << 6, SF = 1 << 7, OF = 1 << 11;

    /// <summary>
    /// Carries out <paramref name="insn"/>, whose memory operand is the <paramref name="width"/>-byte
    /// part <paramref name="old"/> of an entry: sets <paramref name="value"/> (what to store there) and
    /// <paramref name="store"/> (false: nothing is written, e.g. a failed cmpxchg). Registers and flags
    /// are only changed through <see cref="Retire"/>, once the new entry has validated.
    /// </summary>
    public static bool Compute(in DecodedInstruction insn, ref TrapFrame regs, int width, ulong old, out ulong value, out bool store)
    {
        ulong mask = Mask(width);
        value = old;
        store = true;
        int op = insn.Opcode;
        if (insn.OpcodeMap == 1)
        {
            switch (op)
            {
                case 0x88: case 0x89: case 0x86: case 0x87:                 // mov, xchg
                    value = Source(in insn, ref regs, width);
                    return true;
                case 0xC6: case 0xC7:
                    if (insn.RegField != 0) return false;
                    value = (ulong)SignExtendImmediate(in insn) & mask;
                    return true;
                case 0x08: case 0x09: value = old | Source(in insn, ref regs, width); return true;
                case 0x20: case 0x21: value = old & Source(in insn, ref regs, width); return true;
                case 0x30: case 0x31: value = old ^ Source(in insn, ref regs, width); return true;
                case 0x80: case 0x81: case 0x83:
                {
                    ulong imm = (ulong)SignExtendImmediate(in insn) & mask;
                    switch (insn.RegField)
                    {
                        case 1: value = old | imm; return true;
                        case 4: value = old & imm; return true;
                        case 6: value = old ^ imm; return true;
                    }
                    return false;
                }
            }
            return false;
        }
        if (insn.OpcodeMap != 2) return false;
        switch (op)
        {
            case 0xB0: case 0xB1:                                           // cmpxchg
                value = Source(in insn, ref regs, width);
                store = (regs.Rax & mask) == old;
                return true;
            case 0xAB: case 0xB3: case 0xBB:                                // bts, btr, btc with a register offset
            {
                ulong bit = InstructionDecoder.ReadRegister(ref regs, insn.Reg);
                if (bit >= (ulong)width * 8) return false;                  // the bit lies in another word
                value = BitOp(op == 0xAB ? 5 : op == 0xB3 ? 6 : 7, old, (int)bit);
                return true;
            }
            case 0xBA:                                                      // bts, btr, btc imm8
                if (insn.RegField < 5) return false;                        // bt (4) does not write
                value = BitOp(insn.RegField, old, (int)(insn.Immediate & (ulong)(width * 8 - 1)));
                return true;
        }
        return false;
    }

    /// <summary>Register and RFLAGS effects of an emulated instruction (the memory part is already done).</summary>
    public static void Retire(in DecodedInstruction insn, ref TrapFrame regs, int width, ulong old, ulong value, bool store)
    {
        int op = insn.Opcode;
        if (insn.OpcodeMap == 1)
        {
            switch (op)
            {
                case 0x86: case 0x87: SetRegister(in insn, ref regs, width, old); return;
                case 0x08: case 0x09: case 0x20: case 0x21: case 0x30: case 0x31: case 0x80: case 0x81: case 0x83:
                    regs.Rflags = (regs.Rflags & ~ArithmeticFlags) | LogicFlags(value, width);
                    return;
            }
            return;
        }
        switch (op)
        {
            case 0xB0: case 0xB1:
                regs.Rflags = (regs.Rflags & ~ArithmeticFlags) | SubtractFlags(regs.Rax & Mask(width), old, width);
                if (!store) SetAccumulator(ref regs, width, old);
                return;
            case 0xAB: case 0xB3: case 0xBB: case 0xBA:
            {
                int bit = op == 0xBA ? (int)(insn.Immediate & (ulong)(width * 8 - 1)) : (int)InstructionDecoder.ReadRegister(ref regs, insn.Reg);
                regs.Rflags = (regs.Rflags & ~CF) | ((old >> bit) & 1);
                return;
            }
        }
    }

    public static ulong Mask(int width) => width >= 8 ? 0xFFFF_FFFF_FFFF_FFFFUL : (1UL << (width * 8)) - 1;

    private static ulong BitOp(int kind, ulong old, int bit)
    {
        ulong b = 1UL << bit;
        if (kind == 5) return old | b;
        if (kind == 6) return old & ~b;
        return old ^ b;
    }

    private static long SignExtendImmediate(in DecodedInstruction insn)
    {
        if (insn.ImmediateSize == 1) return (sbyte)(byte)insn.Immediate;
        if (insn.ImmediateSize == 2) return (short)(ushort)insn.Immediate;
        return (int)(uint)insn.Immediate;
    }

    /// <summary>The ModRM reg operand at the operand width; without REX, byte registers 4..7 are AH, CH, DH, BH.</summary>
    private static ulong Source(in DecodedInstruction insn, ref TrapFrame regs, int width)
    {
        if (width == 1 && !insn.HasRex && insn.Reg >= 4 && insn.Reg < 8)
            return (InstructionDecoder.ReadRegister(ref regs, insn.Reg - 4) >> 8) & 0xFF;
        return InstructionDecoder.ReadRegister(ref regs, insn.Reg) & Mask(width);
    }

    /// <summary>Writes the ModRM reg operand as the CPU does: 32-bit writes zero the upper half, 8/16-bit writes merge.</summary>
    private static void SetRegister(in DecodedInstruction insn, ref TrapFrame regs, int width, ulong value)
    {
        int n = insn.Reg;
        int shift = 0;
        if (width == 1 && !insn.HasRex && n >= 4 && n < 8) { n -= 4; shift = 8; }
        WritePart(ref regs, n, width, value, shift);
    }

    private static void SetAccumulator(ref TrapFrame regs, int width, ulong value) => WritePart(ref regs, 0, width, value, 0);

    private static void WritePart(ref TrapFrame regs, int n, int width, ulong value, int shift)
    {
        if (width == 8) { InstructionDecoder.WriteRegister(ref regs, n, value); return; }
        if (width == 4) { InstructionDecoder.WriteRegister(ref regs, n, value & 0xFFFF_FFFF); return; }
        ulong mask = Mask(width) << shift;
        ulong current = InstructionDecoder.ReadRegister(ref regs, n);
        InstructionDecoder.WriteRegister(ref regs, n, (current & ~mask) | ((value << shift) & mask));
    }

    /// <summary>OR/AND/XOR: CF and OF clear, SF ZF PF from the result (AF is undefined; left clear).</summary>
    public static ulong LogicFlags(ulong result, int width)
    {
        result &= Mask(width);
        ulong f = Parity(result);
        if (result == 0) f |= ZF;
        if (((result >> (width * 8 - 1)) & 1) != 0) f |= SF;
        return f;
    }

    /// <summary>RFLAGS arithmetic bits of CMP a, b at the operand width, as CMPXCHG sets them.</summary>
    public static ulong SubtractFlags(ulong a, ulong b, int width)
    {
        ulong mask = Mask(width);
        a &= mask;
        b &= mask;
        ulong r = (a - b) & mask;
        int top = width * 8 - 1;
        ulong f = Parity(r);
        if (a < b) f |= CF;
        if (((a ^ b ^ r) & 0x10) != 0) f |= AF;
        if (r == 0) f |= ZF;
        if (((r >> top) & 1) != 0) f |= SF;
        if (((((a ^ b) & (a ^ r)) >> top) & 1) != 0) f |= OF;
        return f;
    }

    private static ulong Parity(ulong r)
    {
        int ones = 0;
        for (int i = 0; i < 8; i++) ones += (int)((r >> i) & 1);
        return (ones & 1) == 0 ? PF : 0;
    }
}
