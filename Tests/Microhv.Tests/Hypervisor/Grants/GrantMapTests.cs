using Microhv.Hypervisor;
using Microhv.Hypervisor.Mm;
using Microhv.Tests.Hypervisor.Mm;
using Xunit;

namespace Microhv.Tests.Hypervisor.Grants;

/// <summary>
/// GNTTABOP_map_grant_ref / unmap_grant_ref host mappings between two PV domains on one machine:
/// A (domain 1) grants, B (domain 2) maps. Values come from xen/include/public/grant_table.h and the
/// semantics of xen/common/grant_table.c and xen/arch/x86/pv/grant_table.c.
/// </summary>
public class GrantMapTests
{
    // grant_table.h
    private const ulong MAP = 0, UNMAP = 1;
    private const uint GNTMAP_host_map = 2, GNTMAP_readonly = 4, GNTMAP_contains_pte = 16;
    private const ushort GTF_permit_access = 1, GTF_readonly = 4, GTF_reading = 8, GTF_writing = 16;
    private const short GNTST_okay = 0, GNTST_general_error = -1, GNTST_bad_gntref = -3, GNTST_bad_handle = -4,
        GNTST_bad_page = -9, GNTST_no_space = -13;
    // PTE bits and the address B maps grants at (an empty slot of its validated L1).
    private const ulong P = 1, RW = 2, US = 4, A_ = 0x20, D_ = 0x40, NX = 1UL << 63;
    private const int HostSlot = 20;
    private static readonly ulong HostVa = MmGuest.Va(HostSlot);
    // Where the operation structures live in B's argument page.
    private const int MapOp = 0, UnmapOp = 64;

    private readonly TestMachine T = new();
    private readonly MmGuest A, B;
    private readonly GrantTable Gt;

    public GrantMapTests()
    {
        A = new MmGuest(T, id: 1);
        B = new MmGuest(T, id: 2);
        Gt = GrantTable.Create(A.Dom);
        Assert.NotNull(Gt);
        Assert.NotNull(GrantTable.Create(B.Dom));
    }

    private ulong EntryMa(uint gref) => Gt.Frames[0] * 4096 + gref * 8UL;
    private void Grant(uint gref, ushort flags, ushort domid, ulong frame)
        => T.Memory.Poke64(EntryMa(gref), flags | (ulong)domid << 16 | frame << 32);
    private ushort GrantFlags(uint gref) => (ushort)T.Memory.Peek64(EntryMa(gref));

    /// <summary>Issues one map_grant_ref from B; returns the status and the handle.</summary>
    private short Map(ulong hostAddr, uint flags, uint gref, ushort dom, out uint handle, out ulong devBusAddr)
    {
        B.Arg(MapOp, hostAddr);
        B.Arg(MapOp + 8, flags | (ulong)gref << 32);
        B.Arg(MapOp + 16, dom | 0x7777UL << 16 | 0xABCDUL << 32);
        B.Arg(MapOp + 24, 0);
        Assert.Equal(0, GrantTableOp.Do(B.V, MAP, MmGuest.Base + MapOp, 1));
        handle = (uint)(B.ReadArg(MapOp + 16) >> 32);
        devBusAddr = B.ReadArg(MapOp + 24);
        return (short)(ushort)(B.ReadArg(MapOp + 16) >> 16);
    }

    private short Map(ulong hostAddr, uint flags, uint gref, ushort dom, out uint handle) => Map(hostAddr, flags, gref, dom, out handle, out _);

    private short Unmap(ulong hostAddr, uint handle, ulong devBusAddr = 0, ulong uop = MmGuest.Base + UnmapOp)
    {
        ulong at = uop;
        GuestMemory.WriteU64(B.V, at, hostAddr);
        GuestMemory.WriteU64(B.V, at + 8, devBusAddr);
        GuestMemory.WriteU64(B.V, at + 16, handle | 0x5555UL << 32);
        Assert.Equal(0, GrantTableOp.Do(B.V, UNMAP, uop, 1));
        Assert.True(GuestMemory.ReadU64(B.V, at + 16, out ulong w));
        return (short)(ushort)(w >> 32);
    }

    private ulong HostPte => B.Get(B.L1, HostSlot);

    [Fact]
    public void Read_write_map_installs_the_pte_and_unmap_removes_it_and_the_references()
    {
        ulong frame = A.Data[0];
        Grant(7, GTF_permit_access, 2, frame);
        uint refs = A.RefCount(frame), types = A.TypeCount(frame);
        Assert.Equal(FrameType.Writable, A.Type(frame));

        Assert.Equal(GNTST_okay, Map(HostVa, GNTMAP_host_map, 7, 1, out uint handle, out ulong bus));
        Assert.Equal(frame << 12, bus);
        Assert.Equal((frame << 12) | P | RW | US | A_ | D_ | NX, HostPte);
        Assert.Equal(GTF_permit_access | GTF_reading | GTF_writing, GrantFlags(7));
        Assert.Equal(refs + 1, A.RefCount(frame));
        Assert.Equal(types + 1, A.TypeCount(frame));

        // B reaches A's frame through the mapping, as hypercall arguments do.
        Assert.True(GuestMemory.WriteU32(B.V, HostVa + 16, 0xC0FFEE));
        Assert.Equal(0xC0FFEEUL, T.Memory.Peek64(frame * 4096 + 16) & 0xFFFFFFFF);
        T.Memory.Poke64(frame * 4096 + 32, 0x1122334455667788);
        Assert.True(GuestMemory.ReadU64(B.V, HostVa + 32, out ulong x));
        Assert.Equal(0x1122334455667788UL, x);

        Assert.Equal(GNTST_okay, Unmap(HostVa, handle));
        Assert.Equal(0UL, HostPte);
        Assert.Contains(HostVa, T.Host.InvalidatedPages);
        Assert.Equal(refs, A.RefCount(frame));
        Assert.Equal(types, A.TypeCount(frame));
        Assert.Equal(GTF_permit_access, GrantFlags(7));
        Assert.False(GuestMemory.ReadU64(B.V, HostVa + 32, out _));
        Assert.Equal(GNTST_bad_handle, Unmap(HostVa, handle));      // the handle was freed
    }

    [Fact]
    public void A_dead_granter_keeps_a_frame_another_domain_maps_until_it_is_unmapped()
    {
        ulong frame = A.Data[0], other = A.Data[1];
        Grant(7, GTF_permit_access, 2, frame);
        Assert.Equal(GNTST_okay, Map(HostVa, GNTMAP_host_map, 7, 1, out uint handle));
        A.Dom.State = DomainState.Shutdown;
        DomainRelinquish.ReleaseDead(T.Machine, B.V);
        Assert.True(A.Dom.Relinquished);
        Assert.Equal(FrameTable.OwnerNone, T.FrameTable.OwnerOf(other));     // the rest went back
        Assert.Equal((ushort)1, T.FrameTable.OwnerOf(frame));               // B still maps this one
        Assert.Equal((ushort)1, T.FrameTable.OwnerOf(Gt.Frames[0]));        // and the grant entry it pins
        Assert.True(GuestMemory.WriteU32(B.V, HostVa, 0x1234));
        Assert.Equal(GNTST_okay, Unmap(HostVa, handle));
        Assert.Equal(FrameTable.OwnerNone, T.FrameTable.OwnerOf(frame));
        Assert.Equal(FrameTable.OwnerNone, T.FrameTable.OwnerOf(Gt.Frames[0]));
    }

    [Fact]
    public void A_dead_granter_keeps_exactly_the_frames_its_pinned_grants_map_and_leaves_no_scratch_mark()
    {
        // Two grants mapped, one granted but not mapped: the walk keeps the two mapped frames and the grant
        // table's frame, gives back everything else (the unmapped grant's frame too), and clears its marks.
        Grant(7, GTF_permit_access, 2, A.Data[0]);
        Grant(9, GTF_permit_access | GTF_readonly, 2, A.Data[1]);
        Grant(11, GTF_permit_access, 2, A.Data[2]);
        Assert.Equal(GNTST_okay, Map(HostVa, GNTMAP_host_map, 7, 1, out uint first));
        Assert.Equal(GNTST_okay, Map(MmGuest.Va(21), GNTMAP_host_map | GNTMAP_readonly, 9, 1, out uint second));
        A.Dom.State = DomainState.Shutdown;
        DomainRelinquish.ReleaseDead(T.Machine, B.V);
        Assert.Equal(3UL, A.Dom.FramesKept);
        Assert.Equal((ushort)1, T.FrameTable.OwnerOf(A.Data[0]));
        Assert.Equal((ushort)1, T.FrameTable.OwnerOf(A.Data[1]));
        Assert.Equal((ushort)1, T.FrameTable.OwnerOf(Gt.Frames[0]));
        Assert.Equal(FrameTable.OwnerNone, T.FrameTable.OwnerOf(A.Data[2]));
        Assert.Equal(FrameTable.OwnerNone, T.FrameTable.OwnerOf(A.Data[3]));
        for (ulong mfn = 0; mfn < T.FrameTable.FrameCount; mfn++) Assert.False(T.FrameTable.IsMarked(mfn), $"frame {mfn} is still marked");

        Assert.Equal(GNTST_okay, Unmap(HostVa, first));
        Assert.Equal(FrameTable.OwnerNone, T.FrameTable.OwnerOf(A.Data[0]));
        Assert.Equal(2UL, A.Dom.FramesKept);
        Assert.Equal(GNTST_okay, Unmap(MmGuest.Va(21), second));
        Assert.Equal(FrameTable.OwnerNone, T.FrameTable.OwnerOf(A.Data[1]));
        Assert.Equal(FrameTable.OwnerNone, T.FrameTable.OwnerOf(Gt.Frames[0]));
        Assert.Equal(0UL, A.Dom.FramesKept);
    }

    [Fact]
    public void A_dead_mapper_releases_its_mappings_of_another_domains_grants()
    {
        ulong frame = A.Data[0];
        Grant(7, GTF_permit_access, 2, frame);
        uint refs = A.RefCount(frame), types = A.TypeCount(frame);
        Assert.Equal(GNTST_okay, Map(HostVa, GNTMAP_host_map, 7, 1, out _));
        B.Dom.Crash("test");
        DomainRelinquish.ReleaseDead(T.Machine, A.V);
        Assert.Equal(refs, A.RefCount(frame));
        Assert.Equal(types, A.TypeCount(frame));
        Assert.Equal(GTF_permit_access, GrantFlags(7));                     // GTF_reading/writing cleared
        Assert.Equal((ushort)1, T.FrameTable.OwnerOf(frame));
        Assert.False(A.Dom.Relinquished);                                   // the living domain keeps everything
    }

    [Fact]
    public void Hypercall_arguments_may_live_in_a_granted_page()
    {
        Grant(3, GTF_permit_access, 2, A.Spare[0]);
        Assert.Equal(GNTST_okay, Map(HostVa, GNTMAP_host_map, 3, 1, out uint handle));
        // A second mapping's unmap operation sits in A's frame, reached through the first mapping.
        Assert.Equal(GNTST_okay, Map(MmGuest.Va(23), GNTMAP_host_map, 3, 1, out uint second));
        Assert.Equal(GNTST_okay, Unmap(MmGuest.Va(23), second, uop: HostVa + 128));
        Assert.Equal(GNTST_okay, (short)(ushort)(T.Memory.Peek64(A.Spare[0] * 4096 + 128 + 16) >> 32));
        Assert.Equal(0UL, B.Get(B.L1, 23));
        // Unmapping the page that holds the operation unmaps it, then cannot write the status: -EFAULT.
        GuestMemory.WriteU64(B.V, HostVa + 128, HostVa);
        GuestMemory.WriteU64(B.V, HostVa + 136, 0);
        GuestMemory.WriteU64(B.V, HostVa + 144, handle);
        Assert.Equal(-14, GrantTableOp.Do(B.V, UNMAP, HostVa + 128, 1));
        Assert.Equal(0UL, HostPte);
        Assert.Equal(0u, A.RefCount(A.Spare[0]));
    }

    [Fact]
    public void Read_only_map_gives_a_read_only_pte_and_only_a_general_reference()
    {
        ulong frame = A.Spare[1];
        Grant(4, GTF_permit_access | GTF_readonly, 2, frame);
        Assert.Equal(GNTST_okay, Map(HostVa, GNTMAP_host_map | GNTMAP_readonly, 4, 1, out uint handle));
        Assert.Equal((frame << 12) | P | US | A_ | D_ | NX, HostPte);
        Assert.Equal(GTF_permit_access | GTF_readonly | GTF_reading, GrantFlags(4));
        Assert.Equal(1u, A.RefCount(frame));
        Assert.Equal(0u, A.TypeCount(frame));
        Assert.True(GuestMemory.ReadU32(B.V, HostVa, out _));
        Assert.False(GuestMemory.WriteU32(B.V, HostVa, 1));
        Assert.Equal(GNTST_okay, Unmap(HostVa, handle));
        Assert.Equal(0u, A.RefCount(frame));
        Assert.Equal(GTF_permit_access | GTF_readonly, GrantFlags(4));
    }

    [Fact]
    public void Read_only_grant_cannot_be_mapped_writable()
    {
        ulong frame = A.Spare[1];
        Grant(4, GTF_permit_access | GTF_readonly, 2, frame);
        Assert.Equal(GNTST_general_error, Map(HostVa, GNTMAP_host_map, 4, 1, out _));
        Assert.Equal(0UL, HostPte);
        Assert.Equal(GTF_permit_access | GTF_readonly, GrantFlags(4));
        Assert.Equal(0u, A.RefCount(frame));
    }

    [Fact]
    public void Grant_to_another_domain_or_not_permitting_access_is_refused()
    {
        Grant(5, GTF_permit_access, 3, A.Spare[2]);                   // for domain 3, not B
        Assert.Equal(GNTST_general_error, Map(HostVa, GNTMAP_host_map, 5, 1, out _));
        Grant(6, 0, 2, A.Spare[2]);                                   // GTF_invalid
        Assert.Equal(GNTST_general_error, Map(HostVa, GNTMAP_host_map, 6, 1, out _));
        Assert.Equal(0UL, HostPte);
        Assert.Equal((ushort)0, GrantFlags(6));
        Assert.Equal(0u, A.RefCount(A.Spare[2]));
    }

    [Fact]
    public void Bad_reference_and_foreign_frame_are_refused()
    {
        Assert.Equal(GNTST_bad_gntref, Map(HostVa, GNTMAP_host_map, 512, 1, out _));    // one frame = 512 entries
        Grant(8, GTF_permit_access, 2, B.Spare[0]);                   // A offers a frame it does not own
        Assert.Equal(GNTST_bad_page, Map(HostVa, GNTMAP_host_map, 8, 1, out _));
        Assert.Equal(GTF_permit_access, GrantFlags(8));
        Assert.Equal(0UL, HostPte);
    }

    [Fact]
    public void Map_needs_a_live_l1_slot_and_leaves_nothing_behind_when_it_has_none()
    {
        Grant(9, GTF_permit_access, 2, A.Spare[3]);
        Assert.Equal(GNTST_general_error, Map(0x7000_0000, GNTMAP_host_map, 9, 1, out _));          // no L1 there
        Assert.Equal(GNTST_general_error, Map(MmGuest.EntryMa(B.Spare[0], 0), GNTMAP_host_map | GNTMAP_contains_pte, 9, 1, out _)); // not an L1
        Assert.Equal(GNTST_general_error, Map(MmGuest.EntryMa(A.L1, 30), GNTMAP_host_map | GNTMAP_contains_pte, 9, 1, out _));  // A's L1
        Assert.Equal(GNTST_general_error, Map(MmGuest.EntryMa(B.L1, 30) + 4, GNTMAP_host_map | GNTMAP_contains_pte, 9, 1, out _)); // misaligned
        Assert.Equal(GTF_permit_access, GrantFlags(9));
        Assert.Equal(0u, A.RefCount(A.Spare[3]));
        Assert.Equal(0u, A.TypeCount(A.Spare[3]));
    }

    [Fact]
    public void Unmap_with_a_wrong_handle_or_address_is_refused_and_keeps_the_mapping()
    {
        Grant(10, GTF_permit_access, 2, A.Spare[4]);
        Assert.Equal(GNTST_okay, Map(HostVa, GNTMAP_host_map, 10, 1, out uint handle));
        Assert.Equal(GNTST_bad_handle, Unmap(HostVa, handle + 1));
        Assert.Equal(GNTST_bad_handle, Unmap(HostVa, 0xFFFF));
        Assert.Equal(GNTST_general_error, Unmap(MmGuest.Va(1), handle));                 // maps B's own data
        Assert.Equal(1u, A.RefCount(A.Spare[4]));
        Assert.NotEqual(0UL, HostPte);
        Assert.Equal(GNTST_okay, Unmap(HostVa, handle));
        Assert.Equal(0u, A.RefCount(A.Spare[4]));
    }

    [Fact]
    public void Granter_cannot_make_a_writably_mapped_frame_a_page_table()
    {
        ulong frame = A.Spare[5];
        const uint PIN_L1 = 0, UNPIN = 4;
        Assert.Equal(0, MmuExtOp.One(A.V, A.Dom, PIN_L1, frame, 0));      // possible before the mapping
        Assert.Equal(0, MmuExtOp.One(A.V, A.Dom, UNPIN, frame, 0));
        Grant(11, GTF_permit_access, 2, frame);
        Assert.Equal(GNTST_okay, Map(HostVa, GNTMAP_host_map, 11, 1, out uint handle));
        Assert.NotEqual(0, MmuExtOp.One(A.V, A.Dom, PIN_L1, frame, 0));
        Assert.Equal(FrameType.Writable, A.Type(frame));
        Assert.Equal(GNTST_okay, Unmap(HostVa, handle));
        Assert.Equal(0, MmuExtOp.One(A.V, A.Dom, PIN_L1, frame, 0));
        Assert.Equal(FrameType.L1PageTable, A.Type(frame));
    }

    [Fact]
    public void A_page_table_can_be_granted_read_only_but_not_mapped_writable()
    {
        ulong frame = A.Spare[6];
        const uint PIN_L1 = 0;
        Assert.Equal(0, MmuExtOp.One(A.V, A.Dom, PIN_L1, frame, 0));
        Grant(12, GTF_permit_access, 2, frame);
        Assert.Equal(GNTST_general_error, Map(HostVa, GNTMAP_host_map, 12, 1, out _));
        Assert.Equal(GTF_permit_access, GrantFlags(12));
        Assert.Equal(GNTST_okay, Map(HostVa, GNTMAP_host_map | GNTMAP_readonly, 12, 1, out _));
        Assert.Equal(GTF_permit_access | GTF_reading, GrantFlags(12));
    }

    [Fact]
    public void Mmu_update_cannot_map_another_domains_frame_with_or_without_a_grant()
    {
        ulong frame = A.Spare[0];
        ulong alias = MmGuest.EntryMa(B.L1, 21);
        Assert.NotEqual(0, MmuUpdate.One(B.V, B.Dom, alias, MmGuest.Pte(frame, P | RW | US)));
        Grant(13, GTF_permit_access, 2, frame);
        Assert.Equal(GNTST_okay, Map(HostVa, GNTMAP_host_map, 13, 1, out _));
        Assert.NotEqual(0, MmuUpdate.One(B.V, B.Dom, alias, MmGuest.Pte(frame, P | US)));
        Assert.Equal(0UL, B.Get(B.L1, 21));
        // Nor can the grant PTE itself be turned into another mapping of the frame (read-only here).
        Assert.NotEqual(0, MmuUpdate.One(B.V, B.Dom, MmGuest.EntryMa(B.L1, HostSlot), MmGuest.Pte(frame, P | US)));
    }

    [Fact]
    public void Overwriting_a_grant_pte_drops_its_references_and_the_handle_can_no_longer_unmap()
    {
        ulong frame = A.Spare[7];
        Grant(14, GTF_permit_access, 2, frame);
        Assert.Equal(GNTST_okay, Map(HostVa, GNTMAP_host_map, 14, 1, out uint handle));
        Assert.Equal(1u, A.RefCount(frame));
        Assert.Equal(0, MmuUpdate.One(B.V, B.Dom, MmGuest.EntryMa(B.L1, HostSlot), 0));
        Assert.Equal(0u, A.RefCount(frame));
        Assert.Equal(0u, A.TypeCount(frame));
        // As in Xen: the PTE no longer matches, the unmap fails and the grant stays marked in use.
        Assert.Equal(GNTST_general_error, Unmap(HostVa, handle));
        Assert.Equal(GTF_permit_access | GTF_reading | GTF_writing, GrantFlags(14));
        Assert.Equal(0u, A.RefCount(frame));
    }

    [Fact]
    public void Contains_pte_maps_and_unmaps_by_machine_address_of_the_entry()
    {
        ulong frame = A.Spare[0];
        ulong pteMa = MmGuest.EntryMa(B.L1, 22);
        Grant(15, GTF_permit_access, 2, frame);
        Assert.Equal(GNTST_okay, Map(pteMa, GNTMAP_host_map | GNTMAP_contains_pte, 15, 1, out uint handle));
        Assert.Equal((frame << 12) | P | RW | US | A_ | D_ | NX, B.Get(B.L1, 22));
        Assert.True(GuestMemory.WriteU32(B.V, MmGuest.Va(22), 5));
        int flushes = T.Host.TlbFlushes;
        Assert.Equal(GNTST_okay, Unmap(pteMa, handle));
        Assert.Equal(0UL, B.Get(B.L1, 22));
        Assert.True(T.Host.TlbFlushes > flushes);
        Assert.Equal(0u, A.RefCount(frame));
    }

    [Fact]
    public void Two_mappings_of_one_grant_keep_it_marked_until_the_last_goes()
    {
        ulong frame = A.Spare[1];
        Grant(16, GTF_permit_access, 2, frame);
        Assert.Equal(GNTST_okay, Map(HostVa, GNTMAP_host_map | GNTMAP_readonly, 16, 1, out uint h1));
        Assert.Equal(GNTST_okay, Map(MmGuest.Va(23), GNTMAP_host_map, 16, 1, out uint h2));
        Assert.NotEqual(h1, h2);
        Assert.Equal(GTF_permit_access | GTF_reading | GTF_writing, GrantFlags(16));
        Assert.Equal(GNTST_okay, Unmap(MmGuest.Va(23), h2));
        Assert.Equal(GTF_permit_access | GTF_reading, GrantFlags(16));
        Assert.Equal(GNTST_okay, Unmap(HostVa, h1));
        Assert.Equal(GTF_permit_access, GrantFlags(16));
        Assert.Equal(0u, A.RefCount(frame));
    }

    [Fact]
    public void Maptrack_is_bounded()
    {
        Grant(17, GTF_permit_access | GTF_readonly, 2, A.Spare[2]);
        for (int i = 0; i < GrantTable.MaptrackCapacity; i++)
            Assert.Equal(GNTST_okay, Map(HostVa, GNTMAP_host_map | GNTMAP_readonly, 17, 1, out _));
        Assert.Equal(GNTST_no_space, Map(HostVa, GNTMAP_host_map | GNTMAP_readonly, 17, 1, out _));
        // Each map replaced the previous PTE, dropping its reference: one is left, for the last.
        Assert.Equal(1u, A.RefCount(A.Spare[2]));
    }
}
