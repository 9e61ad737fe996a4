using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Events;

/// <summary>
/// A vCPU's struct vcpu_runstate_info (Xen's vcpu_runstate_change and vcpu_runstate_get): its state
/// (running on a CPU, runnable but waiting for one, blocked, offline), when it entered it, and the time
/// spent in each. The scheduler changes it at every switch, a wake-up makes a blocked vCPU runnable.
/// VCPUOP_get_runstate_info copies it out, and the area a guest registers with
/// VCPUOP_register_runstate_memory_area receives it at registration, when its vCPU is switched in or
/// out, and on every tick: Linux reads it for its stolen time and for vcpu_is_preempted (a lock holder
/// that is runnable, not running, makes spinners stop spinning).
/// </summary>
public static class Runstate
{
    /// <summary>A new (or reset) vCPU: offline since <paramref name="now"/>, no time in any state.</summary>
    public static void Reset(Vcpu v, ulong now)
    {
        v.RunstateState = VcpuOps.RUNSTATE_offline;
        v.RunstateEntry = now;
        Zero.Fill(v.RunstateTime);
    }

    /// <summary>Xen's vcpu_runstate_change: the time since the last change goes to the old state.</summary>
    public static void Change(Vcpu v, int state, ulong now)
    {
        if (v.RunstateState == state) return;
        if (now > v.RunstateEntry) v.RunstateTime[v.RunstateState] += now - v.RunstateEntry;
        v.RunstateState = state;
        v.RunstateEntry = now;
    }

    /// <summary>The state a vCPU leaving the CPU (or woken, or stopped) is in now.</summary>
    public static int StateOf(Vcpu v)
        => !v.Online || v.Domain.State != DomainState.Running ? VcpuOps.RUNSTATE_offline
            : v.Blocked ? VcpuOps.RUNSTATE_blocked : VcpuOps.RUNSTATE_runnable;

    /// <summary>Writes <paramref name="v"/>'s runstate, its current state's time counted up to <paramref name="now"/>,
    /// to guest virtual address <paramref name="va"/> in <paramref name="via"/>'s address space; false on a fault.
    /// With VMASST_TYPE_runstate_update_flag the guest sees XEN_RUNSTATE_UPDATE while it changes.</summary>
    public static bool Write(Vcpu via, Vcpu v, ulong va, ulong now, bool updateFlag)
    {
        ulong entry = v.RunstateEntry;
        if (updateFlag && !GuestMemory.WriteU64(via, va + VcpuOps.runstate_state_entry_time, entry | VcpuOps.XEN_RUNSTATE_UPDATE)) return false;
        if (!GuestMemory.WriteU32(via, va + VcpuOps.runstate_state, (uint)v.RunstateState)) return false;
        for (int i = 0; i < 4; i++)
        {
            ulong t = v.RunstateTime[i];
            if (i == v.RunstateState && now > entry) t += now - entry;
            if (!GuestMemory.WriteU64(via, va + VcpuOps.runstate_time + (ulong)i * 8, t)) return false;
        }
        return GuestMemory.WriteU64(via, va + VcpuOps.runstate_state_entry_time, entry);
    }

    /// <summary>Refreshes the registered area, through the guest kernel's page tables even while the
    /// guest runs user code (Xen switches to them for this too). A fault is ignored, as in Xen. Not for a vCPU
    /// another processor runs now: that processor updates it at its own ticks and switches, and its
    /// entries read the vCPU's mode without the lock (GuestEntry.SyscallUnlocked), so no other processor may
    /// flip it, even for a moment.</summary>
    public static void Update(Vcpu v, ulong now)
    {
        ulong area = v.RunstateArea;
        if (area == 0 || v.GuestTable == 0) return;
        if (v.RunningOn >= 0 && v.RunningOn != v.Domain.Machine.Cpu) return;
        bool kernelMode = v.KernelMode;
        v.KernelMode = true;
        Write(v, v, area, now, (v.Domain.VmAssist & (1UL << Xen.VMASST_TYPE_runstate_update_flag)) != 0);
        v.KernelMode = kernelMode;
    }
}
