using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>Not implemented yet: returns -ENOSYS.</summary>
public static class XenVersion
{
    public static long Do(Vcpu v, ulong cmd, ulong arg) => -Errno.ENOSYS;
}
