using Microhv.Hypervisor;
using Microhv.Tests.Hypervisor.Mm;
using Xunit;

namespace Microhv.Tests.Hypervisor.Grants;

/// <summary>
/// Maps and copies through version-2 grants (xen/common/grant_table.c _set_status_v2, map_grant_ref,
/// acquire_grant_for_copy, release_grant_for_copy): GTF_reading/GTF_writing go to the status frame and
/// the entry's flags are never written; sub-page grants are copied within their range and never mapped;
/// a transitive grant is followed one level for a copy and never mapped. A (domain 1) grants, B (2)
/// grants A's grant on transitively, C (3) maps and copies.
/// </summary>
public class GrantV2AccessTests
{
    private const ulong MAP = 0, UNMAP = 1, COPY = 5;
    private const ushort GTF_permit_access = 1, GTF_transitive = 3, GTF_readonly = 4, GTF_reading = 8, GTF_writing = 16,
        GTF_sub_page = 256, SELF = 0x7FF0, GNTCOPY_source_gref = 1, GNTCOPY_dest_gref = 2;
    private const uint GNTMAP_host_map = 2, GNTMAP_readonly = 4;
    private const short GNTST_okay = 0, GNTST_general_error = -1, GNTST_bad_gntref = -3, GNTST_bad_copy_arg = -10;

    private readonly TestMachine T = new();
    private readonly MmGuest A, B, C;
    private readonly GrantTable At, Bt;

    public GrantV2AccessTests()
    {
        A = new MmGuest(T, id: 1);
        B = new MmGuest(T, id: 2);
        C = new MmGuest(T, id: 3);
        At = GrantTable.Create(A.Dom);
        Bt = GrantTable.Create(B.Dom);
        Assert.NotNull(GrantTable.Create(C.Dom));
        Assert.Equal(0, GrantVersion.Switch(At, 2));
        Assert.Equal(0, GrantVersion.Switch(Bt, 2));
    }

    private void PutV2(GrantTable gt, uint gref, ushort flags, ushort domid, ulong frameOrGref, ulong middle = 0)
    {
        T.Memory.Poke64(gt.Frames[0] * 4096 + gref * 16UL, flags | (ulong)domid << 16 | middle << 32);
        T.Memory.Poke64(gt.Frames[0] * 4096 + gref * 16UL + 8, frameOrGref);
    }
    private ushort Flags(GrantTable gt, uint gref) => T.Memory.Read16(gt.Frames[0] * 4096 + gref * 16UL);
    private ushort Status(GrantTable gt, uint gref) => T.Memory.Read16(gt.StatusFrames[0] * 4096 + gref * 2UL);

    private short Map(uint gref, ushort dom, uint flags, out uint handle)
    {
        C.Arg(0, MmGuest.Va(20));
        C.Arg(8, flags | (ulong)gref << 32);
        C.Arg(16, dom | 0x7777UL << 16);
        C.Arg(24, 0);
        Assert.Equal(0, GrantTableOp.Do(C.V, MAP, MmGuest.Base, 1));
        handle = (uint)(C.ReadArg(16) >> 32);
        return (short)(ushort)(C.ReadArg(16) >> 16);
    }

    private short Unmap(uint handle)
    {
        C.Arg(64, MmGuest.Va(20));
        C.Arg(72, 0);
        C.Arg(80, handle | 0x5555UL << 32);
        Assert.Equal(0, GrantTableOp.Do(C.V, UNMAP, MmGuest.Base + 64, 1));
        return (short)(ushort)(C.ReadArg(80) >> 32);
    }

    private short Copy(ulong srcU, ushort srcDom, ushort srcOff, ulong dstU, ushort dstDom, ushort dstOff, ushort len, ushort flags)
    {
        C.Arg(0, srcU);
        C.Arg(8, srcDom | (ulong)srcOff << 16);
        C.Arg(16, dstU);
        C.Arg(24, dstDom | (ulong)dstOff << 16);
        C.Arg(32, len | (ulong)flags << 16 | 0x7777UL << 32);
        Assert.Equal(0, GrantTableOp.Do(C.V, COPY, MmGuest.Base, 1));
        return (short)(ushort)(C.ReadArg(32) >> 32);
    }

    private void Fill(ulong mfn, byte seed) { for (ulong i = 0; i < 4096; i++) T.Memory.Write8(mfn * 4096 + i, (byte)(seed + i * 7)); }
    private byte Byte(ulong mfn, int offset) => T.Memory.Read8(mfn * 4096 + (ulong)offset);

    [Fact]
    public void A_map_sets_the_status_frame_not_the_entry_and_sub_page_or_transitive_grants_are_not_mapped()
    {
        PutV2(At, 10, GTF_permit_access, 3, A.Data[0]);
        Assert.Equal(GNTST_okay, Map(10, 1, GNTMAP_host_map, out uint h));
        Assert.Equal(GTF_permit_access, Flags(At, 10));
        Assert.Equal(GTF_reading | GTF_writing, Status(At, 10));
        Assert.Equal(A.Data[0], C.Get(C.L1, 20) >> 12 & 0xFFFFFFFFFUL);
        Assert.Equal(GNTST_okay, Unmap(h));
        Assert.Equal(0, Status(At, 10));

        PutV2(At, 11, GTF_permit_access | GTF_readonly, 3, A.Data[1]);
        Assert.Equal(GNTST_okay, Map(11, 1, GNTMAP_host_map | GNTMAP_readonly, out h));
        Assert.Equal(GTF_reading, Status(At, 11));
        Assert.Equal(GNTST_okay, Unmap(h));
        Assert.Equal(GNTST_general_error, Map(11, 1, GNTMAP_host_map, out _));        // r/o grant mapped writable
        Assert.Equal(0, Status(At, 11));

        PutV2(At, 12, GTF_permit_access | GTF_sub_page, 3, A.Data[2], middle: 0x0100_0000);
        Assert.Equal(GNTST_general_error, Map(12, 1, GNTMAP_host_map, out _));
        PutV2(At, 13, GTF_transitive, 3, 10, middle: 2);
        Assert.Equal(GNTST_general_error, Map(13, 1, GNTMAP_host_map, out _));
        Assert.Equal(0, Status(At, 12) | Status(At, 13));
        Assert.Equal(GNTST_bad_gntref, Map(256, 1, GNTMAP_host_map, out _));           // 256 v2 entries in one frame
    }

    [Fact]
    public void A_copy_stays_inside_a_sub_page_grant_and_leaves_no_status()
    {
        ulong frame = A.Data[3];
        Fill(C.Data[0], 4);
        PutV2(At, 14, GTF_permit_access | GTF_sub_page, 3, frame, middle: 256 | 512UL << 16);
        Assert.Equal(GNTST_okay, Copy(C.Data[0], SELF, 0, 14, 1, 256, 512, GNTCOPY_dest_gref));
        for (int i = 0; i < 512; i++) Assert.Equal(Byte(C.Data[0], i), Byte(frame, 256 + i));
        Assert.Equal(0, Byte(frame, 255) | Byte(frame, 768));
        Assert.Equal(GNTST_general_error, Copy(C.Data[0], SELF, 0, 14, 1, 255, 16, GNTCOPY_dest_gref));
        Assert.Equal(GNTST_general_error, Copy(C.Data[0], SELF, 0, 14, 1, 700, 69, GNTCOPY_dest_gref));
        Assert.Equal(GNTST_bad_copy_arg, Copy(C.Data[0], SELF, 0, 14, 1, 4000, 100, GNTCOPY_dest_gref));
        Assert.Equal(GNTST_okay, Copy(14, 1, 300, C.Spare[0], SELF, 0, 100, GNTCOPY_source_gref));
        Assert.Equal(GTF_permit_access | GTF_sub_page, Flags(At, 14));
        Assert.Equal(0, Status(At, 14));
        Assert.False(At.IsPinned(14));
    }

    [Fact]
    public void A_transitive_grant_is_followed_one_level_for_a_copy_and_both_grants_are_released()
    {
        ulong frame = A.Data[0];
        Fill(frame, 6);
        uint refs = T.FrameTable.RefCount(frame), types = T.FrameTable.TypeCount(frame);
        PutV2(At, 20, GTF_permit_access | GTF_sub_page, 2, frame, middle: 1024 | 2048UL << 16);   // A grants B a sub-page
        PutV2(Bt, 30, GTF_transitive, 3, 20, middle: 1);                                       // B passes it on to C
        Assert.Equal(GNTST_okay, Copy(30, 2, 1100, C.Spare[1], SELF, 0, 900, GNTCOPY_source_gref));
        for (int i = 0; i < 900; i++) Assert.Equal(Byte(frame, 1100 + i), Byte(C.Spare[1], i));
        Assert.Equal(GNTST_general_error, Copy(30, 2, 1000, C.Spare[1], SELF, 0, 16, GNTCOPY_source_gref));   // outside A's range
        Assert.Equal(GNTST_okay, Copy(C.Data[1], SELF, 0, 30, 2, 3000, 72, GNTCOPY_dest_gref));            // and written through
        for (int i = 0; i < 72; i++) Assert.Equal(Byte(C.Data[1], i), Byte(frame, 3000 + i));
        Assert.False(At.IsPinned(20) || Bt.IsPinned(30));
        Assert.Equal(0, Status(At, 20) | Status(Bt, 30));
        Assert.Equal(refs, T.FrameTable.RefCount(frame));
        Assert.Equal(types, T.FrameTable.TypeCount(frame));
        Assert.Equal(GNTST_general_error, Map(30, 2, GNTMAP_host_map, out _));      // never mapped

        PutV2(At, 20, GTF_permit_access | GTF_readonly, 2, frame);
        Assert.Equal(GNTST_general_error, Copy(C.Data[1], SELF, 0, 30, 2, 0, 8, GNTCOPY_dest_gref));   // A's grant is read-only
        Assert.Equal(0, Status(At, 20) | Status(Bt, 30));
        PutV2(At, 20, GTF_permit_access, 3, frame);
        Assert.Equal(GNTST_general_error, Copy(30, 2, 0, C.Spare[1], SELF, 0, 8, GNTCOPY_source_gref)); // A granted C, not B
    }

    [Fact]
    public void Transitive_grants_refused_for_themselves_an_unknown_domain_a_second_level_and_a_bad_reference()
    {
        ulong frame = A.Data[0];
        PutV2(At, 20, GTF_permit_access, 2, frame);
        PutV2(Bt, 31, GTF_transitive, 3, 20, middle: 2);                  // names its own granter
        Assert.Equal(GNTST_general_error, Copy(31, 2, 0, C.Spare[1], SELF, 0, 8, GNTCOPY_source_gref));
        PutV2(Bt, 32, GTF_transitive, 3, 20, middle: 9);                  // no domain 9
        Assert.Equal(GNTST_general_error, Copy(32, 2, 0, C.Spare[1], SELF, 0, 8, GNTCOPY_source_gref));
        PutV2(At, 21, GTF_transitive, 2, 20, middle: 3);                  // A's grant is itself transitive
        PutV2(Bt, 33, GTF_transitive, 3, 21, middle: 1);
        Assert.Equal(GNTST_general_error, Copy(33, 2, 0, C.Spare[1], SELF, 0, 8, GNTCOPY_source_gref));
        PutV2(Bt, 34, GTF_transitive, 3, 5000, middle: 1);                // past A's table: A's status code
        Assert.Equal(GNTST_bad_gntref, Copy(34, 2, 0, C.Spare[1], SELF, 0, 8, GNTCOPY_source_gref));
        for (uint r = 31; r <= 34; r++) Assert.Equal(0, Status(Bt, r));
        Assert.Equal(0, Status(At, 20) | Status(At, 21));

        Assert.Equal(0, GrantVersion.Switch(Bt, 1));                       // version 1 has no transitive grants
        T.Memory.Poke64(Bt.Frames[0] * 4096 + 30 * 8, GTF_transitive | 3UL << 16 | 20UL << 32);
        Assert.Equal(GNTST_general_error, Copy(30, 2, 0, C.Spare[1], SELF, 0, 8, GNTCOPY_source_gref));
    }
}
