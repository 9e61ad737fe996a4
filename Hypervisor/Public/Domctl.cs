namespace Microhv.Hypervisor.Public;

/// <summary>
/// xen/include/public/domctl.h at XEN_DOMCTL_INTERFACE_VERSION 0x15 (Xen 4.17): struct xen_domctl and
/// struct xen_domctl_getdomaininfo, which sysctl getdomaininfolist returns too. Offsets are from the
/// start of each struct (checked against Debian's libxen-dev 4.17 headers with offsetof).
/// </summary>
public static class Domctl
{
    public const uint XEN_DOMCTL_INTERFACE_VERSION = 0x15;

    public const uint XEN_DOMCTL_createdomain = 1, XEN_DOMCTL_destroydomain = 2, XEN_DOMCTL_pausedomain = 3,
        XEN_DOMCTL_unpausedomain = 4, XEN_DOMCTL_getdomaininfo = 5, XEN_DOMCTL_max_mem = 11, XEN_DOMCTL_setvcpucontext = 12,
        XEN_DOMCTL_getvcpucontext = 13, XEN_DOMCTL_max_vcpus = 15, XEN_DOMCTL_scheduler_op = 16,
        XEN_DOMCTL_set_address_size = 35, XEN_DOMCTL_get_address_size = 36, XEN_DOMCTL_settscinfo = 60,
        XEN_DOMCTL_get_cpu_policy = 82, XEN_DOMCTL_set_cpu_policy = 83,
        XEN_DOMCTL_setvcpuaffinity = 9, XEN_DOMCTL_getvcpuinfo = 14, XEN_DOMCTL_setdomainhandle = 17,
        XEN_DOMCTL_hypercall_init = 22, XEN_DOMCTL_settimeoffset = 24, XEN_DOMCTL_getvcpuaffinity = 25,
        XEN_DOMCTL_gettscinfo = 59, XEN_DOMCTL_setnodeaffinity = 68;

    // struct xen_domctl_createdomain (64 bytes, at u)
    public const int create_ssidref = u + 0, create_handle = u + 4, create_flags = u + 20, create_iommu_opts = u + 24,
        create_max_vcpus = u + 28, create_max_evtchn_port = u + 32, create_max_grant_frames = u + 36,
        create_max_maptrack_frames = u + 40, create_grant_opts = u + 44, create_vmtrace_size = u + 48,
        create_cpupool_id = u + 52, create_arch_emulation_flags = u + 56, create_arch_misc_flags = u + 60;
    public const uint XEN_DOMCTL_CDF_hvm = 1, XEN_DOMCTL_CDF_hap = 2, XEN_DOMCTL_CDF_s3_integrity = 4,
        XEN_DOMCTL_CDF_oos_off = 8, XEN_DOMCTL_CDF_xs_domain = 16, XEN_DOMCTL_CDF_iommu = 32,
        XEN_DOMCTL_CDF_nested_virt = 64, XEN_DOMCTL_CDF_vpmu = 128;
    public const uint XEN_DOMCTL_IOMMU_no_sharept = 1, XEN_DOMCTL_GRANT_version_mask = 0xF, XEN_X86_MSR_RELAXED = 1;

    // Single-field operations, at u.
    public const int max_vcpus_max = u, max_mem_max_memkb = u, address_size_size = u, hypercall_init_gmfn = u,
        settimeoffset_seconds = u, setdomainhandle_handle = u;

    // struct xen_domctl_vcpuaffinity { u32 vcpu; u32 flags; xenctl_bitmap cpumap_hard (16); cpumap_soft (16) }
    // struct xenctl_bitmap { XEN_GUEST_HANDLE_64(uint8) bitmap; u32 nr_bits; }
    public const int vcpuaffinity_vcpu = u + 0, vcpuaffinity_flags = u + 4, vcpuaffinity_hard = u + 8,
        vcpuaffinity_soft = u + 24, bitmap_bitmap = 0, bitmap_nr_bits = 8, nodeaffinity_nodemap = u;
    public const uint XEN_VCPUAFFINITY_HARD = 1, XEN_VCPUAFFINITY_SOFT = 2, XEN_VCPUAFFINITY_FORCE = 4;

    // struct xen_domctl_tsc_info { u32 tsc_mode; u32 gtsc_khz; u32 incarnation; u32 pad; u64 elapsed_nsec; }
    public const int tsc_mode = u + 0, tsc_gtsc_khz = u + 4, tsc_incarnation = u + 8, tsc_pad = u + 12, tsc_elapsed_nsec = u + 16;
    public const uint XEN_CPUID_TSC_MODE_DEFAULT = 0, XEN_CPUID_TSC_MODE_ALWAYS_EMULATE = 1,
        XEN_CPUID_TSC_MODE_NEVER_EMULATE = 2, XEN_CPUID_TSC_MODE_PVRDTSCP = 3;

    // struct xen_domctl_scheduler_op { u32 sched_id; u32 cmd; union { credit { u16 weight; u16 cap; } ... } u; }
    public const int sched_op_sched_id = u + 0, sched_op_cmd = u + 4, sched_op_credit_weight = u + 8, sched_op_credit_cap = u + 10;
    public const uint XEN_DOMCTL_SCHEDOP_putinfo = 0, XEN_DOMCTL_SCHEDOP_getinfo = 1,
        XEN_DOMCTL_SCHEDOP_putvcpuinfo = 2, XEN_DOMCTL_SCHEDOP_getvcpuinfo = 3;

    // struct xen_domctl_vcpucontext { u32 vcpu; XEN_GUEST_HANDLE_64(vcpu_guest_context_t) ctxt; }
    public const int vcpucontext_vcpu = u + 0, vcpucontext_ctxt = u + 8;

    // struct xen_domctl_getvcpuinfo { u32 vcpu; u8 online, blocked, running; u64 cpu_time; u32 cpu; }
    public const int getvcpuinfo_vcpu = u + 0, getvcpuinfo_online = u + 4, getvcpuinfo_blocked = u + 5,
        getvcpuinfo_running = u + 6, getvcpuinfo_cpu_time = u + 8, getvcpuinfo_cpu = u + 16;

    // struct xen_domctl_cpu_policy { u32 nr_leaves, nr_msrs; handle leaves, msrs; u32 err_leaf, err_subleaf, err_msr; }
    public const int cpu_policy_nr_leaves = u + 0, cpu_policy_nr_msrs = u + 4, cpu_policy_leaves = u + 8,
        cpu_policy_msrs = u + 16, cpu_policy_err_leaf = u + 24, cpu_policy_err_subleaf = u + 28, cpu_policy_err_msr = u + 32;
    // xen_cpuid_leaf_t { u32 leaf, subleaf, a, b, c, d; } (24 bytes); xen_msr_entry_t { u32 idx, flags; u64 val; } (16 bytes)
    public const int cpuid_leaf_size = 24, msr_entry_size = 16;
    public const uint XEN_CPUID_NO_SUBLEAF = 0xFFFFFFFF;

    // struct xen_domctl { uint32_t cmd; uint32_t interface_version; domid_t domain; uint16_t _pad[3]; union { ... } u; }
    public const int cmd = 0, interface_version = 4, domain = 8, u = 16, size = 144;

    // struct xen_domctl_getdomaininfo (112 bytes), at offset 0 of its own buffer (getdomaininfolist)
    // or at u (getdomaininfo).
    public const int info_domain = 0, info_pad1 = 2, info_flags = 4, info_tot_pages = 8, info_max_pages = 16,
        info_outstanding_pages = 24, info_shr_pages = 32, info_paged_pages = 40, info_shared_info_frame = 48,
        info_cpu_time = 56, info_nr_online_vcpus = 64, info_max_vcpu_id = 68, info_ssidref = 72, info_handle = 76,
        info_cpupool = 92, info_gpaddr_bits = 96, info_pad2 = 97, info_arch_config = 104, info_size = 112;
    public const int XEN_DOMAIN_HANDLE_LEN = 16;

    public const uint XEN_DOMINF_dying = 1u << 0, XEN_DOMINF_hvm_guest = 1u << 1, XEN_DOMINF_shutdown = 1u << 2,
        XEN_DOMINF_paused = 1u << 3, XEN_DOMINF_blocked = 1u << 4, XEN_DOMINF_running = 1u << 5,
        XEN_DOMINF_debugged = 1u << 6, XEN_DOMINF_xs_domain = 1u << 7, XEN_DOMINF_hap = 1u << 8;
    public const int XEN_DOMINF_shutdownshift = 16;
    public const uint XEN_DOMINF_shutdownmask = 255;
    public const uint XEN_INVALID_MAX_VCPU_ID = 0xFFFFFFFF;

    // Scheduler ids (XEN_SCHEDULER_*), shared with sysctl sched_id and cpupool_op.
    public const uint XEN_SCHEDULER_CREDIT = 5, XEN_SCHEDULER_CREDIT2 = 6;
}
