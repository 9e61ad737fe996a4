using Microhv.Hypervisor;
using Microhv.Tests.Hypervisor.Services;
using Xunit;

namespace Microhv.Tests.Hypervisor.Io;

/// <summary>
/// XENMEM_exchange as swiotlb-xen uses it (xen_create_contiguous_region and its reverse): scattered
/// frames for one machine-contiguous extent below an address width, with Xen's all-or-nothing
/// contract per chunk (rc 0 and nr_exchanged = all, or rc != 0 and the failed chunk untouched).
/// </summary>
public class MemoryExchangeTests
{
    private const ulong XENMEM_exchange = 11;
    private const ushort DOMID_SELF = 0x7FF0;
    private const ulong Arg = ServiceGuest.Base, InList = ServiceGuest.Base + 0x400, OutList = ServiceGuest.Base + 0x800;

    private static void Half(ServiceGuest g, ulong at, ulong list, ulong count, uint order, uint bits)
    {
        g.W64(at, list);
        g.W64(at + 8, count);
        g.W32(at + 16, order);
        g.W32(at + 20, bits);
        g.W16(at + 24, DOMID_SELF);
    }

    private static ulong[] SpareFrames(ServiceGuest g, int n)
    {
        var f = new ulong[n];
        for (int i = 0; i < n; i++) f[i] = g.Tm.NewFrame(g.D.DomainId);
        return f;
    }

    private static long Exchange(ServiceGuest g, ulong[] inMfns, uint inOrder, ulong[] outGpfns, uint outOrder, uint bits)
    {
        for (int i = 0; i < inMfns.Length; i++) g.W64(InList + (ulong)i * 8, inMfns[i]);
        for (int i = 0; i < outGpfns.Length; i++) g.W64(OutList + (ulong)i * 8, outGpfns[i]);
        Half(g, Arg, InList, (ulong)inMfns.Length, inOrder, 0);
        Half(g, Arg + 32, OutList, (ulong)outGpfns.Length, outOrder, bits);
        g.W64(Arg + 64, 0);
        return MemoryOp.Do(g.V, XENMEM_exchange, Arg);
    }

    [Fact]
    public void Four_frames_become_one_contiguous_aligned_extent_below_the_address_width()
    {
        var g = new ServiceGuest(id: 0, initial: true);
        ulong[] inFrames = SpareFrames(g, 4);
        Assert.Equal(0, Exchange(g, inFrames, 0, new ulong[] { 2 }, 2, 32));
        Assert.Equal(4UL, g.R64(Arg + 64));                              // nr_exchanged
        ulong mfn = g.R64(OutList);
        Assert.Equal(0UL, mfn & 3);                                      // aligned to its size
        Assert.True((mfn + 4) << 12 <= 1UL << 32);
        for (ulong k = 0; k < 4; k++)
        {
            Assert.Equal((ushort)0, g.Tm.FrameTable.OwnerOf(mfn + k));
            Assert.Equal(mfn + k, g.D.P2m[2 + k]);                       // pfns 2..5 now backed by the extent
        }
        foreach (ulong f in inFrames) Assert.Equal(FrameTable.OwnerNone, g.Tm.FrameTable.OwnerOf(f));
    }

    [Fact]
    public void The_extent_goes_back_as_single_frames()
    {
        var g = new ServiceGuest(id: 0, initial: true);
        Assert.Equal(0, Exchange(g, SpareFrames(g, 4), 0, new ulong[] { 2 }, 2, 32));
        ulong extent = g.R64(OutList);
        Assert.Equal(0, Exchange(g, new[] { extent }, 2, new ulong[] { 2, 3, 4, 5 }, 0, 0));
        Assert.Equal(1UL, g.R64(Arg + 64));
        for (ulong i = 0; i < 4; i++) Assert.Equal((ushort)0, g.Tm.FrameTable.OwnerOf(g.R64(OutList + i * 8)));
        Assert.Equal(FrameTable.OwnerNone, g.Tm.FrameTable.OwnerOf(extent));
    }

    [Fact]
    public void A_frame_that_is_not_the_domains_fails_the_chunk_and_changes_nothing()
    {
        var g = new ServiceGuest(id: 0, initial: true);
        ulong[] inFrames = SpareFrames(g, 4);
        inFrames[3] = g.Tm.NewFrame(5);                                  // another domain's
        Assert.Equal(-22, Exchange(g, inFrames, 0, new ulong[] { 2 }, 2, 32));
        Assert.Equal(0UL, g.R64(Arg + 64));
        Assert.Equal(2UL, g.R64(OutList));                               // the output list is untouched
        for (int i = 0; i < 3; i++) Assert.Equal((ushort)0, g.Tm.FrameTable.OwnerOf(inFrames[i]));
    }

    [Fact]
    public void A_width_no_free_run_fits_under_is_enomem_with_nothing_exchanged()
    {
        var g = new ServiceGuest(id: 0, initial: true);
        ulong[] inFrames = SpareFrames(g, 4);
        Assert.Equal(-12, Exchange(g, inFrames, 0, new ulong[] { 2 }, 2, 18));   // below 256 KiB: the test machine's frame source starts at 2 MiB
        Assert.Equal(0UL, g.R64(Arg + 64));
        foreach (ulong f in inFrames) Assert.Equal((ushort)0, g.Tm.FrameTable.OwnerOf(f));
    }

    [Fact]
    public void Mismatched_sizes_too_large_orders_and_bad_pointers_are_refused()
    {
        var g = new ServiceGuest(id: 0, initial: true);
        Assert.Equal(-22, Exchange(g, SpareFrames(g, 3), 0, new ulong[] { 2 }, 2, 32));
        Assert.Equal(-1, Exchange(g, SpareFrames(g, 1), 13, new ulong[] { 2 }, 13, 32));
        Assert.Equal(-14, MemoryOp.Do(g.V, XENMEM_exchange, ServiceGuest.Unmapped));
        Half(g, Arg, ServiceGuest.Unmapped, 4, 0, 0);                     // an input list it cannot read
        Half(g, Arg + 32, OutList, 1, 2, 32);
        g.W64(Arg + 64, 0);
        Assert.Equal(-14, MemoryOp.Do(g.V, XENMEM_exchange, Arg));
        Assert.Equal(0UL, g.R64(Arg + 64));
    }

    [Fact]
    public void Only_the_hardware_domain_exchanges_memory()
    {
        var g = new ServiceGuest(id: 1);
        Assert.Equal(-1, Exchange(g, SpareFrames(g, 4), 0, new ulong[] { 2 }, 2, 32));
        Assert.Contains("hwdom: d1 may not exchange memory", g.ConsoleText);
    }
}
