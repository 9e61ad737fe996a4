using Microhv.Hypervisor;
using Microhv.Tests.Hypervisor.Mm;
using Xunit;

namespace Microhv.Tests.Hypervisor.Grants;

/// <summary>
/// Device mappings, mappings of both kinds, unmap_and_replace and batches as Linux's backends issue
/// them (blkback: host_map at a kernel VA; gntdev: host_map|application_map|contains_pte on a user
/// PTE), with Xen 4.17's results (xen/common/grant_table.c map_grant_ref, unmap_common,
/// xen/arch/x86/pv/grant_table.c replace_grant_pv_mapping). A (domain 1) grants, B (domain 2) maps.
/// </summary>
public class GrantMapKindsTests
{
    private const ulong MAP = 0, UNMAP = 1, UNMAP_AND_REPLACE = 7;
    private const uint GNTMAP_device_map = 1, GNTMAP_host_map = 2, GNTMAP_readonly = 4, GNTMAP_application_map = 8,
        GNTMAP_contains_pte = 16;
    private const ushort GTF_permit_access = 1, GTF_readonly = 4, GTF_reading = 8, GTF_writing = 16, GTF_sub_page = 256;
    private const short GNTST_okay = 0, GNTST_general_error = -1, GNTST_bad_gntref = -3, GNTST_bad_handle = -4,
        GNTST_bad_dev_addr = -6;
    private const int MapSize = 32, UnmapSize = 24;

    private readonly TestMachine T = new();
    private readonly MmGuest A, B;
    private readonly GrantTable Gt;

    public GrantMapKindsTests()
    {
        A = new MmGuest(T, id: 1);
        B = new MmGuest(T, id: 2);
        Gt = GrantTable.Create(A.Dom);
        Assert.NotNull(GrantTable.Create(B.Dom));
    }

    private void Grant(uint gref, ushort flags, ulong frame, ushort domid = 2)
        => T.Memory.Poke64(Gt.Frames[0] * 4096 + gref * 8UL, flags | (ulong)domid << 16 | frame << 32);
    private ushort GrantFlags(uint gref) => (ushort)T.Memory.Peek64(Gt.Frames[0] * 4096 + gref * 8UL);

    /// <summary>Writes map operation <paramref name="i"/> of a batch in B's argument page.</summary>
    private void PutMap(int i, ulong hostAddr, uint flags, uint gref)
    {
        int at = i * MapSize;
        B.Arg(at, hostAddr);
        B.Arg(at + 8, flags | (ulong)gref << 32);
        B.Arg(at + 16, 1 | 0x7777UL << 16 | 0xABCDUL << 32);
        B.Arg(at + 24, 0);
    }
    private short MapStatus(int i) => (short)(ushort)(B.ReadArg(i * MapSize + 16) >> 16);
    private uint MapHandle(int i) => (uint)(B.ReadArg(i * MapSize + 16) >> 32);
    private ulong MapBus(int i) => B.ReadArg(i * MapSize + 24);

    private short Map(ulong hostAddr, uint flags, uint gref, out uint handle, out ulong bus)
    {
        PutMap(0, hostAddr, flags, gref);
        Assert.Equal(0, GrantTableOp.Do(B.V, MAP, MmGuest.Base, 1));
        handle = MapHandle(0);
        bus = MapBus(0);
        return MapStatus(0);
    }

    /// <summary>unmap_grant_ref (or unmap_and_replace, whose second word is new_addr) from B's argument page at 2048.</summary>
    private short Unmap(ulong hostAddr, ulong second, uint handle, ulong cmd = UNMAP)
    {
        B.Arg(2048, hostAddr);
        B.Arg(2048 + 8, second);
        B.Arg(2048 + 16, handle | 0x5555UL << 32);
        Assert.Equal(0, GrantTableOp.Do(B.V, cmd, MmGuest.Base + 2048, 1));
        return (short)(ushort)(B.ReadArg(2048 + 16) >> 32);
    }

    [Fact]
    public void Device_map_returns_the_bus_address_and_holds_references_until_unmapped_by_it()
    {
        ulong frame = A.Spare[0];
        Grant(3, GTF_permit_access, frame);
        Assert.Equal(GNTST_okay, Map(0, GNTMAP_device_map, 3, out uint h, out ulong bus));
        Assert.Equal(frame << 12, bus);                                  // no IOMMU: the machine address
        Assert.Equal(1u, A.RefCount(frame));
        Assert.Equal(1u, A.TypeCount(frame));
        Assert.Equal(GTF_permit_access | GTF_reading | GTF_writing, GrantFlags(3));

        Assert.Equal(GNTST_okay, Unmap(0, 0, h));                        // no address: nothing ends, handle stays
        Assert.Equal(1u, A.RefCount(frame));
        Assert.Equal(GNTST_bad_dev_addr, Unmap(0, bus + 4096, h));
        Assert.Equal(1u, A.RefCount(frame));
        Assert.Equal(GNTST_okay, Unmap(MmGuest.Va(20), bus, h));         // a host address is ignored: no host map
        Assert.Equal(0u, A.RefCount(frame));
        Assert.Equal(0u, A.TypeCount(frame));
        Assert.Equal(GTF_permit_access, GrantFlags(3));
        Assert.Equal(GNTST_bad_handle, Unmap(0, bus, h));
    }

    [Fact]
    public void Host_and_device_map_take_two_sets_of_references_and_end_one_kind_at_a_time()
    {
        ulong frame = A.Spare[1];
        Grant(4, GTF_permit_access, frame);
        ulong va = MmGuest.Va(20);
        Assert.Equal(GNTST_okay, Map(va, GNTMAP_host_map | GNTMAP_device_map, 4, out uint h, out ulong bus));
        Assert.Equal(2u, A.RefCount(frame));
        Assert.Equal(2u, A.TypeCount(frame));
        Assert.NotEqual(0UL, B.Get(B.L1, 20));

        Assert.Equal(GNTST_okay, Unmap(va, 0, h));                      // the host half
        Assert.Equal(0UL, B.Get(B.L1, 20));
        Assert.Equal(1u, A.RefCount(frame));
        Assert.Equal(GTF_permit_access | GTF_reading | GTF_writing, GrantFlags(4));
        Assert.Equal(GNTST_okay, Unmap(va, bus, h));                    // the device half; the host one is gone
        Assert.Equal(0u, A.RefCount(frame));
        Assert.Equal(0u, A.TypeCount(frame));
        Assert.Equal(GTF_permit_access, GrantFlags(4));
        Assert.Equal(GNTST_bad_handle, Unmap(va, bus, h));
    }

    [Fact]
    public void Read_only_device_map_takes_no_type_and_a_read_only_grant_refuses_a_writable_one()
    {
        ulong frame = A.Spare[2];
        Grant(5, GTF_permit_access | GTF_readonly, frame);
        Assert.Equal(GNTST_general_error, Map(0, GNTMAP_device_map, 5, out _, out _));
        Assert.Equal(GNTST_okay, Map(0, GNTMAP_device_map | GNTMAP_readonly, 5, out uint h, out ulong bus));
        Assert.Equal(1u, A.RefCount(frame));
        Assert.Equal(0u, A.TypeCount(frame));
        Assert.Equal(GTF_permit_access | GTF_readonly | GTF_reading, GrantFlags(5));
        Assert.Equal(GNTST_okay, Unmap(0, bus, h));
        Assert.Equal(0u, A.RefCount(frame));
    }

    [Fact]
    public void A_writable_device_map_of_a_page_table_fails_and_leaves_nothing()
    {
        ulong frame = A.Spare[3];
        Assert.Equal(0, Microhv.Hypervisor.Mm.MmuExtOp.One(A.V, A.Dom, 0, frame, 0));   // PIN_L1
        Grant(6, GTF_permit_access, frame);
        uint refs = A.RefCount(frame);
        Assert.Equal(GNTST_general_error, Map(MmGuest.Va(20), GNTMAP_host_map | GNTMAP_device_map, 6, out _, out _));
        Assert.Equal(refs, A.RefCount(frame));
        Assert.Equal(GTF_permit_access, GrantFlags(6));
        Assert.Equal(0UL, B.Get(B.L1, 20));
    }

    [Fact]
    public void A_sub_page_flag_is_refused_for_a_mapping()
    {
        Grant(7, GTF_permit_access | GTF_sub_page, A.Spare[4]);
        Assert.Equal(GNTST_general_error, Map(0, GNTMAP_device_map, 7, out _, out _));
        Assert.Equal(GTF_permit_access | GTF_sub_page, GrantFlags(7));
    }

    [Fact]
    public void Gntdev_style_user_pte_mapping_is_user_accessible_and_unmaps_by_pte_address()
    {
        ulong frame = A.Spare[5];
        Grant(8, GTF_permit_access, frame);
        ulong pteMa = MmGuest.EntryMa(B.L1, 21);
        uint flags = GNTMAP_host_map | GNTMAP_application_map | GNTMAP_contains_pte;
        Assert.Equal(GNTST_okay, Map(pteMa, flags, 8, out uint h, out ulong bus));
        ulong pte = B.Get(B.L1, 21);
        Assert.Equal(frame, (pte & 0x000F_FFFF_FFFF_F000) >> 12);
        Assert.Equal(0x7UL, pte & 0x7);                                  // present, writable, user
        Assert.Equal(GNTST_okay, Unmap(pteMa, bus, h));                  // bus address ignored: no device map
        Assert.Equal(0UL, B.Get(B.L1, 21));
        Assert.Equal(0u, A.RefCount(frame));
    }

    [Fact]
    public void A_batch_maps_each_operation_on_its_own_and_reports_each_status()
    {
        Grant(9, GTF_permit_access, A.Spare[6]);
        Grant(10, GTF_permit_access | GTF_readonly, A.Spare[7]);
        PutMap(0, MmGuest.Va(20), GNTMAP_host_map, 9);
        PutMap(1, MmGuest.Va(21), GNTMAP_host_map, 10);                      // writable map of a read-only grant
        PutMap(2, MmGuest.Va(22), GNTMAP_host_map | GNTMAP_readonly, 10);
        PutMap(3, MmGuest.Va(23), GNTMAP_host_map, 4000);                    // past the table
        Assert.Equal(0, GrantTableOp.Do(B.V, MAP, MmGuest.Base, 4));
        Assert.Equal(GNTST_okay, MapStatus(0));
        Assert.Equal(GNTST_general_error, MapStatus(1));
        Assert.Equal(GNTST_okay, MapStatus(2));
        Assert.Equal(GNTST_bad_gntref, MapStatus(3));
        Assert.NotEqual(MapHandle(0), MapHandle(2));
        Assert.Equal(A.Spare[6] << 12, MapBus(0));
        Assert.Equal(0UL, B.Get(B.L1, 21));
        Assert.NotEqual(0UL, B.Get(B.L1, 22));

        // Both unmapped in one batch of two.
        for (int i = 0; i < 2; i++)
        {
            B.Arg(1024 + i * UnmapSize, MmGuest.Va(i == 0 ? 20 : 22));
            B.Arg(1024 + i * UnmapSize + 8, 0);
            B.Arg(1024 + i * UnmapSize + 16, MapHandle(i == 0 ? 0 : 2) | 0x5555UL << 32);
        }
        Assert.Equal(0, GrantTableOp.Do(B.V, UNMAP, MmGuest.Base + 1024, 2));
        Assert.Equal(0, (short)(ushort)(B.ReadArg(1024 + 16) >> 32));
        Assert.Equal(0, (short)(ushort)(B.ReadArg(1024 + UnmapSize + 16) >> 32));
        Assert.Equal(0u, A.RefCount(A.Spare[6]));
        Assert.Equal(0u, A.RefCount(A.Spare[7]));
    }

    [Fact]
    public void Unmap_and_replace_moves_the_pte_at_new_addr_over_the_grant_and_clears_new_addr()
    {
        ulong frame = A.Spare[0];
        Grant(11, GTF_permit_access, frame);
        ulong va = MmGuest.Va(20), newVa = MmGuest.Va(1);                // B's data page D[0] at slot 1
        ulong dataPte = B.Get(B.L1, 1);
        uint dataRefs = B.RefCount(B.Data[0]);
        Assert.Equal(GNTST_okay, Map(va, GNTMAP_host_map, 11, out uint h, out _));
        Assert.Equal(GNTST_okay, Unmap(va, newVa, h, UNMAP_AND_REPLACE));
        Assert.Equal(dataPte, B.Get(B.L1, 20));                          // D[0] now mapped where the grant was
        Assert.Equal(0UL, B.Get(B.L1, 1));
        Assert.Equal(dataRefs, B.RefCount(B.Data[0]));                   // the PTE moved with its references
        Assert.Equal(0u, A.RefCount(frame));
        Assert.Equal(GTF_permit_access, GrantFlags(11));
        Assert.Contains(newVa, T.Host.InvalidatedPages);
        Assert.Contains(va, T.Host.InvalidatedPages);
        Assert.Equal(GNTST_bad_handle, Unmap(va, 0, h, UNMAP_AND_REPLACE));
    }

    [Fact]
    public void Unmap_and_replace_with_no_new_address_unmaps_and_refuses_a_pte_address_with_one()
    {
        Grant(12, GTF_permit_access, A.Spare[1]);
        Assert.Equal(GNTST_okay, Map(MmGuest.Va(20), GNTMAP_host_map, 12, out uint h, out _));
        Assert.Equal(GNTST_okay, Unmap(MmGuest.Va(20), 0, h, UNMAP_AND_REPLACE));
        Assert.Equal(0UL, B.Get(B.L1, 20));
        Assert.Equal(0u, A.RefCount(A.Spare[1]));

        ulong pteMa = MmGuest.EntryMa(B.L1, 21);
        Assert.Equal(GNTST_okay, Map(pteMa, GNTMAP_host_map | GNTMAP_contains_pte, 12, out h, out _));
        ulong dataPte = B.Get(B.L1, 1);
        Assert.Equal(GNTST_general_error, Unmap(pteMa, MmGuest.Va(1), h, UNMAP_AND_REPLACE));
        Assert.Equal(dataPte, B.Get(B.L1, 1));                           // nothing was stolen
        Assert.NotEqual(0UL, B.Get(B.L1, 21));
        Assert.Equal(1u, A.RefCount(A.Spare[1]));
    }

    [Fact]
    public void Unmap_and_replace_at_a_wrong_address_drops_the_stolen_pte_as_xen_does()
    {
        Grant(13, GTF_permit_access, A.Spare[2]);
        Assert.Equal(GNTST_okay, Map(MmGuest.Va(20), GNTMAP_host_map, 13, out uint h, out _));
        uint dataRefs = B.RefCount(B.Data[1]);
        Assert.Equal(GNTST_general_error, Unmap(MmGuest.Va(21), MmGuest.Va(2), h, UNMAP_AND_REPLACE));
        Assert.Equal(0UL, B.Get(B.L1, 2));
        Assert.Equal(dataRefs - 1, B.RefCount(B.Data[1]));
        Assert.NotEqual(0UL, B.Get(B.L1, 20));                           // the grant stays mapped
        Assert.Equal(GNTST_okay, Unmap(MmGuest.Va(20), 0, h));
    }

    [Fact]
    public void A_dead_mapper_releases_device_mappings_too()
    {
        ulong frame = A.Spare[3];
        Grant(14, GTF_permit_access, frame);
        Assert.Equal(GNTST_okay, Map(MmGuest.Va(20), GNTMAP_host_map | GNTMAP_device_map, 14, out _, out _));
        Assert.Equal(2u, A.RefCount(frame));
        B.Dom.Crash("test");
        DomainRelinquish.ReleaseDead(T.Machine, A.V);
        Assert.Equal(0u, A.RefCount(frame));
        Assert.Equal(0u, A.TypeCount(frame));
        Assert.Equal(GTF_permit_access, GrantFlags(14));
    }

    [Fact]
    public void A_command_with_bits_above_the_mask_is_invalid_except_cache_flush()
    {
        Assert.Equal(-22, GrantTableOp.Do(B.V, MAP | 1UL << 12, MmGuest.Base, 1));
        Assert.Equal(-22, GrantTableOp.Do(B.V, UNMAP | 0x80000000UL, MmGuest.Base, 1));
        Assert.Equal(0, GrantTableOp.Do(B.V, MAP | 1UL << 40, MmGuest.Base, 0));     // cmd is 32-bit, as in Xen
    }
}
