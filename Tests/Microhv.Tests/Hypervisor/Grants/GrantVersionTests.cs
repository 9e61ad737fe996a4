using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Tests.Hypervisor.Mm;
using Xunit;

namespace Microhv.Tests.Hypervisor.Grants;

/// <summary>
/// GNTTABOP_set_version and get_status_frames as Xen 4.17 serves them (xen/common/grant_table.c
/// gnttab_set_version, gnttab_get_status_frames, gnttab_unpopulate_status_frames), and
/// XENMEM_add_to_physmap refused for PV domains (xen/common/memory.c xatp_permission_check). A (domain
/// 1) switches versions; B (domain 2) maps A's grants to pin them.
/// </summary>
public class GrantVersionTests
{
    private const ulong MAP = 0, UNMAP = 1, SET_VERSION = 8, GET_STATUS_FRAMES = 9, GET_VERSION = 10;
    private const ushort GTF_permit_access = 1, GTF_accept_transfer = 2, GTF_transitive = 3, GTF_readonly = 4,
        GTF_reading = 8, GTF_writing = 16, GTF_sub_page = 256, SELF = 0x7FF0;
    private const uint GNTMAP_host_map = 2;
    private const short GNTST_okay = 0, GNTST_general_error = -1, GNTST_bad_domain = -2, GNTST_bad_virt_addr = -5,
        GNTST_permission_denied = -8;

    private readonly TestMachine T = new();
    private readonly MmGuest A, B;
    private readonly GrantTable Gt;

    public GrantVersionTests()
    {
        A = new MmGuest(T, id: 1);
        B = new MmGuest(T, id: 2);
        Gt = GrantTable.Create(A.Dom);
        Assert.NotNull(Gt);
        Assert.NotNull(GrantTable.Create(B.Dom));
    }

    private long SetVersion(uint version, ulong count = 1)
    {
        A.Arg(0, version | 0xAAAA_AAAAUL << 32);
        long rc = GrantTableOp.Do(A.V, SET_VERSION, MmGuest.Base, count);
        Assert.Equal(Gt.Version, A.ReadArg32(0));            // the version in force, written back whatever happened
        Assert.Equal(0xAAAA_AAAAUL, A.ReadArg(0) >> 32);
        return rc;
    }

    private ulong V1(uint gref) => T.Memory.Peek64(Gt.Frames[0] * 4096 + gref * 8UL);
    private void PutV1(uint gref, ushort flags, ulong frame, ushort domid = 2)
        => T.Memory.Poke64(Gt.Frames[0] * 4096 + gref * 8UL, flags | (ulong)domid << 16 | frame << 32);
    private ulong V2Header(uint gref) => T.Memory.Peek64(Gt.Frames[0] * 4096 + gref * 16UL);
    private ulong V2Frame(uint gref) => T.Memory.Peek64(Gt.Frames[0] * 4096 + gref * 16UL + 8);
    private void PutV2(uint gref, ushort flags, ulong frameOrGref, ushort domid = 2, ulong middle = 0)
    {
        T.Memory.Poke64(Gt.Frames[0] * 4096 + gref * 16UL, flags | (ulong)domid << 16 | middle << 32);
        T.Memory.Poke64(Gt.Frames[0] * 4096 + gref * 16UL + 8, frameOrGref);
    }
    private ushort Status(uint gref) => T.Memory.Read16(Gt.StatusFrames[0] * 4096 + gref * 2UL);

    /// <summary>B maps A's grant <paramref name="gref"/> at an empty slot of its L1; returns the status and handle.</summary>
    private short Map(uint gref, int slot, out uint handle)
    {
        B.Arg(0, MmGuest.Va(slot));
        B.Arg(8, GNTMAP_host_map | (ulong)gref << 32);
        B.Arg(16, 1 | 0x7777UL << 16);
        B.Arg(24, 0);
        Assert.Equal(0, GrantTableOp.Do(B.V, MAP, MmGuest.Base, 1));
        handle = (uint)(B.ReadArg(16) >> 32);
        return (short)(ushort)(B.ReadArg(16) >> 16);
    }

    private short Unmap(int slot, uint handle)
    {
        B.Arg(64, MmGuest.Va(slot));
        B.Arg(72, 0);
        B.Arg(80, handle | 0x5555UL << 32);
        Assert.Equal(0, GrantTableOp.Do(B.V, UNMAP, MmGuest.Base + 64, 1));
        return (short)(ushort)(B.ReadArg(80) >> 32);
    }

    [Fact]
    public void Set_version_takes_1_or_2_up_to_the_maximum_whatever_the_count_and_writes_back_the_version()
    {
        Assert.Equal(-Errno.EINVAL, SetVersion(0));
        Assert.Equal(-Errno.EINVAL, SetVersion(3));
        Assert.Equal(0, SetVersion(1, count: 7));             // the count is not looked at
        Assert.Equal(0, SetVersion(2, count: 0));
        Assert.Equal(2u, Gt.Version);
        Assert.Equal(0, SetVersion(2));                       // already in force: nothing happens
        Assert.Equal(-Errno.EFAULT, GrantTableOp.Do(A.V, SET_VERSION, MmGuest.Va(40), 1));
        A.Arg(8, SELF);
        Assert.Equal(0, GrantTableOp.Do(A.V, GET_VERSION, MmGuest.Base + 8, 9));
        Assert.Equal(2u, A.ReadArg32(12));

        Assert.Equal(0, SetVersion(1));
        Gt.MaxVersion = 1;                                    // a domain created with grant version 1
        Assert.Equal(-Errno.ENOSYS, SetVersion(2));
        Assert.Equal(-Errno.EINVAL, SetVersion(5));           // the version is checked first
        Assert.Equal(1u, Gt.Version);
    }

    [Fact]
    public void Version_2_brings_status_frames_keeps_the_reserved_entries_and_clears_the_rest()
    {
        Assert.True(Gt.Grow(2));
        Assert.Equal(1024u, Gt.NrEntries);
        PutV1(2, GTF_permit_access | GTF_readonly, 0x1234);
        PutV1(7, GTF_accept_transfer, 0x99, domid: 5);
        PutV1(8, GTF_permit_access, 0x4321);                  // not reserved: cleared
        PutV1(600, GTF_permit_access, 0x4321);
        Assert.Equal(0, SetVersion(2));
        Assert.Equal(512u, Gt.NrEntries);                     // 16-byte entries in the same two frames
        Assert.Equal(1, Gt.NrStatusFrames);
        ulong status = Gt.StatusFrames[0];
        Assert.Equal((ushort)1, T.FrameTable.OwnerOf(status));
        Assert.Equal(FrameType.Writable, T.FrameTable.TypeOf(status));
        Assert.True(GrantTable.IsGrantFrame(A.Dom, status));
        Assert.Equal(GTF_permit_access | GTF_readonly | 2UL << 16, V2Header(2));
        Assert.Equal(0x1234UL, V2Frame(2));
        Assert.Equal(GTF_accept_transfer | 5UL << 16, V2Header(7));
        Assert.Equal(0UL, V2Header(8) | V2Frame(8));
        Assert.Equal(0UL, T.Memory.Peek64(Gt.Frames[1] * 4096 + (600 - 512) * 8));
    }

    [Fact]
    public void A_pinned_grant_past_the_reserved_ones_is_busy_a_reserved_one_keeps_its_status_across_both_switches()
    {
        PutV1(3, GTF_permit_access, A.Data[0]);
        PutV1(9, GTF_permit_access, A.Data[1]);
        Assert.Equal(GNTST_okay, Map(3, 20, out uint h3));
        Assert.Equal(GNTST_okay, Map(9, 21, out uint h9));
        Assert.Equal(-Errno.EBUSY, SetVersion(2));
        Assert.Equal(1u, Gt.Version);
        Assert.Equal(0, Gt.NrStatusFrames);
        Assert.Equal(GNTST_okay, Unmap(21, h9));

        Assert.Equal(0, SetVersion(2));                       // ref 3 is reserved: it may stay mapped
        Assert.Equal(GTF_permit_access | 2UL << 16, V2Header(3));
        Assert.Equal(A.Data[0], V2Frame(3));
        Assert.Equal(GTF_reading | GTF_writing, Status(3));
        Assert.Equal(0, SetVersion(1));
        Assert.Equal(GTF_permit_access | GTF_reading | GTF_writing | 2UL << 16 | A.Data[0] << 32, V1(3));
        Assert.Equal(GNTST_okay, Unmap(20, h3));
        Assert.Equal(GTF_permit_access | 2UL << 16 | A.Data[0] << 32, V1(3));   // the unmap cleared the v1 flags
    }

    [Fact]
    public void Back_to_version_1_refuses_what_it_cannot_hold_and_status_frames_still_mapped()
    {
        Assert.Equal(0, SetVersion(2));
        PutV2(4, GTF_transitive, 7, middle: 3);
        Assert.Equal(-Errno.ERANGE, SetVersion(1));
        PutV2(4, GTF_permit_access, 1UL << 32);               // a frame version 1 cannot name
        Assert.Equal(-Errno.ERANGE, SetVersion(1));
        PutV2(4, GTF_permit_access | GTF_sub_page, 0x55, middle: 0x0100_0020);
        PutV2(5, GTF_accept_transfer, 0x66);                  // not permit_access: cleared
        PutV2(9, GTF_transitive, 0);                          // past the reserved ones: not looked at

        ulong status = Gt.StatusFrames[0];
        Assert.True(Microhv.Hypervisor.Mm.PageTypes.GetPage(T.Machine, status, 1));   // someone maps the status frame
        Assert.Equal(-Errno.EBUSY, SetVersion(1));
        Assert.Equal(2u, Gt.Version);
        Assert.Equal(GTF_permit_access | GTF_sub_page | 2UL << 16 | 0x0100_0020UL << 32, V2Header(4));
        Microhv.Hypervisor.Mm.PageTypes.PutPage(T.Machine, status);

        T.Memory.Write16(status * 4096 + 4 * 2, GTF_reading);
        Assert.Equal(0, SetVersion(1));
        Assert.Equal(0, Gt.NrStatusFrames);
        Assert.Equal(FrameTable.OwnerNone, T.FrameTable.OwnerOf(status));   // back in the pool
        Assert.False(GrantTable.IsGrantFrame(A.Dom, status));
        Assert.Equal(GTF_permit_access | GTF_sub_page | GTF_reading | 2UL << 16 | 0x55UL << 32, V1(4));
        Assert.Equal(0UL, V1(5));
    }

    private short GetStatusFrames(uint nrFrames, ushort dom, ulong list, MmGuest g = null, ulong count = 1, long rc = 0)
    {
        g ??= A;
        g.Arg(0, nrFrames | (ulong)dom << 32 | 0x7777UL << 48);
        g.Arg(8, list);
        Assert.Equal(rc, GrantTableOp.Do(g.V, GET_STATUS_FRAMES, MmGuest.Base, count));
        return (short)(ushort)(g.ReadArg(0) >> 48);
    }

    [Fact]
    public void Get_status_frames_lists_machine_frames_with_xens_refusals()
    {
        ulong list = MmGuest.Base + 256;
        Assert.Equal(GNTST_general_error, GetStatusFrames(1, SELF, list));   // version 1 has none
        Assert.Equal(GNTST_okay, GetStatusFrames(0, SELF, list));
        Assert.Equal(0, SetVersion(2));
        A.Arg(256, 0xEEEE);
        Assert.Equal(GNTST_okay, GetStatusFrames(1, SELF, list));
        Assert.Equal(Gt.StatusFrames[0], A.ReadArg(256));
        Assert.Equal(GNTST_okay, GetStatusFrames(1, 1, list));                // its own id
        Assert.Equal(GNTST_general_error, GetStatusFrames(2, SELF, list));   // more than it has
        Assert.Equal(GNTST_bad_domain, GetStatusFrames(1, 9, list));
        Assert.Equal(GNTST_permission_denied, GetStatusFrames(1, 1, MmGuest.Base + 256, g: B));
        Assert.Equal(GNTST_bad_virt_addr, GetStatusFrames(1, SELF, MmGuest.Va(MmGuest.CodeSlot)));   // read-only
        Assert.Equal(0x7777, GetStatusFrames(1, SELF, list, count: 2, rc: -Errno.EINVAL));
        Assert.Equal(0x7777, GetStatusFrames(1, SELF, 0xFFFF_8000_0000_0000UL, rc: -Errno.EFAULT));
        Assert.Equal(-Errno.EFAULT, GrantTableOp.Do(A.V, GET_STATUS_FRAMES, MmGuest.Va(40), 1));
    }

    [Fact]
    public void Setup_table_in_version_2_lists_the_shared_frames_and_checks_the_list_first()
    {
        Assert.Equal(0, SetVersion(2));
        A.Arg(0, SELF | 3UL << 32);
        A.Arg(8, 0x5555);
        A.Arg(16, MmGuest.Base + 256);
        Assert.Equal(0, GrantTableOp.Do(A.V, 2, MmGuest.Base, 1));
        Assert.Equal(GNTST_okay, (short)(ushort)A.ReadArg(8));
        Assert.Equal(3, Gt.NrFrames);
        Assert.Equal(1, Gt.NrStatusFrames);
        Assert.Equal(Gt.Frames[2], A.ReadArg(256 + 16));
        A.Arg(0, 9 | 1UL << 32);                              // no such domain, but the list is checked first
        A.Arg(16, 0xFFFF_8000_0000_0000UL);
        Assert.Equal(-Errno.EFAULT, GrantTableOp.Do(A.V, 2, MmGuest.Base, 1));
    }

    private long AddToPhysmap(ulong cmd, ushort domid, uint space, bool batch = false)
    {
        if (batch) { A.Arg(0, domid | (ulong)space << 16 | 1UL << 32); A.Arg(8, 0); A.Arg(16, 0); A.Arg(24, 0); }
        else { A.Arg(0, domid | (ulong)space << 32); A.Arg(8, XenMem.XENMAPIDX_grant_table_status); A.Arg(16, 0x100); }
        return MemoryOp.Do(A.V, cmd, MmGuest.Base);
    }

    [Fact]
    public void Add_to_physmap_is_for_translated_guests_a_pv_domain_gets_eacces_after_the_argument_checks()
    {
        const ulong atp = XenMem.XENMEM_add_to_physmap, batch = XenMem.XENMEM_add_to_physmap_batch;
        Assert.Equal(-Errno.EACCES, AddToPhysmap(atp, SELF, XenMem.XENMAPSPACE_grant_table));
        Assert.Equal(-Errno.EACCES, AddToPhysmap(atp, 2, XenMem.XENMAPSPACE_gmfn_range));
        Assert.Equal(-Errno.ENOSYS, AddToPhysmap(atp, SELF, XenMem.XENMAPSPACE_gmfn_foreign));
        Assert.Equal(-Errno.ESRCH, AddToPhysmap(atp, 9, XenMem.XENMAPSPACE_grant_table));
        Assert.Equal(-Errno.EDOM, AddToPhysmap(atp | 0x10000UL << 6, SELF, XenMem.XENMAPSPACE_grant_table));
        Assert.Equal(-Errno.EFAULT, MemoryOp.Do(A.V, atp, MmGuest.Va(40)));
        Assert.Equal(-Errno.EACCES, AddToPhysmap(batch, SELF, XenMem.XENMAPSPACE_gmfn_foreign, batch: true));
        Assert.Equal(-Errno.EOPNOTSUPP, AddToPhysmap(batch, SELF, XenMem.XENMAPSPACE_gmfn_range, batch: true));
        Assert.Equal(-Errno.ESRCH, AddToPhysmap(batch, 9, XenMem.XENMAPSPACE_grant_table, batch: true));
    }

    private short Swap(uint a, uint b, ulong at = MmGuest.Base + 512)
    {
        A.Arg((int)(at - MmGuest.Base), a | (ulong)b << 32);
        A.Arg((int)(at - MmGuest.Base) + 8, 0x7777_7777_7777UL);
        Assert.Equal(0, GrantTableOp.Do(A.V, 11, at, 1));
        Assert.Equal(0x7777_7777UL, A.ReadArg((int)(at - MmGuest.Base) + 8) >> 16);   // only the status is written
        return (short)(ushort)A.ReadArg((int)(at - MmGuest.Base) + 8);
    }

    [Fact]
    public void Swap_grant_ref_exchanges_two_unpinned_entries_and_in_version_2_their_status()
    {
        const short GNTST_bad_gntref = -3, GNTST_eagain = -12;
        PutV1(9, GTF_permit_access, A.Data[0]);
        PutV1(10, GTF_permit_access | GTF_readonly, A.Data[1], domid: 3);
        Assert.Equal(GNTST_okay, Swap(9, 10));
        Assert.Equal(GTF_permit_access | GTF_readonly | 3UL << 16 | A.Data[1] << 32, V1(9));
        Assert.Equal(GTF_permit_access | 2UL << 16 | A.Data[0] << 32, V1(10));
        Assert.Equal(GNTST_okay, Swap(10, 10));
        Assert.Equal(GNTST_bad_gntref, Swap(10, 512));
        Assert.Equal(GNTST_bad_gntref, Swap(600, 10));
        Assert.Equal(GNTST_okay, Map(10, 20, out uint h));
        Assert.Equal(GNTST_eagain, Swap(9, 10));
        Assert.Equal(GNTST_eagain, Swap(10, 9));
        Assert.Equal(GNTST_okay, Unmap(20, h));

        Assert.Equal(0, SetVersion(2));
        PutV2(12, GTF_permit_access | GTF_sub_page, A.Data[2], middle: 16 | 32UL << 16);
        PutV2(13, GTF_transitive, 7, domid: 3, middle: 2);
        T.Memory.Write16(Gt.StatusFrames[0] * 4096 + 12 * 2, GTF_reading);   // the guest may write its status frame
        Assert.Equal(GNTST_okay, Swap(12, 13));
        Assert.Equal(GTF_transitive | 3UL << 16 | 2UL << 32, V2Header(12));
        Assert.Equal(7UL, V2Frame(12));
        Assert.Equal(GTF_permit_access | GTF_sub_page | 2UL << 16 | (16 | 32UL << 16) << 32, V2Header(13));
        Assert.Equal(A.Data[2], V2Frame(13));
        Assert.Equal(0, Status(12));
        Assert.Equal(GTF_reading, Status(13));
        Assert.Equal(GNTST_bad_gntref, Swap(12, 256));                        // 256 entries of 16 bytes now
        Assert.Equal(-Errno.EFAULT, GrantTableOp.Do(A.V, 11, 0xFFFF_8000_0000_0000UL, 1));
    }
}
