using System;
using Iced.Intel;
using Microhv.HAL;
using Microhv.Hypervisor.Traps;
using Xunit;
using IcedDecoder = Iced.Intel.Decoder;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>The decoder against Iced on random encodings: lengths, ModRM/SIB operands, displacements, immediates.</summary>
public class InstructionDecoderTests
{
    // Opcodes whose decoding the emulators depend on (one-byte map), plus a spread of others.
    private static readonly int[] OneByte =
    {
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x08, 0x09, 0x0B, 0x20, 0x21, 0x29, 0x2B, 0x31, 0x33, 0x39, 0x3B, 0x3D,
        0x63, 0x68, 0x69, 0x6A, 0x6B, 0x70, 0x75, 0x80, 0x81, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B,
        0x8C, 0x8D, 0x8E, 0x90, 0xA8, 0xA9, 0xB0, 0xB3, 0xB8, 0xBF, 0xC0, 0xC1, 0xC2, 0xC3, 0xC6, 0xC7, 0xC8, 0xCC,
        0xCD, 0xD0, 0xD1, 0xD3, 0xE4, 0xE5, 0xE6, 0xE7, 0xEB, 0xEC, 0xED, 0xEE, 0xEF, 0xF4, 0xF6, 0xF7, 0xFA, 0xFB,
        0xFE, 0xFF, 0x6C, 0x6D, 0x6E, 0x6F, 0xA4, 0xA5, 0xAA, 0xAB, 0x50, 0x5F, 0x9C, 0x9D,
    };
    private static readonly int[] TwoByte =
    {
        0x01, 0x06, 0x08, 0x09, 0x0B, 0x20, 0x22, 0x21, 0x23, 0x30, 0x31, 0x32, 0xA2, 0xB0, 0xB1, 0xC7, 0xB6, 0xB7,
        0xBE, 0xBF, 0x40, 0x4F, 0x84, 0x8F, 0x94, 0xA3, 0xA4, 0xA5, 0xAB, 0xAC, 0xAF, 0xBA, 0xBB, 0xC1, 0x1F, 0xA0, 0xA1,
    };
    private static readonly byte[] Legacy = { 0x66, 0x67, 0xF0, 0xF2, 0xF3, 0x2E, 0x3E, 0x26, 0x36, 0x64, 0x65 };

    private static int IcedReg(Register r)
    {
        if (r == Register.None) return -1;
        Register full = r.GetFullRegister();
        if (full == Register.RIP) return -2;
        return full - Register.RAX;
    }

    [Fact]
    public void MatchesIcedOnRandomEncodings()
    {
        var rng = new Random(1234);
        int compared = 0, memoryCompared = 0;
        var bytes = new byte[15];
        for (int iter = 0; iter < 60000; iter++)
        {
            int n = 0;
            int prefixes = rng.Next(4) == 0 ? rng.Next(1, 3) : 0;
            for (int p = 0; p < prefixes; p++) n += Put(bytes, n, Legacy[rng.Next(Legacy.Length)]);
            if (rng.Next(2) == 0) n += Put(bytes, n, (byte)(0x40 + rng.Next(16)));
            bool two = rng.Next(3) == 0;
            if (two) { n += Put(bytes, n, 0x0F); n += Put(bytes, n, (byte)TwoByte[rng.Next(TwoByte.Length)]); }
            else n += Put(bytes, n, (byte)OneByte[rng.Next(OneByte.Length)]);
            while (n < 15) bytes[n++] = (byte)rng.Next(256);

            var icedDecoder = IcedDecoder.Create(64, new ByteArrayCodeReader(bytes));
            icedDecoder.IP = 0x1000;
            icedDecoder.Decode(out Instruction ins);
            if (ins.IsInvalid) continue;
            // Near branches with 66: Iced follows Intel (ignores it); not something we emulate.
            if (ins.FlowControl != FlowControl.Next && ins.FlowControl != FlowControl.Interrupt) { if ((Flags(bytes) & 1) != 0) continue; }

            bool ok = InstructionDecoder.Decode(bytes, 15, out DecodedInstruction d);
            Assert.True(ok, $"{Hex(bytes, ins.Length)} ({ins}) refused");
            Assert.True(ins.Length == d.Length, $"{Hex(bytes, ins.Length)} ({ins}): length {d.Length} vs Iced {ins.Length}");
            compared++;

            for (int k = 0; k < ins.OpCount; k++)
            {
                if (ins.GetOpKind(k) != OpKind.Memory) continue;
                Assert.True(d.HasMemoryOperand, $"{Hex(bytes, ins.Length)} ({ins}): no memory operand");
                if (ins.IsIPRelativeMemoryOperand)
                {
                    Assert.True(d.IsRipRelative, $"{ins}: not RIP-relative");
                    var regs = new TrapFrame { Rip = 0x1000 };
                    ulong ea = InstructionDecoder.EffectiveAddress(in d, ref regs);
                    ulong expect = ins.IPRelativeMemoryAddress;
                    if (d.AddressSize == 4) expect &= 0xFFFFFFFF;
                    Assert.Equal(expect, ea);
                }
                else
                {
                    Assert.Equal(IcedReg(ins.MemoryBase), d.BaseRegister);
                    Assert.Equal(IcedReg(ins.MemoryIndex), d.IndexRegister);
                    Assert.Equal(ins.MemoryIndexScale, d.Scale);
                    ulong disp = ins.MemoryDisplacement64;
                    if (d.AddressSize == 4) Assert.Equal(disp & 0xFFFFFFFF, (ulong)d.Displacement & 0xFFFFFFFF);
                    else Assert.Equal(disp, (ulong)d.Displacement);
                }
                memoryCompared++;
            }
            // Register operands named by ModRM: both reg and rm fields as Iced sees them.
            if (d.HasModRM && !d.HasMemoryOperand && ins.OpCount == 2 && ins.Op0Kind == OpKind.Register && ins.Op1Kind == OpKind.Register)
            {
                Register a = ins.Op0Register.GetFullRegister(), b = ins.Op1Register.GetFullRegister();
                if (a.IsGPR64() && b.IsGPR64() && !ins.Op0Register.IsGPR8() && !ins.Op1Register.IsGPR8())
                {
                    int ia = a - Register.RAX, ib = b - Register.RAX;
                    Assert.True((ia == d.Reg && ib == d.Rm) || (ia == d.Rm && ib == d.Reg), $"{ins}: reg {d.Reg} rm {d.Rm}");
                }
            }
            for (int k = 0; k < ins.OpCount; k++)
            {
                OpKind kind = ins.GetOpKind(k);
                if (d.ImmediateSize == 0) continue;     // shl r/m, 1: Iced shows the implied count as an immediate
                if (kind == OpKind.Immediate8 || kind == OpKind.Immediate16 || kind == OpKind.Immediate32 || kind == OpKind.Immediate64)
                {
                    int size = kind == OpKind.Immediate8 ? 1 : kind == OpKind.Immediate16 ? 2 : kind == OpKind.Immediate32 ? 4 : 8;
                    ulong mask = size >= 8 ? ulong.MaxValue : (1UL << (8 * size)) - 1;
                    Assert.True((ins.GetImmediate(k) & mask) == (d.Immediate & mask), $"{Hex(bytes, ins.Length)} ({ins}): immediate {d.Immediate:X}");
                }
                if (kind == OpKind.Immediate8to16 || kind == OpKind.Immediate8to32 || kind == OpKind.Immediate8to64)
                    Assert.Equal((byte)ins.GetImmediate(k), (byte)d.Immediate);
                if (kind == OpKind.Immediate32to64)
                    Assert.Equal((uint)ins.GetImmediate(k), (uint)d.Immediate);
            }
        }
        Assert.True(compared > 30000, $"only {compared} compared");
        Assert.True(memoryCompared > 10000, $"only {memoryCompared} memory operands compared");
    }

    private static int Flags(byte[] bytes)
    {
        int f = 0;
        for (int i = 0; i < 4; i++) if (bytes[i] == 0x66) f |= 1;
        return f;
    }

    [Fact]
    public void DecodesTheInstructionsTheEmulatorsNeed()
    {
        // wrmsr
        Assert.True(InstructionDecoder.Decode(new byte[] { 0x0F, 0x30 }, 2, out var d));
        Assert.Equal((2, 0x30, 2), (d.OpcodeMap, d.Opcode, d.Length));
        // mov rax, cr3 (0F 20 D8): reg = 3 (cr3), rm = 0 (rax)
        Assert.True(InstructionDecoder.Decode(new byte[] { 0x0F, 0x20, 0xD8 }, 3, out d));
        Assert.Equal((3, 0, false), (d.Reg, d.Rm, d.HasMemoryOperand));
        // mov r12, cr3 with REX.B
        Assert.True(InstructionDecoder.Decode(new byte[] { 0x41, 0x0F, 0x20, 0xDC }, 4, out d));
        Assert.Equal((3, 12), (d.Reg, d.Rm));
        // mov qword [rdi+rcx*8+0x10], rax  (48 89 44 CF 10)
        Assert.True(InstructionDecoder.Decode(new byte[] { 0x48, 0x89, 0x44, 0xCF, 0x10 }, 5, out d));
        Assert.Equal((5, 8, 7, 1, 8, 0x10L, 0), (d.Length, d.OperandSize, d.BaseRegister, d.IndexRegister, d.Scale, d.Displacement, d.Reg));
        var regs = new TrapFrame { Rdi = 0x10000, Rcx = 3 };
        Assert.Equal(0x10000UL + 24 + 0x10, InstructionDecoder.EffectiveAddress(in d, ref regs));
        // lock cmpxchg [rbx], rdx (F0 48 0F B1 13)
        Assert.True(InstructionDecoder.Decode(new byte[] { 0xF0, 0x48, 0x0F, 0xB1, 0x13 }, 5, out d));
        Assert.True(d.HasPrefix(InstructionPrefix.Lock));
        Assert.Equal((5, 0xB1, 2, 3, 2), (d.Length, d.Opcode, d.OpcodeMap, d.BaseRegister, d.Reg));
        // mov qword [rip+0x100], 0x7 (48 C7 05 00 01 00 00 07 00 00 00)
        Assert.True(InstructionDecoder.Decode(new byte[] { 0x48, 0xC7, 0x05, 0x00, 0x01, 0, 0, 7, 0, 0, 0 }, 11, out d));
        Assert.True(d.IsRipRelative);
        Assert.Equal((11, 4, 7UL), (d.Length, d.ImmediateSize, d.Immediate));
        regs = new TrapFrame { Rip = 0x5000 };
        Assert.Equal(0x5000UL + 11 + 0x100, InstructionDecoder.EffectiveAddress(in d, ref regs));
        // gs-relative: 65 48 8B 04 25 10 00 00 00 = mov rax, gs:[0x10]
        Assert.True(InstructionDecoder.Decode(new byte[] { 0x65, 0x48, 0x8B, 0x04, 0x25, 0x10, 0, 0, 0 }, 9, out d));
        Assert.Equal((SegmentRegister.GS, -1, -1, 0x10L), (d.Segment, d.BaseRegister, d.IndexRegister, d.Displacement));
        // Truncated input and an over-long prefix run are refused, never read past count.
        Assert.False(InstructionDecoder.Decode(new byte[] { 0x48, 0x89, 0x44, 0xCF }, 4, out _));
        var longRun = new byte[20];
        for (int i = 0; i < 20; i++) longRun[i] = 0x66;
        Assert.False(InstructionDecoder.Decode(longRun, 20, out _));
    }

    private static int Put(byte[] b, int n, byte v) { b[n] = v; return 1; }
    private static string Hex(byte[] b, int n) => BitConverter.ToString(b, 0, Math.Max(1, Math.Min(n, 15)));
}
