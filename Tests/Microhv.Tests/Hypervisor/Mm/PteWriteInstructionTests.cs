using System.Collections.Generic;
using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using Xunit;
using static Microhv.Tests.Hypervisor.Mm.MmGuest;

namespace Microhv.Tests.Hypervisor.Mm;

/// <summary>
/// Read-modify-write and sub-word stores into a page-table entry, as Linux makes them (Xen's
/// x86_emulate handles them; ptwr_emulated_update merges a naturally aligned partial store into the
/// 8-byte entry). The instruction bytes are the ones Debian's Linux 6.1 executes.
/// </summary>
public class PteWriteInstructionTests
{
    private const ulong WriteFault = 1 | 2 | 4;         // P | W | U
    private const ulong CF = 1, ZF = 0x40;

    private static void Place(MmGuest g, params byte[] code)
    {
        for (int i = 0; i < code.Length; i++) g.T.Memory.Bytes[(int)(g.Code * 4096) + i] = code[i];
    }

    private static TrapFrame Regs() => new TrapFrame { Rip = Va(CodeSlot), Cs = Xen.FLAT_RING3_CS64, Rflags = 0x202 };

    [Fact]
    public void LinuxWrprotectIsAOneByteAndThatDropsTheWritableReference()
    {
        var g = new MmGuest();
        Assert.Equal(FrameType.Writable, g.Type(g.Data[0]));
        Place(g, 0x3E, 0x41, 0x80, 0x24, 0x24, 0xFD);     // ds and byte [r12], 0xfd (ptep_set_wrprotect on UP)
        var regs = Regs();
        ulong cr2 = Va(L1Slot) + 1 * 8;                    // entry 1: Data[0], P|RW|US
        regs.R12 = cr2;
        Assert.True(WritablePageTables.TryEmulate(g.V, ref regs, cr2, WriteFault));
        Assert.Equal(Va(CodeSlot) + 6, regs.Rip);
        Assert.Equal(Pte(g.Data[0], P | US), g.Get(g.L1, 1));
        Assert.Equal(0u, g.TypeCount(g.Data[0]));          // no writable mapping left
        Assert.Equal(0UL, regs.Rflags & (CF | ZF));         // AND result 0x05: CF clear, not zero
    }

    [Fact]
    public void LockBtrClearsTheAccessedBitAndReportsItInCarry()
    {
        var g = new MmGuest();
        g.Set(g.L1, 2, g.Get(g.L1, 2) | A);
        Place(g, 0xF0, 0x48, 0x0F, 0xBA, 0x37, 0x05);     // lock btr qword [rdi], 5 (ptep_test_and_clear_young)
        var regs = Regs();
        ulong cr2 = Va(L1Slot) + 2 * 8;
        regs.Rdi = cr2;
        Assert.True(WritablePageTables.TryEmulate(g.V, ref regs, cr2, WriteFault));
        Assert.Equal(Pte(g.Data[1], P | RW | US), g.Get(g.L1, 2));
        Assert.Equal(CF, regs.Rflags & CF);
        regs.Rip = Va(CodeSlot);
        Assert.True(WritablePageTables.TryEmulate(g.V, ref regs, cr2, WriteFault));
        Assert.Equal(0UL, regs.Rflags & CF);               // already clear
    }

    [Fact]
    public void AnAlignedStoreIntoTheTopByteIsMergedAndAMisalignedOneIsNot()
    {
        var g = new MmGuest();
        Place(g, 0x80, 0x4F, 0x07, 0x80);                  // or byte [rdi+7], 0x80: set NX
        var regs = Regs();
        regs.Rdi = Va(L1Slot) + 3 * 8;
        ulong cr2 = regs.Rdi + 7;
        Assert.True(WritablePageTables.TryEmulate(g.V, ref regs, cr2, WriteFault));
        Assert.Equal(Pte(g.Data[2], P | RW | US) | PageTableEntry.NoExecute, g.Get(g.L1, 3));
        Assert.NotEqual(0UL, regs.Rflags & 0x80);          // SF: the byte result 0x80 is negative

        Place(g, 0x89, 0x47, 0x02);                        // mov dword [rdi+2], eax: straddles fields, not aligned
        regs = Regs();
        regs.Rdi = Va(L1Slot) + 4 * 8;
        Assert.False(WritablePageTables.TryEmulate(g.V, ref regs, regs.Rdi + 2, WriteFault));
        Assert.Equal(Pte(g.Data[3], P | RW | US), g.Get(g.L1, 4));
    }

    [Fact]
    public void AByteStoreThatWouldMakeAPageTableWritableIsRefused()
    {
        var g = new MmGuest();
        Place(g, 0x80, 0x0F, 0x02);                        // or byte [rdi], 2: RW on the entry mapping the L1 itself
        var regs = Regs();
        ulong cr2 = Va(L1Slot) + (ulong)L1Slot * 8;
        regs.Rdi = cr2;
        ulong before = g.Get(g.L1, L1Slot);
        Assert.False(WritablePageTables.TryEmulate(g.V, ref regs, cr2, WriteFault));
        Assert.Equal(before, g.Get(g.L1, L1Slot));
        Assert.Equal(Va(CodeSlot), regs.Rip);
    }

    [Fact]
    public void SubtractFlagsFollowTheOperandWidth()
    {
        // cmp al(0), 1: 0xFF with borrow: CF, PF (eight ones), AF, SF; no OF, no ZF.
        Assert.Equal(0x95UL, PteWriteInstruction.SubtractFlags(0, 1, 1));
        // cmp eax(0x80000000), 1: 0x7FFFFFFF: signed overflow, AF from the low nibble borrow, PF (low byte 0xFF).
        Assert.Equal(0x800UL | 0x10UL | 0x4UL, PteWriteInstruction.SubtractFlags(0x8000_0000, 1, 4));
        Assert.Equal(0x44UL, PteWriteInstruction.SubtractFlags(7, 7, 8));   // equal: ZF, PF
    }
}
