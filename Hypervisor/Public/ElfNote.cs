namespace Microhv.Hypervisor.Public;

/// <summary>xen/include/public/elfnote.h: the types of the notes named "Xen" a PV kernel carries.</summary>
public static class ElfNote
{
    public const uint XEN_ELFNOTE_INFO = 0;
    public const uint XEN_ELFNOTE_ENTRY = 1;               // virtual entry point
    public const uint XEN_ELFNOTE_HYPERCALL_PAGE = 2;      // virtual address of the page to fill with stubs
    public const uint XEN_ELFNOTE_VIRT_BASE = 3;           // virtual address the kernel's pseudo-physical 0 maps to
    public const uint XEN_ELFNOTE_PADDR_OFFSET = 4;        // subtracted from p_paddr to get the offset from VIRT_BASE
    public const uint XEN_ELFNOTE_XEN_VERSION = 5;         // string, "xen-3.0"
    public const uint XEN_ELFNOTE_GUEST_OS = 6;            // string
    public const uint XEN_ELFNOTE_GUEST_VERSION = 7;       // string
    public const uint XEN_ELFNOTE_LOADER = 8;              // string, "generic"
    public const uint XEN_ELFNOTE_PAE_MODE = 9;            // string: "yes", "no", "bimodal"
    public const uint XEN_ELFNOTE_FEATURES = 10;           // string: '|'-separated XENFEAT names, '!' = required
    public const uint XEN_ELFNOTE_BSD_SYMTAB = 11;         // string, "yes"
    public const uint XEN_ELFNOTE_HV_START_LOW = 12;       // lowest hypervisor address (32-bit guests)
    public const uint XEN_ELFNOTE_L1_MFN_VALID = 13;       // {mask, value} pairs
    public const uint XEN_ELFNOTE_SUSPEND_CANCEL = 14;
    public const uint XEN_ELFNOTE_INIT_P2M = 15;           // virtual address to map the initial p2m list at
    public const uint XEN_ELFNOTE_MOD_START_PFN = 16;      // non-zero: mod_start may be a PFN
    public const uint XEN_ELFNOTE_SUPPORTED_FEATURES = 17; // bitmap of XENFEAT_* (32-bit words)
    public const uint XEN_ELFNOTE_PHYS32_ENTRY = 18;       // PVH 32-bit entry
    public const uint XEN_ELFNOTE_MAX = XEN_ELFNOTE_PHYS32_ENTRY;

    /// <summary>The note name of every Xen note ("Xen\0").</summary>
    public const string Name = "Xen";
}
