using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Tests.Hypervisor.Mm;
using Xunit;

namespace Microhv.Tests.Hypervisor.Grants;

/// <summary>
/// GNTTABOP_transfer as Xen 4.17's gnttab_transfer and gnttab_prepare_for_transfer: B (domain 2) gives
/// A (domain 1) one of its frames through A's GTF_accept_transfer grant, in both table versions.
/// </summary>
public class GrantTransferTests
{
    private const ulong TRANSFER = 4;
    private const ushort GTF_permit_access = 1, GTF_accept_transfer = 2, GTF_transfer_committed = 4, GTF_transfer_completed = 8;
    private const short GNTST_okay = 0, GNTST_general_error = -1, GNTST_bad_domain = -2, GNTST_bad_page = -9;

    private readonly TestMachine T = new();
    private readonly MmGuest A, B;
    private readonly GrantTable Gt;

    public GrantTransferTests()
    {
        A = new MmGuest(T, id: 1);
        B = new MmGuest(T, id: 2);
        Gt = GrantTable.Create(A.Dom);
        Assert.NotNull(GrantTable.Create(B.Dom));
        A.Dom.NrPages = 100;
        A.Dom.MaxPages = 200;
        B.Dom.NrPages = 100;
        T.Machine.M2pTableAddress = T.NewFrame(FrameTable.OwnerXen) * 4096;
        T.Machine.M2pEntries = 512;
    }

    private short Transfer(ulong mfn, ushort domid, uint gref)
    {
        B.Arg(0, mfn);
        B.Arg(8, domid | (ulong)gref << 32);
        B.Arg(16, 0x7777_7777_7777UL);
        Assert.Equal(0, GrantTableOp.Do(B.V, TRANSFER, MmGuest.Base, 1));
        Assert.Equal(0x7777_7777UL, B.ReadArg(16) >> 16);
        return (short)(ushort)B.ReadArg(16);
    }

    private ulong Entry(uint gref) => T.Memory.Peek64(Gt.Frames[0] * 4096 + gref * 8UL);
    private void PutV1(uint gref, ushort flags, ulong frame, ushort domid = 2)
        => T.Memory.Poke64(Gt.Frames[0] * 4096 + gref * 8UL, flags | (ulong)domid << 16 | frame << 32);

    [Fact]
    public void The_frame_changes_owner_and_the_entry_gets_its_mfn_and_both_flags()
    {
        ulong frame = B.Spare[0];
        T.Memory.Write8(frame * 4096 + 5, 0x5A);
        PutV1(6, GTF_accept_transfer, 0x33);                    // A wants it at its frame 0x33
        Assert.Equal(GNTST_okay, Transfer(frame, 1, 6));
        Assert.Equal((ushort)1, T.FrameTable.OwnerOf(frame));
        Assert.Equal(GTF_accept_transfer | GTF_transfer_committed | GTF_transfer_completed | 2UL << 16 | frame << 32, Entry(6));
        Assert.Equal(0x33UL, T.Memory.Peek64(T.Machine.M2pTableAddress + frame * 8));
        Assert.Equal(0x5A, T.Memory.Read8(frame * 4096 + 5));  // the contents travel with it
        Assert.Equal(99UL, B.Dom.NrPages);
        Assert.Equal(101UL, A.Dom.NrPages);
        Assert.Equal(GNTST_bad_page, Transfer(frame, 1, 6));   // B no longer owns it
    }

    [Fact]
    public void A_frame_in_use_is_a_bad_page_and_kept()
    {
        Assert.Equal(GNTST_bad_page, Transfer(B.Data[0], 1, 6));      // mapped in B's page tables
        Assert.Equal(GNTST_bad_page, Transfer(B.L1, 1, 6));           // a page table
        Assert.Equal(GNTST_bad_page, Transfer(A.Spare[0], 1, 6));     // not B's
        Assert.Equal(GNTST_bad_page, Transfer(0xFFFFFFFFFUL, 1, 6));
        Assert.Equal(GNTST_bad_page, Transfer(GrantTable.Of(B.Dom).Frames[0], 1, 6));
        Assert.Equal((ushort)2, T.FrameTable.OwnerOf(B.Data[0]));
        Assert.Equal(100UL, B.Dom.NrPages);
    }

    [Fact]
    public void Once_taken_a_frame_that_cannot_be_given_is_lost_to_the_caller()
    {
        PutV1(6, GTF_accept_transfer, 0x33);
        Assert.Equal(GNTST_bad_domain, Transfer(B.Spare[1], 9, 6));
        Assert.Equal(FrameTable.OwnerNone, T.FrameTable.OwnerOf(B.Spare[1]));
        PutV1(7, GTF_permit_access, 0x33);                       // not an accept_transfer entry
        Assert.Equal(GNTST_general_error, Transfer(B.Spare[2], 1, 7));
        PutV1(8, GTF_accept_transfer | GTF_transfer_committed, 0x33);   // exactly GTF_accept_transfer
        Assert.Equal(GNTST_general_error, Transfer(B.Spare[3], 1, 8));
        PutV1(9, GTF_accept_transfer, 0x33, domid: 3);           // for another domain
        Assert.Equal(GNTST_general_error, Transfer(B.Spare[4], 1, 9));
        Assert.Equal(GNTST_general_error, Transfer(B.Spare[5], 1, 600));   // past A's table
        A.Dom.MaxPages = 101;
        A.Dom.NrPages = 101;                                     // no headroom
        Assert.Equal(GNTST_general_error, Transfer(B.Spare[6], 1, 6));
        for (int i = 1; i <= 6; i++) Assert.Equal(FrameTable.OwnerNone, T.FrameTable.OwnerOf(B.Spare[i]));
        Assert.Equal(GTF_accept_transfer | 2UL << 16 | 0x33UL << 32, Entry(6));
        Assert.Equal(94UL, B.Dom.NrPages);
    }

    [Fact]
    public void In_version_2_the_full_page_frame_gets_the_mfn()
    {
        Assert.Equal(0, GrantVersion.Switch(Gt, 2));
        T.Memory.Poke64(Gt.Frames[0] * 4096 + 10 * 16, GTF_accept_transfer | 2UL << 16);
        T.Memory.Poke64(Gt.Frames[0] * 4096 + 10 * 16 + 8, 0x44);
        Assert.Equal(GNTST_okay, Transfer(B.Spare[7], 1, 10));
        Assert.Equal(GTF_accept_transfer | GTF_transfer_committed | GTF_transfer_completed | 2UL << 16,
            T.Memory.Peek64(Gt.Frames[0] * 4096 + 10 * 16));
        Assert.Equal(B.Spare[7], T.Memory.Peek64(Gt.Frames[0] * 4096 + 10 * 16 + 8));
        Assert.Equal(0x44UL, T.Memory.Peek64(T.Machine.M2pTableAddress + B.Spare[7] * 8));
        Assert.Equal(0, T.Memory.Read16(Gt.StatusFrames[0] * 4096 + 10 * 2));   // no status for a transfer
    }
}
