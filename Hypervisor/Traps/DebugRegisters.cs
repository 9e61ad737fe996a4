using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>A vCPU's debug registers as the guest set them (Xen's arch.dr[0..3], dr6, dr7).</summary>
public struct DebugRegisterState
{
    public ulong Dr0, Dr1, Dr2, Dr3, Dr6, Dr7;

    public static DebugRegisterState Reset => new() { Dr6 = DebugRegisters.DR6Default, Dr7 = DebugRegisters.DR7Default };
}

/// <summary>
/// set_debugreg and get_debugreg, and the emulated MOV to and from %dr0-7, with Xen 4.17's checks
/// (pv/misc-hypercalls.c set_debugreg, x86_emulate.c x86emul_read_dr): a breakpoint address must be
/// one a guest may use (below 2^47 or above the hypervisor's hole), so no breakpoint can be set on the
/// hypervisor; DR6 and DR7 take 32-bit values with their reserved bits forced; DR7's general-detect
/// bit is refused; an I/O breakpoint needs CR4.DE, which a PV guest of Microhv never has, so it is
/// refused too and %dr4/%dr5 are %dr6/%dr7. The registers are live on the CPU only while DR7 enables
/// a breakpoint: a change records <see cref="ExitWork.DebugRegisters"/>, and the exit loads them (or
/// turns DR7 off) before the guest runs, as Xen's activate_debugregs and context switch do. A #DB the
/// guest takes accumulates the CPU's DR6 into the vCPU's (Xen's do_debug) before it is bounced.
/// Errors: -ENODEV (a register that does not exist: #UD for MOV), -EINVAL (a reserved bit: #GP),
/// -EPERM (a valid setting the guest may not use: #GP).
/// </summary>
public static class DebugRegisters
{
    public const ulong DR6Default = 0xFFFF0FF0, DR7Default = 0x400;
    /// <summary>DR6's bits that are reserved zero (bit 12, the upper half) and reserved one (4-11, 16-31).</summary>
    public const ulong DR6ReservedZero = ~0xFFFFEFFFUL, DR6ReservedOne = 0xFFFF0FF0;
    /// <summary>DR7's bits that are reserved zero (11, 12, 14, 15, the upper half) and reserved one (10).</summary>
    public const ulong DR7ReservedZero = ~0xFFFF27FFUL, DR7ReservedOne = 0x400;
    public const ulong DR7GeneralDetect = 1UL << 13;
    /// <summary>DR7's local and global enable bits of the four breakpoints.</summary>
    public const ulong DR7ActiveMask = 0xFF;
    private const int ControlShift = 16, ControlSize = 4;
    private const ulong RwIo = 2;

    /// <summary>Xen's breakpoint_addr_ok (__addr_ok): the lower canonical half, or above the hypervisor's hole.</summary>
    public static bool BreakpointAddressOk(ulong address) => address < (1UL << 47) || address >= Xen.HYPERVISOR_VIRT_END;

    /// <summary>Whether DR7 enables a breakpoint: only then are the registers loaded while the vCPU runs.</summary>
    public static bool Active(Vcpu v) => (v.Debug.Dr7 & DR7ActiveMask) != 0;

    /// <summary>set_debugreg(reg, value) and MOV to %dr<paramref name="reg"/>.</summary>
    public static long Set(Vcpu v, uint reg, ulong value)
    {
        switch (reg)
        {
            case 0: case 1: case 2: case 3:
                if (!BreakpointAddressOk(value)) return -Errno.EPERM;
                if (reg == 0) v.Debug.Dr0 = value;
                else if (reg == 1) v.Debug.Dr1 = value;
                else if (reg == 2) v.Debug.Dr2 = value;
                else v.Debug.Dr3 = value;
                break;
            case 4: case 6:                                     // %dr4 is %dr6 without CR4.DE
                if (value != (uint)value) return -Errno.EINVAL;
                v.Debug.Dr6 = (value & ~DR6ReservedZero) | DR6ReservedOne;
                break;
            case 5: case 7:                                     // %dr5 is %dr7 without CR4.DE
                if (value != (uint)value) return -Errno.EINVAL;
                value = (value & ~DR7ReservedZero) | DR7ReservedOne;
                if ((value & DR7GeneralDetect) != 0) return -Errno.EPERM;
                if ((value & DR7ActiveMask) != 0)
                {
                    for (int i = ControlShift; i < 32; i += ControlSize)
                        if (((value >> i) & 3) == RwIo) return -Errno.EPERM;   // I/O breakpoints need CR4.DE
                }
                v.Debug.Dr7 = value;
                break;
            default:
                return -Errno.ENODEV;
        }
        v.PendingExitWork |= ExitWork.DebugRegisters;
        return 0;
    }

    /// <summary>get_debugreg(reg) and MOV from %dr<paramref name="reg"/>: false for a register that does not exist (-ENODEV).</summary>
    public static bool Get(Vcpu v, uint reg, out ulong value)
    {
        switch (reg)
        {
            case 0: value = v.Debug.Dr0; return true;
            case 1: value = v.Debug.Dr1; return true;
            case 2: value = v.Debug.Dr2; return true;
            case 3: value = v.Debug.Dr3; return true;
            case 4: case 6: value = v.Debug.Dr6; return true;
            case 5: case 7: value = v.Debug.Dr7; return true;
            default: value = 0; return false;
        }
    }

    /// <summary>The get_debugreg hypercall: the value (as Xen, a value with bit 63 set reads as negative), or -ENODEV.</summary>
    public static long GetHypercall(Vcpu v, ulong reg) => Get(v, (uint)reg, out ulong value) ? (long)value : -Errno.ENODEV;

    /// <summary>A #DB from the guest: the CPU's DR6 (<paramref name="dr6"/>, read and reset by the kernel) goes into
    /// the vCPU's, sticky bits set and the bits the CPU clears cleared, as Xen's do_debug does.</summary>
    public static void OnGuestDebugException(Vcpu v, ulong dr6)
    {
        v.Debug.Dr6 |= dr6 & ~DR6Default;
        v.Debug.Dr6 &= dr6 | ~DR6Default;
    }
}
