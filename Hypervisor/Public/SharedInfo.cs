namespace Microhv.Hypervisor.Public;

/// <summary>
/// xen/include/public/xen.h struct shared_info and struct vcpu_info for x86-64, as byte offsets:
/// the hypervisor reads and writes the guest-shared page through PhysicalMemory at these offsets.
/// </summary>
public static class SharedInfo
{
    public const int XEN_LEGACY_MAX_VCPUS = 32;
    public const int vcpu_info_size = 64;

    // struct vcpu_info (offsets inside one vcpu_info)
    public const int evtchn_upcall_pending = 0;   // uint8_t
    public const int evtchn_upcall_mask = 1;      // uint8_t
    public const int evtchn_pending_sel = 8;      // xen_ulong_t
    public const int arch_cr2 = 16;               // struct arch_vcpu_info { unsigned long cr2; unsigned long pad; }
    public const int time = 32;                   // struct vcpu_time_info (32 bytes)

    // struct vcpu_time_info (offsets inside it)
    public const int time_version = 0;            // uint32_t
    public const int time_tsc_timestamp = 8;      // uint64_t
    public const int time_system_time = 16;       // uint64_t
    public const int time_tsc_to_system_mul = 24; // uint32_t
    public const int time_tsc_shift = 28;         // int8_t
    public const int time_flags = 29;             // int8_t

    // struct shared_info
    public const int vcpu_info = 0;                                        // vcpu_info[32]
    public const int evtchn_pending = XEN_LEGACY_MAX_VCPUS * vcpu_info_size;  // 2048: xen_ulong_t[64]
    public const int evtchn_mask = evtchn_pending + 64 * 8;               // 2560: xen_ulong_t[64]
    public const int wc_version = evtchn_mask + 64 * 8;                   // 3072: uint32_t
    public const int wc_sec = wc_version + 4;                              // 3076
    public const int wc_nsec = wc_sec + 4;                                 // 3080
    public const int wc_sec_hi = wc_nsec + 4;                              // 3084
    public const int arch = wc_sec_hi + 4;                                 // 3088: struct arch_shared_info
    public const int arch_max_pfn = arch + 0;
    public const int arch_pfn_to_mfn_frame_list_list = arch + 8;
    public const int arch_nmi_reason = arch + 16;
    public const int arch_p2m_cr3 = arch + 24;
    public const int arch_p2m_vaddr = arch + 32;
    public const int arch_p2m_generation = arch + 40;

    /// <summary>Number of event channels the 2-level ABI addresses: 64 words of 64 bits.</summary>
    public const int NR_EVENT_CHANNELS = 64 * 64;
}
