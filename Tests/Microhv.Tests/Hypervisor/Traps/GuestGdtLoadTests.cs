using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Xunit;

namespace Microhv.Tests.Hypervisor.Traps;

/// <summary>
/// The guest's GDT reaches the CPU: set_gdt reloads it and update_descriptor of a live GDT entry
/// rewrites that entry (Linux's __USER_DS = 0x2b and its TLS entries live there).
/// </summary>
public class GuestGdtLoadTests
{
    private const ulong Code64Dpl0 = 0x00AF9A000000FFFF, Code64Dpl3 = 0x00AFFA000000FFFF, DataDpl3 = 0x00CFF2000000FFFF;

    [Fact]
    public void SetGdtLoadsTheNewTableIntoTheCpu()
    {
        var g = new TrapsGuest();
        ulong frame = g.T.NewFrame(1);
        g.Write64(TrapsGuest.Va(0), frame);
        Assert.Equal(0, SetGdt.Do(g.V, TrapsGuest.Va(0), 16));
        Assert.Equal(new[] { g.V }, g.T.Host.GdtLoads);

        // A refused set_gdt leaves the CPU's copy alone.
        Assert.Equal(-Errno.EINVAL, SetGdt.Do(g.V, TrapsGuest.Va(0), (ulong)ArchX86.FIRST_RESERVED_GDT_ENTRY + 1));
        Assert.Single(g.T.Host.GdtLoads);
    }

    [Fact]
    public void UpdateDescriptorOfALiveEntryRewritesThatEntryOnly()
    {
        var g = new TrapsGuest();
        ulong frame = g.T.NewFrame(1);
        g.Write64(TrapsGuest.Va(0), frame);
        Assert.Equal(0, SetGdt.Do(g.V, TrapsGuest.Va(0), 16));

        Assert.Equal(0, UpdateDescriptor.Do(g.V, frame * 4096 + 5 * 8, DataDpl3));      // Linux's GDT_ENTRY_DEFAULT_USER_DS
        Assert.Equal(0, UpdateDescriptor.Do(g.V, frame * 4096 + 12 * 8, Code64Dpl0));   // a TLS slot: the fixed-up form reaches the CPU
        Assert.Equal(new[] { (5, DataDpl3), (12, Code64Dpl3) }, g.T.Host.GdtEntryWrites);

        // Beyond the entries set_gdt named, or in a frame that is not the GDT: the CPU copy is not touched.
        Assert.Equal(0, UpdateDescriptor.Do(g.V, frame * 4096 + 16 * 8, DataDpl3));
        Assert.Equal(0, UpdateDescriptor.Do(g.V, g.T.NewFrame(1) * 4096, DataDpl3));
        Assert.Equal(2, g.T.Host.GdtEntryWrites.Count);
    }
}
