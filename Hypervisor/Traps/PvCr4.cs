using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>
/// CR4 as a 64-bit PV kernel sees it (Xen's pv_fixup_guest_cr4 and pv_make_cr4, pv/domain.c): the
/// host's visible bits (PAE, OSFXSR, OSXMMEXCPT) plus the bits the guest controls, of which Microhv
/// offers CR4.FSGSBASE, when the PV CPUID policy shows FSGSBASE; other writes are dropped, as Xen
/// drops bits outside the policy. The CPU runs a vCPU with CR4.FSGSBASE only if that vCPU set it, so
/// {RD,WR}{FS,GS}BASE raise #UD in a guest that did not ask, as on Xen.
/// A vCPU with FSGSBASE writes its FS base and active GS base without trapping, as a selector load
/// changes them without it: Microhv reads them back before it uses its copies (SegmentBases).
/// </summary>
public static class PvCr4
{
    public const ulong CR4_FSGSBASE = 1UL << 16;
    /// <summary>CPUID.(EAX=7,ECX=0):EBX bit 0.</summary>
    public const uint Leaf7EbxFsgsbase = 1u << 0;

    /// <summary>Xen's ctrlreg[4] as a mov from CR4 reads it.</summary>
    public static ulong Read(Vcpu v) => EmulatePrivOp.GuestCr4 | v.Cr4;

    /// <summary>An emulated mov to CR4: keeps the guest-controlled bits the policy allows, drops the rest.</summary>
    public static void Write(Vcpu v, ulong value)
    {
        ulong bits = value & CR4_FSGSBASE;
        if (!PolicyHasFsgsbase(v)) bits = 0;
        if (bits == v.Cr4) return;
        v.Cr4 = bits;
        v.PendingExitWork |= ExitWork.Cr4;
    }

    public static bool WritesOwnBases(Vcpu v) => (v.Cr4 & CR4_FSGSBASE) != 0;

    private static bool PolicyHasFsgsbase(Vcpu v)
    {
        PvCpuid.Query(v, 7, 0, out uint _, out uint b, out uint _, out uint _);
        PvCpuid.Query(v, 0, 0, out uint maxLeaf, out uint _, out uint _, out uint _);
        return maxLeaf >= 7 && (b & Leaf7EbxFsgsbase) != 0;
    }
}
