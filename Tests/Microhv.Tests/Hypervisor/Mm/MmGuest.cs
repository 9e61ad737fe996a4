using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Mm;
using Xunit;

namespace Microhv.Tests.Hypervisor.Mm;

/// <summary>
/// A small PV guest address space built by hand, the way a domain builder leaves it: one L4, L3, L2
/// and L1 owned by the domain, mapping at <see cref="Base"/> an argument page and data pages
/// writable, and its own page-table frames read-only. Validated and pinned by
/// PageTypes.AdoptInitialPageTables.
/// </summary>
public sealed class MmGuest
{
    public const ulong Base = 0x40_0000;                    // L4[0] L3[0] L2[2] L1[0..]
    public const int ArgsSlot = 0, CodeSlot = 5, L1Slot = 10, L2Slot = 11, L3Slot = 12, L4Slot = 13;
    public const int DataSlots = 4;                          // slots 1..4: D[0..3]
    public const ulong P = PageTableEntry.Present, RW = PageTableEntry.Writable, US = PageTableEntry.User,
        A = PageTableEntry.Accessed, D = PageTableEntry.Dirty;

    public readonly TestMachine T;
    public readonly Machine M;
    public readonly Domain Dom;
    public readonly Vcpu V;
    public readonly ulong L4, L3, L2, L1, Args, Code;
    public readonly ulong[] Data = new ulong[DataSlots];
    /// <summary>Spare frames of the domain, not mapped anywhere.</summary>
    public readonly ulong[] Spare = new ulong[8];

    public static ulong Va(int slot) => Base + (ulong)slot * 4096;
    public static ulong Pte(ulong mfn, ulong flags) => (mfn << 12) | flags;

    public MmGuest(TestMachine t = null, ushort id = 1, bool initial = false, bool adopt = true)
    {
        T = t ?? new TestMachine();
        M = T.Machine;
        Dom = T.AddDomain(id, initial);
        V = Dom.Vcpu;
        L4 = T.NewFrame(id); L3 = T.NewFrame(id); L2 = T.NewFrame(id); L1 = T.NewFrame(id);
        Args = T.NewFrame(id); Code = T.NewFrame(id);
        for (int i = 0; i < DataSlots; i++) Data[i] = T.NewFrame(id);
        for (int i = 0; i < Spare.Length; i++) Spare[i] = T.NewFrame(id);

        Set(L4, 0, Pte(L3, P | RW | US | A));
        Set(L3, 0, Pte(L2, P | RW | US | A));
        Set(L2, 2, Pte(L1, P | RW | US | A));
        Set(L1, ArgsSlot, Pte(Args, P | RW | US));
        Set(L1, CodeSlot, Pte(Code, P | US));
        for (int i = 0; i < DataSlots; i++) Set(L1, 1 + i, Pte(Data[i], P | RW | US));
        Set(L1, L1Slot, Pte(L1, P | US));
        Set(L1, L2Slot, Pte(L2, P | US));
        Set(L1, L3Slot, Pte(L3, P | US));
        Set(L1, L4Slot, Pte(L4, P));                          // no User: validation adds it
        if (adopt) Assert.Equal(0, PageTypes.AdoptInitialPageTables(Dom, L4));
    }

    public ulong Get(ulong table, int index) => T.Memory.Peek64(table * 4096 + (ulong)index * 8);
    public void Set(ulong table, int index, ulong value) => T.Memory.Poke64(table * 4096 + (ulong)index * 8, value);

    /// <summary>Machine address of entry <paramref name="index"/> of a table (an mmu_update ptr).</summary>
    public static ulong EntryMa(ulong table, int index) => table * 4096 + (ulong)index * 8;

    public FrameType Type(ulong mfn) => M.FrameTable.TypeOf(mfn);
    public uint TypeCount(ulong mfn) => M.FrameTable.TypeCount(mfn);
    public uint RefCount(ulong mfn) => M.FrameTable.RefCount(mfn);

    /// <summary>Writes a 64-bit value into the argument page at byte <paramref name="offset"/>.</summary>
    public void Arg(int offset, ulong value) => T.Memory.Poke64(Args * 4096 + (ulong)offset, value);
    public ulong ReadArg(int offset) => T.Memory.Peek64(Args * 4096 + (ulong)offset);
    public uint ReadArg32(int offset) => (uint)T.Memory.Peek64(Args * 4096 + (ulong)offset);
}
