using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>
/// HYPERVISOR_stack_switch (Xen's do_stack_switch): the guest kernel stack a trap from guest user
/// space lands on. The selector's RPL is raised to 3, the only ring a 64-bit PV kernel runs in.
/// </summary>
public static class StackSwitch
{
    public static long Do(Vcpu v, ulong ss, ulong esp)
    {
        v.KernelSs = DescriptorCheck.FixupGuestSelector(ss & 0xFFFF);
        v.KernelSp = esp;
        return 0;
    }
}
