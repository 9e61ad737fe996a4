using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Events;

/// <summary>Not implemented yet: returns -ENOSYS.</summary>
public static class SchedOp
{
    public static long Compat(Vcpu v, ulong cmd, ulong arg) => -Errno.ENOSYS;
    public static long Do(Vcpu v, ulong cmd, ulong arg) => -Errno.ENOSYS;
}
