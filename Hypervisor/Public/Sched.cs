namespace Microhv.Hypervisor.Public;

/// <summary>xen/include/public/sched.h.</summary>
public static class Sched
{
    public const int SCHEDOP_yield = 0, SCHEDOP_block = 1, SCHEDOP_shutdown = 2, SCHEDOP_poll = 3,
        SCHEDOP_remote_shutdown = 4, SCHEDOP_shutdown_code = 5, SCHEDOP_watchdog = 6, SCHEDOP_pin_override = 7;
    public const int SHUTDOWN_poweroff = 0, SHUTDOWN_reboot = 1, SHUTDOWN_suspend = 2, SHUTDOWN_crash = 3,
        SHUTDOWN_watchdog = 4, SHUTDOWN_soft_reset = 5;
}
