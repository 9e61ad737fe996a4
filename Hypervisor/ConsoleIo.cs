using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>Not implemented yet: returns -ENOSYS.</summary>
public static class ConsoleIo
{
    public static long Do(Vcpu v, ulong cmd, ulong count, ulong buffer) => -Errno.ENOSYS;
}
