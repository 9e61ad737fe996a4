using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>
/// HYPERVISOR_set_segment_base (Xen's do_set_segment_base): a ring-3 kernel cannot write the FS/GS
/// base MSRs, so it asks. The bases it names change (SegmentBases); the exit loads them when they are
/// the CPU's (FS, the kernel's GS), the others stay as the guest left them.
/// </summary>
public static class SetSegmentBase
{
    public static long Do(Vcpu v, ulong which, ulong baseAddress)
    {
        switch (which)
        {
            case ArchX86.SEGBASE_FS:
                if (!PageTableEntry.IsCanonical(baseAddress)) return -Errno.EINVAL;
                SegmentBases.SetFs(v, baseAddress);
                return 0;
            case ArchX86.SEGBASE_GS_USER:
                if (!PageTableEntry.IsCanonical(baseAddress)) return -Errno.EINVAL;
                SegmentBases.SetGsUser(v, baseAddress);
                return 0;
            case ArchX86.SEGBASE_GS_KERNEL:
                if (!PageTableEntry.IsCanonical(baseAddress)) return -Errno.EINVAL;
                SegmentBases.SetGsKernel(v, baseAddress);
                return 0;
            case ArchX86.SEGBASE_GS_USER_SEL:
            {
                // The selector is loaded into GS (RPL 3 unless null; refused: null) and the user GS base is what
                // that load gave, as Xen's SWAPGS, load and read_gs_base. Errors are not reported, as in Xen.
                ushort selector = (ushort)baseAddress;
                if (selector > 3) selector |= 3;
                ulong b = v.Domain.Machine.Host.LoadUserGs(v, selector);
                SegmentBases.SetGsUser(v, selector > 3 ? b : 0);
                return 0;
            }
        }
        return -Errno.EINVAL;
    }

    /// <summary>
    /// The base a load of <paramref name="selector"/> into the user GS would give, as hosted tests model the
    /// CPU (HypervisorHost.LoadUserGs): 0 for a null or unusable selector (Xen loads the null selector when
    /// the load faults), else the 32-bit base of the guest GDT descriptor it names; LDT selectors read as null.
    /// </summary>
    public static ulong SelectorBase(Vcpu v, ushort selector)
    {
        if ((selector & 0xFFFC) == 0 || (selector & 4) != 0) return 0;
        int index = selector >> 3;
        if (index >= v.GdtEntries) return 0;
        ulong mfn = v.GdtFrames[index / SetGdt.EntriesPerFrame];
        ulong desc = v.Domain.Machine.Memory.Read64((mfn << Layout.PageShift) + (ulong)(index % SetGdt.EntriesPerFrame) * 8);
        const ulong present = 1UL << 47, codeOrData = 1UL << 44;
        if ((desc & present) == 0 || (desc & codeOrData) == 0) return 0;
        return ((desc >> 16) & 0xFFFFFF) | (((desc >> 56) & 0xFF) << 24);
    }
}
