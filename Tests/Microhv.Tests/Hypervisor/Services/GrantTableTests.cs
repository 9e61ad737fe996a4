using Microhv.Hypervisor;
using Xunit;

namespace Microhv.Tests.Hypervisor.Services;

public class GrantTableTests
{
    // grant_table.h sub-commands and status codes.
    private const ulong MAP = 0, UNMAP = 1, SETUP = 2, QUERY = 6, SET_VERSION = 8, GET_VERSION = 10;
    private const short GNTST_okay = 0, GNTST_general_error = -1, GNTST_bad_domain = -2, GNTST_bad_gntref = -3,
        GNTST_bad_handle = -4, GNTST_bad_virt_addr = -5, GNTST_permission_denied = -8;
    private const ushort DOMID_SELF = 0x7FF0;

    private static ServiceGuest Guest(ushort id = 1)
    {
        var g = new ServiceGuest(id);
        Assert.NotNull(GrantTable.Create(g.D));
        return g;
    }

    private static void Setup(ServiceGuest g, ulong op, ushort dom, uint nrFrames, ulong list)
    {
        g.W16(op, dom); g.W32(op + 4, nrFrames); g.W16(op + 8, 0x5555); g.W64(op + 16, list);
    }

    [Fact]
    public void Setup_table_lists_frames_the_domain_owns()
    {
        var g = Guest();
        ulong op = ServiceGuest.Base, list = ServiceGuest.Base + 64;
        Setup(g, op, DOMID_SELF, 4, list);
        Assert.Equal(0, GrantTableOp.Do(g.V, SETUP, op, 1));
        Assert.Equal(GNTST_okay, (short)g.R16(op + 8));
        var seen = new System.Collections.Generic.HashSet<ulong>();
        for (int i = 0; i < 4; i++)
        {
            ulong mfn = g.R64(list + (ulong)i * 8);
            Assert.Equal((ushort)1, g.Tm.FrameTable.OwnerOf(mfn));
            Assert.True(seen.Add(mfn));
            Assert.True(GrantTable.IsGrantFrame(g.D, mfn));
        }
    }

    [Fact]
    public void Grant_table_frames_stay_writable_so_they_cannot_become_page_tables()
    {
        // Microhv writes GTF_reading/GTF_writing into them by machine address (issue 14).
        var g = Guest();
        ulong frame = GrantTable.Of(g.D).Frames[0];
        Assert.Equal(FrameType.Writable, g.Tm.FrameTable.TypeOf(frame));
        Assert.NotEqual(0, Microhv.Hypervisor.Mm.PageTypes.GetPageType(g.Tm.Machine, g.D, frame, FrameType.L1PageTable));
        Assert.NotEqual(0, Microhv.Hypervisor.Mm.PageTypes.GetPageType(g.Tm.Machine, g.D, frame, FrameType.SegDesc));
    }

    [Fact]
    public void Setup_table_reports_errors_in_status()
    {
        var g = Guest();
        g.Tm.AddDomain(2);
        ulong op = ServiceGuest.Base, list = ServiceGuest.Base + 64;
        Setup(g, op, DOMID_SELF, 5, list);           // more than the table can grow to
        Assert.Equal(0, GrantTableOp.Do(g.V, SETUP, op, 1));
        Assert.Equal(GNTST_general_error, (short)g.R16(op + 8));
        Setup(g, op, 9, 1, list);                    // no such domain
        Assert.Equal(0, GrantTableOp.Do(g.V, SETUP, op, 1));
        Assert.Equal(GNTST_bad_domain, (short)g.R16(op + 8));
        Setup(g, op, 2, 1, list);                    // someone else's table
        Assert.Equal(0, GrantTableOp.Do(g.V, SETUP, op, 1));
        Assert.Equal(GNTST_permission_denied, (short)g.R16(op + 8));
        Setup(g, op, DOMID_SELF, 1, ServiceGuest.ReadOnlyPage);
        Assert.Equal(0, GrantTableOp.Do(g.V, SETUP, op, 1));
        Assert.Equal(GNTST_bad_virt_addr, (short)g.R16(op + 8));
        Assert.Equal(-22, GrantTableOp.Do(g.V, SETUP, op, 2));
        Assert.Equal(-14, GrantTableOp.Do(g.V, SETUP, ServiceGuest.Unmapped, 1));
    }

    [Fact]
    public void Query_size_reports_current_and_maximum_frames()
    {
        var g = Guest();
        ulong op = ServiceGuest.Base;
        g.W16(op, DOMID_SELF);
        Assert.Equal(0, GrantTableOp.Do(g.V, QUERY, op, 1));
        Assert.Equal(1u, g.R32(op + 4));                 // Xen starts a table with one frame
        Assert.Equal((uint)GrantTable.MaxFrames, g.R32(op + 8));
        Assert.Equal(GNTST_okay, (short)g.R16(op + 12));

        Setup(g, ServiceGuest.Base + 64, DOMID_SELF, 3, ServiceGuest.Base + 128);
        Assert.Equal(0, GrantTableOp.Do(g.V, SETUP, ServiceGuest.Base + 64, 1));
        Assert.Equal(0, GrantTableOp.Do(g.V, QUERY, op, 1));
        Assert.Equal(3u, g.R32(op + 4));
    }

    [Fact]
    public void Version_2_is_offered_up_to_the_domains_maximum()
    {
        var g = Guest();
        g.W32(ServiceGuest.Base, 2);
        Assert.Equal(0, GrantTableOp.Do(g.V, SET_VERSION, ServiceGuest.Base, 1));
        Assert.Equal(2u, g.R32(ServiceGuest.Base));
        g.W16(ServiceGuest.Base + 16, DOMID_SELF);
        Assert.Equal(0, GrantTableOp.Do(g.V, GET_VERSION, ServiceGuest.Base + 16, 1));
        Assert.Equal(2u, g.R32(ServiceGuest.Base + 20));
        g.W32(ServiceGuest.Base, 1);
        Assert.Equal(0, GrantTableOp.Do(g.V, SET_VERSION, ServiceGuest.Base, 1));
        Assert.Equal(1u, g.R32(ServiceGuest.Base));

        GrantTable.Of(g.D).MaxVersion = 1;          // createdomain with grant version 1: as before set_version existed
        g.W32(ServiceGuest.Base, 2);
        Assert.Equal(-38, GrantTableOp.Do(g.V, SET_VERSION, ServiceGuest.Base, 1));
        Assert.Equal(1u, g.R32(ServiceGuest.Base));
    }

    [Fact]
    public void Map_checks_domain_and_reference_and_unmap_finds_no_handle()
    {
        var g = Guest();
        var other = g.Tm.AddDomain(2);
        Assert.NotNull(GrantTable.Create(other));
        ulong op = ServiceGuest.Base;
        void Map(uint flags, uint gref, ushort dom) { g.W64(op, ServiceGuest.Base + 4096); g.W32(op + 8, flags); g.W32(op + 12, gref); g.W16(op + 16, dom); }

        Map(2, 0, 9);                   // GNTMAP_host_map from a domain that does not exist
        Assert.Equal(0, GrantTableOp.Do(g.V, MAP, op, 1));
        Assert.Equal(GNTST_bad_domain, (short)g.R16(op + 18));
        Map(2, 512, 2);                 // past the granter's one-frame table
        Assert.Equal(0, GrantTableOp.Do(g.V, MAP, op, 1));
        Assert.Equal(GNTST_bad_gntref, (short)g.R16(op + 18));
        Map(0, 0, 2);                   // neither host nor device map
        Assert.Equal(0, GrantTableOp.Do(g.V, MAP, op, 1));
        Assert.Equal(GNTST_bad_gntref, (short)g.R16(op + 18));
        Map(2, 0, 2);                   // entry 0 is GTF_invalid: not a grant to us
        Assert.Equal(0, GrantTableOp.Do(g.V, MAP, op, 1));
        Assert.Equal(GNTST_general_error, (short)g.R16(op + 18));

        g.W32(op + 16, 0);
        Assert.Equal(0, GrantTableOp.Do(g.V, UNMAP, op, 1));
        Assert.Equal(GNTST_bad_handle, (short)g.R16(op + 20));
        Assert.Equal(-38, GrantTableOp.Do(g.V, 3, op, 1));               // dump_table: gone from Xen 4.17
    }
}
