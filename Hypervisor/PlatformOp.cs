using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// platform_op (xen/arch/x86/platform_hypercall.c): the hardware domain's questions about the
/// machine's firmware and processors, and its setting of the wall clock. Linux dom0 asks at boot for
/// the keyboard shift flags, EDD disk information and EFI information (an error means "none"), and
/// for each processor's APIC ID. Other domains get -EPERM; a wrong interface version -EACCES;
/// commands Microhv does not carry out (microcode, memory types, ACPI sleep, CPU hotplug, frequency
/// and power management) -ENOSYS, as Xen answers commands it does not know.
/// </summary>
public static class PlatformOp
{
    /// <summary>BIOS data area byte with the keyboard shift flags (Xen reads it at boot through int 16h fn 02h).</summary>
    public const ulong BdaKeyboardFlags = 0x417;

    public static long Do(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + Platform.op_cmd, out uint cmd)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU32(v, arg + Platform.op_interface_version, out uint version)) return -Errno.EFAULT;
        if (version != Platform.XENPF_INTERFACE_VERSION) return -Errno.EACCES;
        if (!v.Domain.IsHardwareDomain) return Io.DeviceRefusal.Refuse(v.Domain, Io.DeviceRefusal.Platform, "use platform_op");
        switch (cmd)
        {
            case Platform.XENPF_firmware_info: return FirmwareInfo(v, arg);
            case Platform.XENPF_get_cpuinfo: return GetCpuInfo(v, arg);
            case Platform.XENPF_settime32:
            {
                if (!GuestMemory.ReadU32(v, arg + Platform.settime32_secs, out uint secs)) return -Errno.EFAULT;
                if (!GuestMemory.ReadU32(v, arg + Platform.settime32_nsecs, out uint nsecs)) return -Errno.EFAULT;
                if (!GuestMemory.ReadU64(v, arg + Platform.settime32_system_time, out ulong system)) return -Errno.EFAULT;
                SetTime(v.Domain.Machine, secs, nsecs, system);
                return 0;
            }
            case Platform.XENPF_settime64:
            {
                if (!GuestMemory.ReadU64(v, arg + Platform.settime64_secs, out ulong secs)) return -Errno.EFAULT;
                if (!GuestMemory.ReadU32(v, arg + Platform.settime64_nsecs, out uint nsecs)) return -Errno.EFAULT;
                if (!GuestMemory.ReadU32(v, arg + Platform.settime64_mbz, out uint mbz)) return -Errno.EFAULT;
                if (!GuestMemory.ReadU64(v, arg + Platform.settime64_system_time, out ulong system)) return -Errno.EFAULT;
                if (mbz != 0) return -Errno.EINVAL;
                SetTime(v.Domain.Machine, secs, nsecs, system);
                return 0;
            }
            default: return -Errno.ENOSYS;
        }
    }

    /// <summary>
    /// Microhv asked the BIOS for no EDD or MBR data and keeps no EDID or EFI tables, so those answer
    /// -ESRCH (EFI: -ENOSYS, Xen's answer without EFI); the keyboard flags are read from the BIOS data
    /// area. Unknown types are -EINVAL.
    /// </summary>
    private static long FirmwareInfo(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + Platform.firmware_info_type, out uint type)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU32(v, arg + Platform.firmware_info_index, out uint index)) return -Errno.EFAULT;
        switch (type)
        {
            case Platform.XEN_FW_DISK_INFO:
            case Platform.XEN_FW_DISK_MBR_SIGNATURE:
            case Platform.XEN_FW_VBEDDC_INFO:
                return -Errno.ESRCH;
            case Platform.XEN_FW_EFI_INFO:
                return -Errno.ENOSYS;
            case Platform.XEN_FW_KBD_SHIFT_FLAGS:
            {
                if (index != 0) return -Errno.ESRCH;
                PhysicalMemory mem = v.Domain.Machine.Memory;
                byte flags = mem.Contains(BdaKeyboardFlags, 1) ? mem.Read8(BdaKeyboardFlags) : (byte)0;
                return GuestMemory.WriteU8(v, arg + Platform.firmware_info_u, flags) ? 0 : -Errno.EFAULT;
            }
            default: return -Errno.EINVAL;
        }
    }

    /// <summary>One physical CPU's identity; an index past the last present CPU is flagged INVALID (not an error).</summary>
    private static long GetCpuInfo(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + Platform.pcpuinfo_xen_cpuid, out uint cpu)) return -Errno.EFAULT;
        Machine m = v.Domain.Machine;
        uint count = m.Host.PhysicalCpuCount;
        uint flags = Platform.XEN_PCPU_FLAGS_INVALID;
        if (cpu < count)
        {
            flags = Platform.XEN_PCPU_FLAGS_ONLINE;
            if (!GuestMemory.WriteU32(v, arg + Platform.pcpuinfo_apic_id, m.Host.PhysicalCpuApicId(cpu))) return -Errno.EFAULT;
            if (!GuestMemory.WriteU32(v, arg + Platform.pcpuinfo_acpi_id, m.Host.PhysicalCpuAcpiId(cpu))) return -Errno.EFAULT;
        }
        if (!GuestMemory.WriteU32(v, arg + Platform.pcpuinfo_flags, flags)) return -Errno.EFAULT;
        if (!GuestMemory.WriteU32(v, arg + Platform.pcpuinfo_max_present, count - 1)) return -Errno.EFAULT;
        return 0;
    }

    /// <summary>Xen's do_settime: the wall time at system time 0 becomes (secs, nsecs) minus <paramref name="systemTimeNs"/>, for every domain.</summary>
    public static void SetTime(Machine m, ulong secs, uint nsecs, ulong systemTimeNs)
    {
        m.WallclockAtBootNs = secs * 1_000_000_000UL + nsecs - systemTimeNs;
        for (int i = 0; i < m.DomainCount; i++) TimeInfo.UpdateWallclock(m.Domains[i]);
    }
}
