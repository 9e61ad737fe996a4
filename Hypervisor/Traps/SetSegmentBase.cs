using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>Not implemented yet: returns -ENOSYS.</summary>
public static class SetSegmentBase
{
    public static long Do(Vcpu v, ulong which, ulong baseAddress) => -Errno.ENOSYS;
}
