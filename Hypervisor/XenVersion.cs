using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// xen_version (xen/common/kernel.c do_xen_version). Microhv presents the interface of Xen 4.17,
/// the version its guests were tested against, so XENVER_version answers 4.17 and the feature map
/// is the one Xen 4.17 gives a 64-bit PV guest. The command line and build id are privileged, as
/// XSM's default policy has it: other domains read "&lt;denied&gt;" and get -EPERM respectively.
/// </summary>
public static class XenVersion
{
    public const int Major = 4, Minor = 17;
    public const string ExtraVersion = ".0-microhv";
    public const string Capabilities = "xen-3.0-x86_64 ";
    public const string Changeset = "microhv";
    public const string Compiler = "C# NativeAOT";
    public const string CompileBy = "microhv";
    public const string Denied = "<denied>";

    public static long Do(Vcpu v, ulong cmd, ulong arg)
    {
        bool privileged = v.Domain.IsInitialDomain;
        switch ((int)(uint)cmd)
        {
            case XenVer.XENVER_version: return (Major << 16) | Minor;
            case XenVer.XENVER_extraversion: return PutString(v, arg, ExtraVersion, XenVer.XEN_EXTRAVERSION_LEN);
            case XenVer.XENVER_compile_info: return CompileInfo(v, arg);
            case XenVer.XENVER_capabilities: return PutString(v, arg, Capabilities, XenVer.XEN_CAPABILITIES_INFO_LEN);
            case XenVer.XENVER_changeset: return PutString(v, arg, Changeset, XenVer.XEN_CHANGESET_INFO_LEN);
            case XenVer.XENVER_platform_parameters:
                return GuestMemory.WriteU64(v, arg, Xen.HYPERVISOR_VIRT_START) ? 0 : -Errno.EFAULT;
            case XenVer.XENVER_get_features: return GetFeatures(v, arg);
            case XenVer.XENVER_pagesize: return arg != 0 ? -Errno.EINVAL : (long)Layout.PageSize;
            case XenVer.XENVER_guest_handle: return PutString(v, arg, "", XenVer.XEN_DOMAIN_HANDLE_LEN);
            case XenVer.XENVER_commandline:
                // Microhv keeps no Xen command line: the initial domain reads an empty one.
                return privileged ? PutString(v, arg, "", XenVer.XEN_COMMANDLINE_LEN) : PutString(v, arg, Denied, Denied.Length + 1);
            case XenVer.XENVER_build_id: return BuildId(v, arg, privileged);
            default: return -Errno.ENOSYS;
        }
    }

    /// <summary>Submap 0 as Xen 4.17 fills it for a PV guest. Linux 5.9 and later refuses to boot PV
    /// without mmu_pt_update_preserve_ad and gnttab_map_avail_bits.</summary>
    public static uint FeatureSubmap0(Domain d)
    {
        uint map = (1u << Features.XENFEAT_mmu_pt_update_preserve_ad)
                 | (1u << Features.XENFEAT_highmem_assist)
                 | (1u << Features.XENFEAT_gnttab_map_avail_bits);
        if ((d.VmAssist & (1UL << Xen.VMASST_TYPE_pae_extended_cr3)) != 0) map |= 1u << Features.XENFEAT_pae_pgdir_above_4gb;
        if (d.IsInitialDomain) map |= 1u << Features.XENFEAT_dom0;
        return map;
    }

    private static long GetFeatures(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + XenVer.feature_info_submap_idx, out uint index)) return -Errno.EFAULT;
        if (index != 0) return -Errno.EINVAL;
        return GuestMemory.WriteU32(v, arg + XenVer.feature_info_submap, FeatureSubmap0(v.Domain)) ? 0 : -Errno.EFAULT;
    }

    private static long CompileInfo(Vcpu v, ulong arg)
    {
        if (PutString(v, arg + XenVer.compile_info_compiler, Compiler, 64) != 0) return -Errno.EFAULT;
        if (PutString(v, arg + XenVer.compile_info_compile_by, CompileBy, 16) != 0) return -Errno.EFAULT;
        if (PutString(v, arg + XenVer.compile_info_compile_domain, "", 32) != 0) return -Errno.EFAULT;
        if (PutString(v, arg + XenVer.compile_info_compile_date, "", 32) != 0) return -Errno.EFAULT;
        return 0;
    }

    /// <summary>Xen answers -ENODATA when it was built without a build id; so do we, after the same checks.</summary>
    private static long BuildId(Vcpu v, ulong arg, bool privileged)
    {
        if (!privileged) return -Errno.EPERM;
        if (arg != 0)
        {
            if (!GuestMemory.ReadU32(v, arg + XenVer.build_id_len, out uint len)) return -Errno.EFAULT;
            if (len == 0) return -Errno.EINVAL;
        }
        return -Errno.ENODATA;
    }

    /// <summary>Writes <paramref name="s"/> into a char[<paramref name="field"/>] at <paramref name="va"/>, zero-padded (always NUL-terminated).</summary>
    private static long PutString(Vcpu v, ulong va, string s, int field)
    {
        for (int i = 0; i < field; i++)
        {
            byte b = i < s.Length && i < field - 1 ? (byte)s[i] : (byte)0;
            if (!GuestMemory.WriteU8(v, va + (ulong)i, b)) return -Errno.EFAULT;
        }
        return 0;
    }
}
