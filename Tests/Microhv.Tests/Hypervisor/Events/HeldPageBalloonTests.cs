using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Xunit;
using static Microhv.Hypervisor.Public.EventChannel;

namespace Microhv.Tests.Hypervisor.Events;

/// <summary>
/// decrease_reservation of a frame the hypervisor still maps for the guest (a FIFO control block or event-array
/// page, a vcpu_info page), as Xen's guest_remove_page treats it: the extent is done and the frame leaves the
/// guest's p2m, but it stays the domain's, referenced and written by the hypervisor, counted in the domain's
/// pages, until the last of the hypervisor's references goes (EVTCHNOP_reset, the domain's teardown); then it is
/// free and blank. A frame the guest itself still maps stops the batch, as before.
/// </summary>
public sealed class HeldPageBalloonTests
{
    private const uint Pending = 1u << EVTCHN_FIFO_PENDING, Linked = 1u << EVTCHN_FIFO_LINKED;
    private const ulong Pages = 100;
    private readonly TestMachine _t = new();
    private readonly EventsGuest _a;
    private FrameTable Ft => _t.Machine.FrameTable;

    public HeldPageBalloonTests()
    {
        _a = new EventsGuest(_t, 1);
        _a.D.NrPages = Pages;
        _a.D.MaxPages = Pages;
    }

    private long InitControl(ulong gfn, uint offset)
    {
        _a.Arg64(init_control_control_gfn, gfn);
        _a.Arg32(init_control_offset, offset);
        _a.Arg32(init_control_vcpu, 0);
        _a.Arg64(init_control_link_bits, 0);
        return _a.Evtchn(EVTCHNOP_init_control);
    }

    private long ExpandArray(ulong gfn)
    {
        _a.Arg64(expand_array_array_gfn, gfn);
        return _a.Evtchn(EVTCHNOP_expand_array);
    }

    /// <summary>decrease_reservation of one order-0 extent: <paramref name="mfn"/>.</summary>
    private long Decrease(ulong mfn)
    {
        const int r = 0x200, list = 0x300;
        _a.Arg64(list, mfn);
        _a.Arg64(r + XenMem.reservation_extent_start, EventsGuest.ArgVa + list);
        _a.Arg64(r + XenMem.reservation_nr_extents, 1);
        _a.Arg32(r + XenMem.reservation_extent_order, 0);
        _a.Arg32(r + XenMem.reservation_mem_flags, 0);
        _a.Arg16(r + XenMem.reservation_domid, Xen.DOMID_SELF);
        return MemoryOp.Do(_a.V, XenMem.XENMEM_decrease_reservation, EventsGuest.ArgVa + r);
    }

    private long CurrentReservation()
    {
        _a.Arg16(0x200, Xen.DOMID_SELF);
        return MemoryOp.Do(_a.V, XenMem.XENMEM_current_reservation, EventsGuest.ArgVa + 0x200);
    }

    private void AssertHeld(ulong mfn, uint refs)
    {
        Assert.Equal((ushort)1, Ft.OwnerOf(mfn));
        Assert.True(Ft.IsReleased(mfn));
        Assert.Equal(refs, Ft.RefCount(mfn));
        Assert.Equal(refs, Ft.TypeCount(mfn));
    }

    private void AssertFree(ulong mfn)
    {
        Assert.Equal(FrameTable.OwnerNone, Ft.OwnerOf(mfn));
        Assert.Equal(FrameFault.None, FrameTableCheck.Check(Ft, true, mfn, out ulong _));
    }

    [Fact]
    public void A_ballooned_fifo_page_stays_the_domains_and_is_written_until_reset_frees_it()
    {
        ulong control = _a.G.Spare[0], array = _a.G.Spare[1];
        Assert.Equal(0, InitControl(control, 64));
        Assert.Equal(0, ExpandArray(array));
        Assert.Equal(1, Decrease(array));
        Assert.Equal(1, Decrease(control));
        AssertHeld(array, 1);
        AssertHeld(control, 1);
        Assert.Equal((long)Pages, CurrentReservation());               // not freed yet: still the domain's pages

        // The hypervisor still links events through them: the frames are still the domain's, nobody else's.
        long p = _a.BindIpi();
        Assert.Equal(0, _a.Send((uint)p));
        Assert.Equal(Pending | Linked, _t.Memory.Read32(array * 4096 + (ulong)p * 4) & (Pending | Linked));
        Assert.NotEqual(0u, _t.Memory.Read32(control * 4096 + 64 + evtchn_fifo_control_block_ready) & (1u << EVTCHN_FIFO_PRIORITY_DEFAULT));

        _a.Arg16(reset_dom, Xen.DOMID_SELF);
        Assert.Equal(0, _a.Evtchn(EVTCHNOP_reset));
        AssertFree(array);
        AssertFree(control);
        Assert.Equal((long)Pages - 2, CurrentReservation());
        Assert.Equal(0, Decrease(array));                               // no longer the domain's
    }

    [Fact]
    public void Two_control_blocks_in_one_page_hold_it_until_both_go()
    {
        _a.D.MaxVcpus = 2;
        _a.D.Vcpus[1].Online = true;
        ulong page = _a.G.Spare[0];
        Assert.Equal(0, InitControl(page, 0));
        _a.Arg64(init_control_control_gfn, page);
        _a.Arg32(init_control_offset, 512);
        _a.Arg32(init_control_vcpu, 1);
        Assert.Equal(0, _a.Evtchn(EVTCHNOP_init_control));
        Assert.Equal(1, Decrease(page));
        AssertHeld(page, 2);
        _a.Arg16(reset_dom, Xen.DOMID_SELF);
        Assert.Equal(0, _a.Evtchn(EVTCHNOP_reset));
        AssertFree(page);
        Assert.Equal((long)Pages - 1, CurrentReservation());
    }

    [Fact]
    public void A_page_the_guest_still_maps_is_not_given_back()
    {
        ulong mapped = _a.G.Spare[1];
        // The guest maps it writable in its own page tables (the references a validated PTE takes), and makes it its array page.
        Assert.Equal(0, Microhv.Hypervisor.Mm.PageTypes.GetPageAndType(_t.Machine, _a.D, mapped, FrameType.Writable));
        Assert.Equal(0, InitControl(_a.G.Spare[0], 64));
        Assert.Equal(0, ExpandArray(mapped));
        uint refs = Ft.RefCount(mapped);
        Assert.Equal(0, Decrease(mapped));
        Assert.False(Ft.IsReleased(mapped));
        Assert.Equal(refs, Ft.RefCount(mapped));
        Assert.Equal((long)Pages, CurrentReservation());
    }

    [Fact]
    public void The_domains_teardown_frees_ballooned_fifo_and_vcpu_info_pages()
    {
        ulong control = _a.G.Spare[0], array = _a.G.Spare[1], info = _a.G.Spare[2];
        Assert.Equal(0, InitControl(control, 64));
        Assert.Equal(0, ExpandArray(array));
        _a.Arg64(VcpuOps.register_vcpu_info_mfn, info);
        _a.Arg32(VcpuOps.register_vcpu_info_offset, 128);
        Assert.Equal(0, _a.VcpuOp(VcpuOps.VCPUOP_register_vcpu_info));
        foreach (ulong mfn in new[] { control, array, info }) Assert.Equal(1, Decrease(mfn));
        AssertHeld(info, 1);

        // vcpu_info goes on being written: an event for the vCPU sets its upcall flag there.
        _t.Memory.Write8(info * 4096 + 128 + SharedInfo.evtchn_upcall_pending, 0);
        long p = _a.BindIpi();
        Assert.Equal(0, _a.Send((uint)p));
        Assert.Equal(1, _t.Memory.Read8(info * 4096 + 128 + SharedInfo.evtchn_upcall_pending));
        _a.D.State = DomainState.Shutdown;
        DomainRelinquish.Relinquish(_a.D);
        foreach (ulong mfn in new[] { control, array, info }) AssertFree(mfn);
        Assert.Equal(0UL, _a.D.NrPages);
    }

    [Fact]
    public void A_ballooned_page_another_domain_maps_outlives_its_dead_owner_until_unmapped()
    {
        ulong control = _a.G.Spare[0], array = _a.G.Spare[1];
        Assert.Equal(0, InitControl(control, 64));
        Assert.Equal(0, ExpandArray(array));
        Assert.Equal(1, Decrease(array));
        // Domain 2 maps it read-only in its page tables (a foreign mapping: the references a validated PTE takes).
        Assert.True(Microhv.Hypervisor.Mm.PageTypes.GetPage(_t.Machine, array, 1));
        Ft.SetForeignRefs(array, 1);
        _a.D.State = DomainState.Shutdown;
        DomainRelinquish.Relinquish(_a.D);
        AssertFree(control);
        Assert.Equal((ushort)1, Ft.OwnerOf(array));                      // kept for the mapping
        Assert.Equal(1UL, _a.D.FramesKept);
        Microhv.Hypervisor.Mm.PageTableValidator.PutPageFromEntry(_t.Machine, (array << 12) | PageTableEntry.Present, 1, 2);
        AssertFree(array);
        Assert.Equal(0UL, _a.D.FramesKept);
    }
}
