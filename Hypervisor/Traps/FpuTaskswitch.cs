namespace Microhv.Hypervisor.Traps;

/// <summary>
/// HYPERVISOR_fpu_taskswitch: the guest's virtual CR0.TS. While it is set, the kernel runs the vCPU
/// with the real CR0.TS set, so the guest's first FPU/SSE instruction raises #NM, which is bounced
/// to the guest's handler (it then clears TS with fpu_taskswitch(0) or clts).
/// </summary>
public static class FpuTaskswitch
{
    public static long Do(Vcpu v, ulong set)
    {
        v.FpuTaskSwitched = set != 0;
        return 0;
    }

    /// <summary>For the kernel: whether CR0.TS must be set while this vCPU runs.</summary>
    public static bool WantsCr0Ts(Vcpu v) => v.FpuTaskSwitched;
}
