using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// physdev_op (xen/arch/x86/physdev.c). Only set_iopl means something without physical devices:
/// Linux sets its I/O privilege level early in boot. Interrupt routing (pirqs, MSI, GSI) and PCI
/// management are not offered; guests without devices take -ENOSYS and go on.
/// </summary>
public static class PhysdevOp
{
    public static long Do(Vcpu v, ulong cmd, ulong arg)
    {
        switch ((int)(uint)cmd)
        {
            case Physdev.PHYSDEVOP_set_iopl: return SetIopl(v, arg);
            default: return -Errno.ENOSYS;
        }
    }

    /// <summary>struct physdev_set_iopl { uint32_t iopl; }: the level the guest kernel's port I/O is checked against.</summary>
    private static long SetIopl(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg, out uint iopl)) return -Errno.EFAULT;
        if (iopl > 3) return -Errno.EINVAL;
        v.Iopl = (int)iopl;
        return 0;
    }
}
