using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// vm_assist(cmd, type): turns on or off one of the assists a 64-bit PV guest may ask for, recorded
/// as bit <c>type</c> of Domain.VmAssist. The valid set is Xen's NATIVE_VM_ASSIST_VALID on x86-64
/// (4gb_segments and its notify variant are accepted and mean nothing for a 64-bit guest).
/// </summary>
public static class VmAssist
{
    public const ulong Valid = (1UL << Xen.VMASST_TYPE_4gb_segments) | (1UL << Xen.VMASST_TYPE_4gb_segments_notify)
        | (1UL << Xen.VMASST_TYPE_writable_pagetables) | (1UL << Xen.VMASST_TYPE_pae_extended_cr3)
        | (1UL << Xen.VMASST_TYPE_architectural_iopl) | (1UL << Xen.VMASST_TYPE_runstate_update_flag)
        | (1UL << Xen.VMASST_TYPE_m2p_strict);

    public static long Do(Vcpu v, ulong cmd, ulong type)
    {
        uint t = (uint)type;                 // both arguments are unsigned int in Xen
        if (t >= 64 || (Valid & (1UL << (int)t)) == 0) return -Errno.EINVAL;
        Domain d = v.Domain;
        switch ((uint)cmd)
        {
            case Xen.VMASST_CMD_enable: d.VmAssist |= 1UL << (int)t; return 0;
            case Xen.VMASST_CMD_disable: d.VmAssist &= ~(1UL << (int)t); return 0;
            default: return -Errno.ENOSYS;
        }
    }

    public static bool IsEnabled(Domain d, int type) => (d.VmAssist & (1UL << type)) != 0;
}
