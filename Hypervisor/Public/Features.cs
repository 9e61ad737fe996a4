namespace Microhv.Hypervisor.Public;

/// <summary>xen/include/public/features.h: XENFEAT_* bit numbers (XENVER_get_features submap 0, ELF FEATURES names).</summary>
public static class Features
{
    public const int XENFEAT_writable_page_tables = 0;
    public const int XENFEAT_writable_descriptor_tables = 1;
    public const int XENFEAT_auto_translated_physmap = 2;
    public const int XENFEAT_supervisor_mode_kernel = 3;
    public const int XENFEAT_pae_pgdir_above_4gb = 4;
    public const int XENFEAT_mmu_pt_update_preserve_ad = 5;
    public const int XENFEAT_highmem_assist = 6;
    public const int XENFEAT_gnttab_map_avail_bits = 7;
    public const int XENFEAT_hvm_callback_vector = 8;
    public const int XENFEAT_hvm_safe_pvclock = 9;
    public const int XENFEAT_hvm_pirqs = 10;
    public const int XENFEAT_dom0 = 11;
    public const int XENFEAT_memory_op_vnode_supported = 13;
    public const int XENFEAT_linux_rsdp_unrestricted = 15;
    public const int XENFEAT_NR_SUBMAPS = 1;
}
