namespace Microhv.Hypervisor.Public;

/// <summary>
/// xen/include/public/sysctl.h at XEN_SYSCTL_INTERFACE_VERSION 0x15 (Xen 4.17): struct xen_sysctl and
/// the operations `xl info`, `xl list` and the toolstack's daemons issue. Offsets are from the start
/// of struct xen_sysctl (checked against Debian's libxen-dev 4.17 headers with offsetof).
/// </summary>
public static class Sysctl
{
    public const uint XEN_SYSCTL_INTERFACE_VERSION = 0x15;

    public const uint XEN_SYSCTL_readconsole = 1, XEN_SYSCTL_tbuf_op = 2, XEN_SYSCTL_physinfo = 3, XEN_SYSCTL_sched_id = 4,
        XEN_SYSCTL_perfc_op = 5, XEN_SYSCTL_getdomaininfolist = 6, XEN_SYSCTL_debug_keys = 7, XEN_SYSCTL_getcpuinfo = 8,
        XEN_SYSCTL_availheap = 9, XEN_SYSCTL_get_pmstat = 10, XEN_SYSCTL_cpu_hotplug = 11, XEN_SYSCTL_pm_op = 12,
        XEN_SYSCTL_page_offline_op = 14, XEN_SYSCTL_lockprof_op = 15, XEN_SYSCTL_cputopoinfo = 16, XEN_SYSCTL_numainfo = 17,
        XEN_SYSCTL_cpupool_op = 18, XEN_SYSCTL_scheduler_op = 19, XEN_SYSCTL_coverage_op = 20, XEN_SYSCTL_psr_cmt_op = 21,
        XEN_SYSCTL_pcitopoinfo = 22, XEN_SYSCTL_psr_alloc = 23, XEN_SYSCTL_get_cpu_levelling_caps = 25,
        XEN_SYSCTL_get_cpu_featureset = 26, XEN_SYSCTL_livepatch_op = 27, XEN_SYSCTL_get_cpu_policy = 29;

    // struct xen_sysctl { uint32_t cmd; uint32_t interface_version; union { ... uint8_t pad[128]; } u; }
    public const int cmd = 0, interface_version = 4, u = 8, size = 136;

    // struct xen_sysctl_physinfo (112 bytes)
    public const int physinfo_threads_per_core = u + 0, physinfo_cores_per_socket = u + 4, physinfo_nr_cpus = u + 8,
        physinfo_max_cpu_id = u + 12, physinfo_nr_nodes = u + 16, physinfo_max_node_id = u + 20, physinfo_cpu_khz = u + 24,
        physinfo_capabilities = u + 28, physinfo_arch_capabilities = u + 32, physinfo_pad = u + 36,
        physinfo_total_pages = u + 40, physinfo_free_pages = u + 48, physinfo_scrub_pages = u + 56,
        physinfo_outstanding_pages = u + 64, physinfo_max_mfn = u + 72, physinfo_hw_cap = u + 80, physinfo_size = 112;
    public const int physinfo_hw_cap_words = 8;
    public const uint XEN_SYSCTL_PHYSCAP_hvm = 1u << 0, XEN_SYSCTL_PHYSCAP_pv = 1u << 1, XEN_SYSCTL_PHYSCAP_directio = 1u << 2,
        XEN_SYSCTL_PHYSCAP_gnttab_v1 = 1u << 8, XEN_SYSCTL_PHYSCAP_gnttab_v2 = 1u << 9;

    // struct xen_sysctl_sched_id { uint32_t sched_id; }
    public const int sched_id_sched_id = u;

    // struct xen_sysctl_getdomaininfolist { domid_t first_domain; uint32_t max_domains;
    //   XEN_GUEST_HANDLE_64(xen_domctl_getdomaininfo_t) buffer; uint32_t num_domains; }
    public const int getdomaininfolist_first_domain = u + 0, getdomaininfolist_max_domains = u + 4,
        getdomaininfolist_buffer = u + 8, getdomaininfolist_num_domains = u + 16;

    // struct xen_sysctl_cpupool_op { uint32_t op, cpupool_id, sched_id, domid, cpu, n_dom; struct xenctl_bitmap cpumap; }
    // struct xenctl_bitmap { XEN_GUEST_HANDLE_64(uint8) bitmap; uint32_t nr_bits; }
    public const int cpupool_op_op = u + 0, cpupool_op_cpupool_id = u + 4, cpupool_op_sched_id = u + 8,
        cpupool_op_domid = u + 12, cpupool_op_cpu = u + 16, cpupool_op_n_dom = u + 20,
        cpupool_op_cpumap_bitmap = u + 24, cpupool_op_cpumap_nr_bits = u + 32;
    public const uint XEN_SYSCTL_CPUPOOL_OP_CREATE = 1, XEN_SYSCTL_CPUPOOL_OP_DESTROY = 2, XEN_SYSCTL_CPUPOOL_OP_INFO = 3,
        XEN_SYSCTL_CPUPOOL_OP_ADDCPU = 4, XEN_SYSCTL_CPUPOOL_OP_RMCPU = 5, XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN = 6,
        XEN_SYSCTL_CPUPOOL_OP_FREEINFO = 7;
    public const uint XEN_SYSCTL_CPUPOOL_PAR_ANY = 0xFFFFFFFF;

    // struct xen_sysctl_cpu_featureset { u32 index; u32 nr_features; XEN_GUEST_HANDLE_64(uint32) features; }
    public const int featureset_index = u + 0, featureset_nr_features = u + 4, featureset_features = u + 8;
    // struct xen_sysctl_cpu_policy { u32 index, nr_leaves, nr_msrs, _rsvd; handle leaves; handle msrs; }
    public const int cpu_policy_index = u + 0, cpu_policy_nr_leaves = u + 4, cpu_policy_nr_msrs = u + 8, cpu_policy_rsvd = u + 12,
        cpu_policy_leaves = u + 16, cpu_policy_msrs = u + 24;
    public const uint XEN_SYSCTL_cpu_policy_raw = 0, XEN_SYSCTL_cpu_policy_host = 1, XEN_SYSCTL_cpu_policy_pv_max = 2,
        XEN_SYSCTL_cpu_policy_hvm_max = 3, XEN_SYSCTL_cpu_policy_pv_default = 4, XEN_SYSCTL_cpu_policy_hvm_default = 5;

    // struct xen_sysctl_numainfo { u32 num_nodes; handle meminfo (xen_sysctl_meminfo_t {u64 memsize, memfree}); handle distance (u32) }
    public const int numainfo_num_nodes = u + 0, numainfo_meminfo = u + 8, numainfo_distance = u + 16, meminfo_size = 16;
    // struct xen_sysctl_cputopoinfo { u32 num_cpus; handle cputopo (xen_sysctl_cputopo_t {u32 core, socket, node}) }
    public const int cputopoinfo_num_cpus = u + 0, cputopoinfo_cputopo = u + 8, cputopo_size = 12;
    public const uint XEN_INVALID_CORE_ID = 0xFFFFFFFF, XEN_INVALID_SOCKET_ID = 0xFFFFFFFF, XEN_INVALID_NODE_ID = 0xFFFFFFFF;
}
