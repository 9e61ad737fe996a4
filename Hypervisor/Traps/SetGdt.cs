using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>Not implemented yet: returns -ENOSYS.</summary>
public static class SetGdt
{
    public static long Do(Vcpu v, ulong frameList, ulong entries) => -Errno.ENOSYS;
}
