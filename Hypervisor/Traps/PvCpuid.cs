using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>
/// The CPUID a PV guest sees (a small form of Xen's PV cpuid policy, xen/arch/x86/cpuid.c): the
/// host's leaves with what a ring-3 kernel cannot use hidden (VMX, SVM, MONITOR, x2APIC and other
/// features Xen withholds from PV; leaf 7 reduced to Xen's default PV set), the hypervisor bit set,
/// and Xen's leaves at 0x40000000.
/// </summary>
public static class PvCpuid
{
    /// <summary>Xen 4.17: what leaf 0x40000001 reports and what the notes say guests see.</summary>
    public const uint XenMajor = 4, XenMinor = 17;
    public const uint MaxXenLeaf = ArchX86.XEN_CPUID_FIRST_LEAF + 2;

    // Leaf 1 ECX bits hidden from PV: DTES64, MONITOR, DS-CPL, VMX, SMX, EST, TM2, PDCM, x2APIC, TSC-deadline.
    private const uint Leaf1EcxHidden = (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 7) |
        (1u << 8) | (1u << 15) | (1u << 21) | (1u << 24);
    private const uint Leaf1EcxHypervisor = 1u << 31;
    // Leaf 1 EDX bits hidden: VME, DE, PSE, MCE, MTRR, PSE36, DS, ACPI, TM, PBE. APIC stays, as in Xen's PV
    // policy: Linux then routes its APIC operations through Xen's PV APIC and, as the hardware domain,
    // reads the MADT for the IO-APICs and interrupt overrides its pirq mappings need.
    private const uint Leaf1EdxHidden = (1u << 1) | (1u << 2) | (1u << 3) | (1u << 7) | (1u << 12) |
        (1u << 17) | (1u << 21) | (1u << 22) | (1u << 29) | (1u << 31);
    // Leaf 7 (structured extended features): only what Xen 4.17's default PV policy offers (the 'A' bits of
    // cpufeatureset.h), less the speculation-control MSR bits Microhv does not emulate. Above all SMEP,
    // SMAP, UMIP, INVPCID and PKU stay hidden: a ring-3 kernel that believed in them would run STAC/CLAC
    // (#UD at CPL 3) or set CR4 bits that have no effect.
    // EBX: FSGSBASE, BMI1, AVX2, BMI2, ERMS, RTM, AVX512F, AVX512DQ, RDSEED, ADX, AVX512_IFMA, CLFLUSHOPT,
    // CLWB, AVX512PF, AVX512ER, AVX512CD, SHA, AVX512BW, AVX512VL.
    public const uint Leaf7EbxOffered = (1u << 0) | (1u << 3) | (1u << 5) | (1u << 8) | (1u << 9) | (1u << 11) |
        (1u << 16) | (1u << 17) | (1u << 18) | (1u << 19) | (1u << 21) | (1u << 23) | (1u << 24) | (1u << 26) |
        (1u << 27) | (1u << 28) | (1u << 29) | (1u << 30) | (1u << 31);
    // ECX: PREFETCHWT1, AVX512_VBMI, AVX512_VBMI2, GFNI, VAES, VPCLMULQDQ, AVX512_VNNI, AVX512_BITALG,
    // AVX512_VPOPCNTDQ, RDPID, CLDEMOTE.
    public const uint Leaf7EcxOffered = (1u << 0) | (1u << 1) | (1u << 6) | (1u << 8) | (1u << 9) | (1u << 10) |
        (1u << 11) | (1u << 12) | (1u << 14) | (1u << 22) | (1u << 25);
    // EDX: AVX512_4VNNIW, AVX512_4FMAPS, FSRM, MD_CLEAR, SERIALIZE.
    public const uint Leaf7EdxOffered = (1u << 2) | (1u << 3) | (1u << 4) | (1u << 10) | (1u << 14);
    // Subleaf 1 EAX: AVX_VNNI, AVX512_BF16, FZRM, FSRS, FSRCS.
    public const uint Leaf7Sub1EaxOffered = (1u << 4) | (1u << 5) | (1u << 10) | (1u << 11) | (1u << 12);
    // Leaf 0x80000001 ECX: SVM, and the extended APIC space.
    private const uint Ext1EcxHidden = (1u << 2) | (1u << 3);

    public static void Query(Vcpu v, uint leaf, uint subleaf, out uint a, out uint b, out uint c, out uint d)
    {
        Default(v.Domain.Machine, leaf, subleaf, out a, out b, out c, out d);
        Toolstack.CpuPolicy.ApplyMask(v.Domain, leaf, subleaf, ref a, ref b, ref c, ref d);
    }

    /// <summary>Xen's PV default policy on this machine: what a domain sees before its toolstack narrows it.</summary>
    public static void Default(Machine m, uint leaf, uint subleaf, out uint a, out uint b, out uint c, out uint d)
    {
        if (leaf >= 0x40000000 && leaf < 0x50000000)
        {
            XenLeaf(leaf, out a, out b, out c, out d);
            return;
        }
        m.Host.CpuId(leaf, subleaf, out a, out b, out c, out d);
        switch (leaf)
        {
            case 1:
                c = (c & ~Leaf1EcxHidden) | Leaf1EcxHypervisor;
                d &= ~Leaf1EdxHidden;
                b &= 0x00FFFFFF;                 // initial APIC ID of vCPU 0
                break;
            case 5:                              // MONITOR/MWAIT: hidden with the MONITOR bit
            case 6:                              // thermal and power management
            case 0xA:                            // architectural performance monitoring
                a = b = c = d = 0;
                break;
            case 7:
                if (subleaf == 0)
                {
                    a = a < 1 ? a : 1;           // the subleaves described: 0 and 1
                    b &= Leaf7EbxOffered;
                    c &= Leaf7EcxOffered;
                    d &= Leaf7EdxOffered;
                }
                else if (subleaf == 1) { a &= Leaf7Sub1EaxOffered; b = c = d = 0; }
                else a = b = c = d = 0;
                break;
            case 0x80000001:
                c &= ~Ext1EcxHidden;
                break;
        }
    }

    private static void XenLeaf(uint leaf, out uint a, out uint b, out uint c, out uint d)
    {
        a = b = c = d = 0;
        switch (leaf)
        {
            case ArchX86.XEN_CPUID_FIRST_LEAF:
                a = MaxXenLeaf;
                b = ArchX86.XEN_CPUID_SIGNATURE_EBX;
                c = ArchX86.XEN_CPUID_SIGNATURE_ECX;
                d = ArchX86.XEN_CPUID_SIGNATURE_EDX;
                break;
            case ArchX86.XEN_CPUID_FIRST_LEAF + 1:
                a = (XenMajor << 16) | XenMinor;
                break;
            case ArchX86.XEN_CPUID_FIRST_LEAF + 2:
                a = 1;                           // hypercall transfer pages
                b = ArchX86.XEN_CPUID_FIRST_LEAF; // MSR base for the hypercall-page MSR
                break;
        }
    }
}
