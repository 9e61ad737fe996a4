namespace Microhv.Hypervisor.Public;

/// <summary>xen/include/public/xen.h struct start_info (x86-64), as byte offsets into the start_info page.</summary>
public static class StartInfo
{
    public const int magic = 0;                 // char[32]: "xen-3.0-x86_64"
    public const int nr_pages = 32;             // unsigned long
    public const int shared_info = 40;          // unsigned long: machine address of shared_info
    public const int flags = 48;                // uint32_t: SIF_*
    public const int store_mfn = 56;            // xen_pfn_t
    public const int store_evtchn = 64;         // uint32_t
    public const int console_domU_mfn = 72;     // xen_pfn_t   (union console.domU.mfn)
    public const int console_domU_evtchn = 80;  // uint32_t    (union console.domU.evtchn)
    public const int console_dom0_info_off = 72;  // uint32_t  (union console.dom0.info_off)
    public const int console_dom0_info_size = 76; // uint32_t
    public const int pt_base = 88;              // unsigned long: virtual address of the bootstrap L4
    public const int nr_pt_frames = 96;         // unsigned long
    public const int mfn_list = 104;            // unsigned long: virtual address of the p2m list
    public const int mod_start = 112;           // unsigned long: virtual address (or PFN with SIF_MOD_START_PFN)
    public const int mod_len = 120;             // unsigned long
    public const int cmd_line = 128;            // int8_t[MAX_GUEST_CMDLINE]
    public const int MAX_GUEST_CMDLINE = 1024;
    public const int first_p2m_pfn = 1152;      // unsigned long
    public const int nr_p2m_frames = 1160;      // unsigned long
    public const int size = 1168;

    public const string Magic = "xen-3.0-x86_64";
}
