namespace Microhv.Hypervisor.Public;

/// <summary>xen/include/public/platform.h: struct xen_platform_op and the commands a Linux dom0 issues at boot.</summary>
public static class Platform
{
    public const uint XENPF_INTERFACE_VERSION = 0x03000001;

    public const uint XENPF_settime32 = 17, XENPF_add_memtype = 31, XENPF_del_memtype = 32, XENPF_read_memtype = 33,
        XENPF_microcode_update = 35, XENPF_platform_quirk = 39, XENPF_get_cpu_version = 48, XENPF_efi_runtime_call = 49,
        XENPF_firmware_info = 50, XENPF_enter_acpi_sleep = 51, XENPF_change_freq = 52, XENPF_getidletime = 53,
        XENPF_set_processor_pminfo = 54, XENPF_get_cpuinfo = 55, XENPF_cpu_online = 56, XENPF_cpu_offline = 57,
        XENPF_cpu_hotadd = 58, XENPF_mem_hotadd = 59, XENPF_core_parking = 60, XENPF_resource_op = 61,
        XENPF_settime64 = 62, XENPF_get_symbol = 63;

    // struct xen_platform_op { uint32_t cmd; uint32_t interface_version; union { ... } u; } (128-byte union)
    public const int op_cmd = 0, op_interface_version = 4, op_u = 8, op_size = 8 + 128;

    // struct xenpf_settime32 { uint32_t secs, nsecs; uint64_t system_time; }
    public const int settime32_secs = op_u, settime32_nsecs = op_u + 4, settime32_system_time = op_u + 8;
    // struct xenpf_settime64 { uint64_t secs; uint32_t nsecs, mbz; uint64_t system_time; }
    public const int settime64_secs = op_u, settime64_nsecs = op_u + 8, settime64_mbz = op_u + 12, settime64_system_time = op_u + 16;

    // struct xenpf_firmware_info { uint32_t type, index; union { ... kbd_shift_flags ... } u; }
    public const int firmware_info_type = op_u, firmware_info_index = op_u + 4, firmware_info_u = op_u + 8;
    public const uint XEN_FW_DISK_INFO = 1, XEN_FW_DISK_MBR_SIGNATURE = 2, XEN_FW_VBEDDC_INFO = 3, XEN_FW_EFI_INFO = 4,
        XEN_FW_KBD_SHIFT_FLAGS = 5;

    // struct xenpf_pcpuinfo { uint32_t xen_cpuid, max_present, flags, apic_id, acpi_id; }
    public const int pcpuinfo_xen_cpuid = op_u, pcpuinfo_max_present = op_u + 4, pcpuinfo_flags = op_u + 8,
        pcpuinfo_apic_id = op_u + 12, pcpuinfo_acpi_id = op_u + 16;
    public const uint XEN_PCPU_FLAGS_ONLINE = 1, XEN_PCPU_FLAGS_INVALID = 2;
}
