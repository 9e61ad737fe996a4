using Microhv.Hypervisor;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;
using Xunit;
using static Microhv.Hypervisor.Public.EventChannel;

namespace Microhv.Tests.Hypervisor.Events;

/// <summary>The FIFO commands answered as Xen 4.17 answers a domain still on the 2-level ABI.</summary>
public sealed class FifoTests
{
    private readonly TestMachine _t = new();
    private readonly EventsGuest _a, _b;

    public FifoTests()
    {
        _a = new EventsGuest(_t, 1);
        _b = new EventsGuest(_t, 2);
    }

    private long InitControl(ulong gfn, uint offset, uint vcpu)
    {
        _a.Arg64(init_control_control_gfn, gfn);
        _a.Arg32(init_control_offset, offset);
        _a.Arg32(init_control_vcpu, vcpu);
        return _a.Evtchn(EVTCHNOP_init_control);
    }

    [Fact]
    public void Init_control_checks_its_arguments_in_Xens_order()
    {
        ulong own = _a.G.Data[0];
        Assert.Equal(-Errno.ENOENT, InitControl(own, 0, 1));                            // no such vCPU, before the offset
        Assert.Equal(-Errno.ENOENT, InitControl(~0UL, 4095, 0x7FFF));
        Assert.Equal(-Errno.EINVAL, InitControl(own, 4096 - 72 + 8, 0));                // the block would cross the page
        Assert.Equal(-Errno.EINVAL, InitControl(own, 0xFFFF_FFF8, 0));
        Assert.Equal(-Errno.EINVAL, InitControl(own, 4, 0));                            // not 8-byte aligned
        Assert.Equal(-Errno.EINVAL, InitControl(_b.G.Data[0], 0, 0));                   // another domain's frame
        Assert.Equal(-Errno.EINVAL, InitControl(_a.SharedInfoMfn, 0, 0));               // Xen's frame
        Assert.Equal(-Errno.EINVAL, InitControl(~0UL, 0, 0));
    }

    [Fact]
    public void A_valid_init_control_is_enosys_and_leaves_the_frame_as_it_was()
    {
        ulong own = _a.G.Data[1];
        uint refs = _a.G.RefCount(own), types = _a.G.TypeCount(own);
        Assert.Equal(-Errno.ENOSYS, InitControl(own, 4096 - 72, 0));
        Assert.Equal(refs, _a.G.RefCount(own));
        Assert.Equal(types, _a.G.TypeCount(own));
        Assert.Equal(0u, _a.Out32(init_control_link_bits));                              // link_bits only on success
    }

    [Fact]
    public void Expand_array_and_set_priority_answer_as_for_a_2_level_domain()
    {
        _a.Arg64(expand_array_array_gfn, _a.G.Data[0]);
        Assert.Equal(-Errno.EOPNOTSUPP, _a.Evtchn(EVTCHNOP_expand_array));
        _a.Arg32(set_priority_port, 0);
        _a.Arg32(set_priority_priority, 7);
        Assert.Equal(-Errno.ENOSYS, _a.Evtchn(EVTCHNOP_set_priority));
        _a.Arg32(set_priority_port, 0x10000000);
        Assert.Equal(-Errno.EINVAL, _a.Evtchn(EVTCHNOP_set_priority));
    }

    [Fact]
    public void Bad_argument_pointers_are_efault()
    {
        foreach (int cmd in new[] { EVTCHNOP_init_control, EVTCHNOP_expand_array, EVTCHNOP_set_priority })
            Assert.Equal(-Errno.EFAULT, EventChannelOp.Do(_a.V, (ulong)cmd, 0x10));
    }

    [Fact]
    public void Reset_cont_is_reset()
    {
        Assert.True(_a.BindIpi() > 0);
        _a.Arg16(reset_dom, Xen.DOMID_SELF);
        Assert.Equal(0, _a.Evtchn(EVTCHNOP_reset_cont));
        Assert.Equal(1, _a.BindIpi());                                                 // every port was closed
    }
}
