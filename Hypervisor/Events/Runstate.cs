using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Events;

/// <summary>
/// struct vcpu_runstate_info for VCPUOP_get_runstate_info and the area a guest registers with
/// VCPUOP_register_runstate_memory_area. Microhv does not account time per state yet: a vCPU is
/// reported running since boot, so guests see no stolen time.
/// </summary>
public static class Runstate
{
    /// <summary>Writes the runstate to guest virtual address <paramref name="va"/>; false on a fault.
    /// With VMASST_TYPE_runstate_update_flag the guest sees XEN_RUNSTATE_UPDATE while it changes.</summary>
    public static bool Write(Vcpu v, ulong va, ulong now, bool updateFlag)
    {
        ulong entry = now;
        if (updateFlag && !GuestMemory.WriteU64(v, va + VcpuOps.runstate_state_entry_time, entry | VcpuOps.XEN_RUNSTATE_UPDATE)) return false;
        if (!GuestMemory.WriteU32(v, va + VcpuOps.runstate_state, VcpuOps.RUNSTATE_running)) return false;
        if (!GuestMemory.WriteU64(v, va + VcpuOps.runstate_time + 0, now)) return false;
        for (int i = 1; i < 4; i++)
            if (!GuestMemory.WriteU64(v, va + VcpuOps.runstate_time + (ulong)i * 8, 0)) return false;
        return GuestMemory.WriteU64(v, va + VcpuOps.runstate_state_entry_time, entry);
    }

    /// <summary>Refreshes the registered area, through the guest kernel's page tables even while the
    /// guest runs user code (Xen switches to them for this too). A fault is ignored, as in Xen.</summary>
    public static void Update(Vcpu v, ulong now)
    {
        ulong area = v.RunstateArea;
        if (area == 0) return;
        bool kernelMode = v.KernelMode;
        v.KernelMode = true;
        Write(v, area, now, (v.Domain.VmAssist & (1UL << Xen.VMASST_TYPE_runstate_update_flag)) != 0);
        v.KernelMode = kernelMode;
    }
}
