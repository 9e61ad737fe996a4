using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>Not implemented yet: returns -ENOSYS.</summary>
public static class UpdateDescriptor
{
    public static long Do(Vcpu v, ulong machineAddress, ulong descriptor) => -Errno.ENOSYS;
}
