namespace Microhv.Hypervisor.Public;

/// <summary>
/// xen/include/public/event_channel.h: EVTCHNOP_* commands, EVTCHNSTAT_* values, and the argument
/// structs as byte offsets (domid_t is 16 bits, evtchn_port_t 32 bits, natural x86-64 alignment).
/// </summary>
public static class EventChannel
{
    public const int EVTCHNOP_bind_interdomain = 0, EVTCHNOP_bind_virq = 1, EVTCHNOP_bind_pirq = 2, EVTCHNOP_close = 3,
        EVTCHNOP_send = 4, EVTCHNOP_status = 5, EVTCHNOP_alloc_unbound = 6, EVTCHNOP_bind_ipi = 7, EVTCHNOP_bind_vcpu = 8,
        EVTCHNOP_unmask = 9, EVTCHNOP_reset = 10, EVTCHNOP_init_control = 11, EVTCHNOP_expand_array = 12,
        EVTCHNOP_set_priority = 13, EVTCHNOP_reset_cont = 14;

    public const int EVTCHNSTAT_closed = 0, EVTCHNSTAT_unbound = 1, EVTCHNSTAT_interdomain = 2, EVTCHNSTAT_pirq = 3,
        EVTCHNSTAT_virq = 4, EVTCHNSTAT_ipi = 5;

    // struct evtchn_alloc_unbound { domid_t dom, remote_dom; evtchn_port_t port; }
    public const int alloc_unbound_dom = 0, alloc_unbound_remote_dom = 2, alloc_unbound_port = 4;
    // struct evtchn_bind_interdomain { domid_t remote_dom; evtchn_port_t remote_port; evtchn_port_t local_port; }
    public const int bind_interdomain_remote_dom = 0, bind_interdomain_remote_port = 4, bind_interdomain_local_port = 8;
    // struct evtchn_bind_virq { uint32_t virq; uint32_t vcpu; evtchn_port_t port; }
    public const int bind_virq_virq = 0, bind_virq_vcpu = 4, bind_virq_port = 8;
    // struct evtchn_bind_pirq { uint32_t pirq; uint32_t flags; evtchn_port_t port; }
    public const int bind_pirq_pirq = 0, bind_pirq_flags = 4, bind_pirq_port = 8;
    public const uint BIND_PIRQ__WILL_SHARE = 1;
    // struct evtchn_bind_ipi { uint32_t vcpu; evtchn_port_t port; }
    public const int bind_ipi_vcpu = 0, bind_ipi_port = 4;
    // struct evtchn_close / evtchn_send / evtchn_unmask { evtchn_port_t port; }
    public const int port = 0;
    // struct evtchn_status { domid_t dom; evtchn_port_t port; uint32_t status; uint32_t vcpu; union u; }
    public const int status_dom = 0, status_port = 4, status_status = 8, status_vcpu = 12,
        status_unbound_dom = 16, status_interdomain_dom = 16, status_interdomain_port = 20, status_virq = 16, status_pirq = 16;
    // struct evtchn_bind_vcpu { evtchn_port_t port; uint32_t vcpu; }
    public const int bind_vcpu_port = 0, bind_vcpu_vcpu = 4;
    // struct evtchn_reset { domid_t dom; }
    public const int reset_dom = 0;
    // struct evtchn_init_control { uint64_t control_gfn; uint32_t offset, vcpu; uint8_t link_bits; uint8_t _pad[7]; }
    public const int init_control_control_gfn = 0, init_control_offset = 8, init_control_vcpu = 12, init_control_link_bits = 16,
        init_control_size = 24;
    // struct evtchn_expand_array { uint64_t array_gfn; }
    public const int expand_array_array_gfn = 0;
    // struct evtchn_set_priority { evtchn_port_t port; uint32_t priority; }
    public const int set_priority_port = 0, set_priority_priority = 4;
    /// <summary>struct evtchn_fifo_control_block { uint32_t ready, _rsvd; uint32_t head[EVTCHN_FIFO_MAX_QUEUES = 16]; }.</summary>
    public const int evtchn_fifo_control_block_size = 8 + 16 * 4;
    public const int evtchn_fifo_control_block_ready = 0, evtchn_fifo_control_block_head = 8;

    public const int EVTCHN_FIFO_PRIORITY_MAX = 0, EVTCHN_FIFO_PRIORITY_DEFAULT = 7, EVTCHN_FIFO_PRIORITY_MIN = 15,
        EVTCHN_FIFO_MAX_QUEUES = EVTCHN_FIFO_PRIORITY_MIN + 1;
    /// <summary>Bits of an event word (typedef uint32_t event_word_t): the low EVTCHN_FIFO_LINK_BITS are LINK, the next port of its queue.</summary>
    public const int EVTCHN_FIFO_PENDING = 31, EVTCHN_FIFO_MASKED = 30, EVTCHN_FIFO_LINKED = 29, EVTCHN_FIFO_BUSY = 28;
    public const int EVTCHN_FIFO_LINK_BITS = 17;
    public const uint EVTCHN_FIFO_LINK_MASK = (1u << EVTCHN_FIFO_LINK_BITS) - 1;
    public const int EVTCHN_FIFO_NR_CHANNELS = 1 << EVTCHN_FIFO_LINK_BITS;

    /// <summary>struct evtchn_op (event_channel_op_compat): uint32_t cmd, then the union, 4-byte aligned.</summary>
    public const int op_cmd = 0, op_u = 4;
}
