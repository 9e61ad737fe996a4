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
        XEN_DOMCTL_get_cpu_policy = 82, XEN_DOMCTL_set_cpu_policy = 83;

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
