using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>Not implemented yet: returns -ENOSYS.</summary>
public static class CallbackOp
{
    public static long SetCallbacks(Vcpu v, ulong eventAddress, ulong failsafeAddress, ulong syscallAddress) => -Errno.ENOSYS;
    public static long Do(Vcpu v, ulong cmd, ulong arg) => -Errno.ENOSYS;
}
