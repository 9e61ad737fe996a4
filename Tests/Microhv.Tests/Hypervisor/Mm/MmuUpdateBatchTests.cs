using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using Xunit;
using static Microhv.Tests.Hypervisor.Mm.MmGuest;

namespace Microhv.Tests.Hypervisor.Mm;

/// <summary>
/// mmu_update and mmuext_op request arrays read page by page: arrays that cross pages, an array whose
/// next page faults part way, and an array whose own mapping an earlier request changes. Also Xen's
/// mod_lN_entry fast path: a change confined to bits that take no reference keeps the references,
/// anything else is validated in full.
/// </summary>
public class MmuUpdateBatchTests
{
    private static ulong Ma(ulong mfn, ulong offset) => mfn * 4096 + offset;

    private static void Request(MmGuest g, ulong mfn, ulong offset, ulong ptr, ulong val)
    {
        g.T.Memory.Poke64(Ma(mfn, offset), ptr);
        g.T.Memory.Poke64(Ma(mfn, offset + 8), val);
    }

    private const int DoneOffset = 0xF00;

    private static long Do(MmGuest g, ulong reqs, ulong count)
    {
        g.Arg(DoneOffset, 0xFFFF_FFFF);
        return MmuUpdate.Do(g.V, reqs, count, Va(ArgsSlot) + DoneOffset, Xen.DOMID_SELF);
    }

    [Fact]
    public void AnArrayCrossingAPageIsReadWhole()
    {
        // Data[0] and Data[1] are contiguous guest pages (slots 1 and 2); request 1 straddles them.
        var g = new MmGuest();
        ulong start = Va(1) + 4096 - 24;
        Request(g, g.Data[0], 4096 - 24, EntryMa(g.L1, 20), Pte(g.Spare[0], P | US));
        g.T.Memory.Poke64(Ma(g.Data[0], 4096 - 8), EntryMa(g.L1, 21));
        g.T.Memory.Poke64(Ma(g.Data[1], 0), Pte(g.Spare[1], P | RW | US));
        Request(g, g.Data[1], 8, EntryMa(g.L1, 22), Pte(g.Spare[2], P | US));

        Assert.Equal(0, Do(g, start, 3));
        Assert.Equal(3u, g.ReadArg32(DoneOffset));
        Assert.Equal(Pte(g.Spare[0], P | US), g.Get(g.L1, 20));
        Assert.Equal(Pte(g.Spare[1], P | RW | US), g.Get(g.L1, 21));
        Assert.Equal(Pte(g.Spare[2], P | US), g.Get(g.L1, 22));
        Assert.Equal(FrameType.Writable, g.Type(g.Spare[1]));
    }

    [Fact]
    public void AnUnmappedSecondPageFaultsAfterTheFirstPagesRequestsWereApplied()
    {
        var g = new MmGuest();
        g.Set(g.L1, CodeSlot, 0);                 // the page after Data[3] (slot 4) is now unmapped
        ulong start = Va(4) + 4096 - 32;
        Request(g, g.Data[3], 4096 - 32, EntryMa(g.L1, 20), Pte(g.Spare[0], P | US));
        Request(g, g.Data[3], 4096 - 16, EntryMa(g.L1, 21), Pte(g.Spare[1], P | US));

        Assert.Equal(-Errno.EFAULT, Do(g, start, 4));
        Assert.Equal(2u, g.ReadArg32(DoneOffset));
        Assert.Equal(Pte(g.Spare[0], P | US), g.Get(g.L1, 20));
        Assert.Equal(Pte(g.Spare[1], P | US), g.Get(g.L1, 21));
    }

    [Fact]
    public void ARequestThatRemapsItsOwnArrayIsSeenByTheNext()
    {
        // Request 0 points the array's page (slot 1) at Spare[0]; request 1 must come from there.
        var g = new MmGuest();
        Request(g, g.Data[0], 0, EntryMa(g.L1, 1), Pte(g.Spare[0], P | RW | US));
        Request(g, g.Data[0], 16, EntryMa(g.L1, 21), Pte(g.Spare[2], P | US));     // the stale copy
        Request(g, g.Spare[0], 16, EntryMa(g.L1, 20), Pte(g.Spare[1], P | US));

        Assert.Equal(0, Do(g, Va(1), 2));
        Assert.Equal(Pte(g.Spare[1], P | US), g.Get(g.L1, 20));
        Assert.Equal(0UL, g.Get(g.L1, 21));
        Assert.Equal(0u, g.RefCount(g.Spare[2]));
    }

    [Fact]
    public void ARequestThatUnmapsItsOwnArrayStopsTheNextWithEfault()
    {
        var g = new MmGuest();
        Request(g, g.Data[0], 0, EntryMa(g.L1, 1), 0);
        Request(g, g.Data[0], 16, EntryMa(g.L1, 20), Pte(g.Spare[1], P | US));

        Assert.Equal(-Errno.EFAULT, Do(g, Va(1), 2));
        Assert.Equal(1u, g.ReadArg32(DoneOffset));
        Assert.Equal(0UL, g.Get(g.L1, 20));
    }

    [Fact]
    public void FlagsThatTakeNoReferenceChangeWithoutTakingThemAgain()
    {
        var g = new MmGuest();
        ulong data = g.Data[0];
        uint refs = g.RefCount(data), types = g.TypeCount(data);
        ulong nx = PageTableEntry.NoExecute, avail = 0xE00UL | (0x7FFUL << 52);
        Request(g, g.Args, 0, EntryMa(g.L1, 1), Pte(data, P | RW | US | A | D | nx | avail));
        Assert.Equal(0, Do(g, Va(ArgsSlot), 1));
        Assert.Equal(Pte(data, P | RW | US | A | D | nx | avail), g.Get(g.L1, 1));
        Assert.Equal(refs, g.RefCount(data));
        Assert.Equal(types, g.TypeCount(data));

        // Global is cleared as on the full path; User is added.
        Request(g, g.Args, 0, EntryMa(g.L1, 1), Pte(data, P | RW | PageTableEntry.Global));
        Assert.Equal(0, Do(g, Va(ArgsSlot), 1));
        Assert.Equal(Pte(data, P | RW | US), g.Get(g.L1, 1));
        Assert.Equal(refs, g.RefCount(data));
        Assert.Equal(types, g.TypeCount(data));
    }

    [Fact]
    public void WritableAndCacheBitsAreStillValidatedOnTheSameFrame()
    {
        var g = new MmGuest();
        // The L1 maps itself read-only: making that mapping writable is refused.
        Request(g, g.Args, 0, EntryMa(g.L1, L1Slot), Pte(g.L1, P | RW | US));
        Assert.Equal(-Errno.EBUSY, Do(g, Va(ArgsSlot), 1));
        Assert.Equal(Pte(g.L1, P | US), g.Get(g.L1, L1Slot));

        // Cache attributes are only the initial domain's, even on a frame already mapped.
        Request(g, g.Args, 0, EntryMa(g.L1, 1), Pte(g.Data[0], P | RW | US | PageTableEntry.CacheDisable));
        Assert.Equal(-Errno.EINVAL, Do(g, Va(ArgsSlot), 1));

        // Dropping Writable drops the writable type reference.
        Assert.Equal(1u, g.TypeCount(g.Data[0]));
        Request(g, g.Args, 0, EntryMa(g.L1, 1), Pte(g.Data[0], P | US));
        Assert.Equal(0, Do(g, Va(ArgsSlot), 1));
        Assert.Equal(0u, g.TypeCount(g.Data[0]));
    }

    [Fact]
    public void ANonLeafEntryMayFlipWritableWithoutRevalidation()
    {
        var g = new MmGuest();
        uint l1Types = g.TypeCount(g.L1);
        Request(g, g.Args, 0, EntryMa(g.L2, 2), Pte(g.L1, P | US | A));
        Assert.Equal(0, Do(g, Va(ArgsSlot), 1));
        Assert.Equal(Pte(g.L1, P | US | A), g.Get(g.L2, 2));
        Assert.Equal(l1Types, g.TypeCount(g.L1));
    }

    [Fact]
    public void MmuextOpsCrossingAPageAreReadWhole()
    {
        // Two MMUEXT_INVLPG_LOCAL ops (24 bytes each), the second straddling Data[0] and Data[1].
        var g = new MmGuest();
        ulong start = Va(1) + 4096 - 32;
        g.T.Memory.Poke64(Ma(g.Data[0], 4096 - 32), Xen.MMUEXT_INVLPG_LOCAL);
        g.T.Memory.Poke64(Ma(g.Data[0], 4096 - 24), 0x1000);
        g.T.Memory.Poke64(Ma(g.Data[0], 4096 - 8), Xen.MMUEXT_INVLPG_LOCAL);
        g.T.Memory.Poke64(Ma(g.Data[1], 0), 0x2000);
        g.Arg(DoneOffset, 0);
        Assert.Equal(0, MmuExtOp.Do(g.V, start, 2, Va(ArgsSlot) + DoneOffset, Xen.DOMID_SELF));
        Assert.Equal(2u, g.ReadArg32(DoneOffset));
        Assert.Equal(new ulong[] { 0x1000, 0x2000 }, g.T.Host.InvalidatedPages.ToArray());
    }
}
