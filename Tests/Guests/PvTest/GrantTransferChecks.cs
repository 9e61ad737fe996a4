namespace Microhv.Guests.PvTest;

/// <summary>
/// GNTTABOP_transfer to ourselves (xen/include/public/grant_table.h struct gnttab_transfer): one of our
/// pages, unmapped, given through our own GTF_accept_transfer grant comes back with the entry completed,
/// its MFN in the entry and the frame number we asked for in the M2P; a page still mapped, a page table
/// or no page at all is a bad_page and stays; a page taken for an entry that does not accept it is lost
/// (general_error), as Xen frees it. Runs after the other grant checks, in version 1.
/// </summary>
internal static unsafe class GrantTransferChecks
{
    private const ushort Self = 0;

    public static void Run() => Checks.Run("grant_transfer", &Transfer);

    /// <summary>struct gnttab_transfer { mfn; domid; ref; status }: the status, or the call's error.</summary>
    private static long Give(ulong mfn, ushort domid, uint gref)
    {
        byte* op = stackalloc byte[24];
        *(ulong*)op = mfn; *(ushort*)(op + 8) = domid; *(uint*)(op + 12) = gref; *(uint*)(op + 16) = 0x7777EEEE;
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_transfer, (ulong)op, 1);
        if (rc != 0) return rc;
        if (*(ushort*)(op + 18) != 0x7777) Checks.Fail("transfer wrote past its status");
        return *(short*)(op + 16);
    }

    private static void Transfer()
    {
        ulong* table = GrantChecks.Table();
        if (table == null) return;
        byte* page = Guest.Page(12), lost = Guest.Page(13);
        ulong mfn = Guest.MfnOf(page), pfn = Guest.PfnOf(page);
        *(ulong*)(page + 8) = 0x726566736E617274UL;
        table[30] = Xen.GTF_accept_transfer | (ulong)Self << 16 | pfn << 32;
        Checks.Expect("a page still mapped", Give(mfn, Self, 30), Xen.GNTST_bad_page);
        Checks.Expect("a page table", Give(Guest.MfnOf(Guest.WindowL1), Self, 30), Xen.GNTST_bad_page);
        Checks.Expect("no such frame", Give(0xFFFFFFFFFUL, Self, 30), Xen.GNTST_bad_page);
        Checks.ExpectHex("entry untouched", table[30], Xen.GTF_accept_transfer | pfn << 32);

        if (!Checks.Expect("unmap the page", Hypercall.UpdateVaMapping((ulong)page, 0, Xen.UVMF_INVLPG), 0)) return;
        Checks.Expect("transfer to ourselves", Give(mfn, Self, 30), Xen.GNTST_okay);
        Checks.ExpectHex("entry completed with the MFN", table[30],
            Xen.GTF_accept_transfer | Xen.GTF_transfer_committed | Xen.GTF_transfer_completed | mfn << 32);
        Checks.ExpectHex("M2P names the frame we asked for", Guest.M2p[mfn], pfn);
        if (!Checks.Expect("map it again", Hypercall.UpdateVaMapping((ulong)page, Guest.KernelPte(mfn, true), Xen.UVMF_INVLPG), 0)) return;
        Checks.ExpectHex("its contents came with it", *(ulong*)(page + 8), 0x726566736E617274UL);

        table[31] = Xen.GTF_permit_access | (ulong)Self << 16 | pfn << 32;
        if (!Checks.Expect("unmap another page", Hypercall.UpdateVaMapping((ulong)lost, 0, Xen.UVMF_INVLPG), 0)) return;
        Checks.Expect("to an entry that does not accept it", Give(Guest.MfnOf(lost), Self, 31), Xen.GNTST_general_error);
        Checks.Expect("the page is gone", Give(Guest.MfnOf(lost), Self, 30), Xen.GNTST_bad_page);
        table[30] = 0;
        table[31] = 0;
    }
}
