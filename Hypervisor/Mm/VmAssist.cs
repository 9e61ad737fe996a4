using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Mm;

/// <summary>Not implemented yet: returns -ENOSYS.</summary>
public static class VmAssist
{
    public static long Do(Vcpu v, ulong cmd, ulong type) => -Errno.ENOSYS;
}
