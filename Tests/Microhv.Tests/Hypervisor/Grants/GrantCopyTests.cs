using Microhv.Hypervisor;
using Microhv.Tests.Hypervisor.Mm;
using Xunit;

namespace Microhv.Tests.Hypervisor.Grants;

/// <summary>
/// GNTTABOP_copy as Linux's netback issues it (TX: the frontend's grant into the backend's own frame,
/// GNTCOPY_source_gref; RX: the backend's frame into the frontend's grant, GNTCOPY_dest_gref), with Xen
/// 4.17's statuses and order (xen/common/grant_table.c gnttab_copy_one, gnttab_copy_claim_buf,
/// acquire_grant_for_copy). A (domain 1) is the frontend and grants, B (domain 2) is the backend and copies.
/// </summary>
public class GrantCopyTests
{
    private const ulong MAP = 0, UNMAP = 1, COPY = 5;
    private const uint GNTMAP_host_map = 2, GNTMAP_readonly = 4;
    private const ushort GTF_permit_access = 1, GTF_accept_transfer = 2, GTF_transitive = 3, GTF_readonly = 4,
        GTF_reading = 8, GTF_writing = 16, GTF_sub_page = 256;
    private const ushort GNTCOPY_source_gref = 1, GNTCOPY_dest_gref = 2, SELF = 0x7FF0;
    private const short GNTST_okay = 0, GNTST_general_error = -1, GNTST_bad_domain = -2, GNTST_bad_gntref = -3,
        GNTST_permission_denied = -8, GNTST_bad_page = -9, GNTST_bad_copy_arg = -10;
    private const int CopySize = 40;
    private const short Untouched = 0x7777;

    private readonly TestMachine T = new();
    private readonly MmGuest A, B;
    private readonly GrantTable Gt;

    public GrantCopyTests()
    {
        A = new MmGuest(T, id: 1);
        B = new MmGuest(T, id: 2);
        Gt = GrantTable.Create(A.Dom);
        Assert.NotNull(Gt);
        Assert.NotNull(GrantTable.Create(B.Dom));
    }

    private void Grant(uint gref, ushort flags, ulong frame, ushort domid = 2)
        => T.Memory.Poke64(Gt.Frames[0] * 4096 + gref * 8UL, flags | (ulong)domid << 16 | frame << 32);
    private ushort GrantFlags(uint gref) => (ushort)T.Memory.Peek64(Gt.Frames[0] * 4096 + gref * 8UL);

    private static ulong OpVa(int i) => MmGuest.Base + (ulong)i * CopySize;
    private void W(ulong va, ulong value) => Assert.True(GuestMemory.WriteU64(B.V, va, value));

    /// <summary>Writes struct gnttab_copy number <paramref name="i"/> of a batch at B's argument page
    /// (which runs on into B's four data pages), padding and status filled with junk.</summary>
    private void PutCopy(int i, ulong srcU, ushort srcDom, ushort srcOff, ulong dstU, ushort dstDom, ushort dstOff, ushort len, ushort flags)
    {
        ulong at = OpVa(i);
        W(at, srcU);
        W(at + 8, srcDom | (ulong)srcOff << 16 | 0xEEEEEEEEUL << 32);
        W(at + 16, dstU);
        W(at + 24, dstDom | (ulong)dstOff << 16 | 0xEEEEEEEEUL << 32);
        W(at + 32, len | (ulong)flags << 16 | (ulong)(ushort)Untouched << 32 | 0xEEEEUL << 48);
    }

    private short Status(int i)
    {
        Assert.True(GuestMemory.ReadU64(B.V, OpVa(i) + 32, out ulong w));
        Assert.Equal(0xEEEEUL, w >> 48);                      // the padding is left alone
        return (short)(ushort)(w >> 32);
    }

    private short Copy(ulong srcU, ushort srcDom, ushort srcOff, ulong dstU, ushort dstDom, ushort dstOff, ushort len, ushort flags)
    {
        PutCopy(0, srcU, srcDom, srcOff, dstU, dstDom, dstOff, len, flags);
        Assert.Equal(0, GrantTableOp.Do(B.V, COPY, MmGuest.Base, 1));
        return Status(0);
    }

    private void Fill(ulong mfn, byte seed)
    {
        for (ulong i = 0; i < 4096; i++) T.Memory.Write8(mfn * 4096 + i, (byte)(seed + i * 7));
    }

    private byte At(ulong mfn, int offset) => T.Memory.Read8(mfn * 4096 + (ulong)offset);

    private void AssertCopied(ulong src, int srcOff, ulong dst, int dstOff, int len)
    {
        for (int i = 0; i < len; i++) Assert.Equal(At(src, srcOff + i), At(dst, dstOff + i));
    }

    private void AssertUntouched(ulong mfn) { for (int i = 0; i < 4096; i++) Assert.Equal(0, At(mfn, i)); }

    [Fact]
    public void Tx_copies_the_frontends_read_only_grant_into_the_backends_own_frame_and_leaves_no_trace()
    {
        ulong frame = A.Data[0], own = B.Spare[0];
        Fill(frame, 3);
        Grant(5, GTF_permit_access | GTF_readonly, frame);
        uint refs = A.RefCount(frame), types = A.TypeCount(frame), ownRefs = B.RefCount(own);

        Assert.Equal(GNTST_okay, Copy(5, 1, 100, own, SELF, 200, 128, GNTCOPY_source_gref));
        AssertCopied(frame, 100, own, 200, 128);
        Assert.Equal(0, At(own, 199));
        Assert.Equal(0, At(own, 328));
        Assert.Equal(GTF_permit_access | GTF_readonly, GrantFlags(5));    // GTF_reading set and cleared again
        Assert.False(Gt.IsPinned(5));
        Assert.Equal(refs, A.RefCount(frame));
        Assert.Equal(types, A.TypeCount(frame));
        Assert.Equal(ownRefs, B.RefCount(own));
        Assert.Equal(0U, B.TypeCount(own));
        Assert.Equal(FrameType.Writable, B.Type(own));
    }

    [Fact]
    public void Rx_copies_the_backends_own_frame_into_the_frontends_writable_grant()
    {
        ulong frame = A.Spare[0], own = B.Data[1];
        Fill(own, 9);
        Grant(6, GTF_permit_access, frame);
        Assert.Equal(GNTST_okay, Copy(own, SELF, 0, 6, 1, 1000, 1514, GNTCOPY_dest_gref));
        AssertCopied(own, 0, frame, 1000, 1514);
        Assert.Equal(0, At(frame, 999));
        Assert.Equal(0, At(frame, 2514));
        Assert.Equal(GTF_permit_access, GrantFlags(6));
        Assert.False(Gt.IsPinned(6));
        Assert.Equal(0U, A.TypeCount(frame));
        Assert.Equal(0U, A.RefCount(frame));
    }

    [Fact]
    public void Both_sides_may_be_grants_and_a_domain_may_copy_between_grants_it_made_to_itself()
    {
        Grant(1, GTF_permit_access | GTF_readonly, A.Data[0]);
        Grant(2, GTF_permit_access, A.Data[1]);
        Fill(A.Data[0], 5);
        Assert.Equal(GNTST_okay, Copy(1, 1, 8, 2, 1, 16, 64, GNTCOPY_source_gref | GNTCOPY_dest_gref));
        AssertCopied(A.Data[0], 8, A.Data[1], 16, 64);

        // B's own table, used through DOMID_SELF (pvtest's check does the same on Xen).
        GrantTable bt = GrantTable.Of(B.Dom);
        T.Memory.Poke64(bt.Frames[0] * 4096 + 3 * 8, GTF_permit_access | 2UL << 16 | B.Spare[1] << 32);
        Fill(B.Spare[2], 1);
        Assert.Equal(GNTST_okay, Copy(B.Spare[2], SELF, 0, 3, SELF, 3900, 96, GNTCOPY_dest_gref));
        AssertCopied(B.Spare[2], 0, B.Spare[1], 3900, 96);
        Assert.Equal(GNTST_okay, Copy(3, 2, 3900, B.Spare[3], SELF, 0, 96, GNTCOPY_source_gref));   // its own id works too
        AssertCopied(B.Spare[1], 3900, B.Spare[3], 0, 96);
    }

    [Fact]
    public void A_read_only_grant_is_refused_as_destination_and_grants_for_others_or_invalid_ones_are_refused()
    {
        ulong frame = A.Spare[1];
        Grant(7, GTF_permit_access | GTF_readonly, frame);
        Assert.Equal(GNTST_general_error, Copy(B.Data[0], SELF, 0, 7, 1, 0, 16, GNTCOPY_dest_gref));
        Assert.Equal(GTF_permit_access | GTF_readonly, GrantFlags(7));
        AssertUntouched(frame);

        Grant(8, GTF_permit_access, frame, domid: 3);                         // granted to someone else
        Assert.Equal(GNTST_general_error, Copy(8, 1, 0, B.Spare[0], SELF, 0, 16, GNTCOPY_source_gref));
        Grant(9, 0, frame);                                                   // GTF_invalid
        Assert.Equal(GNTST_general_error, Copy(9, 1, 0, B.Spare[0], SELF, 0, 16, GNTCOPY_source_gref));
        Grant(10, GTF_accept_transfer, frame);
        Assert.Equal(GNTST_general_error, Copy(10, 1, 0, B.Spare[0], SELF, 0, 16, GNTCOPY_source_gref));
        Assert.Equal(GTF_accept_transfer, GrantFlags(10));
    }

    [Theory]
    // Frames are named only through DOMID_SELF, even with the caller's own id.
    [InlineData(0, 2, 0, SELF, 16, 0, GNTST_permission_denied)]
    [InlineData(0, SELF, 0, 1, 16, 0, GNTST_permission_denied)]
    // The source's domain is locked first, then the destination's.
    [InlineData(0, 99, 0, 1, 16, GNTCOPY_source_gref, GNTST_bad_domain)]
    [InlineData(0, 2, 0, 99, 16, GNTCOPY_dest_gref, GNTST_permission_denied)]
    [InlineData(0, SELF, 0, 99, 16, GNTCOPY_dest_gref, GNTST_bad_domain)]
    // Past the page: reported only once both sides are claimed.
    [InlineData(4000, SELF, 0, SELF, 200, 0, GNTST_bad_copy_arg)]
    [InlineData(0, SELF, 4095, SELF, 2, 0, GNTST_bad_copy_arg)]
    [InlineData(4096, SELF, 4096, SELF, 0, 0, GNTST_okay)]
    [InlineData(4000, 1, 0, SELF, 200, GNTCOPY_source_gref, GNTST_bad_gntref)]
    public void Statuses_come_in_Xens_order(ushort srcOff, ushort srcDom, ushort dstOff, ushort dstDom, ushort len, ushort flags, short expected)
    {
        // With a source grant the source is ref 4096 (past A's one-frame table) so bad_gntref shows its place.
        ulong src = (flags & GNTCOPY_source_gref) != 0 ? 4096UL : B.Data[0];
        Grant(1, GTF_permit_access, A.Spare[0]);
        ulong dst = (flags & GNTCOPY_dest_gref) != 0 ? 1UL : B.Spare[0];
        Assert.Equal(expected, Copy(src, srcDom, srcOff, dst, dstDom, dstOff, len, flags));
    }

    [Fact]
    public void Frames_must_belong_to_whoever_names_them()
    {
        // A frame of A's given as B's own, an MFN past the machine, a grant of a frame A does not own.
        Assert.Equal(GNTST_bad_page, Copy(A.Data[0], SELF, 0, B.Spare[0], SELF, 0, 16, 0));
        Assert.Equal(GNTST_bad_page, Copy(B.Data[0], SELF, 0, 0xFFFF_FFFF_FFUL, SELF, 0, 16, 0));
        Grant(11, GTF_permit_access, B.Data[0]);
        Assert.Equal(GNTST_bad_page, Copy(11, 1, 0, B.Spare[0], SELF, 0, 16, GNTCOPY_source_gref));
        Assert.Equal(GTF_permit_access, GrantFlags(11));
        Assert.False(Gt.IsPinned(11));
        // The source's failure comes before the destination's.
        Assert.Equal(GNTST_bad_gntref, Copy(4096, 1, 0, A.Data[0], SELF, 0, 16, GNTCOPY_source_gref));
        AssertUntouched(B.Spare[0]);
    }

    [Fact]
    public void A_page_table_or_descriptor_page_is_never_a_destination_but_may_be_read()
    {
        ulong l1 = B.L1;
        ulong before = B.Get(l1, 1);
        uint types = B.TypeCount(l1), refs = B.RefCount(l1);
        Assert.Equal(GNTST_general_error, Copy(B.Data[0], SELF, 0, l1, SELF, 8, 8, 0));
        Assert.Equal(before, B.Get(l1, 1));
        Assert.Equal(GNTST_okay, Copy(l1, SELF, 8, B.Spare[0], SELF, 0, 8, 0));
        Assert.Equal(before, T.Memory.Peek64(B.Spare[0] * 4096));
        Assert.Equal(FrameType.L1PageTable, B.Type(l1));
        Assert.Equal(types, B.TypeCount(l1));
        Assert.Equal(refs, B.RefCount(l1));

        ulong desc = B.Spare[4];
        T.FrameTable.SetType(desc, FrameType.SegDesc, 1);
        T.FrameTable.SetValidated(desc, true);
        Assert.Equal(GNTST_general_error, Copy(B.Data[0], SELF, 0, desc, SELF, 0, 8, 0));
        AssertUntouched(desc);

        // Through a writable grant of A's own L1: refused, and the grant is released.
        Grant(12, GTF_permit_access, A.L1);
        Assert.Equal(GNTST_general_error, Copy(B.Data[0], SELF, 0, 12, 1, 0, 8, GNTCOPY_dest_gref));
        Assert.Equal(GTF_permit_access, GrantFlags(12));
        Assert.False(Gt.IsPinned(12));
        Assert.Equal(FrameType.L1PageTable, A.Type(A.L1));
    }

    [Fact]
    public void A_grant_mapped_read_only_can_still_be_copied_into_and_keeps_its_mapping_pin()
    {
        ulong frame = A.Spare[2];
        Grant(13, GTF_permit_access, frame);
        B.Arg(0, MmGuest.Va(20));
        B.Arg(8, GNTMAP_host_map | GNTMAP_readonly | 13UL << 32);
        B.Arg(16, 1);
        B.Arg(24, 0);
        Assert.Equal(0, GrantTableOp.Do(B.V, MAP, MmGuest.Base, 1));
        Assert.Equal(0, (short)(ushort)(B.ReadArg(16) >> 16));
        uint handle = (uint)(B.ReadArg(16) >> 32);
        Assert.Equal(GTF_permit_access | GTF_reading, GrantFlags(13));

        Fill(B.Data[2], 4);
        Assert.Equal(GNTST_okay, Copy(B.Data[2], SELF, 0, 13, 1, 0, 64, GNTCOPY_dest_gref));
        AssertCopied(B.Data[2], 0, frame, 0, 64);
        Assert.Equal(GTF_permit_access | GTF_reading, GrantFlags(13));       // GTF_writing gone with the copy
        Assert.Equal(1, Gt.ReadPins(13));
        Assert.Equal(0, Gt.WritePins(13));

        // Once pinned the grant is B's: a third domain is refused even if A re-addresses the entry.
        var c = new MmGuest(T, id: 3);
        Grant(13, GTF_permit_access, frame, domid: 3);
        c.Arg(0, 13); c.Arg(8, 1); c.Arg(16, c.Spare[0]); c.Arg(24, SELF); c.Arg(32, 16 | (ulong)GNTCOPY_source_gref << 16);
        Assert.Equal(0, GrantTableOp.Do(c.V, COPY, MmGuest.Base, 1));
        Assert.Equal(GNTST_general_error, (short)(ushort)(c.ReadArg(32) >> 32));

        B.Arg(64, MmGuest.Va(20)); B.Arg(72, 0); B.Arg(80, handle);
        Assert.Equal(0, GrantTableOp.Do(B.V, UNMAP, MmGuest.Base + 64, 1));
        Assert.False(Gt.IsPinned(13));
    }

    [Fact]
    public void A_grant_pinned_read_only_whose_frame_became_a_page_table_is_not_written()
    {
        // A's frame F is mapped read-only by B (a pin and a general reference, no type); A then points the
        // entry at another frame and makes F an L1. A copy into the grant must not write F.
        ulong f = A.Spare[6], g = A.Spare[7];
        Grant(17, GTF_permit_access, f);
        B.Arg(0, MmGuest.Va(21));
        B.Arg(8, GNTMAP_host_map | GNTMAP_readonly | 17UL << 32);
        B.Arg(16, 1);
        B.Arg(24, 0);
        Assert.Equal(0, GrantTableOp.Do(B.V, MAP, MmGuest.Base, 1));
        Assert.Equal(0, (short)(ushort)(B.ReadArg(16) >> 16));
        Grant(17, GTF_permit_access, g);
        Assert.Equal(0, Microhv.Hypervisor.Mm.PageTypes.GetPageAndType(T.Machine, A.Dom, f, FrameType.L1PageTable));
        Fill(B.Data[0], 1);
        Assert.Equal(GNTST_general_error, Copy(B.Data[0], SELF, 0, 17, 1, 0, 64, GNTCOPY_dest_gref));
        AssertUntouched(f);
        AssertUntouched(g);
        Assert.Equal(GTF_permit_access | GTF_reading, GrantFlags(17));    // the copy set both; the map's pin keeps GTF_reading
        // An entry pointing at a frame A does not own is bad_page, as Xen checks the entry's frame.
        Grant(17, GTF_permit_access, B.Spare[0]);
        Assert.Equal(GNTST_bad_page, Copy(B.Data[0], SELF, 0, 17, 1, 0, 64, GNTCOPY_dest_gref));
        Assert.Equal(GTF_permit_access | GTF_reading, GrantFlags(17));    // the copy set both; the map's pin keeps GTF_reading
        Assert.Equal(1, Gt.ReadPins(17));
        Assert.Equal(0, Gt.WritePins(17));
    }

    /// <summary>A version-2 entry: header, sub_page { page_off, length } or nothing, then the frame.</summary>
    private void GrantV2(uint gref, ushort flags, ulong frame, ushort pageOff = 0, ushort length = 0, ushort domid = 2)
    {
        ulong at = Gt.Frames[0] * 4096 + gref * 16UL;
        T.Memory.Poke64(at, flags | (ulong)domid << 16 | (ulong)pageOff << 32 | (ulong)length << 48);
        T.Memory.Poke64(at + 8, frame);
    }

    private ushort StatusV2(uint gref) => T.Memory.Read16(Gt.StatusFrames[0] * 4096 + gref * 2UL);

    [Fact]
    public void Version_2_sub_page_grants_bound_the_copy_and_keep_their_status_apart()
    {
        Gt.Version = 2;
        Assert.True(Gt.PopulateStatusFrames());
        ulong frame = A.Spare[3];
        Fill(B.Data[0], 2);
        GrantV2(4, GTF_permit_access | GTF_sub_page, frame, 256, 512);
        Assert.Equal(GNTST_okay, Copy(B.Data[0], SELF, 0, 4, 1, 256, 512, GNTCOPY_dest_gref));
        AssertCopied(B.Data[0], 0, frame, 256, 512);
        Assert.Equal(GNTST_general_error, Copy(B.Data[0], SELF, 0, 4, 1, 255, 16, GNTCOPY_dest_gref));
        Assert.Equal(GNTST_general_error, Copy(B.Data[0], SELF, 0, 4, 1, 700, 69, GNTCOPY_dest_gref));
        Assert.Equal(GNTST_bad_copy_arg, Copy(B.Data[0], SELF, 0, 4, 1, 4000, 100, GNTCOPY_dest_gref));
        Assert.Equal(0, StatusV2(4));
        Assert.Equal(GTF_permit_access | GTF_sub_page, (ushort)T.Memory.Peek64(Gt.Frames[0] * 4096 + 4 * 16));

        GrantV2(5, GTF_permit_access, frame);                                 // full page
        Assert.Equal(GNTST_okay, Copy(5, 1, 3000, B.Spare[0], SELF, 0, 1000, GNTCOPY_source_gref));
        // A transitive grant that names a domain that does not exist (domain 0 here) is refused.
        GrantV2(6, GTF_transitive, 0);
        Assert.Equal(GNTST_general_error, Copy(6, 1, 0, B.Spare[0], SELF, 0, 16, GNTCOPY_source_gref));
        Assert.Equal(0, StatusV2(5));
        Assert.Equal(0, StatusV2(6));
    }

    [Fact]
    public void A_dead_granter_that_gave_its_memory_back_is_a_bad_domain()
    {
        Grant(14, GTF_permit_access, A.Spare[4]);
        A.Dom.State = DomainState.Shutdown;
        DomainRelinquish.ReleaseDead(T.Machine, B.V);
        Assert.True(A.Dom.Relinquished);
        Assert.Equal(GNTST_bad_domain, Copy(14, 1, 0, B.Spare[0], SELF, 0, 16, GNTCOPY_source_gref));
    }

    [Fact]
    public void A_long_batch_reports_each_status_and_is_continued_after_the_budget()
    {
        int n = Continuation.Budget + 10;
        Grant(15, GTF_permit_access, A.Spare[5]);
        Fill(B.Spare[6], 11);
        for (int i = 0; i < n; i++)
            PutCopy(i, B.Spare[6], SELF, (ushort)i, 15, 1, (ushort)i, 1, GNTCOPY_dest_gref);
        PutCopy(3, B.Spare[6], SELF, 0, 4096, 1, 0, 1, GNTCOPY_dest_gref);    // one bad operation does not stop the batch
        Continuation.Begin(B.V);
        GrantTableOp.Do(B.V, COPY, MmGuest.Base, (ulong)n);
        Assert.True(B.V.PendingCall.Pending);
        Assert.Equal(20UL, B.V.PendingCall.Nr);
        Assert.Equal(COPY, B.V.PendingCall.A1);
        Assert.Equal(OpVa(Continuation.Budget), B.V.PendingCall.A2);
        Assert.Equal(10UL, B.V.PendingCall.A3);
        Assert.Equal(GNTST_bad_gntref, Status(3));
        Assert.Equal(GNTST_okay, Status(Continuation.Budget - 1));
        Assert.Equal(Untouched, Status(Continuation.Budget));

        Continuation.Begin(B.V);
        Assert.Equal(0, GrantTableOp.Do(B.V, B.V.PendingCall.A1, B.V.PendingCall.A2, B.V.PendingCall.A3));
        Assert.False(B.V.PendingCall.Pending);
        for (int i = 0; i < n; i++)
        {
            Assert.Equal(i == 3 ? GNTST_bad_gntref : GNTST_okay, Status(i));
            Assert.Equal(i == 3 ? 0 : At(B.Spare[6], i), At(A.Spare[5], i));
        }
        Assert.Equal(GTF_permit_access, GrantFlags(15));
        Assert.False(Gt.IsPinned(15));
    }

    [Fact]
    public void Unreachable_operations_are_EFAULT()
    {
        const long EFAULT = -14;
        Assert.Equal(EFAULT, GrantTableOp.Do(B.V, COPY, 0x8000_0000_0000UL, 0));             // non-canonical start, even for none
        Assert.Equal(0, GrantTableOp.Do(B.V, COPY, MmGuest.Va(6), 0));
        Assert.Equal(EFAULT, GrantTableOp.Do(B.V, COPY, MmGuest.Va(6), 1));                   // not mapped
        // An operation in a read-only page is done, but its status cannot be written.
        Grant(16, GTF_permit_access, A.Spare[6]);
        ulong code = B.Code * 4096;
        T.Memory.Poke64(code, B.Data[0]); T.Memory.Poke64(code + 8, SELF);
        T.Memory.Poke64(code + 16, 16); T.Memory.Poke64(code + 24, 1); T.Memory.Poke64(code + 32, 8 | (ulong)GNTCOPY_dest_gref << 16);
        Assert.Equal(EFAULT, GrantTableOp.Do(B.V, COPY, MmGuest.Va(MmGuest.CodeSlot), 1));
        Assert.Equal(GTF_permit_access, GrantFlags(16));
        // The batch stops at the first operation whose status cannot be written, after those before it.
        PutCopy(511, B.Data[0], SELF, 0, B.Spare[0], SELF, 0, 8, 0);
        Assert.Equal(OpVa(511), MmGuest.Va(MmGuest.CodeSlot) - CopySize);
        Assert.Equal(EFAULT, GrantTableOp.Do(B.V, COPY, OpVa(511), 2));
        Assert.Equal(GNTST_okay, Status(511));
    }
}
