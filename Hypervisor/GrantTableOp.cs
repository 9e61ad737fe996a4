using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>Not implemented yet: returns -ENOSYS.</summary>
public static class GrantTableOp
{
    public static long Do(Vcpu v, ulong cmd, ulong uop, ulong count) => -Errno.ENOSYS;
}
