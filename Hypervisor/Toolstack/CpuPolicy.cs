using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Toolstack;

/// <summary>
/// CPU policies as Xen 4.17's toolstack reads and writes them (xen/lib/x86/cpuid.c, msr.c;
/// xen/arch/x86/sysctl.c, domctl.c): a policy travels as a list of xen_cpuid_leaf_t in Xen's
/// serialisation order (basic leaves with the subleaves of 4, 7, 0xb and 0xd, the two hypervisor-range
/// limits, the extended leaves) plus xen_msr_entry_t for MSR_INTEL_PLATFORM_INFO and
/// MSR_ARCH_CAPABILITIES, and as a featureset of 18 words. Microhv's PV default (PvCpuid) is also its
/// PV maximum; a domain's policy is that default with the feature bits its toolstack cleared hidden
/// (Domain.CpuidMask). A policy asking for a feature the default does not have is -EINVAL, a leaf
/// outside Xen 4.17's policy -ERANGE, as update_domain_cpu_policy answers.
/// </summary>
public static class CpuPolicy
{
    // Xen 4.17's cpu_policy array sizes (xen/include/xen/lib/x86/cpu-policy.h).
    public const uint NrBasic = 0xD + 1, NrCache = 5 + 1, NrFeat = 2 + 1, NrTopo = 1 + 1, NrXstate = 62 + 1, NrExtd = 0x21 + 1;
    public const uint MaxSerialisedLeaves = NrBasic + NrFeat - 1 + NrCache - 1 + NrTopo - 1 + NrXstate - 1 + NrExtd + 2;
    public const uint MaxSerialisedMsrs = 2;
    public const uint MSR_INTEL_PLATFORM_INFO = 0xCE, MSR_ARCH_CAPABILITIES = 0x10A;
    /// <summary>FEATURESET_NR_ENTRIES: 16 CPUID words and the two halves of MSR_ARCH_CAPABILITIES.</summary>
    public const int FeaturesetWords = 18;
    /// <summary>The CPUID feature words a domain's mask covers (the featureset's first 16).</summary>
    public const int FeatureWords = 16;

    // Where each featureset word lives: leaf, subleaf, register (0 = a .. 3 = d).
    private static readonly uint[] WordLeaf = { 1, 1, 0x80000001, 0x80000001, 0xD, 7, 7, 0x80000007, 0x80000008, 7, 7, 0x80000021, 7, 7, 7, 7 };
    private static readonly uint[] WordSubleaf = { 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 2, 1, 1 };
    private static readonly byte[] WordReg = { 3, 2, 3, 2, 0, 1, 2, 3, 1, 3, 0, 0, 1, 3, 2, 3 };

    private const uint NoSubleaf = Public.Domctl.XEN_CPUID_NO_SUBLEAF;

    /// <summary>Hides what <paramref name="d"/>'s toolstack cleared from a CPUID answer.</summary>
    public static void ApplyMask(Domain d, uint leaf, uint subleaf, ref uint a, ref uint b, ref uint c, ref uint dx)
    {
        for (int w = 0; w < FeatureWords; w++)
        {
            uint mask = d.CpuidMask[w];
            if (mask == 0 || WordLeaf[w] != leaf || WordSubleaf[w] != subleaf && IsSubleafed(leaf)) continue;
            switch (WordReg[w]) { case 0: a &= ~mask; break; case 1: b &= ~mask; break; case 2: c &= ~mask; break; default: dx &= ~mask; break; }
        }
    }

    private static bool IsSubleafed(uint leaf) => leaf == 4 || leaf == 7 || leaf == 0xB || leaf == 0xD;

    /// <summary>One leaf of <paramref name="d"/>'s policy (null: the PV default).</summary>
    public static void Leaf(Machine m, Domain d, uint leaf, uint subleaf, out uint a, out uint b, out uint c, out uint dx)
    {
        Traps.PvCpuid.Default(m, leaf, IsSubleafed(leaf) ? subleaf : 0, out a, out b, out c, out dx);
        if (d != null) ApplyMask(d, leaf, subleaf, ref a, ref b, ref c, ref dx);
    }

    /// <summary>
    /// x86_cpuid_copy_to_buffer: writes the policy's leaves at <paramref name="buffer"/> (at most
    /// <paramref name="capacity"/>), returning how many in <paramref name="count"/>; -ENOBUFS when they
    /// do not fit, -EFAULT on a fault.
    /// </summary>
    public static long WriteLeaves(Vcpu caller, Machine m, Domain d, ulong buffer, uint capacity, out uint count)
    {
        count = 0;
        Leaf(m, d, 0, 0, out uint maxBasic, out _, out _, out _);
        for (uint leaf = 0; leaf <= maxBasic && leaf < NrBasic; leaf++)
        {
            long rc;
            switch (leaf)
            {
                case 4:
                    for (uint s = 0; s < NrCache; s++)
                    {
                        Leaf(m, d, leaf, s, out uint a, out _, out _, out _);
                        if ((rc = Put(caller, m, d, buffer, capacity, ref count, leaf, s)) != 0) return rc;
                        if ((a & 0x1F) == 0) break;
                    }
                    break;
                case 7:
                    Leaf(m, d, 7, 0, out uint maxSub, out _, out _, out _);
                    for (uint s = 0; s <= maxSub && s < NrFeat; s++)
                        if ((rc = Put(caller, m, d, buffer, capacity, ref count, leaf, s)) != 0) return rc;
                    break;
                case 0xB:
                    for (uint s = 0; s < NrTopo; s++)
                    {
                        Leaf(m, d, leaf, s, out _, out _, out uint c, out _);
                        if ((rc = Put(caller, m, d, buffer, capacity, ref count, leaf, s)) != 0) return rc;
                        if (((c >> 8) & 0xFF) == 0) break;
                    }
                    break;
                case 0xD:
                {
                    Leaf(m, d, 0xD, 0, out uint lo, out _, out _, out uint hi);
                    Leaf(m, d, 0xD, 1, out _, out _, out uint xssLo, out uint xssHi);
                    ulong xstates = ((ulong)hi << 32 | lo) | ((ulong)xssHi << 32 | xssLo);
                    if ((rc = Put(caller, m, d, buffer, capacity, ref count, leaf, 0)) != 0) return rc;
                    if ((rc = Put(caller, m, d, buffer, capacity, ref count, leaf, 1)) != 0) return rc;
                    uint s = 2;
                    for (xstates >>= 2; xstates != 0 && s < NrXstate; xstates >>= 1, s++)
                        if ((rc = Put(caller, m, d, buffer, capacity, ref count, leaf, s)) != 0) return rc;
                    break;
                }
                default:
                    if ((rc = Put(caller, m, d, buffer, capacity, ref count, leaf, NoSubleaf)) != 0) return rc;
                    break;
            }
        }
        // hv_limit and hv2_limit: Xen's policy keeps its own leaves out of the CPUID data (both 0).
        long r2 = PutRaw(caller, buffer, capacity, ref count, 0x40000000, NoSubleaf, 0, 0, 0, 0);
        if (r2 == 0) r2 = PutRaw(caller, buffer, capacity, ref count, 0x40000100, NoSubleaf, 0, 0, 0, 0);
        if (r2 != 0) return r2;
        Leaf(m, d, 0x80000000, 0, out uint maxExtd, out _, out _, out _);
        if ((maxExtd & 0xFFFF0000) != 0x80000000) maxExtd = 0x80000000;
        for (uint i = 0; i <= (maxExtd & 0xFFFF) && i < NrExtd; i++)
        {
            long rc = Put(caller, m, d, buffer, capacity, ref count, 0x80000000 + i, NoSubleaf);
            if (rc != 0) return rc;
        }
        return 0;
    }

    private static long Put(Vcpu caller, Machine m, Domain d, ulong buffer, uint capacity, ref uint count, uint leaf, uint subleaf)
    {
        Leaf(m, d, leaf, subleaf == NoSubleaf ? 0 : subleaf, out uint a, out uint b, out uint c, out uint dx);
        if (leaf == 0x80000000 && (a & 0xFFFF0000) == 0x80000000 && (a & 0xFFFF) >= NrExtd) a = 0x80000000 + NrExtd - 1;
        if (leaf == 0 && a >= NrBasic) a = NrBasic - 1;
        if (leaf == 7 && subleaf == 0 && a >= NrFeat) a = NrFeat - 1;
        return PutRaw(caller, buffer, capacity, ref count, leaf, subleaf, a, b, c, dx);
    }

    private static long PutRaw(Vcpu caller, ulong buffer, uint capacity, ref uint count, uint leaf, uint subleaf, uint a, uint b, uint c, uint d)
    {
        if (count >= capacity) return -Errno.ENOBUFS;
        ulong e = buffer + (ulong)count * Public.Domctl.cpuid_leaf_size;
        if (!GuestMemory.WriteU32(caller, e, leaf) || !GuestMemory.WriteU32(caller, e + 4, subleaf)
            || !GuestMemory.WriteU32(caller, e + 8, a) || !GuestMemory.WriteU32(caller, e + 12, b)
            || !GuestMemory.WriteU32(caller, e + 16, c) || !GuestMemory.WriteU32(caller, e + 20, d))
            return -Errno.EFAULT;
        count++;
        return 0;
    }

    /// <summary>x86_msr_copy_to_buffer: PLATFORM_INFO (no CPUID faulting offered) and ARCH_CAPABILITIES (none), both 0.</summary>
    public static long WriteMsrs(Vcpu caller, ulong buffer, uint capacity, out uint count)
    {
        count = 0;
        uint[] idx = { MSR_INTEL_PLATFORM_INFO, MSR_ARCH_CAPABILITIES };
        for (int i = 0; i < 2; i++)
        {
            if (count >= capacity) return -Errno.ENOBUFS;
            ulong e = buffer + (ulong)count * Public.Domctl.msr_entry_size;
            if (!GuestMemory.WriteU32(caller, e, idx[i]) || !GuestMemory.WriteU32(caller, e + 4, 0) || !GuestMemory.WriteU64(caller, e + 8, 0))
                return -Errno.EFAULT;
            count++;
        }
        return 0;
    }

    /// <summary>The featureset (cpuid_policy_to_featureset) of <paramref name="d"/>'s policy, word <paramref name="w"/>.</summary>
    public static uint FeatureWord(Machine m, Domain d, int w)
    {
        if (w >= FeatureWords) return 0;
        Leaf(m, d, WordLeaf[w], WordSubleaf[w], out uint a, out uint b, out uint c, out uint dx);
        // Leaves past the maxima read as 0 in a policy.
        Leaf(m, null, WordLeaf[w] & 0x80000000, 0, out uint max, out _, out _, out _);
        if (WordLeaf[w] > max) return 0;
        switch (WordReg[w]) { case 0: return a; case 1: return b; case 2: return c; default: return dx; }
    }

    /// <summary>
    /// update_domain_cpu_policy: reads the toolstack's leaves and MSRs, refuses a leaf Xen 4.17's policy has
    /// no room for (-ERANGE) and a feature the PV default lacks (-EINVAL), reporting the culprit in
    /// err_leaf/err_subleaf/err_msr; otherwise the feature bits it clears become the domain's mask.
    /// </summary>
    public static long Set(Vcpu caller, Domain d, ulong arg)
    {
        if (d == caller.Domain) return -Errno.EINVAL;
        if (d.CreationFinished) return -Errno.EEXIST;
        Machine m = d.Machine;
        if (!GuestMemory.ReadU32(caller, arg + Public.Domctl.cpu_policy_nr_leaves, out uint nrLeaves)
            || !GuestMemory.ReadU32(caller, arg + Public.Domctl.cpu_policy_nr_msrs, out uint nrMsrs)
            || !GuestMemory.ReadU64(caller, arg + Public.Domctl.cpu_policy_leaves, out ulong leaves)
            || !GuestMemory.ReadU64(caller, arg + Public.Domctl.cpu_policy_msrs, out ulong msrs))
            return -Errno.EFAULT;
        if (nrLeaves > MaxSerialisedLeaves) return Error(caller, arg, -Errno.E2BIG, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF);
        if (nrMsrs > MaxSerialisedMsrs) return Error(caller, arg, -Errno.E2BIG, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF);
        uint[] wanted = Scratch;
        for (int w = 0; w < FeatureWords; w++) wanted[w] = FeatureWord(m, null, w);
        for (uint i = 0; i < nrLeaves; i++)
        {
            ulong e = leaves + (ulong)i * Public.Domctl.cpuid_leaf_size;
            if (!GuestMemory.ReadU32(caller, e, out uint leaf) || !GuestMemory.ReadU32(caller, e + 4, out uint sub)
                || !GuestMemory.ReadU32(caller, e + 8, out uint a) || !GuestMemory.ReadU32(caller, e + 12, out uint b)
                || !GuestMemory.ReadU32(caller, e + 16, out uint c) || !GuestMemory.ReadU32(caller, e + 20, out uint dx))
                return -Errno.EFAULT;
            if (!InRange(leaf, sub)) return Error(caller, arg, -Errno.ERANGE, leaf, sub, 0xFFFFFFFF);
            for (int w = 0; w < FeatureWords; w++)
            {
                if (WordLeaf[w] != leaf || IsSubleafed(leaf) && WordSubleaf[w] != sub) continue;
                wanted[w] = WordReg[w] switch { 0 => a, 1 => b, 2 => c, _ => dx };
            }
        }
        for (uint i = 0; i < nrMsrs; i++)
        {
            ulong e = msrs + (ulong)i * Public.Domctl.msr_entry_size;
            if (!GuestMemory.ReadU32(caller, e, out uint idx) || !GuestMemory.ReadU32(caller, e + 4, out uint flags)
                || !GuestMemory.ReadU64(caller, e + 8, out ulong val))
                return -Errno.EFAULT;
            if (flags != 0) return Error(caller, arg, -Errno.EINVAL, 0xFFFFFFFF, 0xFFFFFFFF, idx);
            if (idx != MSR_INTEL_PLATFORM_INFO && idx != MSR_ARCH_CAPABILITIES) return Error(caller, arg, -Errno.ERANGE, 0xFFFFFFFF, 0xFFFFFFFF, idx);
            if (val != 0) return Error(caller, arg, -Errno.EINVAL, 0xFFFFFFFF, 0xFFFFFFFF, idx);
        }
        for (int w = 0; w < FeatureWords; w++)
        {
            uint have = FeatureWord(m, null, w);
            if ((wanted[w] & ~have) != 0) return Error(caller, arg, -Errno.EINVAL, WordLeaf[w], IsSubleafed(WordLeaf[w]) ? WordSubleaf[w] : NoSubleaf, 0xFFFFFFFF);
        }
        for (int w = 0; w < FeatureWords; w++) d.CpuidMask[w] = FeatureWord(m, null, w) & ~wanted[w];
        return 0;
    }

    /// <summary>Whether x86_cpuid_copy_from_buffer of Xen 4.17 has a place for this leaf.</summary>
    public static bool InRange(uint leaf, uint sub)
    {
        if (leaf < NrBasic)
        {
            switch (leaf)
            {
                case 4: return sub < NrCache;
                case 7: return sub < NrFeat;
                case 0xB: return sub < NrTopo;
                case 0xD: return sub < NrXstate;
                default: return sub == NoSubleaf;
            }
        }
        if (leaf == 0x40000000 || leaf == 0x40000100) return sub == NoSubleaf;
        return leaf >= 0x80000000 && leaf < 0x80000000 + NrExtd && sub == NoSubleaf;
    }

    private static long Error(Vcpu caller, ulong arg, long rc, uint leaf, uint sub, uint msr)
    {
        GuestMemory.WriteU32(caller, arg + Public.Domctl.cpu_policy_err_leaf, leaf);
        GuestMemory.WriteU32(caller, arg + Public.Domctl.cpu_policy_err_subleaf, sub);
        GuestMemory.WriteU32(caller, arg + Public.Domctl.cpu_policy_err_msr, msr);
        return rc;
    }

    /// <summary>domctl get_cpu_policy: the domain's leaves and MSRs; null buffers ask for the maximum counts.</summary>
    public static long GetDomain(Vcpu caller, Domain d, ulong arg)
        => Serialise(caller, d.Machine, d, arg + Public.Domctl.cpu_policy_nr_leaves, arg + Public.Domctl.cpu_policy_nr_msrs,
            arg + Public.Domctl.cpu_policy_leaves, arg + Public.Domctl.cpu_policy_msrs);

    /// <summary>
    /// Writes a policy (<paramref name="d"/>'s, or the PV default for null) into the caller's buffers, as domctl and
    /// sysctl get_cpu_policy both do from their own field addresses: a null buffer asks for the maximum count; the
    /// counts written go back.
    /// </summary>
    private static long Serialise(Vcpu caller, Machine m, Domain d, ulong nrLeavesAt, ulong nrMsrsAt, ulong leavesAt, ulong msrsAt)
    {
        if (!GuestMemory.ReadU32(caller, nrLeavesAt, out uint nrLeaves) || !GuestMemory.ReadU32(caller, nrMsrsAt, out uint nrMsrs)
            || !GuestMemory.ReadU64(caller, leavesAt, out ulong leaves) || !GuestMemory.ReadU64(caller, msrsAt, out ulong msrs))
            return -Errno.EFAULT;
        long rc;
        if (leaves == 0) nrLeaves = MaxSerialisedLeaves;
        else if ((rc = WriteLeaves(caller, m, d, leaves, nrLeaves, out nrLeaves)) != 0) return rc;
        if (msrs == 0) nrMsrs = MaxSerialisedMsrs;
        else if ((rc = WriteMsrs(caller, msrs, nrMsrs, out nrMsrs)) != 0) return rc;
        return GuestMemory.WriteU32(caller, nrLeavesAt, nrLeaves) && GuestMemory.WriteU32(caller, nrMsrsAt, nrMsrs) ? 0 : -Errno.EFAULT;
    }

    /// <summary>sysctl get_cpu_policy: raw/host/pv_max/pv_default are Microhv's PV policy (what it can give);
    /// HVM policies -EOPNOTSUPP; another index -EINVAL.</summary>
    public static long GetSystem(Vcpu caller, ulong arg)
    {
        if (!GuestMemory.ReadU32(caller, arg + Public.Sysctl.cpu_policy_index, out uint index)
            || !GuestMemory.ReadU32(caller, arg + Public.Sysctl.cpu_policy_rsvd, out uint rsvd)
            || !GuestMemory.ReadU64(caller, arg + Public.Sysctl.cpu_policy_msrs, out _))     // the whole struct, before any check (Xen copies it in)
            return -Errno.EFAULT;
        if (index > Public.Sysctl.XEN_SYSCTL_cpu_policy_hvm_default || rsvd != 0) return -Errno.EINVAL;
        if (index == Public.Sysctl.XEN_SYSCTL_cpu_policy_hvm_max || index == Public.Sysctl.XEN_SYSCTL_cpu_policy_hvm_default)
            return -Errno.EOPNOTSUPP;
        return Serialise(caller, caller.Domain.Machine, null, arg + Public.Sysctl.cpu_policy_nr_leaves, arg + Public.Sysctl.cpu_policy_nr_msrs,
            arg + Public.Sysctl.cpu_policy_leaves, arg + Public.Sysctl.cpu_policy_msrs);
    }

    /// <summary>sysctl get_cpu_featureset: a null buffer asks for the word count; otherwise as many words as
    /// both sides hold, and that number back.</summary>
    public static long GetFeatureset(Vcpu caller, ulong arg)
    {
        Machine m = caller.Domain.Machine;
        if (!GuestMemory.ReadU32(caller, arg + Public.Sysctl.featureset_index, out uint index)
            || !GuestMemory.ReadU32(caller, arg + Public.Sysctl.featureset_nr_features, out uint nr)
            || !GuestMemory.ReadU64(caller, arg + Public.Sysctl.featureset_features, out ulong features))
            return -Errno.EFAULT;
        if (features == 0)
            return GuestMemory.WriteU32(caller, arg + Public.Sysctl.featureset_nr_features, FeaturesetWords) ? 0 : -Errno.EFAULT;
        if (index > Public.Sysctl.XEN_SYSCTL_cpu_policy_hvm_default) return -Errno.EINVAL;
        if (index == Public.Sysctl.XEN_SYSCTL_cpu_policy_hvm_max || index == Public.Sysctl.XEN_SYSCTL_cpu_policy_hvm_default)
            return -Errno.EOPNOTSUPP;
        if (nr > FeaturesetWords) nr = FeaturesetWords;
        for (uint w = 0; w < nr; w++)
            if (!GuestMemory.WriteU32(caller, features + w * 4, FeatureWord(m, null, (int)w))) return -Errno.EFAULT;
        return GuestMemory.WriteU32(caller, arg + Public.Sysctl.featureset_nr_features, nr) ? 0 : -Errno.EFAULT;
    }

    /// <summary>Set's working copy (hypercalls allocate nothing; one CPU runs them).</summary>
    private static readonly uint[] Scratch = new uint[FeatureWords];
}
