using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using Xunit;
using static Microhv.Tests.Hypervisor.Mm.MmGuest;

namespace Microhv.Tests.Hypervisor.Mm;

/// <summary>mmu_update through the hypercall entry: requests read from guest memory, validated per level.</summary>
public class MmuUpdateTests
{
    private const int DoneOffset = 0xF00;

    private static long Call(MmGuest g, params ulong[] pairs)
    {
        for (int i = 0; i < pairs.Length; i++) g.Arg(i * 8, pairs[i]);
        g.Arg(DoneOffset, 0xFFFF_FFFF);
        return MmuUpdate.Do(g.V, Va(ArgsSlot), (ulong)(pairs.Length / 2), Va(ArgsSlot) + DoneOffset, Xen.DOMID_SELF);
    }

    [Fact]
    public void MapsAFrameWritableAndMovesTheReferenceOnRemap()
    {
        var g = new MmGuest();
        Assert.Equal(0, Call(g, EntryMa(g.L1, 20), Pte(g.Spare[0], P | RW)));
        Assert.Equal(Pte(g.Spare[0], P | RW | US), g.Get(g.L1, 20));
        Assert.Equal(FrameType.Writable, g.Type(g.Spare[0]));
        Assert.Equal(1u, g.TypeCount(g.Spare[0]));
        Assert.Equal(1u, g.ReadArg32(DoneOffset));

        Assert.Equal(0, Call(g, EntryMa(g.L1, 20), Pte(g.Spare[1], P | RW | US)));
        Assert.Equal(0u, g.TypeCount(g.Spare[0]));
        Assert.Equal(0u, g.RefCount(g.Spare[0]));
        Assert.Equal(1u, g.TypeCount(g.Spare[1]));
    }

    [Fact]
    public void PreserveAdKeepsAccessedAndDirty()
    {
        var g = new MmGuest();
        g.Set(g.L1, 1, g.Get(g.L1, 1) | A | D);
        Assert.Equal(0, Call(g, EntryMa(g.L1, 1) | Xen.MMU_PT_UPDATE_PRESERVE_AD, Pte(g.Data[0], P | US)));
        Assert.Equal(Pte(g.Data[0], P | US | A | D), g.Get(g.L1, 1));
        Assert.Equal(0u, g.TypeCount(g.Data[0]));          // no longer writable
    }

    [Fact]
    public void APageTableCannotBeMappedWritable()
    {
        var g = new MmGuest();
        foreach (ulong table in new[] { g.L1, g.L2, g.L3, g.L4 })
        {
            Assert.Equal(-Errno.EBUSY, Call(g, EntryMa(g.L1, 20), Pte(table, P | RW | US)));
            Assert.Equal(0UL, g.Get(g.L1, 20));
            Assert.Equal(0u, g.ReadArg32(DoneOffset));
        }
        Assert.Equal(0, Call(g, EntryMa(g.L1, 20), Pte(g.L2, P | US)));
    }

    [Fact]
    public void AnotherDomainsOrTheHypervisorsFramesCannotBeMapped()
    {
        var t = new TestMachine();
        var other = new MmGuest(t, id: 2);
        var g = new MmGuest(t, id: 1);
        t.FrameTable.SetOwner(4, FrameTable.OwnerXen);
        Assert.Equal(-Errno.EBUSY, Call(g, EntryMa(g.L1, 20), Pte(other.Data[0], P | US)));
        Assert.Equal(-Errno.EBUSY, Call(g, EntryMa(g.L1, 20), Pte(4, P | US)));
        Assert.Equal(-Errno.EBUSY, Call(g, EntryMa(g.L1, 20), Pte(700, P | US)));        // a free frame
        Assert.Equal(-Errno.EPERM, Call(g, EntryMa(g.L1, 20), Pte(1UL << 30, P | US)));  // outside RAM
        Assert.Equal(0UL, g.Get(g.L1, 20));
        // Nor can it write another domain's tables.
        Assert.Equal(-Errno.EINVAL, Call(g, EntryMa(other.L1, 20), Pte(g.Data[0], P | US)));
        Assert.Equal(0UL, other.Get(other.L1, 20));
    }

    [Fact]
    public void TheHypervisorSlotsOfAnL4AreNotTheGuests()
    {
        var g = new MmGuest();
        for (int slot = 256; slot < 272; slot++)
            Assert.Equal(-Errno.EINVAL, Call(g, EntryMa(g.L4, slot), Pte(g.Spare[0], P | US)));
        Assert.Equal(0u, g.TypeCount(g.Spare[0]));
        // A guest slot takes a new L3 (validated on the spot).
        Assert.Equal(0, Call(g, EntryMa(g.L4, 300), Pte(g.Spare[0], P | RW | US)));
        Assert.Equal(FrameType.L3PageTable, g.Type(g.Spare[0]));
    }

    [Fact]
    public void ASuperpageIsRefused()
    {
        var g = new MmGuest();
        Assert.Equal(-Errno.EINVAL, Call(g, EntryMa(g.L2, 3), Pte(g.Spare[0], P | RW | US | PageTableEntry.PageSize)));
        Assert.Equal(-Errno.EINVAL, Call(g, EntryMa(g.L3, 3), Pte(g.Spare[0], P | RW | US | PageTableEntry.PageSize)));
    }

    [Fact]
    public void LinkingATableThatDoesNotValidateFailsWithItsError()
    {
        var g = new MmGuest();
        ulong bad = g.Spare[0];
        g.Set(bad, 0, Pte(g.Data[0], P | RW | US));
        g.Set(bad, 1, Pte(g.L4, P | RW | US));             // would make the L4 writable
        Assert.Equal(-Errno.EBUSY, Call(g, EntryMa(g.L2, 3), Pte(bad, P | RW | US)));
        Assert.Equal(0u, g.TypeCount(bad));
        Assert.Equal(1u, g.TypeCount(g.Data[0]));          // the reference taken for entry 0 was given back
        Assert.Equal(0UL, g.Get(g.L2, 3));

        g.Set(bad, 1, 0);
        Assert.Equal(0, Call(g, EntryMa(g.L2, 3), Pte(bad, P | RW | US)));
        Assert.Equal(FrameType.L1PageTable, g.Type(bad));
        Assert.Equal(2u, g.TypeCount(g.Data[0]));
    }

    [Fact]
    public void ClearingAnEntryDropsTheSubtree()
    {
        var g = new MmGuest();
        Assert.Equal(0, Call(g, EntryMa(g.L3, 0), 0));
        Assert.Equal(0u, g.TypeCount(g.L2));
        Assert.Equal(0u, g.TypeCount(g.L1));
        Assert.Equal(0u, g.TypeCount(g.Data[0]));
    }

    [Fact]
    public void StopsAtTheFirstFailureAndReportsHowManyWereDone()
    {
        var g = new MmGuest();
        long rc = Call(g,
            EntryMa(g.L1, 20), Pte(g.Spare[0], P | RW | US),
            EntryMa(g.L1, 21), Pte(g.L1, P | RW | US),        // refused
            EntryMa(g.L1, 22), Pte(g.Spare[1], P | RW | US));
        Assert.Equal(-Errno.EBUSY, rc);
        Assert.Equal(1u, g.ReadArg32(DoneOffset));
        Assert.NotEqual(0UL, g.Get(g.L1, 20));
        Assert.Equal(0UL, g.Get(g.L1, 22));
    }

    [Fact]
    public void BadPointersAndCommands()
    {
        var g = new MmGuest();
        g.Arg(DoneOffset, 7);
        Assert.Equal(-Errno.EFAULT, MmuUpdate.Do(g.V, 0x7000_0000, 1, Va(ArgsSlot) + DoneOffset, Xen.DOMID_SELF));
        Assert.Equal(0u, g.ReadArg32(DoneOffset));
        // A hostile count: fails where the mapped requests end, having done the mapped ones.
        // (One valid request in the last 16 bytes of the code page; the page after it is unmapped.)
        g.T.Memory.Poke64(g.Code * 4096 + 4080, EntryMa(g.L1, 20));
        g.T.Memory.Poke64(g.Code * 4096 + 4088, 0);
        Assert.Equal(-Errno.EFAULT, MmuUpdate.Do(g.V, Va(CodeSlot) + 4080, 0x7FFF_FFFF, Va(ArgsSlot) + DoneOffset, Xen.DOMID_SELF));
        Assert.Equal(1u, g.ReadArg32(DoneOffset));
        // The hypervisor hole is never read.
        Assert.Equal(-Errno.EFAULT, MmuUpdate.Do(g.V, Xen.HYPERVISOR_VIRT_START, 1, 0, Xen.DOMID_SELF));
        Assert.Equal(-Errno.ENOSYS, Call(g, EntryMa(g.L1, 20) | 3, 0));
        Assert.Equal(-Errno.EINVAL, Call(g, (1UL << 40) | 0, 0));   // not our frame
        Assert.Equal(-Errno.ESRCH, MmuUpdate.Do(g.V, Va(ArgsSlot), 0, 0, 1));   // itself by number
        Assert.Equal(-Errno.ESRCH, MmuUpdate.Do(g.V, Va(ArgsSlot), 0, 0, 9));
    }

    [Fact]
    public void OrdinaryFramesTakePlainWrites()
    {
        var g = new MmGuest();
        Assert.Equal(0, Call(g, EntryMa(g.Data[0], 3), 0x1234_5678));
        Assert.Equal(0x1234_5678UL, g.Get(g.Data[0], 3));
        Assert.Equal(0, Call(g, EntryMa(g.Spare[2], 3), 0x55));
        Assert.Equal(0x55UL, g.Get(g.Spare[2], 3));
        Assert.Equal(0u, g.TypeCount(g.Spare[2]));
    }

    [Fact]
    public void MachphysUpdateSetsTheM2pAndP2mOfOwnedFrames()
    {
        var t = new TestMachine();
        var g = new MmGuest(t);
        ulong m2p = t.NewFrame(FrameTable.OwnerXen);
        t.Machine.M2pTableAddress = m2p * 4096;
        t.Machine.M2pEntries = 512;
        g.Dom.P2m = new ulong[16];
        Assert.Equal(0, Call(g, (g.Spare[0] << 12) | Xen.MMU_MACHPHYS_UPDATE, 9));
        Assert.Equal(9UL, t.Memory.Peek64(m2p * 4096 + g.Spare[0] * 8));
        Assert.Equal(g.Spare[0], g.Dom.P2m[9]);
        Assert.Equal(-Errno.EINVAL, Call(g, (m2p << 12) | Xen.MMU_MACHPHYS_UPDATE, 9));
    }
}
