using System;
using System.Collections.Generic;
using Iced.Intel;

namespace Microhv.Tests.Hypervisor.AbiRom;

/// <summary>What the interpreted ROM asked of the hypervisor: the registers at SYSCALL and a copy of
/// the memory the hypercall's pointer arguments named, read at that moment.</summary>
public sealed class RecordedHypercall
{
    public ulong Nr, Rdi, Rsi, Rdx, R10, R8;
    public ulong Rsp;
    /// <summary>4 KiB at rdi and 16 bytes at rsi, as they were at the SYSCALL.</summary>
    public byte[] RdiMemory, RsiMemory;
    public ulong RdiQword(int offset) => System.BitConverter.ToUInt64(RdiMemory, offset);
}

/// <summary>
/// A small x86-64 interpreter for exactly the instructions the ABI ROM uses, built on Iced's decoder,
/// so the tests can run ROM entries and observe their effect on memory and registers. SYSCALL is the
/// hypervisor: it records the call, returns <see cref="NextResult"/> in rax, and clobbers rcx and r11
/// as the CPU does and the argument registers as Xen's debug builds do. Anything it does not know
/// (or a fetch outside the ROM) fails the test. It proves behaviour under this model of the CPU, not
/// on silicon: flags other than ZF, SF and CF are not modelled.
/// </summary>
public sealed class RomCpu
{
    public readonly Dictionary<ulong, byte[]> Pages = new();
    public readonly ulong[] R = new ulong[16];           // rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15
    public ulong Rip;
    private bool _zf, _sf, _cf;
    public readonly ulong RomBase, RomEnd;
    public readonly List<RecordedHypercall> Hypercalls = new();
    public long NextResult;
    public ulong Tsc = 0x1234_5678_9ABC;
    public readonly List<(uint Msr, ulong Value)> Wrmsrs = new();
    public ulong RdmsrValue;
    public int ForcedCpuids;
    public bool StopAtSyscall;
    public const ulong Poison = 0xDEAD_BEEF_DEAD_BEEF;
    public const ulong ReturnSentinel = 0x0000_7FFF_DEAD_0000;

    public RomCpu(byte[] rom, ulong romBase)
    {
        RomBase = romBase;
        RomEnd = romBase + (ulong)rom.Length;
        for (int i = 0; i < rom.Length; i++) Write(romBase + (ulong)i, 1, rom[i]);
    }

    public ref ulong Reg(int i) => ref R[i];
    public const int RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSP = 4, RBP = 5, RSI = 6, RDI = 7, R8 = 8, R10 = 10, R11 = 11;

    private byte[] Page(ulong a)
    {
        ulong p = a & ~0xFFFUL;
        if (!Pages.TryGetValue(p, out var page)) Pages[p] = page = new byte[4096];
        return page;
    }
    public byte Read8(ulong a) => Page(a)[a & 0xFFF];
    public ulong Read(ulong a, int size) { ulong v = 0; for (int i = size - 1; i >= 0; i--) v = (v << 8) | Read8(a + (ulong)i); return v; }
    public void Write(ulong a, int size, ulong v) { for (int i = 0; i < size; i++) Page(a + (ulong)i)[(a + (ulong)i) & 0xFFF] = (byte)(v >> (8 * i)); }
    public byte[] ReadBytes(ulong a, int n) { var b = new byte[n]; for (int i = 0; i < n; i++) b[i] = Read8(a + (ulong)i); return b; }

    private static int Index(Register r) => r.GetFullRegister() switch
    {
        Register.RAX => 0, Register.RCX => 1, Register.RDX => 2, Register.RBX => 3, Register.RSP => 4, Register.RBP => 5,
        Register.RSI => 6, Register.RDI => 7, Register.R8 => 8, Register.R9 => 9, Register.R10 => 10, Register.R11 => 11,
        Register.R12 => 12, Register.R13 => 13, Register.R14 => 14, Register.R15 => 15,
        _ => throw new InvalidOperationException("register " + r),
    };

    private ulong GetReg(Register r)
    {
        ulong v = R[Index(r)];
        return r.GetSize() switch { 1 => v & 0xFF, 2 => v & 0xFFFF, 4 => v & 0xFFFF_FFFF, _ => v };
    }

    private void SetReg(Register r, ulong v)
    {
        int i = Index(r);
        R[i] = r.GetSize() switch
        {
            1 => (R[i] & ~0xFFUL) | (v & 0xFF),
            2 => (R[i] & ~0xFFFFUL) | (v & 0xFFFF),
            4 => v & 0xFFFF_FFFF,                    // 32-bit writes zero-extend
            _ => v,
        };
    }

    private static ulong Mask(int size) => size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    private int OpSize(in Instruction ins, int op)
    {
        return ins.GetOpKind(op) switch
        {
            OpKind.Register => ins.GetOpRegister(op).GetSize(),
            OpKind.Memory => ins.MemorySize.GetSize(),
            _ => op == 0 ? 8 : OpSize(in ins, 0),
        };
    }

    private ulong Address(in Instruction ins)
    {
        if (ins.IsIPRelativeMemoryOperand) return ins.IPRelativeMemoryAddress;
        ulong a = ins.MemoryDisplacement64;
        if (ins.MemoryBase != Register.None) a += GetReg(ins.MemoryBase);
        if (ins.MemoryIndex != Register.None) a += GetReg(ins.MemoryIndex) * (ulong)ins.MemoryIndexScale;
        return a;
    }

    private ulong Get(in Instruction ins, int op, int size)
    {
        switch (ins.GetOpKind(op))
        {
            case OpKind.Register: return GetReg(ins.GetOpRegister(op));
            case OpKind.Memory: return Read(Address(in ins), size);
            default: return ins.GetImmediate(op) & Mask(size);
        }
    }

    private void Set(in Instruction ins, int op, int size, ulong v)
    {
        if (ins.GetOpKind(op) == OpKind.Register) SetReg(ins.GetOpRegister(op), v);
        else Write(Address(in ins), size, v);
    }

    private void Flags(ulong result, int size)
    {
        result &= Mask(size);
        _zf = result == 0;
        _sf = (result >> (size * 8 - 1) & 1) != 0;
    }

    private void Push(ulong v) { R[RSP] -= 8; Write(R[RSP], 8, v); }
    private ulong Pop() { ulong v = Read(R[RSP], 8); R[RSP] += 8; return v; }

    /// <summary>Calls <paramref name="entry"/> as a CALL from the guest would and runs until it returns
    /// (or, with StopAtSyscall, until its first SYSCALL). Returns the number of instructions executed.</summary>
    public int Call(ulong entry, int limit = 100_000)
    {
        Push(ReturnSentinel);
        Rip = entry;
        int steps = 0;
        while (Rip != ReturnSentinel)
        {
            if (++steps > limit) throw new InvalidOperationException("runaway ROM code");
            if (!Step()) break;
        }
        return steps;
    }

    /// <summary>Executes one instruction; false after a SYSCALL when StopAtSyscall is set.</summary>
    public bool Step()
    {
        if (Rip < RomBase || Rip >= RomEnd) throw new InvalidOperationException($"fetch outside the ROM at {Rip:X}");
        var decoder = Decoder.Create(64, new ByteArrayCodeReader(ReadBytes(Rip, 15)), Rip);
        decoder.Decode(out Instruction ins);
        if (ins.IsInvalid) throw new InvalidOperationException($"invalid instruction at {Rip:X}");
        ulong next = ins.NextIP;
        int size = ins.OpCount > 0 ? OpSize(in ins, 0) : 8;
        switch (ins.Mnemonic)
        {
            case Mnemonic.Mov: Set(in ins, 0, size, Get(in ins, 1, size)); break;
            case Mnemonic.Movzx: Set(in ins, 0, size, Get(in ins, 1, OpSize(in ins, 1))); break;
            case Mnemonic.Movsx:
            {
                int s1 = OpSize(in ins, 1);
                ulong v = Get(in ins, 1, s1);
                if ((v >> (s1 * 8 - 1) & 1) != 0) v |= ~Mask(s1);
                Set(in ins, 0, size, v & Mask(size));
                break;
            }
            case Mnemonic.Lea: SetReg(ins.Op0Register, Address(in ins)); break;
            case Mnemonic.Push: Push(ins.GetOpKind(0) == OpKind.Register || ins.GetOpKind(0) == OpKind.Memory ? Get(in ins, 0, 8) : ins.GetImmediate(0)); break;
            case Mnemonic.Pop: SetReg(ins.Op0Register, Pop()); break;
            case Mnemonic.Xor: case Mnemonic.And: case Mnemonic.Or: case Mnemonic.Test:
            {
                ulong a = Get(in ins, 0, size), b = Get(in ins, 1, size);
                ulong r = ins.Mnemonic == Mnemonic.Xor ? a ^ b : ins.Mnemonic == Mnemonic.Or ? a | b : a & b;
                Flags(r, size); _cf = false;
                if (ins.Mnemonic != Mnemonic.Test) Set(in ins, 0, size, r & Mask(size));
                break;
            }
            case Mnemonic.Add: case Mnemonic.Sub: case Mnemonic.Cmp:
            {
                ulong a = Get(in ins, 0, size), b = Get(in ins, 1, size);
                ulong r = (ins.Mnemonic == Mnemonic.Add ? a + b : a - b) & Mask(size);
                _cf = ins.Mnemonic == Mnemonic.Add ? r < a : a < b;
                Flags(r, size);
                if (ins.Mnemonic != Mnemonic.Cmp) Set(in ins, 0, size, r);
                break;
            }
            case Mnemonic.Inc: case Mnemonic.Dec:
            {
                ulong r = (Get(in ins, 0, size) + (ins.Mnemonic == Mnemonic.Inc ? 1UL : ulong.MaxValue)) & Mask(size);
                Flags(r, size);
                Set(in ins, 0, size, r);
                break;
            }
            case Mnemonic.Neg: { ulong r = (0 - Get(in ins, 0, size)) & Mask(size); Flags(r, size); Set(in ins, 0, size, r); break; }
            case Mnemonic.Shl: case Mnemonic.Shr:
            {
                int count = (int)(Get(in ins, 1, 1) & (size == 8 ? 63UL : 31UL));
                ulong v = Get(in ins, 0, size);
                ulong r = ins.Mnemonic == Mnemonic.Shl ? v << count : v >> count;
                if (count != 0) Flags(r, size);
                Set(in ins, 0, size, r & Mask(size));
                break;
            }
            case Mnemonic.Shrd:
            {
                int count = (int)(ins.GetImmediate(2) & 63);
                ulong r = (Get(in ins, 0, 8) >> count) | (Get(in ins, 1, 8) << (64 - count));
                Set(in ins, 0, 8, r);
                break;
            }
            case Mnemonic.Mul:
            {
                UInt128 p = (UInt128)R[RAX] * Get(in ins, 0, 8);
                R[RAX] = (ulong)p; R[RDX] = (ulong)(p >> 64);
                break;
            }
            case Mnemonic.Je: if (_zf) next = ins.NearBranchTarget; break;
            case Mnemonic.Jne: if (!_zf) next = ins.NearBranchTarget; break;
            case Mnemonic.Js: if (_sf) next = ins.NearBranchTarget; break;
            case Mnemonic.Jae: if (!_cf) next = ins.NearBranchTarget; break;
            case Mnemonic.Jb: if (_cf) next = ins.NearBranchTarget; break;
            case Mnemonic.Jmp: next = ins.NearBranchTarget; break;
            case Mnemonic.Call: Push(next); next = ins.NearBranchTarget; break;
            case Mnemonic.Ret: next = Pop(); break;
            case Mnemonic.Lfence: break;
            case Mnemonic.Rdtsc: R[RAX] = Tsc & 0xFFFF_FFFF; R[RDX] = Tsc >> 32; break;
            case Mnemonic.Rdmsr: R[RAX] = RdmsrValue & 0xFFFF_FFFF; R[RDX] = RdmsrValue >> 32; break;
            case Mnemonic.Wrmsr: Wrmsrs.Add(((uint)R[RCX], (R[RDX] << 32) | (R[RAX] & 0xFFFF_FFFF))); break;
            case Mnemonic.Ud2:
            {
                // Xen's forced-emulation prefix: ud2; "xen"; cpuid → the hypervisor's CPUID.
                byte[] tail = ReadBytes(next, 5);
                if (tail[0] != 0x78 || tail[1] != 0x65 || tail[2] != 0x6E || tail[3] != 0x0F || tail[4] != 0xA2)
                    throw new InvalidOperationException("bare ud2");
                ForcedCpuids++;
                uint leaf = (uint)R[RAX];
                R[RAX] = leaf ^ 0xA; R[RBX] = leaf ^ 0xB; R[RCX] = leaf ^ 0xC; R[RDX] = leaf ^ 0xD;
                next += 5;
                break;
            }
            case Mnemonic.Syscall:
            {
                var h = new RecordedHypercall { Nr = R[RAX], Rdi = R[RDI], Rsi = R[RSI], Rdx = R[RDX], R10 = R[R10], R8 = R[R8], Rsp = R[RSP],
                    RdiMemory = ReadBytes(R[RDI], 4096), RsiMemory = ReadBytes(R[RSI], 16) };
                Hypercalls.Add(h);
                if (StopAtSyscall) { Rip = next; return false; }
                R[RAX] = (ulong)NextResult;
                R[RCX] = next; R[R11] = 0x202;
                R[RDI] = R[RSI] = R[RDX] = R[R10] = R[R8] = Poison;
                break;
            }
            default: throw new InvalidOperationException($"unmodelled instruction {ins} at {Rip:X}");
        }
        Rip = next;
        return true;
    }
}
