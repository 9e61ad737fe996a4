using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Mm;

/// <summary>Not implemented yet: returns -ENOSYS.</summary>
public static class MmuUpdate
{
    public static long Do(Vcpu v, ulong reqs, ulong count, ulong doneOut, ulong foreignDom) => -Errno.ENOSYS;
}
