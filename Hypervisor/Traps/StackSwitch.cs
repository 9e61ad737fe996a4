using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>Not implemented yet: returns -ENOSYS.</summary>
public static class StackSwitch
{
    public static long Do(Vcpu v, ulong ss, ulong esp) => -Errno.ENOSYS;
}
