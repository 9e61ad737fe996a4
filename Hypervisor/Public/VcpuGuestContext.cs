namespace Microhv.Hypervisor.Public;

/// <summary>
/// struct vcpu_guest_context for x86-64 (xen/include/public/arch-x86/xen.h, 5168 bytes), which domctl
/// setvcpucontext/getvcpucontext and VCPUOP_initialise carry; offsets checked against Debian's
/// libxen-dev 4.17 headers with offsetof. struct cpu_user_regs is at user_regs, in Xen's register order.
/// </summary>
public static class VcpuGuestContext
{
    public const int fpu_ctxt = 0, fpu_ctxt_size = 512, flags = 512, user_regs = 520, trap_ctxt = 720,
        ldt_base = 4816, ldt_ents = 4824, gdt_frames = 4832, gdt_frames_count = 16, gdt_ents = 4960,
        kernel_ss = 4968, kernel_sp = 4976, ctrlreg = 4984, debugreg = 5048, event_callback_eip = 5112,
        failsafe_callback_eip = 5120, syscall_callback_eip = 5128, vm_assist = 5136, fs_base = 5144,
        gs_base_kernel = 5152, gs_base_user = 5160, size = 5168;

    // struct cpu_user_regs (200 bytes), relative to user_regs.
    public const int r15 = 0, r14 = 8, r13 = 16, r12 = 24, rbp = 32, rbx = 40, r11 = 48, r10 = 56, r9 = 64, r8 = 72,
        rax = 80, rcx = 88, rdx = 96, rsi = 104, rdi = 112, error_code = 120, entry_vector = 124, rip = 128, cs = 136,
        saved_upcall_mask = 140, rflags = 144, rsp = 152, ss = 160, es = 168, ds = 176, fs = 184, gs = 192,
        user_regs_size = 200;

    // struct trap_info { uint8_t vector; uint8_t flags; uint16_t cs; unsigned long address; } (16 bytes).
    public const int trap_vector = 0, trap_flags = 1, trap_cs = 2, trap_address = 8, trap_info_size = 16, trap_count = 256;

    public const int ldt_max_entries = 8192;
}
