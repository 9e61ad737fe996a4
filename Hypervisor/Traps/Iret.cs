using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>Not implemented yet: returns -ENOSYS.</summary>
public static class Iret
{
    public static void Do(Vcpu v, ref TrapFrame regs) { }
}
