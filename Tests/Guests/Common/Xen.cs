namespace Microhv.Guests;

/// <summary>
/// Xen's public x86-64 PV ABI as a guest sees it (xen/include/public/*.h), written down on the
/// guest side on its own so the test guests check the hypervisor against the headers, not
/// against the hypervisor's own constants.
/// </summary>
public static class Xen
{
    // xen.h: hypercall numbers
    public const ulong set_trap_table = 0, mmu_update = 1, set_gdt = 2, stack_switch = 3, set_callbacks = 4;
    public const ulong memory_op = 12, multicall = 13, update_va_mapping = 14, set_timer_op = 15;
    public const ulong xen_version = 17, console_io = 18, grant_table_op = 20, vm_assist = 21, iret = 23;
    public const ulong vcpu_op = 24, set_segment_base = 25, mmuext_op = 26, sched_op = 29, callback_op = 30;
    public const ulong event_channel_op = 32, platform_op = 7, physdev_op = 33;

    // errno.h
    public const long EPERM = 1, ENOENT = 2, ESRCH = 3, EACCES = 13, EFAULT = 14, EBUSY = 16, ENOSPC = 28, ERANGE = 34, EILSEQ = 84, EEXIST = 17, EINVAL = 22, ENODEV = 19, ENOSYS = 38, EOPNOTSUPP = 95;

    public const ushort DOMID_SELF = 0x7FF0;
    public const ushort FLAT_KERNEL_CS = 0xE033;   // FLAT_RING3_CS64: a 64-bit PV kernel runs in ring 3
    public const ushort FLAT_KERNEL_SS = 0xE02B;   // FLAT_RING3_SS64

    // start_info (xen.h), byte offsets
    public const int SI_magic = 0, SI_nr_pages = 32, SI_shared_info = 40, SI_flags = 48;
    public const int SI_store_mfn = 56, SI_store_evtchn = 64, SI_console_mfn = 72, SI_console_evtchn = 80;
    public const int SI_pt_base = 88, SI_nr_pt_frames = 96, SI_mfn_list = 104, SI_mod_start = 112, SI_mod_len = 120;
    public const int SI_cmd_line = 128;
    public const uint SIF_PRIVILEGED = 1, SIF_INITDOMAIN = 2;

    // shared_info / vcpu_info (xen.h, arch-x86/xen.h), byte offsets
    public const int VI_upcall_pending = 0, VI_upcall_mask = 1, VI_pending_sel = 8, VI_cr2 = 16, VI_time = 32;
    public const int TI_version = 0, TI_tsc_timestamp = 8, TI_system_time = 16, TI_mul = 24, TI_shift = 28;
    public const int SH_evtchn_pending = 2048, SH_evtchn_mask = 2560;

    // The read-only machine-to-phys table and the hypervisor's hole (arch-x86/xen-x86_64.h).
    public const ulong MACH2PHYS_VIRT_START = 0xFFFF800000000000;
    public const ulong HYPERVISOR_VIRT_START = 0xFFFF800000000000;
    public const ulong HYPERVISOR_VIRT_END = 0xFFFF880000000000;

    // Page table entry bits.
    public const ulong _PAGE_PRESENT = 1, _PAGE_RW = 2, _PAGE_USER = 4, _PAGE_ACCESSED = 0x20, _PAGE_DIRTY = 0x40;
    public const ulong _PAGE_PSE = 0x80;
    public const ulong PTE_MFN_MASK = 0x000FFFFFFFFFF000;

    // mmu_update commands (ptr & 3), mmuext_op commands, update_va_mapping flags.
    public const ulong MMU_NORMAL_PT_UPDATE = 0, MMU_MACHPHYS_UPDATE = 1;
    public const uint MMUEXT_PIN_L1_TABLE = 0, MMUEXT_PIN_L2_TABLE = 1, MMUEXT_PIN_L3_TABLE = 2, MMUEXT_PIN_L4_TABLE = 3;
    public const uint MMUEXT_UNPIN_TABLE = 4, MMUEXT_NEW_BASEPTR = 5, MMUEXT_TLB_FLUSH_LOCAL = 6, MMUEXT_INVLPG_LOCAL = 7;
    public const uint MMUEXT_TLB_FLUSH_ALL = 10, MMUEXT_INVLPG_ALL = 11, MMUEXT_SET_LDT = 13, MMUEXT_NEW_USER_BASEPTR = 15;
    public const ulong UVMF_NONE = 0, UVMF_TLB_FLUSH = 1, UVMF_INVLPG = 2, UVMF_ALL = 4;

    // version.h
    public const ulong XENVER_version = 0, XENVER_extraversion = 1, XENVER_capabilities = 3;

    // console_io (xen.h)
    public const ulong CONSOLEIO_write = 0, CONSOLEIO_read = 1;

    // memory.h
    public const ulong XENMEM_memory_map = 10, XENMEM_machphys_mapping = 12, XENMEM_add_to_physmap = 7;
    public const uint XENMAPSPACE_grant_table = 1, XENMAPIDX_grant_table_status = 0x80000000;
    public const ulong XENMEM_increase_reservation = 0, XENMEM_decrease_reservation = 1, XENMEM_current_reservation = 3, XENMEM_populate_physmap = 6;
    public const uint E820_RAM = 1;

    // sched.h
    public const ulong SCHEDOP_yield = 0, SCHEDOP_block = 1, SCHEDOP_shutdown = 2, SCHEDOP_poll = 3;
    public const uint SHUTDOWN_poweroff = 0, SHUTDOWN_reboot = 1, SHUTDOWN_suspend = 2, SHUTDOWN_crash = 3;

    // event_channel.h
    public const ulong EVTCHNOP_bind_interdomain = 0, EVTCHNOP_bind_virq = 1, EVTCHNOP_close = 3, EVTCHNOP_send = 4;
    public const ulong EVTCHNOP_status = 5, EVTCHNOP_alloc_unbound = 6, EVTCHNOP_unmask = 9;
    public const ulong EVTCHNOP_bind_ipi = 7, EVTCHNOP_reset = 10;
    public const ulong EVTCHNOP_init_control = 11, EVTCHNOP_expand_array = 12, EVTCHNOP_set_priority = 13;
    public const uint VIRQ_TIMER = 0, VIRQ_CONSOLE = 2;

    // callback.h
    public const ulong CALLBACKOP_register = 0;
    public const ushort CALLBACKTYPE_event = 0, CALLBACKTYPE_failsafe = 1, CALLBACKTYPE_syscall = 2;

    // vm_assist (xen.h)
    public const ulong VMASST_CMD_enable = 0, VMASST_CMD_disable = 1, VMASST_TYPE_writable_pagetables = 2;

    // vcpu.h
    public const ulong VCPUOP_set_singleshot_timer = 8, VCPUOP_stop_singleshot_timer = 9;

    // grant_table.h
    public const ulong GNTTABOP_map_grant_ref = 0, GNTTABOP_unmap_grant_ref = 1, GNTTABOP_setup_table = 2, GNTTABOP_transfer = 4,
        GNTTABOP_copy = 5, GNTTABOP_query_size = 6, GNTTABOP_unmap_and_replace = 7, GNTTABOP_set_version = 8,
        GNTTABOP_get_status_frames = 9, GNTTABOP_get_version = 10, GNTTABOP_swap_grant_ref = 11,
        GNTTABOP_cache_flush = 12;
    public const ushort GTF_permit_access = 1, GTF_accept_transfer = 2, GTF_transitive = 3, GTF_transfer_committed = 1 << 2,
        GTF_transfer_completed = 1 << 3, GTF_readonly = 1 << 2, GTF_reading = 1 << 3,
        GTF_writing = 1 << 4, GTF_sub_page = 1 << 8;
    public const uint GNTMAP_device_map = 1, GNTMAP_host_map = 2, GNTMAP_readonly = 4, GNTMAP_application_map = 8,
        GNTMAP_contains_pte = 16;
    public const ushort GNTCOPY_source_gref = 1, GNTCOPY_dest_gref = 2;
    public const short GNTST_okay = 0, GNTST_general_error = -1, GNTST_bad_domain = -2, GNTST_bad_gntref = -3,
        GNTST_bad_handle = -4, GNTST_bad_virt_addr = -5, GNTST_bad_dev_addr = -6, GNTST_permission_denied = -8, GNTST_bad_page = -9,
        GNTST_bad_copy_arg = -10, GNTST_eagain = -12;

    // set_segment_base (xen-x86_64.h)
    public const ulong SEGBASE_FS = 0, SEGBASE_GS_USER = 1, SEGBASE_GS_KERNEL = 2, SEGBASE_GS_USER_SEL = 3;

    // MSRs
    public const uint MSR_FS_BASE = 0xC0000100, MSR_GS_BASE = 0xC0000101, MSR_SHADOW_GS_BASE = 0xC0000102;
}
