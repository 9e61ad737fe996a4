namespace Microhv.Hypervisor.Public;

/// <summary>xen/include/public/vcpu.h: VCPUOP_* commands and their argument structs as byte offsets.</summary>
public static class VcpuOps
{
    public const int VCPUOP_initialise = 0, VCPUOP_up = 1, VCPUOP_down = 2, VCPUOP_is_up = 3,
        VCPUOP_get_runstate_info = 4, VCPUOP_register_runstate_memory_area = 5, VCPUOP_set_periodic_timer = 6,
        VCPUOP_stop_periodic_timer = 7, VCPUOP_set_singleshot_timer = 8, VCPUOP_stop_singleshot_timer = 9,
        VCPUOP_register_vcpu_info = 10, VCPUOP_send_nmi = 11, VCPUOP_get_physid = 12,
        VCPUOP_register_vcpu_time_memory_area = 13;

    // struct vcpu_runstate_info { int state; uint64_t state_entry_time; uint64_t time[4]; }
    public const int runstate_state = 0, runstate_state_entry_time = 8, runstate_time = 16, runstate_size = 48;
    public const int RUNSTATE_running = 0, RUNSTATE_runnable = 1, RUNSTATE_blocked = 2, RUNSTATE_offline = 3;
    /// <summary>Set in state_entry_time while the hypervisor rewrites the area (VMASST_TYPE_runstate_update_flag).</summary>
    public const ulong XEN_RUNSTATE_UPDATE = 1UL << 63;

    // struct vcpu_register_runstate_memory_area { union { handle, pointer, uint64_t p } addr; }
    public const int runstate_area_addr = 0;
    // struct vcpu_set_periodic_timer { uint64_t period_ns; }
    public const int periodic_period_ns = 0;
    // struct vcpu_set_singleshot_timer { uint64_t timeout_abs_ns; uint32_t flags; }
    public const int singleshot_timeout_abs_ns = 0, singleshot_flags = 8;
    public const uint VCPU_SSHOTTMR_future = 1;
    // struct vcpu_register_vcpu_info { uint64_t mfn; uint32_t offset; uint32_t rsvd; }
    public const int register_vcpu_info_mfn = 0, register_vcpu_info_offset = 8, register_vcpu_info_rsvd = 12;
}
