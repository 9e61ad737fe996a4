using Microhv.HAL;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using static Microhv.Hypervisor.Public.EventChannel;

namespace Microhv.Hypervisor.Events;

/// <summary>
/// The FIFO event-channel commands (xen/common/event_fifo.c) for a domain on the 2-level ABI, the
/// only one Microhv offers: each checks its arguments in Xen 4.17's order and answers what Xen
/// answers a domain that has not switched to FIFO, so a guest probing them (Linux's
/// xen_evtchn_fifo_init) sees the same errors and falls back to 2-level. Only a request Xen would
/// carry out differs: init_control then gets -ENOSYS instead of switching the domain to FIFO.
/// </summary>
public static class Fifo
{
    /// <summary>EVTCHNOP_init_control: -EFAULT, -ENOENT for a vCPU the domain does not have, -EINVAL for an
    /// offset whose control block would cross the page or is not 8-byte aligned, -EINVAL for a frame the
    /// domain does not own or that cannot be writable (map_control_block's map_guest_page).</summary>
    public static long InitControl(Vcpu v, ulong arg)
    {
        // copy_from_guest reads the whole struct, link_bits and padding included.
        if (!GuestMemory.ReadU64(v, arg + init_control_control_gfn, out ulong gfn)
            || !GuestMemory.ReadU32(v, arg + init_control_offset, out uint offset)
            || !GuestMemory.ReadU32(v, arg + init_control_vcpu, out uint vcpu)
            || !GuestMemory.ReadU64(v, arg + init_control_link_bits, out ulong _))
            return -Errno.EFAULT;
        Domain d = v.Domain;
        if (v.Domain.VcpuById(vcpu) == null) return -Errno.ENOENT;
        if (offset > Layout.PageSize - evtchn_fifo_control_block_size) return -Errno.EINVAL;
        if ((offset & 7) != 0) return -Errno.EINVAL;
        // A PV domain names the control block's page by machine frame; Xen takes a writable type on it.
        if (PageTypes.GetPageAndType(d.Machine, d, gfn, FrameType.Writable) != 0) return -Errno.EINVAL;
        PageTypes.PutPageAndType(d.Machine, gfn);
        return -Errno.ENOSYS;                                                // the FIFO ABI is not offered
    }

    /// <summary>EVTCHNOP_expand_array: -EOPNOTSUPP until init_control has switched the domain to FIFO.</summary>
    public static long ExpandArray(Vcpu v, ulong arg)
        => GuestMemory.ReadU64(v, arg + expand_array_array_gfn, out ulong _) ? -Errno.EOPNOTSUPP : -Errno.EFAULT;

    /// <summary>EVTCHNOP_set_priority: -EINVAL for a port that is not valid, else -ENOSYS: the 2-level ABI
    /// has no priorities (evtchn_port_set_priority without a set_priority operation).</summary>
    public static long SetPriority(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + set_priority_port, out uint port) || !GuestMemory.ReadU32(v, arg + set_priority_priority, out uint _))
            return -Errno.EFAULT;
        if (!v.Domain.EventChannels.IsValidPort(port)) return -Errno.EINVAL;
        return -Errno.ENOSYS;
    }
}
