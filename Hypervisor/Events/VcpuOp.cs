using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Events;

/// <summary>Not implemented yet: returns -ENOSYS.</summary>
public static class VcpuOp
{
    public static long Do(Vcpu v, ulong cmd, ulong vcpuId, ulong arg) => -Errno.ENOSYS;
}
