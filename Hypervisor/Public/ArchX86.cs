namespace Microhv.Hypervisor.Public;

/// <summary>
/// xen/include/public/arch-x86/xen.h and xen-x86_64.h: trap_info, iret_context, the guest context
/// flags, set_segment_base selectors and the reserved GDT range of a 64-bit PV guest.
/// </summary>
public static class ArchX86
{
    // struct trap_info { uint8_t vector; uint8_t flags; uint16_t cs; unsigned long address; }
    public const int trap_info_vector = 0;
    public const int trap_info_flags = 1;
    public const int trap_info_cs = 2;
    public const int trap_info_address = 8;
    public const int trap_info_size = 16;
    /// <summary>trap_info.flags: bits 0-1 the DPL that may raise the vector with INT n, bit 2 masks events.</summary>
    public static int TI_GET_DPL(byte flags) => flags & 3;
    public static bool TI_GET_IF(byte flags) => (flags & 4) != 0;

    // struct iret_context (xen-x86_64.h): the frame the guest pushes before HYPERVISOR_iret.
    public const int iret_rax = 0;
    public const int iret_r11 = 8;
    public const int iret_rcx = 16;
    public const int iret_flags = 24;
    public const int iret_rip = 32;
    public const int iret_cs = 40;
    public const int iret_rflags = 48;
    public const int iret_rsp = 56;
    public const int iret_ss = 64;
    public const int iret_context_size = 72;

    /// <summary>iret_context.flags: the guest entered with SYSCALL; return as SYSRET would (RCX, R11 not restored).</summary>
    public const ulong VGCF_in_syscall = 1UL << 8;

    // vcpu_guest_context.flags (arch-x86/xen.h).
    public const ulong VGCF_i387_valid = 1UL << 0;
    public const ulong VGCF_in_kernel = 1UL << 2;
    public const ulong VGCF_failsafe_disables_events = 1UL << 3;
    public const ulong VGCF_syscall_disables_events = 1UL << 4;
    public const ulong VGCF_online = 1UL << 5;

    // set_segment_base (xen-x86_64.h).
    public const int SEGBASE_FS = 0;
    public const int SEGBASE_GS_USER = 1;
    public const int SEGBASE_GS_KERNEL = 2;
    public const int SEGBASE_GS_USER_SEL = 3;

    /// <summary>The guest's GDT ends where the hypervisor's reserved entries begin (arch-x86/xen.h).</summary>
    public const int FIRST_RESERVED_GDT_PAGE = 14;
    public const int FIRST_RESERVED_GDT_BYTE = FIRST_RESERVED_GDT_PAGE * 4096;
    public const int FIRST_RESERVED_GDT_ENTRY = FIRST_RESERVED_GDT_BYTE / 8;

    // xen_cpuid leaves (arch-x86/cpuid.h).
    public const uint XEN_CPUID_FIRST_LEAF = 0x40000000;
    /// <summary>"XenVMMXenVMM" in EBX, ECX, EDX of the first leaf.</summary>
    public const uint XEN_CPUID_SIGNATURE_EBX = 0x566E6558, XEN_CPUID_SIGNATURE_ECX = 0x65584D4D, XEN_CPUID_SIGNATURE_EDX = 0x4D4D566E;

    // Architectural RFLAGS bits the PV paths touch.
    public const ulong X86_EFLAGS_CF = 1UL << 0, X86_EFLAGS_TF = 1UL << 8, X86_EFLAGS_IF = 1UL << 9, X86_EFLAGS_DF = 1UL << 10,
        X86_EFLAGS_IOPL = 3UL << 12, X86_EFLAGS_NT = 1UL << 14, X86_EFLAGS_RF = 1UL << 16, X86_EFLAGS_VM = 1UL << 17,
        X86_EFLAGS_AC = 1UL << 18, X86_EFLAGS_MBS = 1UL << 1;
}
