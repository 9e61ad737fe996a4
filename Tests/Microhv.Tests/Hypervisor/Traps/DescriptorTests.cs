using Microhv.Hypervisor;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Xunit;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>check_descriptor rules, set_gdt and update_descriptor.</summary>
public class GuestDescriptorTests
{
    // Flat 64-bit code, DPL 0 / DPL 3; flat data DPL 3; a 64-bit TSS; an interrupt gate.
    private const ulong Code64Dpl0 = 0x00AF9A000000FFFF, Code64Dpl3 = 0x00AFFA000000FFFF, DataDpl3 = 0x00CFF2000000FFFF;
    private const ulong Tss = 0x0000890000000067, IntGate = 0x00008E0000100000;

    private static ulong CallGate(ushort selector, int dpl) => 0x0000_8C00_0000_0000UL | ((ulong)dpl << 45) | ((ulong)selector << 16) | 0x1000;

    [Fact]
    public void CheckDescriptorAcceptsSegmentsRaisingDplAndRejectsSystemDescriptors()
    {
        Assert.True(DescriptorCheck.Check(Code64Dpl0, out ulong fixedUp));
        Assert.Equal(Code64Dpl3, fixedUp);
        Assert.True(DescriptorCheck.Check(DataDpl3, out fixedUp));
        Assert.Equal(DataDpl3, fixedUp);
        Assert.True(DescriptorCheck.Check(0, out fixedUp));                       // null
        Assert.True(DescriptorCheck.Check(Tss & ~(1UL << 47), out _));           // not present: harmless
        Assert.False(DescriptorCheck.Check(Tss, out _));
        Assert.False(DescriptorCheck.Check(IntGate, out _));

        // A call gate to a guest code selector: kept with DPL 0 and the requested DPL in the RPL.
        Assert.True(DescriptorCheck.Check(CallGate(0x10, 3), out fixedUp));
        Assert.Equal(0UL, (fixedUp >> 45) & 3);
        Assert.Equal(0x13UL, (fixedUp >> 16) & 0xFFFF);
        Assert.True(DescriptorCheck.Check(CallGate(Xen.FLAT_KERNEL_CS64, 3), out _));
        // ... but not to one of the hypervisor's reserved selectors.
        Assert.False(DescriptorCheck.Check(CallGate((ushort)(ArchX86.FIRST_RESERVED_GDT_ENTRY * 8 + 8), 3), out _));
        // Reserved bits of a 64-bit gate must be clear.
        Assert.False(DescriptorCheck.Check(CallGate(0x10, 3) | (1UL << 32), out _));
    }

    [Fact]
    public void SetGdtTypesFramesAndValidatesThem()
    {
        var g = new TrapsGuest();
        ulong gdt = g.T.NewFrame(1);
        g.T.Memory.Write64(gdt * 4096 + 16, Code64Dpl0);
        g.T.Memory.Write64(gdt * 4096 + 24, DataDpl3);
        g.Write64(TrapsGuest.Va(0), gdt);
        Assert.Equal(0, SetGdt.Do(g.V, TrapsGuest.Va(0), 4));
        Assert.Equal(4, g.V.GdtEntries);
        Assert.Equal(gdt, g.V.GdtFrames[0]);
        Assert.Equal(FrameType.SegDesc, g.T.FrameTable.TypeOf(gdt));
        Assert.Equal(1u, g.T.FrameTable.TypeCount(gdt));
        Assert.Equal(Code64Dpl3, g.T.Memory.Read64(gdt * 4096 + 16));            // DPL fixed up in place

        // Replacing it releases the old frame's type.
        ulong gdt2 = g.T.NewFrame(1);
        g.Write64(TrapsGuest.Va(0), gdt2);
        Assert.Equal(0, SetGdt.Do(g.V, TrapsGuest.Va(0), 512));
        Assert.Equal(0u, g.T.FrameTable.TypeCount(gdt));
        Assert.Equal(1u, g.T.FrameTable.TypeCount(gdt2));

        // A TSS anywhere in the page (even beyond the entries used) is refused, and nothing changes.
        ulong bad = g.T.NewFrame(1);
        g.T.Memory.Write64(bad * 4096 + 511 * 8, Tss);
        g.Write64(TrapsGuest.Va(0), bad);
        Assert.Equal(-Errno.EINVAL, SetGdt.Do(g.V, TrapsGuest.Va(0), 8));
        Assert.Equal(gdt2, g.V.GdtFrames[0]);
        Assert.Equal(0u, g.T.FrameTable.TypeCount(bad));

        // Someone else's frame, a page table, too many entries, an unreadable list.
        ulong foreign = g.T.NewFrame(2);
        g.Write64(TrapsGuest.Va(0), foreign);
        Assert.Equal(-Errno.EINVAL, SetGdt.Do(g.V, TrapsGuest.Va(0), 8));
        ulong table = g.T.NewFrame(1);
        g.T.FrameTable.SetType(table, FrameType.L1PageTable, 1);
        g.T.Memory.Write64(table * 4096, 0x1234_5067);                           // would not pass as a descriptor fix-up target
        g.Write64(TrapsGuest.Va(0), table);
        Assert.Equal(-Errno.EINVAL, SetGdt.Do(g.V, TrapsGuest.Va(0), 8));
        Assert.Equal(0x1234_5067UL, g.T.Memory.Read64(table * 4096));           // untouched
        Assert.Equal(-Errno.EINVAL, SetGdt.Do(g.V, TrapsGuest.Va(0), (ulong)ArchX86.FIRST_RESERVED_GDT_ENTRY + 1));
        Assert.Equal(-Errno.EFAULT, SetGdt.Do(g.V, 0x900_0000, 8));
    }

    [Fact]
    public void UpdateDescriptorChecksAndWrites()
    {
        var g = new TrapsGuest();
        ulong frame = g.T.NewFrame(1);
        ulong ma = frame * 4096 + 8 * 6;
        Assert.Equal(0, UpdateDescriptor.Do(g.V, ma, Code64Dpl0));
        Assert.Equal(Code64Dpl3, g.T.Memory.Read64(ma));
        Assert.Equal(0u, g.T.FrameTable.TypeCount(frame));                        // reference dropped again
        Assert.Equal(-Errno.EINVAL, UpdateDescriptor.Do(g.V, ma + 4, DataDpl3));   // misaligned
        Assert.Equal(-Errno.EINVAL, UpdateDescriptor.Do(g.V, ma, Tss));
        Assert.Equal(-Errno.EINVAL, UpdateDescriptor.Do(g.V, g.T.NewFrame(2) * 4096, DataDpl3));
        ulong table = g.T.NewFrame(1);
        g.T.FrameTable.SetType(table, FrameType.L1PageTable, 1);
        g.T.FrameTable.SetValidated(table, true);
        Assert.Equal(-Errno.EINVAL, UpdateDescriptor.Do(g.V, table * 4096, DataDpl3));
        Assert.Equal(0UL, g.T.Memory.Read64(table * 4096));

        // A live GDT frame can be updated in place.
        g.Write64(TrapsGuest.Va(0), frame);
        Assert.Equal(0, SetGdt.Do(g.V, TrapsGuest.Va(0), 16));
        Assert.Equal(0, UpdateDescriptor.Do(g.V, frame * 4096 + 8, DataDpl3));
        Assert.Equal(1u, g.T.FrameTable.TypeCount(frame));
    }
}
