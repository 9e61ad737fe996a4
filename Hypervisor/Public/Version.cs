namespace Microhv.Hypervisor.Public;

/// <summary>xen/include/public/version.h: xen_version sub-commands and the sizes of what they return.</summary>
public static class XenVer
{
    public const int XENVER_version = 0;             // returns major << 16 | minor
    public const int XENVER_extraversion = 1;        // char[16]
    public const int XENVER_compile_info = 2;        // struct xen_compile_info
    public const int XENVER_capabilities = 3;        // char[1024]
    public const int XENVER_changeset = 4;           // char[64]
    public const int XENVER_platform_parameters = 5; // struct xen_platform_parameters { xen_ulong_t virt_start; }
    public const int XENVER_get_features = 6;        // struct xen_feature_info
    public const int XENVER_pagesize = 7;            // returns the page size; arg must be NULL
    public const int XENVER_guest_handle = 8;        // xen_domain_handle_t: uint8_t[16]
    public const int XENVER_commandline = 9;         // char[1024]
    public const int XENVER_build_id = 10;           // struct xen_build_id { uint32_t len; unsigned char buf[]; }

    public const int XEN_EXTRAVERSION_LEN = 16;
    public const int XEN_CAPABILITIES_INFO_LEN = 1024;
    public const int XEN_CHANGESET_INFO_LEN = 64;
    public const int XEN_COMMANDLINE_LEN = 1024;
    public const int XEN_DOMAIN_HANDLE_LEN = 16;

    // struct xen_compile_info: char compiler[64]; char compile_by[16]; char compile_domain[32]; char compile_date[32];
    public const int compile_info_compiler = 0, compile_info_compile_by = 64, compile_info_compile_domain = 80,
        compile_info_compile_date = 112, compile_info_size = 144;

    // struct xen_feature_info: unsigned int submap_idx; uint32_t submap;
    public const int feature_info_submap_idx = 0, feature_info_submap = 4;

    // struct xen_build_id: uint32_t len (in: buffer size, out: bytes written), then the bytes.
    public const int build_id_len = 0, build_id_buf = 4;
}
