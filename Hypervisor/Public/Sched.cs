namespace Microhv.Hypervisor.Public;

/// <summary>xen/include/public/sched.h.</summary>
public static class Sched
{
    public const int SCHEDOP_yield = 0, SCHEDOP_block = 1, SCHEDOP_shutdown = 2, SCHEDOP_poll = 3,
        SCHEDOP_remote_shutdown = 4, SCHEDOP_shutdown_code = 5, SCHEDOP_watchdog = 6, SCHEDOP_pin_override = 7;
    public const int SHUTDOWN_poweroff = 0, SHUTDOWN_reboot = 1, SHUTDOWN_suspend = 2, SHUTDOWN_crash = 3,
        SHUTDOWN_watchdog = 4, SHUTDOWN_soft_reset = 5;

    // struct sched_shutdown { unsigned int reason; }
    public const int shutdown_reason = 0;
    // struct sched_poll { XEN_GUEST_HANDLE(evtchn_port_t) ports; unsigned int nr_ports; uint64_t timeout; }
    public const int poll_ports = 0, poll_nr_ports = 8, poll_timeout = 16;
    /// <summary>Xen's (fairly arbitrary) limit on the ports one SCHEDOP_poll may name.</summary>
    public const int SCHEDOP_poll_max_ports = 128;
    // struct sched_remote_shutdown { domid_t domain_id; unsigned int reason; }
    public const int remote_shutdown_domain_id = 0, remote_shutdown_reason = 4;
    // struct sched_pin_override { int32_t pcpu; }
    public const int pin_override_pcpu = 0;
}
