namespace Microhv.Hypervisor.Public;

/// <summary>xen/include/public/grant_table.h: grant_table_op sub-commands, flags, status codes, v1 layouts.</summary>
public static class Gnttab
{
    public const int GNTTABOP_map_grant_ref = 0;
    public const int GNTTABOP_unmap_grant_ref = 1;
    public const int GNTTABOP_setup_table = 2;
    public const int GNTTABOP_dump_table = 3;
    public const int GNTTABOP_transfer = 4;
    public const int GNTTABOP_copy = 5;
    public const int GNTTABOP_query_size = 6;
    public const int GNTTABOP_unmap_and_replace = 7;
    public const int GNTTABOP_set_version = 8;
    public const int GNTTABOP_get_status_frames = 9;
    public const int GNTTABOP_get_version = 10;
    public const int GNTTABOP_swap_grant_ref = 11;
    public const int GNTTABOP_cache_flush = 12;

    // struct grant_entry_v1 { uint16_t flags; domid_t domid; uint32_t frame; }
    public const int entry_v1_flags = 0, entry_v1_domid = 2, entry_v1_frame = 4, entry_v1_size = 8;
    // union grant_entry_v2 { grant_entry_header_t hdr; full_page { hdr; uint32_t pad0; uint64_t frame; };
    //   sub_page { hdr; uint16_t page_off, length; uint64_t frame; }; transitive { hdr; domid_t trans_domid;
    //   uint16_t pad0; grant_ref_t gref; }; uint32_t __spacer[4]; }
    public const int entry_v2_page_off = 4, entry_v2_length = 6, entry_v2_frame = 8,
        entry_v2_trans_domid = 4, entry_v2_trans_gref = 8, entry_v2_size = 16;

    // grant_entry flags (GTF_*).
    public const ushort GTF_invalid = 0, GTF_permit_access = 1, GTF_accept_transfer = 2, GTF_transitive = 3,
        GTF_type_mask = 3, GTF_readonly = 1 << 2, GTF_reading = 1 << 3, GTF_writing = 1 << 4,
        GTF_PWT = 1 << 5, GTF_PCD = 1 << 6, GTF_PAT = 1 << 7, GTF_sub_page = 1 << 8;

    // GTF_accept_transfer entries: Xen commits to a transfer, then completes it (the frame written first).
    public const ushort GTF_transfer_committed = 1 << 2, GTF_transfer_completed = 1 << 3;

    // struct gnttab_transfer { xen_pfn_t mfn; domid_t domid; grant_ref_t ref; int16_t status; }
    public const int transfer_mfn = 0, transfer_domid = 8, transfer_ref = 12, transfer_status = 16, transfer_size = 24;

    // map flags (GNTMAP_*).
    public const uint GNTMAP_device_map = 1, GNTMAP_host_map = 2, GNTMAP_readonly = 4,
        GNTMAP_application_map = 8, GNTMAP_contains_pte = 16;
    // Bits 7 and up of the map flags go to the PTE's available bits 9..11 (_GNTMAP_guest_avail0).
    public const int _GNTMAP_guest_avail0 = 7;

    // Status codes written into each operation's status field.
    public const short GNTST_okay = 0, GNTST_general_error = -1, GNTST_bad_domain = -2, GNTST_bad_gntref = -3,
        GNTST_bad_handle = -4, GNTST_bad_virt_addr = -5, GNTST_bad_dev_addr = -6, GNTST_no_device_space = -7,
        GNTST_permission_denied = -8, GNTST_bad_page = -9, GNTST_bad_copy_arg = -10, GNTST_address_too_big = -11,
        GNTST_eagain = -12, GNTST_no_space = -13;

    // struct gnttab_setup_table { domid_t dom; uint32_t nr_frames; int16_t status; XEN_GUEST_HANDLE(xen_pfn_t) frame_list; }
    public const int setup_table_dom = 0, setup_table_nr_frames = 4, setup_table_status = 8,
        setup_table_frame_list = 16, setup_table_size = 24;

    // struct gnttab_query_size { domid_t dom; uint32_t nr_frames; uint32_t max_nr_frames; int16_t status; }
    public const int query_size_dom = 0, query_size_nr_frames = 4, query_size_max_nr_frames = 8,
        query_size_status = 12, query_size_size = 16;

    // struct gnttab_map_grant_ref { uint64_t host_addr; uint32_t flags; grant_ref_t ref; domid_t dom;
    //                               int16_t status; grant_handle_t handle; uint64_t dev_bus_addr; }
    public const int map_host_addr = 0, map_flags = 8, map_ref = 12, map_dom = 16, map_status = 18,
        map_handle = 20, map_dev_bus_addr = 24, map_size = 32;

    // struct gnttab_unmap_grant_ref { uint64_t host_addr; uint64_t dev_bus_addr; grant_handle_t handle; int16_t status; }
    public const int unmap_host_addr = 0, unmap_dev_bus_addr = 8, unmap_handle = 16, unmap_status = 20, unmap_size = 24;

    // struct gnttab_unmap_and_replace { uint64_t host_addr; uint64_t new_addr; grant_handle_t handle; int16_t status; }
    public const int unmap_and_replace_host_addr = 0, unmap_and_replace_new_addr = 8, unmap_and_replace_handle = 16,
        unmap_and_replace_status = 20, unmap_and_replace_size = 24;

    // struct gnttab_copy { struct gnttab_copy_ptr { union { grant_ref_t ref; xen_pfn_t gmfn; } u; domid_t domid;
    //   uint16_t offset; } source, dest; uint16_t len; uint16_t flags; int16_t status; }
    public const int copy_source = 0, copy_dest = 16, copy_ptr_u = 0, copy_ptr_domid = 8, copy_ptr_offset = 10,
        copy_len = 32, copy_flags = 34, copy_status = 36, copy_size = 40;
    public const ushort GNTCOPY_source_gref = 1, GNTCOPY_dest_gref = 2;

    // struct gnttab_get_status_frames { uint32_t nr_frames; domid_t dom; int16_t status; XEN_GUEST_HANDLE(uint64_t) frame_list; }
    public const int get_status_frames_nr_frames = 0, get_status_frames_dom = 4, get_status_frames_status = 6,
        get_status_frames_frame_list = 8, get_status_frames_size = 16;

    // struct gnttab_swap_grant_ref { grant_ref_t ref_a; grant_ref_t ref_b; int16_t status; }
    public const int swap_grant_ref_ref_a = 0, swap_grant_ref_ref_b = 4, swap_grant_ref_status = 8, swap_grant_ref_size = 12;

    /// <summary>GNTTABOP_CMD_MASK: the bits above are an argument of cache_flush's continuation only.</summary>
    public const uint GNTTABOP_CMD_MASK = (1 << 12) - 1;

    // struct gnttab_set_version { uint32_t version; }
    public const int set_version_version = 0, set_version_size = 4;
    // struct gnttab_get_version { domid_t dom; uint16_t pad; uint32_t version; }
    public const int get_version_dom = 0, get_version_version = 4, get_version_size = 8;
}
