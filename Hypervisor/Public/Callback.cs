namespace Microhv.Hypervisor.Public;

/// <summary>xen/include/public/callback.h: callback_op commands, callback types and flags.</summary>
public static class Callback
{
    public const int CALLBACKTYPE_event = 0;
    public const int CALLBACKTYPE_failsafe = 1;
    public const int CALLBACKTYPE_syscall = 2;      // x86-64 only
    public const int CALLBACKTYPE_sysenter_deprecated = 3;
    public const int CALLBACKTYPE_nmi = 4;
    public const int CALLBACKTYPE_sysenter = 5;
    public const int CALLBACKTYPE_syscall32 = 7;    // x86-64 only

    /// <summary>Mask events (set evtchn_upcall_mask) while the callback runs.</summary>
    public const int _CALLBACKF_mask_events = 0;
    public const int CALLBACKF_mask_events = 1 << _CALLBACKF_mask_events;

    public const int CALLBACKOP_register = 0;
    public const int CALLBACKOP_unregister = 1;

    // struct callback_register { uint16_t type; uint16_t flags; xen_callback_t address; } (x86-64: 16 bytes)
    public const int callback_register_type = 0;
    public const int callback_register_flags = 2;
    public const int callback_register_address = 8;
    public const int callback_register_size = 16;

    // struct callback_unregister { uint16_t type; uint16_t _unused; }
    public const int callback_unregister_type = 0;
    public const int callback_unregister_size = 4;
}
