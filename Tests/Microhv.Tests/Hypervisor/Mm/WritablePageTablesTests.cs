using System.Collections.Generic;
using Iced.Intel;
using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using Xunit;
using static Iced.Intel.AssemblerRegisters;
using static Microhv.Tests.Hypervisor.Mm.MmGuest;

namespace Microhv.Tests.Hypervisor.Mm;

/// <summary>Emulation of a guest's direct store into its own (read-only mapped) page table.</summary>
public class WritablePageTablesTests
{
    private const ulong WriteFault = 1 | 2 | 4;         // P | W | U

    private sealed class Bytes : CodeWriter
    {
        public readonly List<byte> Data = new();
        public override void WriteByte(byte value) => Data.Add(value);
    }

    /// <summary>Assembles at the code page's address and writes the bytes there; returns the length.</summary>
    private static int Place(MmGuest g, Assembler a)
    {
        var w = new Bytes();
        a.Assemble(w, Va(CodeSlot));
        for (int i = 0; i < w.Data.Count; i++) g.T.Memory.Bytes[(int)(g.Code * 4096) + i] = w.Data[i];
        return w.Data.Count;
    }

    private static TrapFrame Regs() => new TrapFrame { Rip = Va(CodeSlot), Cs = Xen.FLAT_RING3_CS64, Rflags = 0x202 };

    [Fact]
    public void MovRegisterIntoAnL1EntryIsValidatedAndWritten()
    {
        var g = new MmGuest();
        var a = new Assembler(64);
        a.mov(__qword_ptr[rbx], rax);
        int length = Place(g, a);
        var regs = Regs();
        ulong cr2 = Va(L1Slot) + 30 * 8;                   // entry 30 of the L1, through its read-only mapping
        regs.Rbx = cr2;
        regs.Rax = Pte(g.Spare[0], P | RW);
        Assert.True(WritablePageTables.TryEmulate(g.V, ref regs, cr2, WriteFault));
        Assert.Equal(Va(CodeSlot) + (ulong)length, regs.Rip);
        Assert.Equal(Pte(g.Spare[0], P | RW | US), g.Get(g.L1, 30));
        Assert.Equal(FrameType.Writable, g.Type(g.Spare[0]));
        Assert.Equal(1u, g.TypeCount(g.Spare[0]));
    }

    [Fact]
    public void SibAndImmediateForms()
    {
        var g = new MmGuest();
        var a = new Assembler(64);
        a.mov(__qword_ptr[rbx + rcx * 8 + 0x10], rdx);
        int length = Place(g, a);
        var regs = Regs();
        regs.Rbx = Va(L1Slot);
        regs.Rcx = 40;
        regs.Rdx = Pte(g.Spare[1], P | US);
        ulong cr2 = Va(L1Slot) + 40 * 8 + 0x10;
        Assert.True(WritablePageTables.TryEmulate(g.V, ref regs, cr2, WriteFault));
        Assert.Equal(Va(CodeSlot) + (ulong)length, regs.Rip);
        Assert.Equal(Pte(g.Spare[1], P | US), g.Get(g.L1, 42));

        // mov qword [rdi], 0 clears an entry and gives back its references.
        a = new Assembler(64);
        a.mov(__qword_ptr[rdi], 0);
        Place(g, a);
        regs = Regs();
        regs.Rdi = Va(L1Slot) + 8;                          // entry 1 maps Data[0] writable
        Assert.True(WritablePageTables.TryEmulate(g.V, ref regs, regs.Rdi, WriteFault));
        Assert.Equal(0UL, g.Get(g.L1, 1));
        Assert.Equal(0u, g.TypeCount(g.Data[0]));
    }

    [Fact]
    public void AStoreThatWouldMapAPageTableWritableIsBouncedToTheGuest()
    {
        var g = new MmGuest();
        var a = new Assembler(64);
        a.mov(__qword_ptr[rbx], rax);
        Place(g, a);
        var regs = Regs();
        ulong cr2 = Va(L1Slot) + 30 * 8;
        regs.Rbx = cr2;
        regs.Rax = Pte(g.L4, P | RW | US);
        Assert.False(WritablePageTables.TryEmulate(g.V, ref regs, cr2, WriteFault));
        Assert.Equal(Va(CodeSlot), regs.Rip);
        Assert.Equal(0UL, g.Get(g.L1, 30));

        regs.Rax = Pte(3, P | US);                          // a frame that is not the guest's
        Assert.False(WritablePageTables.TryEmulate(g.V, ref regs, cr2, WriteFault));
        Assert.Equal(0UL, g.Get(g.L1, 30));
    }

    [Fact]
    public void OnlyTheFaultingAddressOfAnOwnTableIsEmulated()
    {
        var g = new MmGuest();
        var a = new Assembler(64);
        a.mov(__qword_ptr[rbx], rax);
        Place(g, a);
        var regs = Regs();
        regs.Rax = Pte(g.Spare[0], P | US);
        regs.Rbx = Va(L1Slot) + 8 * 31;
        Assert.False(WritablePageTables.TryEmulate(g.V, ref regs, Va(L1Slot) + 8 * 30, WriteFault));   // address mismatch
        regs.Rbx = Va(CodeSlot) + 8;
        Assert.False(WritablePageTables.TryEmulate(g.V, ref regs, regs.Rbx, WriteFault));             // not a page table
        regs.Rbx = Va(L1Slot) + 8 * 31;
        Assert.False(WritablePageTables.TryEmulate(g.V, ref regs, regs.Rbx, 1 | 4));                  // a read fault
        Assert.False(WritablePageTables.TryEmulate(g.V, ref regs, regs.Rbx + 4, WriteFault));         // misaligned
        Assert.Equal(0UL, g.Get(g.L1, 31));
    }

    [Fact]
    public void HigherLevelsNeedTheWritablePagetablesAssist()
    {
        var g = new MmGuest();
        var a = new Assembler(64);
        a.mov(__qword_ptr[rbx], rax);
        Place(g, a);
        var regs = Regs();
        ulong cr2 = Va(L2Slot) + 3 * 8;                     // entry 3 of the L2
        regs.Rbx = cr2;
        regs.Rax = Pte(g.Spare[0], P | RW | US);            // a fresh (empty) L1
        Assert.False(WritablePageTables.TryEmulate(g.V, ref regs, cr2, WriteFault));
        Assert.Equal(0, VmAssist.Do(g.V, Xen.VMASST_CMD_enable, Xen.VMASST_TYPE_writable_pagetables));
        Assert.True(WritablePageTables.TryEmulate(g.V, ref regs, cr2, WriteFault));
        Assert.Equal(FrameType.L1PageTable, g.Type(g.Spare[0]));
    }

    [Fact]
    public void CmpxchgAndXchg()
    {
        var g = new MmGuest();
        ulong cr2 = Va(L1Slot) + 8;                          // entry 1: Data[0] writable
        ulong old = g.Get(g.L1, 1);

        var a = new Assembler(64);
        a.@lock.cmpxchg(__qword_ptr[rsi], rcx);
        int length = Place(g, a);
        var regs = Regs();
        regs.Rsi = cr2;
        regs.Rax = old + 0x1000;                             // wrong expected value: no store, RAX gets the entry
        regs.Rcx = 0;
        Assert.True(WritablePageTables.TryEmulate(g.V, ref regs, cr2, WriteFault));
        Assert.Equal(old, regs.Rax);
        Assert.Equal(0UL, regs.Rflags & 0x40);               // ZF clear
        Assert.Equal(old, g.Get(g.L1, 1));
        Assert.Equal(Va(CodeSlot) + (ulong)length, regs.Rip);

        regs.Rip = Va(CodeSlot);
        Assert.True(WritablePageTables.TryEmulate(g.V, ref regs, cr2, WriteFault));
        Assert.NotEqual(0UL, regs.Rflags & 0x40);            // ZF set: stored
        Assert.Equal(0UL, g.Get(g.L1, 1));
        Assert.Equal(0u, g.TypeCount(g.Data[0]));

        a = new Assembler(64);
        a.xchg(__qword_ptr[rsi], rdx);
        Place(g, a);
        regs = Regs();
        regs.Rsi = cr2;
        regs.Rdx = Pte(g.Data[1], P | US);
        Assert.True(WritablePageTables.TryEmulate(g.V, ref regs, cr2, WriteFault));
        Assert.Equal(0UL, regs.Rdx);
        Assert.Equal(Pte(g.Data[1], P | US), g.Get(g.L1, 1));
    }
}
