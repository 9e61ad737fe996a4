using Microhv.HAL;
using Microhv.Hypervisor.Public;
using static Microhv.Hypervisor.Public.EventChannel;

namespace Microhv.Hypervisor.Events;

/// <summary>
/// The FIFO event-channel commands (event_channel.c's EVTCHNOP_init_control, expand_array and
/// set_priority, carried out by xen/common/event_fifo.c): each reads its argument struct and checks it
/// in Xen 4.17's order; the domain's <see cref="EvtchnFifo"/> does the rest. A domain switches to the
/// FIFO ABI with its first successful init_control (Linux's xen_evtchn_fifo_init does at boot).
/// </summary>
public static class Fifo
{
    /// <summary>EVTCHNOP_init_control: -EFAULT, -ENOENT for a vCPU the domain does not have, -EINVAL for an
    /// offset whose control block would cross the page or is not 8-byte aligned, -EINVAL for a vCPU that has
    /// a control block already or a frame the domain does not own or that cannot be writable (map_guest_page).
    /// On success the struct goes back with link_bits = EVTCHN_FIFO_LINK_BITS.</summary>
    public static long InitControl(Vcpu v, ulong arg)
    {
        // copy_from_guest reads the whole struct, link_bits and padding included.
        if (!GuestMemory.ReadU64(v, arg + init_control_control_gfn, out ulong gfn)
            || !GuestMemory.ReadU32(v, arg + init_control_offset, out uint offset)
            || !GuestMemory.ReadU32(v, arg + init_control_vcpu, out uint vcpu)
            || !GuestMemory.ReadU64(v, arg + init_control_link_bits, out ulong _))
            return -Errno.EFAULT;
        Domain d = v.Domain;
        Vcpu target = d.VcpuById(vcpu);
        if (target == null) return -Errno.ENOENT;
        if (offset > Layout.PageSize - evtchn_fifo_control_block_size) return -Errno.EINVAL;
        if ((offset & 7) != 0) return -Errno.EINVAL;
        long rc = d.EventChannels.Fifo.InitControl(target, gfn, offset);
        if (rc != 0) return rc;
        // __copy_to_guest of the struct: only link_bits changed. The switch stands even if this faults.
        return GuestMemory.WriteU8(v, arg + init_control_link_bits, EVTCHN_FIFO_LINK_BITS) ? 0 : -Errno.EFAULT;
    }

    /// <summary>EVTCHNOP_expand_array: -EOPNOTSUPP until init_control has switched the domain to FIFO, then
    /// the next event-array page (EvtchnFifo.ExpandArray).</summary>
    public static long ExpandArray(Vcpu v, ulong arg)
        => GuestMemory.ReadU64(v, arg + expand_array_array_gfn, out ulong gfn) ? v.Domain.EventChannels.Fifo.ExpandArray(gfn) : -Errno.EFAULT;

    /// <summary>EVTCHNOP_set_priority: -EINVAL for a port that is not valid, -ENOSYS on the 2-level ABI (no
    /// set_priority operation), -EINVAL for a priority above 15, else the port's queue for its next events.</summary>
    public static long SetPriority(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + set_priority_port, out uint port) || !GuestMemory.ReadU32(v, arg + set_priority_priority, out uint priority))
            return -Errno.EFAULT;
        EventChannels ec = v.Domain.EventChannels;
        if (!ec.IsValidPort(port)) return -Errno.EINVAL;
        if (!ec.Fifo.Active) return -Errno.ENOSYS;
        return ec.Fifo.SetPriority((int)port, priority);
    }
}
