using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Events;

/// <summary>Not implemented yet: returns -ENOSYS.</summary>
public static class Timers
{
    public static long SetTimerOp(Vcpu v, ulong timeout) => -Errno.ENOSYS;
}
