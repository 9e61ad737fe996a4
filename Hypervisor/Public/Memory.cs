namespace Microhv.Hypervisor.Public;

/// <summary>xen/include/public/memory.h (and arch-x86 parts): memory_op sub-commands and struct layouts for x86-64.</summary>
public static class XenMem
{
    public const int XENMEM_increase_reservation = 0;
    public const int XENMEM_decrease_reservation = 1;
    public const int XENMEM_maximum_ram_page = 2;
    public const int XENMEM_current_reservation = 3;
    public const int XENMEM_maximum_reservation = 4;
    public const int XENMEM_machphys_mfn_list = 5;
    public const int XENMEM_populate_physmap = 6;
    public const int XENMEM_add_to_physmap = 7;
    public const int XENMEM_memory_map = 9;
    public const int XENMEM_machine_memory_map = 10;
    public const int XENMEM_exchange = 11;
    public const int XENMEM_machphys_mapping = 12;
    public const int XENMEM_set_memory_map = 13;
    public const int XENMEM_maximum_gpfn = 14;
    public const int XENMEM_add_to_physmap_batch = 23;
    // struct xen_add_to_physmap { domid_t domid; uint16_t size; unsigned int space; xen_ulong_t idx; xen_pfn_t gpfn; }
    public const int add_to_physmap_domid = 0, add_to_physmap_space = 4, add_to_physmap_size = 24;
    // struct xen_add_to_physmap_batch { domid_t domid; uint16_t space; uint16_t size; uint16_t u;
    //   XEN_GUEST_HANDLE idxs, gpfns, errs; }
    public const int add_to_physmap_batch_space = 2, add_to_physmap_batch_size = 32;
    public const uint XENMAPSPACE_shared_info = 0, XENMAPSPACE_grant_table = 1, XENMAPSPACE_gmfn = 2,
        XENMAPSPACE_gmfn_range = 3, XENMAPSPACE_gmfn_foreign = 4, XENMAPSPACE_dev_mmio = 5;
    /// <summary>XENMAPSPACE_grant_table's idx bit that names a status frame rather than a shared one.</summary>
    public const uint XENMAPIDX_grant_table_status = 0x80000000;
    public const int XENMEM_get_sharing_freed_pages = 18;
    public const int XENMEM_get_sharing_shared_pages = 19;
    public const int XENMEM_claim_pages = 24;
    public const int XENMEM_acquire_resource = 28;
    // struct xen_foreign_memory_map { domid_t domid; struct xen_memory_map map; } (set_memory_map)
    public const int foreign_memory_map_domid = 0, foreign_memory_map_map = 8;
    /// <summary>mem_flags: XENMEMF_populate_on_demand (HVM only) and the address-bits field (bits 0-7).</summary>
    public const uint XENMEMF_populate_on_demand = 1u << 16;
    public const int XENMEM_get_vnumainfo = 26;

    /// <summary>The low bits of cmd are the sub-command; the rest is a continuation's start extent.</summary>
    public const int MEMOP_EXTENT_SHIFT = 6;
    public const ulong MEMOP_CMD_MASK = (1UL << MEMOP_EXTENT_SHIFT) - 1;

    // struct xen_memory_reservation
    public const int reservation_extent_start = 0;   // XEN_GUEST_HANDLE(xen_pfn_t)
    public const int reservation_nr_extents = 8;     // xen_ulong_t
    public const int reservation_extent_order = 16;  // unsigned int
    public const int reservation_mem_flags = 20;     // unsigned int (address_bits)
    public const int reservation_domid = 24;         // domid_t
    public const int reservation_size = 32;
    // struct xen_memory_exchange { struct xen_memory_reservation in, out; xen_ulong_t nr_exchanged; }
    public const int exchange_in = 0, exchange_out = 32, exchange_nr_exchanged = 64;

    // struct xen_memory_map { unsigned int nr_entries; XEN_GUEST_HANDLE(void) buffer; }
    public const int memory_map_nr_entries = 0;
    public const int memory_map_buffer = 8;

    // struct e820entry (packed): uint64_t addr; uint64_t size; uint32_t type;
    public const int e820entry_addr = 0, e820entry_size = 8, e820entry_type = 16, e820entry_length = 20;
    public const uint E820_RAM = 1, E820_RESERVED = 2;

    // struct xen_machphys_mapping { xen_ulong_t v_start, v_end; xen_ulong_t max_mfn; }
    public const int machphys_mapping_v_start = 0, machphys_mapping_v_end = 8, machphys_mapping_max_mfn = 16;

    /// <summary>The M2P value of a frame that backs no guest frame.</summary>
    public const ulong INVALID_M2P_ENTRY = 0xFFFF_FFFF_FFFF_FFFF;
}
