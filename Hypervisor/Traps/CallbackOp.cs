using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>
/// HYPERVISOR_callback_op and the older set_callbacks (Xen's pv/callback.c): where the guest kernel
/// wants event upcalls, the failsafe callback (a bad segment on return) and user-mode SYSCALLs to
/// arrive. 32-bit user entry points (syscall32, sysenter) and the NMI callback are accepted and kept
/// nowhere: Microhv runs no 32-bit user code and raises no guest NMIs.
/// </summary>
public static class CallbackOp
{
    public static long SetCallbacks(Vcpu v, ulong eventAddress, ulong failsafeAddress, ulong syscallAddress)
    {
        Register(v, Callback.CALLBACKTYPE_event, 0, eventAddress);
        Register(v, Callback.CALLBACKTYPE_failsafe, 0, failsafeAddress);
        Register(v, Callback.CALLBACKTYPE_syscall, 0, syscallAddress);
        return 0;
    }

    public static long Do(Vcpu v, ulong cmd, ulong arg)
    {
        switch (cmd)
        {
            case Callback.CALLBACKOP_register:
            {
                if (!GuestMemory.ReadU32(v, arg, out uint head) || !GuestMemory.ReadU64(v, arg + Callback.callback_register_address, out ulong address))
                    return -Errno.EFAULT;
                return Register(v, (int)(head & 0xFFFF), (int)(head >> 16), address);
            }
            case Callback.CALLBACKOP_unregister:
            {
                if (!GuestMemory.ReadU32(v, arg, out uint head)) return -Errno.EFAULT;
                return Unregister(v, (int)(head & 0xFFFF));
            }
        }
        return -Errno.ENOSYS;
    }

    /// <summary>register_guest_callback. Addresses are not checked here: a bad one crashes the domain
    /// when it is first bounced to, as in Xen.</summary>
    public static long Register(Vcpu v, int type, int flags, ulong address)
    {
        bool mask = (flags & Callback.CALLBACKF_mask_events) != 0;
        switch (type)
        {
            case Callback.CALLBACKTYPE_event:
                v.EventCallback = address;
                return 0;
            case Callback.CALLBACKTYPE_failsafe:
                // Entered when a selector cannot be reloaded at a vCPU switch (SegmentReload); the mask flag
                // is VGCF_failsafe_disables_events.
                v.FailsafeCallback = address;
                v.FailsafeMasksEvents = mask;
                return 0;
            case Callback.CALLBACKTYPE_syscall:
                v.SyscallCallback = address;
                v.SyscallMasksEvents = mask;
                return 0;
            case Callback.CALLBACKTYPE_syscall32:
            case Callback.CALLBACKTYPE_sysenter:
            case Callback.CALLBACKTYPE_nmi:
                return 0;
        }
        return -Errno.ENOSYS;
    }

    /// <summary>unregister_guest_callback: only the NMI callback can be removed; the others are -EINVAL.</summary>
    public static long Unregister(Vcpu v, int type)
    {
        switch (type)
        {
            case Callback.CALLBACKTYPE_event:
            case Callback.CALLBACKTYPE_failsafe:
            case Callback.CALLBACKTYPE_syscall:
            case Callback.CALLBACKTYPE_syscall32:
            case Callback.CALLBACKTYPE_sysenter:
                return -Errno.EINVAL;
            case Callback.CALLBACKTYPE_nmi:
                return 0;
        }
        return -Errno.ENOSYS;
    }
}
