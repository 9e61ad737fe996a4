using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Mm;
using Microhv.Tests.Hypervisor.Mm;
using Xunit;

namespace Microhv.Tests.Hypervisor.AbiRom;

/// <summary>AbiRom.MapInto over simulated memory, followed by the builder's validation pass.</summary>
public class AbiRomMapIntoTests
{
    private const ulong Default = 0xFFFF_FFFF_FFC0_0000;   // docs/abi-rom.md's default address
    private readonly MmGuest _g = new(adopt: false);

    public AbiRomMapIntoTests()
    {
        _g.V.GuestTable = _g.L4 << 12;
    }

    private bool Translate(ulong va, out ulong pa, out ulong flags)
        => PageTable.Translate(_g.T.Memory, _g.V.GuestTable, va, out pa, out flags, out _);

    [Fact]
    public void MapsTheRomReadOnlyAndTheDataPageWritableAndValidates()
    {
        Assert.Equal(0, Microhv.Hypervisor.AbiRom.MapInto(_g.Dom, 0, 0));
        int romLength = AbiRomImage.Bytes.Length;
        ulong dataOffset = AbiRomImageTests.U32(32);
        for (ulong off = 0; off < (ulong)romLength; off += 4096)
        {
            Assert.True(Translate(Default + off, out ulong pa, out ulong flags));
            Assert.Equal(PageTableEntry.Present | PageTableEntry.User, flags & (PageTableEntry.Present | PageTableEntry.User | PageTableEntry.Writable | PageTableEntry.NoExecute));
            for (int b = 0; b < 4096; b += 509) Assert.Equal(AbiRomImage.Bytes[(int)off + b], _g.T.Memory.Bytes[(int)pa + b]);
            Assert.Equal(_g.Dom.DomainId, _g.M.FrameTable.OwnerOf(pa >> 12));
        }
        Assert.True(Translate(Default + dataOffset, out ulong data, out ulong dflags));
        Assert.True((dflags & PageTableEntry.Writable) != 0 && (dflags & PageTableEntry.User) != 0);
        for (int b = 0; b < 4096; b++) Assert.Equal(0, _g.T.Memory.Bytes[(int)data + b]);

        // The builder's validation accepts the result and types the new tables and the data page.
        Assert.Equal(0, PageTypes.AdoptInitialPageTables(_g.Dom, _g.L4));
        Assert.Equal(FrameType.Writable, _g.M.FrameTable.TypeOf(data >> 12));
        Assert.True(PageTable.Walk(_g.T.Memory, _g.V.GuestTable, Default, out ulong l1e, out int level) == PageWalkResult.Mapped && level == 1);
        Assert.Equal(FrameType.L1PageTable, _g.M.FrameTable.TypeOf(l1e >> 12));
        ulong l4e = _g.T.Memory.Peek64(_g.V.GuestTable + 511 * 8);
        Assert.Equal(FrameType.L3PageTable, _g.M.FrameTable.TypeOf((l4e & PageTableEntry.AddressMask) >> 12));
    }

    [Fact]
    public void RomFramesCanNeverBecomeWritableOrAPageTableOrADescriptorPage()
    {
        Assert.Equal(0, Microhv.Hypervisor.AbiRom.MapInto(_g.Dom, 0, 0));
        Assert.Equal(0, PageTypes.AdoptInitialPageTables(_g.Dom, _g.L4));
        Assert.True(Translate(Default, out ulong rom, out _));
        ulong mfn = rom >> 12;
        Assert.NotEqual(0, PageTypes.GetPageType(_g.M, _g.Dom, mfn, FrameType.Writable));
        Assert.NotEqual(0, PageTypes.GetPageType(_g.M, _g.Dom, mfn, FrameType.L1PageTable));
        Assert.NotEqual(0, PageTypes.GetPageType(_g.M, _g.Dom, mfn, FrameType.SegDesc));
        // A guest L1 entry mapping it writable is refused by the validator; read-only is fine.
        Assert.NotEqual(0, PageTableValidator.GetPageFromEntry(_g.M, _g.Dom, _g.Dom, rom | 0x7, 1));
        Assert.Equal(0, PageTableValidator.GetPageFromEntry(_g.M, _g.Dom, _g.Dom, rom | 0x5, 1));
    }

    [Theory]
    [InlineData(0xFFFF_FFFF_FFC0_1000UL)]   // not 2 MiB aligned
    [InlineData(0x0000_0000_4000_0000UL)]   // lower (user) half
    [InlineData(0xFFFF_8000_0000_0000UL)]   // Xen's hypervisor hole
    [InlineData(0x0000_8000_0000_0000UL)]   // not canonical
    public void RefusesAddressesOutsideTheGuestKernelHalf(ulong va)
    {
        Assert.Equal(-22, Microhv.Hypervisor.AbiRom.MapInto(_g.Dom, va, 0));
    }

    [Fact]
    public void TheDataPageMustFollowTheRom()
    {
        Assert.Equal(-22, Microhv.Hypervisor.AbiRom.MapInto(_g.Dom, 0, Default + 0x10_0000));
    }

    [Fact]
    public void RefusesAfterValidationAndOverExistingMappings()
    {
        Assert.Equal(0, Microhv.Hypervisor.AbiRom.MapInto(_g.Dom, 0, 0));
        Assert.Equal(-17, Microhv.Hypervisor.AbiRom.MapInto(_g.Dom, 0, 0));     // EEXIST
        Assert.Equal(0, PageTypes.AdoptInitialPageTables(_g.Dom, _g.L4));
        Assert.Equal(-16, Microhv.Hypervisor.AbiRom.MapInto(_g.Dom, 0xFFFF_FFFF_FF80_0000, 0));   // EBUSY
    }

    [Fact]
    public void AnAddressInsideTheGuestsOwnMappingIsRefused()
    {
        // MmGuest maps 0x400000..; a ROM window at 0x400000 is in the lower half anyway, so map a page
        // into the upper-half window first and see MapInto refuse to overwrite it.
        var pt = new PageTable(_g.T.Memory, _g.M.Frames, _g.V.GuestTable);
        Assert.Equal(MapStatus.Ok, pt.Map(0xFFFF_C000_0000_0000, _g.Spare[0] << 12, PageTableEntry.User, PageSize.Size4K));
        Assert.Equal(-17, Microhv.Hypervisor.AbiRom.MapInto(_g.Dom, 0xFFFF_C000_0000_0000, 0));
    }
}
