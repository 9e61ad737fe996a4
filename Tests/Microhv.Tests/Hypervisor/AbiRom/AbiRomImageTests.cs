extern alias romgen;
using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using Iced.Intel;
using Microhv.Hypervisor;
using Xunit;

namespace Microhv.Tests.Hypervisor.AbiRom;

/// <summary>The committed ROM image against docs/abi-rom.md: header, checksum, call table, code shape.</summary>
public class AbiRomImageTests
{
    internal static readonly byte[] Rom = AbiRomImage.Bytes;
    internal static uint U32(int o) => BitConverter.ToUInt32(Rom, o);
    internal static ushort U16(int o) => BitConverter.ToUInt16(Rom, o);

    /// <summary>(entry offset, call number, reloc type, clobbers) for each call-table entry.</summary>
    internal static List<(uint Offset, int Number, int Reloc, uint Clobbers)> Table()
    {
        var list = new List<(uint, int, int, uint)>();
        int count = U16(14), table = (int)U32(16);
        for (int i = 0; i < count; i++)
        {
            int e = table + i * 12;
            list.Add((U32(e), U16(e + 4), Rom[e + 6], U32(e + 8)));
        }
        return list;
    }

    internal static uint EntryOf(int call) => Table().Single(t => t.Number == call).Offset;

    [Fact]
    public void CommittedImageIsWhatTheGeneratorBuilds()
    {
        byte[] fresh = romgen::Microhv.AbiRomGen.AbiRomBuilder.Build();
        Assert.True(fresh.SequenceEqual(Rom), "Hypervisor/AbiRomImage.g.cs is stale: run dotnet run --project Boot/AbiRomGen -- Hypervisor/AbiRomImage.g.cs");
    }

    [Fact]
    public void HeaderFieldsFollowTheSpecification()
    {
        Assert.Equal("MHVROM64", Encoding.ASCII.GetString(Rom, 0, 8));
        Assert.Equal(1, U16(8));                       // abi_version_major
        Assert.Equal(0, U16(10));                      // abi_version_minor
        Assert.Equal(48, U16(12));                     // header_length
        Assert.Equal(48u, U32(16));                    // call_table_offset: right after the header
        Assert.Equal((uint)Rom.Length, U32(20));       // rom_length
        Assert.Equal(0u, U32(20) % 4096);              // whole pages, so the ROM can be mapped read-only
        Assert.Equal(0u, U32(28));                     // flags
        Assert.Equal(U32(20), U32(32));                // data_offset: the page right after the ROM
        Assert.Equal(0u, U32(44));                     // reserved
        int tableEnd = 48 + U16(14) * 12;
        Assert.InRange(U32(36), (uint)tableEnd, U32(20) - 1);   // init inside the code
        Assert.InRange(U32(40), (uint)tableEnd, U32(20) - 1);   // get_reloc inside the code
    }

    [Fact]
    public void ChecksumMakesTheWordsSumToZero()
    {
        uint sum = 0;
        for (int i = 0; i < Rom.Length; i += 4) sum += U32(i);
        Assert.Equal(0u, sum);
        Assert.NotEqual(0u, U32(24));
        // A single flipped byte anywhere is detected.
        byte[] copy = (byte[])Rom.Clone();
        copy[0x500] ^= 0x40;
        uint bad = 0;
        for (int i = 0; i < copy.Length; i += 4) bad += BitConverter.ToUInt32(copy, i);
        Assert.NotEqual(0u, bad);
    }

    [Fact]
    public void CallTableHasEveryDocumentedCallOnceWithItsRelocation()
    {
        var table = Table();
        Assert.Equal(table.Count, table.Select(t => t.Number).Distinct().Count());
        // Relocation types per docs/abi-rom.md (VMI's: NONE 0, CALL_REL 1, JUMP_REL 2, NOP 3).
        var expected = new Dictionary<int, int>
        {
            [0] = 1, [1] = 1, [2] = 1, [3] = 1, [4] = 1, [5] = 1, [6] = 3, [7] = 1, [8] = 1, [9] = 1, [10] = 1,
            [11] = 1, [12] = 1, [13] = 1, [14] = 1, [15] = 1, [16] = 1, [17] = 1, [18] = 1, [19] = 1, [20] = 1,
            [21] = 1, [22] = 1, [23] = 3, [24] = 1, [25] = 1, [27] = 0, [28] = 1, [29] = 1, [30] = 1, [31] = 1,
            [32] = 1, [33] = 2, [35] = 1, [36] = 1, [37] = 1, [38] = 1, [40] = 1, [42] = 1, [44] = 1, [45] = 1,
            [46] = 1, [47] = 1, [61] = 1, [65] = 3, [73] = 1,
            [80] = 1, [81] = 1, [82] = 1, [83] = 1, [84] = 1, [85] = 1, [86] = 1, [87] = 1, [96] = 1, [97] = 1, [98] = 1,
        };
        Assert.Equal(expected.Keys.OrderBy(k => k), table.Select(t => t.Number).OrderBy(k => k));
        foreach (var t in table)
        {
            Assert.True(expected[t.Number] == t.Reloc, $"call {t.Number}: reloc {t.Reloc}");
            Assert.Equal(0x803u, t.Clobbers);          // rax, rcx, r11
        }
        // The per-level page-table calls share the generic entry points.
        foreach (int n in new[] { 80, 81, 82, 83 }) Assert.Equal(EntryOf(38), EntryOf(n));
        foreach (int n in new[] { 84, 85, 86, 87 }) Assert.Equal(EntryOf(40), EntryOf(n));
    }

    /// <summary>Decodes the code linearly from init (the first code byte) to the padding.</summary>
    internal static List<Instruction> Disassemble()
    {
        uint start = U32(36);
        var reader = new ByteArrayCodeReader(Rom, (int)start, Rom.Length - (int)start);
        var decoder = Iced.Intel.Decoder.Create(64, reader, start);
        var list = new List<Instruction>();
        while (decoder.IP < (ulong)Rom.Length)
        {
            decoder.Decode(out Instruction ins);
            list.Add(ins);
        }
        return list;
    }

    [Fact]
    public void EveryEntryIsAnInstructionBoundaryInsideTheCode()
    {
        var starts = new HashSet<ulong>(Disassemble().Select(i => i.IP));
        foreach (var t in Table()) Assert.Contains((ulong)t.Offset, starts);
        Assert.Contains((ulong)U32(40), starts);
        Assert.Contains((ulong)U32(36), starts);
        // Code is followed only by INT3 padding up to rom_length.
        var code = Disassemble();
        int last = code.FindLastIndex(i => i.Mnemonic != Mnemonic.Int3);
        for (ulong b = code[last].NextIP; b < (ulong)Rom.Length; b++) Assert.Equal(0xCC, Rom[b]);
    }

    [Fact]
    public void EverySyscallIsPrecededByMovEaxOfAKnownHypercall()
    {
        var code = Disassemble();
        var numbers = new HashSet<uint>();
        for (int i = 0; i < code.Count; i++)
        {
            if (code[i].Mnemonic != Mnemonic.Syscall) continue;
            Assert.Equal(Code.Mov_r32_imm32, code[i - 1].Code);
            Assert.Equal(Register.EAX, code[i - 1].Op0Register);
            numbers.Add(code[i - 1].Immediate32);
        }
        // Xen numbers (xen.h): set_trap_table 0, mmu_update 1, set_gdt 2, stack_switch 3, fpu_taskswitch 5,
        // set_debugreg 8, get_debugreg 9, update_descriptor 10, set_timer_op 15, xen_version 17,
        // console_io 18, iret 23, set_segment_base 25, mmuext_op 26, sched_op 29, physdev_op 33.
        Assert.Equal(new uint[] { 0, 1, 2, 3, 5, 8, 9, 10, 15, 17, 18, 23, 25, 26, 29, 33 }, numbers.OrderBy(n => n));
    }

    /// <summary>Instructions from an entry to its first RET or unconditional JMP.</summary>
    internal static List<Instruction> Straight(uint entry)
    {
        var list = new List<Instruction>();
        foreach (var i in Disassemble().SkipWhile(i => i.IP != entry))
        {
            list.Add(i);
            if (i.Mnemonic == Mnemonic.Ret || i.Mnemonic == Mnemonic.Jmp) break;
        }
        return list;
    }

    [Fact]
    public void DisableInterruptsIsOneByteStoreToTheUpcallMask()
    {
        var ins = Straight(EntryOf(30));
        Assert.Equal(3, ins.Count);
        // mov r11, [rip → data page + 0] (the vcpu_info pointer init stored)
        Assert.Equal(Mnemonic.Mov, ins[0].Mnemonic);
        Assert.True(ins[0].IsIPRelativeMemoryOperand);
        Assert.Equal((ulong)U32(32), ins[0].IPRelativeMemoryAddress);
        // mov byte [r11 + 1], 1: vcpu_info.evtchn_upcall_mask is the byte at offset 1 (xen.h)
        Assert.Equal(Code.Mov_rm8_imm8, ins[1].Code);
        Assert.Equal(ins[0].Op0Register, ins[1].MemoryBase);
        Assert.Equal(1UL, ins[1].MemoryDisplacement64);
        Assert.Equal(1UL, ins[1].GetImmediate(1));
        Assert.Equal(Mnemonic.Ret, ins[2].Mnemonic);
    }

    [Fact]
    public void RdtscEntryUsesTheNativeInstructionAndNoHypercall()
    {
        var ins = Straight(EntryOf(27));
        Assert.Contains(ins, i => i.Mnemonic == Mnemonic.Rdtsc);
        Assert.DoesNotContain(ins, i => i.Mnemonic == Mnemonic.Syscall);
    }
}
