using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>Not implemented yet: returns -ENOSYS.</summary>
public static class Multicall
{
    public static long Do(Vcpu v, ref TrapFrame regs, ulong calls, ulong count) => -Errno.ENOSYS;
}
