namespace Microhv.Hypervisor.Public;

/// <summary>xen/include/public/xen.h: hypercall numbers and the x86-64 PV constants guests rely on.</summary>
public static class Xen
{
    public const int __HYPERVISOR_set_trap_table = 0;
    public const int __HYPERVISOR_mmu_update = 1;
    public const int __HYPERVISOR_set_gdt = 2;
    public const int __HYPERVISOR_stack_switch = 3;
    public const int __HYPERVISOR_set_callbacks = 4;
    public const int __HYPERVISOR_fpu_taskswitch = 5;
    public const int __HYPERVISOR_sched_op_compat = 6;
    public const int __HYPERVISOR_platform_op = 7;
    public const int __HYPERVISOR_set_debugreg = 8;
    public const int __HYPERVISOR_get_debugreg = 9;
    public const int __HYPERVISOR_update_descriptor = 10;
    public const int __HYPERVISOR_memory_op = 12;
    public const int __HYPERVISOR_multicall = 13;
    public const int __HYPERVISOR_update_va_mapping = 14;
    public const int __HYPERVISOR_set_timer_op = 15;
    public const int __HYPERVISOR_event_channel_op_compat = 16;
    public const int __HYPERVISOR_xen_version = 17;
    public const int __HYPERVISOR_console_io = 18;
    public const int __HYPERVISOR_physdev_op_compat = 19;
    public const int __HYPERVISOR_grant_table_op = 20;
    public const int __HYPERVISOR_vm_assist = 21;
    public const int __HYPERVISOR_update_va_mapping_otherdomain = 22;
    public const int __HYPERVISOR_iret = 23;
    public const int __HYPERVISOR_vcpu_op = 24;
    public const int __HYPERVISOR_set_segment_base = 25;
    public const int __HYPERVISOR_mmuext_op = 26;
    public const int __HYPERVISOR_xsm_op = 27;
    public const int __HYPERVISOR_nmi_op = 28;
    public const int __HYPERVISOR_sched_op = 29;
    public const int __HYPERVISOR_callback_op = 30;
    public const int __HYPERVISOR_xenoprof_op = 31;
    public const int __HYPERVISOR_event_channel_op = 32;
    public const int __HYPERVISOR_physdev_op = 33;
    public const int __HYPERVISOR_hvm_op = 34;
    public const int __HYPERVISOR_sysctl = 35;
    public const int __HYPERVISOR_domctl = 36;
    public const int __HYPERVISOR_kexec_op = 37;
    public const int __HYPERVISOR_tmem_op = 38;
    public const int __HYPERVISOR_argo_op = 39;
    public const int __HYPERVISOR_xenpmu_op = 40;
    public const int __HYPERVISOR_dm_op = 41;
    public const int __HYPERVISOR_hypfs_op = 42;
    /// <summary>One past the highest hypercall number Microhv knows (per-hypercall counters are sized by it).</summary>
    public const int NR_hypercalls = 64;

    // Segment selectors of the flat PV segments (arch-x86/xen-x86_64.h).
    public const ushort FLAT_RING3_CS32 = 0xE023;
    public const ushort FLAT_RING3_CS64 = 0xE033;
    public const ushort FLAT_RING3_DS32 = 0xE02B;
    public const ushort FLAT_RING3_SS64 = 0xE02B;
    public const ushort FLAT_KERNEL_CS64 = FLAT_RING3_CS64;
    public const ushort FLAT_KERNEL_SS64 = FLAT_RING3_SS64;

    // The hypervisor's reserved virtual range and the read-only M2P table (arch-x86/xen-x86_64.h).
    public const ulong HYPERVISOR_VIRT_START = 0xFFFF800000000000;
    public const ulong HYPERVISOR_VIRT_END = 0xFFFF880000000000;
    public const ulong MACH2PHYS_VIRT_START = 0xFFFF800000000000;
    public const ulong MACH2PHYS_VIRT_END = 0xFFFF804000000000;

    // Virtual interrupts (xen.h VIRQ_*).
    public const int VIRQ_TIMER = 0, VIRQ_DEBUG = 1, VIRQ_CONSOLE = 2, VIRQ_DOM_EXC = 3, VIRQ_DEBUGGER = 6;
    public const int NR_VIRQS = 24;

    // mmu_update commands (ptr & 3).
    public const int MMU_NORMAL_PT_UPDATE = 0, MMU_MACHPHYS_UPDATE = 1, MMU_PT_UPDATE_PRESERVE_AD = 2;

    // mmuext_op commands.
    public const int MMUEXT_PIN_L1_TABLE = 0, MMUEXT_PIN_L2_TABLE = 1, MMUEXT_PIN_L3_TABLE = 2, MMUEXT_PIN_L4_TABLE = 3,
        MMUEXT_UNPIN_TABLE = 4, MMUEXT_NEW_BASEPTR = 5, MMUEXT_TLB_FLUSH_LOCAL = 6, MMUEXT_INVLPG_LOCAL = 7,
        MMUEXT_TLB_FLUSH_MULTI = 8, MMUEXT_INVLPG_MULTI = 9, MMUEXT_TLB_FLUSH_ALL = 10, MMUEXT_INVLPG_ALL = 11,
        MMUEXT_FLUSH_CACHE = 12, MMUEXT_SET_LDT = 13, MMUEXT_NEW_USER_BASEPTR = 15, MMUEXT_CLEAR_PAGE = 16,
        MMUEXT_COPY_PAGE = 17, MMUEXT_FLUSH_CACHE_GLOBAL = 18, MMUEXT_MARK_SUPER = 19, MMUEXT_UNMARK_SUPER = 20;

    // update_va_mapping flags.
    public const ulong UVMF_NONE = 0, UVMF_TLB_FLUSH = 1, UVMF_INVLPG = 2, UVMF_FLUSHTYPE_MASK = 3,
        UVMF_MULTI = 0, UVMF_LOCAL = 0, UVMF_ALL = 4;

    // vm_assist types.
    public const int VMASST_CMD_enable = 0, VMASST_CMD_disable = 1;
    public const int VMASST_TYPE_4gb_segments = 0, VMASST_TYPE_4gb_segments_notify = 1, VMASST_TYPE_writable_pagetables = 2,
        VMASST_TYPE_pae_extended_cr3 = 3, VMASST_TYPE_architectural_iopl = 4, VMASST_TYPE_runstate_update_flag = 5,
        VMASST_TYPE_m2p_strict = 32;

    public const ushort DOMID_SELF = 0x7FF0, DOMID_IO = 0x7FF1, DOMID_XEN = 0x7FF2;
    /// <summary>Ids at and above this are never ordinary domains.</summary>
    public const ushort DOMID_FIRST_RESERVED = 0x7FF0;

    // console_io commands.
    public const int CONSOLEIO_write = 0, CONSOLEIO_read = 1;

    // start_info flags.
    public const uint SIF_PRIVILEGED = 1, SIF_INITDOMAIN = 2, SIF_MULTIBOOT_MOD = 4, SIF_MOD_START_PFN = 8, SIF_VIRT_P2M_4TOOLS = 16;
}
