using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Mm;

/// <summary>Not implemented yet: returns -ENOSYS.</summary>
public static class UpdateVaMapping
{
    public static long Do(Vcpu v, ulong va, ulong pte, ulong flags) => -Errno.ENOSYS;
    public static long OtherDomain(Vcpu v, ulong va, ulong pte, ulong flags, ulong domid) => -Errno.ENOSYS;
}
