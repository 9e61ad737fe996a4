using Microhv.HAL;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// Writable page tables (Xen's ptwr, xen/arch/x86/pv/ro-page-fault.c): a guest that writes an entry
/// of its own page table straight to memory faults, because page-table frames are only ever mapped
/// read-only. The hypervisor decodes the faulting store, validates the new entry exactly like an
/// mmu_update of it, writes it and steps over the instruction. L1 tables are emulated always, as in
/// Xen; L2..L4 only once the guest enabled VMASST_TYPE_writable_pagetables. Anything else (a store
/// it cannot decode, a misaligned or partial write, an entry that does not validate) is left to the
/// guest as the page fault it is.
/// </summary>
public static class WritablePageTables
{
    private const ulong PfPresent = 1, PfWrite = 2, PfReserved = 8, PfInstructionFetch = 16;
    private const ulong ArithmeticFlags = 0x8D5;       // CF PF AF ZF SF OF
    /// <summary>Instruction bytes of the fault being emulated (one CPU, and the emulation does not nest).</summary>
    private static readonly byte[] FetchBuffer = new byte[InstructionDecoder.MaxLength];

    /// <summary>
    /// Called by the kernel for a guest #PF whose error code says "write to a present page"; true
    /// when the write was emulated (regs.Rip now follows the instruction), false to bounce the fault.
    /// </summary>
    public static bool TryEmulate(Vcpu v, ref TrapFrame regs, ulong cr2, ulong errorCode)
    {
        if ((errorCode & (PfPresent | PfWrite)) != (PfPresent | PfWrite)) return false;
        if ((errorCode & (PfReserved | PfInstructionFetch)) != 0) return false;
        if ((cr2 & 7) != 0) return false;                   // only whole, aligned 8-byte entries
        Domain d = v.Domain;
        Machine m = d.Machine;

        // The leaf mapping the address must be a present, read-only mapping of a live table of ours.
        ulong root = v.KernelMode || v.GuestTableUser == 0 ? v.GuestTable : v.GuestTableUser;
        if (root == 0 || !MmuExtOp.AddressOk(cr2)) return false;
        if (PageTable.Walk(m.Memory, root, cr2, out ulong slot, out int level) != PageWalkResult.Mapped || level != 1) return false;
        ulong pte = m.Memory.Read64(slot);
        if (PageTableEntry.IsWritable(pte)) return false;
        ulong mfn = PageTableValidator.MfnOf(pte);
        if (!d.OwnsFrame(mfn)) return false;
        FrameType type = m.FrameTable.TypeOf(mfn);
        if (!PageTypes.IsPageTable(type)) return false;
        int tableLevel = PageTypes.LevelOf(type);
        if (!PageTableValidator.IsLiveTable(m, mfn, tableLevel)) return false;
        if (tableLevel > 1 && !VmAssist.IsEnabled(d, Xen.VMASST_TYPE_writable_pagetables)) return false;

        if (!Fetch(v, regs.Rip, out DecodedInstruction insn)) return false;
        if (!insn.HasMemoryOperand || insn.OperandSize != 8) return false;
        if (InstructionDecoder.EffectiveAddress(in insn, ref regs, v) != cr2) return false;

        int index = (int)((cr2 & (Layout.PageSize - 1)) >> 3);
        ulong entryAddress = (mfn << Layout.PageShift) + (ulong)index * 8;
        ulong old = m.Memory.Read64(entryAddress);
        ulong value;
        bool store = true;
        if (insn.OpcodeMap == 1 && insn.Opcode == 0x89) value = InstructionDecoder.ReadRegister(ref regs, insn.Reg);
        else if (insn.OpcodeMap == 1 && insn.Opcode == 0xC7 && insn.RegField == 0) value = (ulong)(long)(int)(uint)insn.Immediate;
        else if (insn.OpcodeMap == 1 && insn.Opcode == 0x87) value = InstructionDecoder.ReadRegister(ref regs, insn.Reg);
        else if (insn.OpcodeMap == 2 && insn.Opcode == 0xB1)
        {
            value = InstructionDecoder.ReadRegister(ref regs, insn.Reg);
            store = regs.Rax == old;
        }
        else return false;

        if (store && PageTableValidator.ModEntry(m, d, d, mfn, index, tableLevel, value, false) != 0) return false;

        if (insn.OpcodeMap == 1 && insn.Opcode == 0x87) InstructionDecoder.WriteRegister(ref regs, insn.Reg, old);
        if (insn.OpcodeMap == 2 && insn.Opcode == 0xB1)
        {
            ulong accumulator = regs.Rax;
            regs.Rflags = (regs.Rflags & ~ArithmeticFlags) | CompareFlags(accumulator, old);
            if (!store) regs.Rax = old;
        }
        regs.Rip += (ulong)insn.Length;
        return true;
    }

    /// <summary>Reads and decodes the instruction at <paramref name="rip"/>; bytes past an unmapped page are not needed if the instruction ends before it.</summary>
    private static bool Fetch(Vcpu v, ulong rip, out DecodedInstruction insn)
    {
        byte[] bytes = FetchBuffer;
        int count = 0;
        while (count < InstructionDecoder.MaxLength && GuestMemory.ReadU8(v, rip + (ulong)count, out byte b)) bytes[count++] = b;
        return InstructionDecoder.Decode(bytes, count, out insn);
    }

    /// <summary>RFLAGS arithmetic bits of CMP a, b (a - b), as CMPXCHG sets them.</summary>
    public static ulong CompareFlags(ulong a, ulong b)
    {
        ulong r = a - b;
        ulong f = 0;
        if (a < b) f |= 1UL;                                            // CF
        int ones = 0;
        for (int i = 0; i < 8; i++) ones += (int)((r >> i) & 1);
        if ((ones & 1) == 0) f |= 1UL << 2;                             // PF: even parity of the low byte
        if (((a ^ b ^ r) & 0x10) != 0) f |= 1UL << 4;                   // AF
        if (r == 0) f |= 1UL << 6;                                      // ZF
        if ((r >> 63) != 0) f |= 1UL << 7;                              // SF
        if ((((a ^ b) & (a ^ r)) >> 63) != 0) f |= 1UL << 11;           // OF
        return f;
    }
}
