using Microhv.HAL;

namespace Microhv.Hypervisor.Traps;

/// <summary>Legacy prefixes seen before the opcode (bit flags of DecodedInstruction.Prefixes).</summary>
public static class InstructionPrefix
{
    public const int OperandSize = 1;   // 66
    public const int AddressSize = 2;   // 67
    public const int Lock = 4;          // F0
    public const int Repne = 8;         // F2
    public const int Rep = 16;          // F3
    public const int Segment = 32;      // 26/2E/36/3E/64/65 (which one: DecodedInstruction.Segment)
}

/// <summary>Segment register numbers as the ModRM reg field and the override prefixes name them.</summary>
public static class SegmentRegister
{
    public const int None = -1, ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5;
}

/// <summary>
/// One decoded x86-64 instruction: what privileged-instruction emulation and writable page-table
/// emulation need to know to carry it out (operands, sizes, effective-address parts), not a full
/// disassembly. Register numbers are 0..15 in the encoding order (rax, rcx, rdx, rbx, rsp, rbp,
/// rsi, rdi, r8..r15), REX extensions already applied.
/// </summary>
public struct DecodedInstruction
{
    /// <summary>Total bytes, prefixes to immediate.</summary>
    public int Length;
    /// <summary>The opcode byte (after 0F, or after 0F 38 / 0F 3A).</summary>
    public int Opcode;
    /// <summary>1: one-byte map, 2: 0F, 3: 0F 38, 4: 0F 3A.</summary>
    public int OpcodeMap;

    public bool HasModRM;
    public int ModRM, Mod;
    /// <summary>ModRM.reg with REX.R (for group opcodes, the raw 0..7 sub-opcode is RegField).</summary>
    public int Reg, RegField;
    /// <summary>ModRM.rm with REX.B (the register operand when Mod == 3).</summary>
    public int Rm;

    public bool HasRex, RexW, RexR, RexX, RexB;
    /// <summary>Operand size in bytes: 1 for byte-operand opcodes, else 2, 4 or 8.</summary>
    public int OperandSize;
    /// <summary>Address size in bytes: 8, or 4 with a 67 prefix.</summary>
    public int AddressSize;

    public bool HasMemoryOperand;
    /// <summary>Base and index registers (-1 = none) and scale (1, 2, 4, 8) of the memory operand.</summary>
    public int BaseRegister, IndexRegister, Scale;
    public long Displacement;
    public bool IsRipRelative;

    public ulong Immediate;
    public int ImmediateSize;

    /// <summary>InstructionPrefix flags and the segment override (SegmentRegister.*).</summary>
    public int Prefixes;
    public int Segment;

    public bool HasPrefix(int prefix) => (Prefixes & prefix) != 0;
}

/// <summary>
/// A small x86-64 (long mode, 64-bit code segment) instruction decoder: legacy prefixes, REX, the
/// one-byte, 0F, 0F 38 and 0F 3A opcode maps, ModRM, SIB, displacements (RIP-relative included) and
/// immediates. VEX/EVEX/XOP and 3DNow! encodings are refused: nothing the hypervisor emulates uses them.
/// </summary>
public static class InstructionDecoder
{
    public const int MaxLength = 15;

    // Immediate kinds of an opcode.
    private const byte ImmNone = 0, Imm8 = 1, Imm16 = 2, ImmZ = 3, ImmMoffs = 4, ImmV = 5, Imm16Imm8 = 6, ImmGroup3 = 7;

    /// <summary>Decodes the instruction at bytes[0..count); false if it is truncated, too long or not decodable.</summary>
    public static bool Decode(byte[] bytes, int count, out DecodedInstruction insn)
    {
        insn = default;
        insn.BaseRegister = -1;
        insn.IndexRegister = -1;
        insn.Scale = 1;
        insn.Segment = SegmentRegister.None;
        if (bytes == null) return false;
        if (count > bytes.Length) count = bytes.Length;
        if (count > MaxLength) count = MaxLength;

        int i = 0;
        int rex = 0;
        // Legacy prefixes, then an optional REX that counts only if the opcode follows it directly.
        while (true)
        {
            if (i >= count) return false;
            byte b = bytes[i];
            int flag = 0;
            int seg = SegmentRegister.None;
            switch (b)
            {
                case 0x66: flag = InstructionPrefix.OperandSize; break;
                case 0x67: flag = InstructionPrefix.AddressSize; break;
                case 0xF0: flag = InstructionPrefix.Lock; break;
                case 0xF2: flag = InstructionPrefix.Repne; break;
                case 0xF3: flag = InstructionPrefix.Rep; break;
                case 0x26: seg = SegmentRegister.ES; break;
                case 0x2E: seg = SegmentRegister.CS; break;
                case 0x36: seg = SegmentRegister.SS; break;
                case 0x3E: seg = SegmentRegister.DS; break;
                case 0x64: seg = SegmentRegister.FS; break;
                case 0x65: seg = SegmentRegister.GS; break;
            }
            if (b >= 0x40 && b <= 0x4F) { rex = b; i++; continue; }
            if (flag == 0 && seg == SegmentRegister.None) break;
            rex = 0;                                   // a prefix after REX cancels the REX
            if (flag == InstructionPrefix.Repne) insn.Prefixes &= ~InstructionPrefix.Rep;
            if (flag == InstructionPrefix.Rep) insn.Prefixes &= ~InstructionPrefix.Repne;
            insn.Prefixes |= flag;
            if (seg != SegmentRegister.None)
            {
                // In 64-bit mode only FS and GS overrides change the address; the last one wins.
                if (seg == SegmentRegister.FS || seg == SegmentRegister.GS) insn.Segment = seg;
                else if (insn.Segment != SegmentRegister.FS && insn.Segment != SegmentRegister.GS) insn.Segment = seg;
                insn.Prefixes |= InstructionPrefix.Segment;
            }
            i++;
        }
        if (rex != 0)
        {
            insn.HasRex = true;
            insn.RexW = (rex & 8) != 0;
            insn.RexR = (rex & 4) != 0;
            insn.RexX = (rex & 2) != 0;
            insn.RexB = (rex & 1) != 0;
        }
        insn.AddressSize = (insn.Prefixes & InstructionPrefix.AddressSize) != 0 ? 4 : 8;

        int op = bytes[i++];
        int map = 1;
        if (op == 0x0F)
        {
            if (i >= count) return false;
            op = bytes[i++];
            map = 2;
            if (op == 0x38 || op == 0x3A)
            {
                map = op == 0x38 ? 3 : 4;
                if (i >= count) return false;
                op = bytes[i++];
            }
        }
        insn.Opcode = op;
        insn.OpcodeMap = map;

        bool hasModRM;
        byte imm;
        if (!Classify(map, op, rex, out hasModRM, out imm)) return false;

        // Operand size: byte opcodes, else 64 with REX.W, 16 with 66, 32 by default; stack and
        // near-branch opcodes default to 64.
        bool byteOp = map == 1 && IsByteOperand(op);
        if (byteOp) insn.OperandSize = 1;
        else if (insn.RexW) insn.OperandSize = 8;
        else if ((insn.Prefixes & InstructionPrefix.OperandSize) != 0) insn.OperandSize = 2;
        else insn.OperandSize = DefaultsTo64(map, op) ? 8 : 4;

        if (hasModRM)
        {
            if (i >= count) return false;
            int modrm = bytes[i++];
            insn.HasModRM = true;
            insn.ModRM = modrm;
            insn.Mod = modrm >> 6;
            insn.RegField = (modrm >> 3) & 7;
            insn.Reg = insn.RegField | (insn.RexR ? 8 : 0);
            int rm = modrm & 7;
            insn.Rm = rm | (insn.RexB ? 8 : 0);
            // mov to/from control and debug registers ignores mod: the operand is always a register.
            bool forceRegister = map == 2 && op >= 0x20 && op <= 0x23;
            if (forceRegister) insn.Mod = 3;
            if (insn.Mod != 3)
            {
                insn.HasMemoryOperand = true;
                if (rm == 4)
                {
                    if (i >= count) return false;
                    int sib = bytes[i++];
                    insn.Scale = 1 << (sib >> 6);
                    int index = ((sib >> 3) & 7) | (insn.RexX ? 8 : 0);
                    insn.IndexRegister = index == 4 ? -1 : index;     // rsp can't be an index (r12 can)
                    int sbase = sib & 7;
                    if (sbase == 5 && insn.Mod == 0)
                    {
                        insn.BaseRegister = -1;
                        if (!ReadSigned(bytes, count, ref i, 4, out insn.Displacement)) return false;
                    }
                    else insn.BaseRegister = sbase | (insn.RexB ? 8 : 0);
                }
                else if (rm == 5 && insn.Mod == 0)
                {
                    insn.IsRipRelative = true;
                    if (!ReadSigned(bytes, count, ref i, 4, out insn.Displacement)) return false;
                }
                else insn.BaseRegister = insn.Rm;

                if (insn.Mod == 1) { if (!ReadSigned(bytes, count, ref i, 1, out insn.Displacement)) return false; }
                else if (insn.Mod == 2) { if (!ReadSigned(bytes, count, ref i, 4, out insn.Displacement)) return false; }
            }
        }

        int immSize = 0, imm2Size = 0;
        switch (imm)
        {
            case Imm8: immSize = 1; break;
            case Imm16: immSize = 2; break;
            case ImmZ: immSize = insn.OperandSize == 2 ? 2 : 4; break;
            case ImmMoffs: immSize = insn.AddressSize; break;
            case ImmV: immSize = insn.OperandSize; break;
            case Imm16Imm8: immSize = 2; imm2Size = 1; break;
            case ImmGroup3:
                if (insn.RegField < 2) immSize = op == 0xF6 ? 1 : (insn.OperandSize == 2 ? 2 : 4);
                break;
        }
        if (immSize != 0)
        {
            if (i + immSize + imm2Size > count) return false;
            ulong value = 0;
            for (int k = 0; k < immSize; k++) value |= (ulong)bytes[i + k] << (8 * k);
            // enter's second immediate (nesting level) sits above the first.
            for (int k = 0; k < imm2Size; k++) value |= (ulong)bytes[i + immSize + k] << (8 * (immSize + k));
            insn.Immediate = value;
            insn.ImmediateSize = immSize + imm2Size;
            i += immSize + imm2Size;
        }
        insn.Length = i;
        return true;
    }

    private static bool ReadSigned(byte[] bytes, int count, ref int i, int size, out long value)
    {
        value = 0;
        if (i + size > count) return false;
        if (size == 1) value = (sbyte)bytes[i];
        else value = (int)((uint)bytes[i] | (uint)bytes[i + 1] << 8 | (uint)bytes[i + 2] << 16 | (uint)bytes[i + 3] << 24);
        i += size;
        return true;
    }

    /// <summary>Whether the opcode takes a ModRM byte and which immediate follows; false for encodings we refuse.</summary>
    private static bool Classify(int map, int op, int rex, out bool modrm, out byte imm)
    {
        modrm = false;
        imm = ImmNone;
        if (map == 3) { modrm = true; return true; }
        if (map == 4) { modrm = true; imm = Imm8; return true; }
        if (map == 2) return ClassifyTwoByte(op, out modrm, out imm);

        if (op < 0x40)
        {
            int low = op & 7;
            if (low < 4) { modrm = true; return true; }
            if (low == 4) { imm = Imm8; return true; }
            if (low == 5) { imm = ImmZ; return true; }
            return false;                      // push/pop seg, daa/das/aaa/aas: invalid in 64-bit mode
        }
        if (op <= 0x5F) return true;           // push/pop reg (40-4F are REX, handled earlier)
        switch (op)
        {
            case 0x63: modrm = true; return true;
            case 0x68: imm = ImmZ; return true;
            case 0x69: modrm = true; imm = ImmZ; return true;
            case 0x6A: imm = Imm8; return true;
            case 0x6B: modrm = true; imm = Imm8; return true;
            case 0x6C: case 0x6D: case 0x6E: case 0x6F: return true;
            case 0x80: case 0x83: modrm = true; imm = Imm8; return true;
            case 0x81: modrm = true; imm = ImmZ; return true;
            case 0x9A: return false;
            case 0xA8: imm = Imm8; return true;
            case 0xA9: imm = ImmZ; return true;
            case 0xC0: case 0xC1: modrm = true; imm = Imm8; return true;
            case 0xC2: case 0xCA: imm = Imm16; return true;
            case 0xC6: modrm = true; imm = Imm8; return true;
            case 0xC7: modrm = true; imm = ImmZ; return true;
            case 0xC8: imm = Imm16Imm8; return true;
            case 0xCD: imm = Imm8; return true;
            case 0xE8: case 0xE9: imm = ImmZ; return true;
            case 0xEB: imm = Imm8; return true;
            case 0xF6: case 0xF7: modrm = true; imm = ImmGroup3; return true;
            case 0xFE: case 0xFF: modrm = true; return true;
            // Invalid in 64-bit mode, or VEX/EVEX escapes we do not decode.
            case 0x60: case 0x61: case 0x62: case 0x82: case 0xC4: case 0xC5: case 0xCE:
            case 0xD4: case 0xD5: case 0xD6: case 0xEA:
                return false;
        }
        if (op >= 0x70 && op <= 0x7F) { imm = Imm8; return true; }
        if (op >= 0x84 && op <= 0x8F) { modrm = true; return true; }
        if (op >= 0xA0 && op <= 0xA3) { imm = ImmMoffs; return true; }
        if (op >= 0xB0 && op <= 0xB7) { imm = Imm8; return true; }
        if (op >= 0xB8 && op <= 0xBF) { imm = (rex & 8) != 0 ? ImmV : ImmZ; return true; }
        if (op >= 0xD0 && op <= 0xD3) { modrm = true; return true; }
        if (op >= 0xD8 && op <= 0xDF) { modrm = true; return true; }
        if (op >= 0xE0 && op <= 0xE7) { imm = Imm8; return true; }
        return true;                           // everything else in the one-byte map has no operand bytes
    }

    private static bool ClassifyTwoByte(int op, out bool modrm, out byte imm)
    {
        modrm = false;
        imm = ImmNone;
        switch (op)
        {
            case 0x04: case 0x0A: case 0x0C: case 0x0F: case 0x24: case 0x25: case 0x26: case 0x27:
            case 0x36: case 0x39: case 0x3B: case 0x3C: case 0x3D: case 0x3E: case 0x3F:
            case 0x7A: case 0x7B:
                return false;                  // undefined, or 3DNow! (0F 0F)
            case 0x05: case 0x06: case 0x07: case 0x08: case 0x09: case 0x0B: case 0x0E:
            case 0x30: case 0x31: case 0x32: case 0x33: case 0x34: case 0x35: case 0x37: case 0x77:
            case 0xA0: case 0xA1: case 0xA2: case 0xA8: case 0xA9: case 0xAA:
                return true;
            case 0x70: case 0x71: case 0x72: case 0x73: case 0xA4: case 0xAC: case 0xBA:
            case 0xC2: case 0xC4: case 0xC5: case 0xC6:
                modrm = true; imm = Imm8; return true;
        }
        if (op >= 0x80 && op <= 0x8F) { imm = ImmZ; return true; }     // jcc rel32
        if (op >= 0xC8 && op <= 0xCF) return true;                     // bswap
        modrm = true;
        return true;
    }

    /// <summary>One-byte opcodes whose operands are bytes (the low bit of the ALU and mov patterns is clear).</summary>
    private static bool IsByteOperand(int op)
    {
        if (op < 0x40) return (op & 7) == 0 || (op & 7) == 2 || (op & 7) == 4;
        switch (op)
        {
            case 0x6C: case 0x6E: case 0x80: case 0x82: case 0x84: case 0x86: case 0x88: case 0x8A:
            case 0xA0: case 0xA2: case 0xA4: case 0xA6: case 0xA8: case 0xAA: case 0xAC: case 0xAE:
            case 0xC0: case 0xC6: case 0xD0: case 0xD2: case 0xE4: case 0xE6: case 0xEC: case 0xEE:
            case 0xF6: case 0xFE:
                return true;
        }
        return op >= 0xB0 && op <= 0xB7;
    }

    /// <summary>Opcodes whose operand size is 64 bits without REX.W in long mode (stack operations, near branches).</summary>
    private static bool DefaultsTo64(int map, int op)
    {
        if (map == 2) return (op >= 0x80 && op <= 0x8F) || op == 0xA0 || op == 0xA1 || op == 0xA8 || op == 0xA9;
        if (map != 1) return false;
        if (op >= 0x50 && op <= 0x5F) return true;
        if (op >= 0x70 && op <= 0x7F) return true;
        switch (op)
        {
            case 0x68: case 0x6A: case 0x8F: case 0x9C: case 0x9D: case 0xC2: case 0xC3: case 0xC8: case 0xC9:
            case 0xE0: case 0xE1: case 0xE2: case 0xE3: case 0xE8: case 0xE9: case 0xEB:
                return true;
        }
        return false;
    }

    /// <summary>Reads general register <paramref name="n"/> (0..15, encoding order) of a frame.</summary>
    public static ulong ReadRegister(ref TrapFrame regs, int n)
    {
        switch (n)
        {
            case 0: return regs.Rax;
            case 1: return regs.Rcx;
            case 2: return regs.Rdx;
            case 3: return regs.Rbx;
            case 4: return regs.Rsp;
            case 5: return regs.Rbp;
            case 6: return regs.Rsi;
            case 7: return regs.Rdi;
            case 8: return regs.R8;
            case 9: return regs.R9;
            case 10: return regs.R10;
            case 11: return regs.R11;
            case 12: return regs.R12;
            case 13: return regs.R13;
            case 14: return regs.R14;
            case 15: return regs.R15;
        }
        return 0;
    }

    /// <summary>Writes all 64 bits of general register <paramref name="n"/> (0..15, encoding order).</summary>
    public static void WriteRegister(ref TrapFrame regs, int n, ulong value)
    {
        switch (n)
        {
            case 0: regs.Rax = value; break;
            case 1: regs.Rcx = value; break;
            case 2: regs.Rdx = value; break;
            case 3: regs.Rbx = value; break;
            case 4: regs.Rsp = value; break;
            case 5: regs.Rbp = value; break;
            case 6: regs.Rsi = value; break;
            case 7: regs.Rdi = value; break;
            case 8: regs.R8 = value; break;
            case 9: regs.R9 = value; break;
            case 10: regs.R10 = value; break;
            case 11: regs.R11 = value; break;
            case 12: regs.R12 = value; break;
            case 13: regs.R13 = value; break;
            case 14: regs.R14 = value; break;
            case 15: regs.R15 = value; break;
        }
    }

    /// <summary>
    /// The memory operand's linear address without a segment base: base + index * scale + displacement
    /// (RIP-relative: from the end of the instruction at regs.Rip), truncated to 32 bits under a 67 prefix.
    /// FS/GS overrides are added by the overload that takes the vCPU.
    /// </summary>
    public static ulong EffectiveAddress(in DecodedInstruction insn, ref TrapFrame regs)
    {
        ulong ea;
        if (insn.IsRipRelative) ea = regs.Rip + (ulong)insn.Length + (ulong)insn.Displacement;
        else
        {
            ea = (ulong)insn.Displacement;
            if (insn.BaseRegister >= 0) ea += ReadRegister(ref regs, insn.BaseRegister);
            if (insn.IndexRegister >= 0) ea += ReadRegister(ref regs, insn.IndexRegister) * (ulong)insn.Scale;
        }
        if (insn.AddressSize == 4) ea &= 0xFFFF_FFFF;
        return ea;
    }

    /// <summary>EffectiveAddress plus the guest's FS or GS base when the instruction names one.</summary>
    public static ulong EffectiveAddress(in DecodedInstruction insn, ref TrapFrame regs, Vcpu v)
    {
        ulong ea = EffectiveAddress(in insn, ref regs);
        if (insn.Segment == SegmentRegister.FS) ea += SegmentBases.Fs(v);
        else if (insn.Segment == SegmentRegister.GS) ea += SegmentBases.ActiveGs(v);
        return ea;
    }
}
