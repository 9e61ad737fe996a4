using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Tests.Hypervisor.Mm;
using Xunit;

namespace Microhv.Tests.Hypervisor.Grants;

/// <summary>
/// GNTTABOP_cache_flush as Xen 4.17 answers it on x86 (xen/common/grant_table.c _cache_flush with x86's
/// dcache operations): B (domain 2) flushes its own frames and a frame of A (domain 1) it maps through a grant.
/// </summary>
public class GrantCacheFlushTests
{
    private const ulong MAP = 0, CACHE_FLUSH = 12;
    private const uint CLEAN = 1, INVAL = 2, SOURCE_GREF = 1u << 31;

    private readonly TestMachine T = new();
    private readonly MmGuest A, B;
    private readonly GrantTable Gt;

    public GrantCacheFlushTests()
    {
        A = new MmGuest(T, id: 1);
        B = new MmGuest(T, id: 2);
        Gt = GrantTable.Create(A.Dom);
        Assert.NotNull(GrantTable.Create(B.Dom));
    }

    private long Flush(ulong mfn, ushort offset, ushort length, uint op, ulong cmd = CACHE_FLUSH, int at = 0)
    {
        B.Arg(at, mfn << 12);
        B.Arg(at + 8, offset | (ulong)length << 16 | (ulong)op << 32);
        return GrantTableOp.Do(B.V, cmd, MmGuest.Base + (ulong)at, 1);
    }

    [Fact]
    public void Clean_of_an_own_frame_succeeds_invalidate_alone_is_not_supported_on_x86()
    {
        Assert.Equal(0, Flush(B.Data[0], 0, 4096, CLEAN));
        Assert.Equal(0, Flush(B.Data[0], 100, 200, CLEAN | INVAL));
        Assert.Equal(-Errno.EOPNOTSUPP, Flush(B.Data[0], 0, 64, INVAL));
        Assert.Equal(0, Flush(B.Data[0], 0, 0, INVAL));                  // nothing to do
        Assert.Equal(0, Flush(B.Data[0], 0, 64, 0));
        Assert.Equal(-Errno.EILSEQ, Flush(B.Data[0], 0, 0, CLEAN, CACHE_FLUSH | 1UL << 12));   // a resumed search
    }

    [Fact]
    public void Range_and_operation_bits_come_first_then_the_frame_and_its_owner()
    {
        Assert.Equal(-Errno.EINVAL, Flush(B.Data[0], 4096, 0, CLEAN));
        Assert.Equal(-Errno.EINVAL, Flush(B.Data[0], 0, 4097, CLEAN));
        Assert.Equal(-Errno.EINVAL, Flush(B.Data[0], 4000, 100, CLEAN));
        Assert.Equal(-Errno.EINVAL, Flush(B.Data[0], 0, 64, 4));
        Assert.Equal(-Errno.EINVAL, Flush(B.Data[0], 0, 64, SOURCE_GREF | CLEAN));   // past the known bits, as in Xen
        Assert.Equal(-Errno.EINVAL, Flush(0xFFFFFFFFUL, 0, 64, CLEAN));             // no such frame
        Assert.Equal(-Errno.EPERM, Flush(T.Machine.FrameTable.FrameCount - 1, 0, 64, CLEAN));   // a free frame
        Assert.Equal(-Errno.EFAULT, GrantTableOp.Do(B.V, CACHE_FLUSH, 0xFFFF_8000_0000_0000UL, 1));
    }

    [Fact]
    public void Another_domains_frame_only_while_the_caller_maps_its_grant()
    {
        ulong frame = A.Data[1];
        Assert.Equal(-Errno.EINVAL, Flush(frame, 0, 64, CLEAN));
        T.Memory.Poke64(Gt.Frames[0] * 4096 + 5 * 8, 1 | 2UL << 16 | frame << 32);   // GTF_permit_access to B
        B.Arg(64, MmGuest.Va(20));
        B.Arg(72, 2 | 5UL << 32);                                                  // GNTMAP_host_map, ref 5
        B.Arg(80, 1);
        Assert.Equal(0, GrantTableOp.Do(B.V, MAP, MmGuest.Base + 64, 1));
        Assert.Equal(0, (short)(ushort)(B.ReadArg(80) >> 16));
        Assert.Equal(0, Flush(frame, 0, 64, CLEAN));
        Assert.Equal(-Errno.EINVAL, Flush(A.Data[2], 0, 64, CLEAN));               // not the granted frame
        Assert.Equal(-Errno.EINVAL, Flush(frame, 0, 64, CLEAN, CACHE_FLUSH | 1UL << 12));   // search resumed past the table
    }
}
