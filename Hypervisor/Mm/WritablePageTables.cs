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
/// it cannot decode (see <see cref="PteWriteInstruction"/>), a misaligned write, an entry that does not
/// validate) is left to the guest as the page fault it is.
/// </summary>
public static class WritablePageTables
{
    private const ulong PfPresent = 1, PfWrite = 2, PfReserved = 8, PfInstructionFetch = 16;
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
        if (!insn.HasMemoryOperand) return false;
        int width = insn.OperandSize;
        // Xen's ptwr_emulated_update: naturally aligned, so the store stays inside one entry.
        if ((cr2 & (ulong)(width - 1)) != 0) return false;
        if (InstructionDecoder.EffectiveAddress(in insn, ref regs, v) != cr2) return false;

        int index = (int)((cr2 & (Layout.PageSize - 1)) >> 3);
        int shift = (int)(cr2 & 7) * 8;
        ulong entryAddress = (mfn << Layout.PageShift) + (ulong)index * 8;
        ulong entry = m.Memory.Read64(entryAddress);
        ulong mask = PteWriteInstruction.Mask(width);
        ulong old = (entry >> shift) & mask;
        if (!PteWriteInstruction.Compute(in insn, ref regs, width, old, out ulong value, out bool store)) return false;

        ulong merged = (entry & ~(mask << shift)) | ((value & mask) << shift);
        if (store && PageTableValidator.ModEntry(m, d, d, mfn, index, tableLevel, merged, false) != 0) return false;
        PteWriteInstruction.Retire(in insn, ref regs, width, old, value, store);
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

    /// <summary>RFLAGS arithmetic bits of CMP a, b (a - b) on 64-bit operands, as CMPXCHG sets them.</summary>
    public static ulong CompareFlags(ulong a, ulong b) => PteWriteInstruction.SubtractFlags(a, b, 8);
}
