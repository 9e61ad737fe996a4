namespace Microhv.Hypervisor.Traps;

/// <summary>
/// A 64-bit PV vCPU's FS base and its two GS bases, kept as Xen 4.17 keeps them (arch.pv.fs_base,
/// gs_base_kernel, gs_base_user; save_segments, toggle_guest_mode, do_set_segment_base, the emulated base
/// MSRs). While the vCPU runs, the CPU holds its FS base and the GS base of its guest mode, and the guest
/// changes them without trapping: a selector load gives the descriptor's base, and with CR4.FSGSBASE it writes
/// them with WRFSBASE and WRGSBASE. So the CPU's values are the true ones (<see cref="Vcpu.FsBaseLive"/>,
/// <see cref="Vcpu.GsBaseLive"/>) and the Vcpu's copies are read back from it before Microhv uses them, one
/// MSR read each, never twice in a trap. A change of guest mode reads the GS base of the mode it leaves (Xen's
/// read_gs_base before its SWAPGS) and leaves FS alone; a value Microhv writes into a copy is the CPU's again
/// once the exit has loaded it (GuestEntry: ExitActions.LoadFsBase, LoadGsBase). Only the vCPU's own processor
/// calls these (a running vCPU is no other processor's to change), with or without the hypervisor's lock.
/// </summary>
public static class SegmentBases
{
    /// <summary>The FS base, as the guest last set it.</summary>
    public static ulong Fs(Vcpu v)
    {
        if (v.FsBaseLive) v.FsBase = v.Domain.Machine.Host.ReadGuestFsBase();
        return v.FsBase;
    }

    /// <summary>The GS base of the vCPU's guest mode (the kernel's in kernel mode, the user's in user mode), as the
    /// guest last set it.</summary>
    public static ulong ActiveGs(Vcpu v)
    {
        SyncActiveGs(v);
        return v.KernelMode ? v.GsBaseKernel : v.GsBaseUser;
    }

    /// <summary>The GS base of guest kernel mode (MSR_GS_BASE as the kernel sees it, SEGBASE_GS_KERNEL).</summary>
    public static ulong GsKernel(Vcpu v)
    {
        if (v.KernelMode) SyncActiveGs(v);
        return v.GsBaseKernel;
    }

    /// <summary>The GS base of guest user mode (MSR_SHADOW_GS_BASE, SEGBASE_GS_USER).</summary>
    public static ulong GsUser(Vcpu v)
    {
        if (!v.KernelMode) SyncActiveGs(v);
        return v.GsBaseUser;
    }

    private static void SyncActiveGs(Vcpu v)
    {
        if (!v.GsBaseLive) return;
        ulong gs = v.Domain.Machine.Host.ReadGuestGsBase();
        if (v.KernelMode) v.GsBaseKernel = gs;
        else v.GsBaseUser = gs;
    }

    /// <summary>SEGBASE_FS, a write of MSR_FS_BASE: the exit loads it.</summary>
    public static void SetFs(Vcpu v, ulong value)
    {
        v.FsBase = value;
        v.FsBaseLive = false;
        v.PendingExitWork |= ExitWork.SegmentBases;
    }

    /// <summary>SEGBASE_GS_KERNEL, a write of MSR_GS_BASE: the exit loads it when it is the active one.</summary>
    public static void SetGsKernel(Vcpu v, ulong value)
    {
        v.GsBaseKernel = value;
        if (v.KernelMode) ActiveGsChanged(v);
    }

    /// <summary>SEGBASE_GS_USER, SEGBASE_GS_USER_SEL, a write of MSR_SHADOW_GS_BASE: in kernel mode, where
    /// hypercalls come from, the inactive base, which only the next change of mode loads.</summary>
    public static void SetGsUser(Vcpu v, ulong value)
    {
        v.GsBaseUser = value;
        if (!v.KernelMode) ActiveGsChanged(v);
    }

    private static void ActiveGsChanged(Vcpu v)
    {
        v.GsBaseLive = false;
        v.PendingExitWork |= ExitWork.SegmentBases;
    }

    /// <summary>toggle_guest_mode's part, before the mode flips: the GS base of the mode being left is kept as the
    /// guest last set it, and the other mode's is loaded on the way out. The FS base stays in the CPU as it is.
    /// (No exit work is recorded: the exit sees the change of mode, and the unlocked entries write nothing that
    /// another processor may write too.)</summary>
    public static void LeaveMode(Vcpu v)
    {
        SyncActiveGs(v);
        v.GsBaseLive = false;
    }

    /// <summary>save_segments' part: <paramref name="v"/> leaves this processor, its copies are brought up to date
    /// and are from now on what counts.</summary>
    public static void Save(Vcpu v)
    {
        Fs(v);
        SyncActiveGs(v);
        v.FsBaseLive = v.GsBaseLive = false;
    }

    /// <summary>Whether the exit must write a base into the CPU: one Microhv changed, the GS base of a new guest mode.</summary>
    public static bool NeedLoad(Vcpu v) => !v.FsBaseLive || !v.GsBaseLive;

    /// <summary>The exit loads the bases the CPU does not hold (<paramref name="all"/>: both, a vCPU switched in);
    /// from then on the CPU's are the true ones.</summary>
    public static void Load(ref GuestExit exit, Vcpu v, bool all)
    {
        if (all || !v.FsBaseLive)
        {
            exit.Actions |= ExitActions.LoadFsBase;
            exit.FsBase = v.FsBase;
            v.FsBaseLive = true;
        }
        if (all || !v.GsBaseLive)
        {
            exit.Actions |= ExitActions.LoadGsBase;
            exit.GsBase = v.KernelMode ? v.GsBaseKernel : v.GsBaseUser;
            v.GsBaseLive = true;
        }
    }
}
