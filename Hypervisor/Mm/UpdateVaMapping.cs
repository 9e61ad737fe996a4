using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// update_va_mapping(va, val, flags): replaces the L1 entry that maps <c>va</c> in the vCPU's current
/// page tables, validated like an mmu_update of that entry, then flushes as flags ask (UVMF_TLB_FLUSH
/// or UVMF_INVLPG; the upper bits are UVMF_LOCAL, UVMF_ALL, or a pointer to a vCPU mask). The
/// flush happens even when the update fails, as in Xen. The _otherdomain form maps another
/// domain's frame and is only for a privileged domain.
/// </summary>
public static class UpdateVaMapping
{
    public static long Do(Vcpu v, ulong va, ulong pte, ulong flags) => Update(v, va, pte, flags, v.Domain);

    public static long OtherDomain(Vcpu v, ulong va, ulong pte, ulong flags, ulong domid)
    {
        Domain pgOwner = PgOwner.Get(v.Domain, domid, out long rc);
        if (pgOwner == null) return rc;
        return Update(v, va, pte, flags, pgOwner);
    }

    private static long Update(Vcpu v, ulong va, ulong pte, ulong flags, Domain pgOwner)
    {
        Machine m = v.Domain.Machine;
        long rc = -Errno.EINVAL;
        if (FindGuestL1e(v, va, out ulong l1Mfn, out int index))
            rc = PageTableValidator.ModEntry(m, v.Domain, pgOwner, l1Mfn, index, 1, pte, false);

        ulong target = flags & ~Xen.UVMF_FLUSHTYPE_MASK;
        ulong kind = flags & Xen.UVMF_FLUSHTYPE_MASK;
        if (kind != Xen.UVMF_TLB_FLUSH && kind != Xen.UVMF_INVLPG) return rc;
        // UVMF_LOCAL flushes this processor; UVMF_ALL and a vCPU mask (a pointer, which must be readable) also
        // the other processors running the domain's vCPUs it names (a whole-TLB flush there, by IPI).
        ulong vcpus = 0;
        if (target == Xen.UVMF_ALL) vcpus = ulong.MaxValue;
        else if (target != Xen.UVMF_LOCAL && !GuestMemory.ReadU64(v, target, out vcpus)) rc = -Errno.EFAULT;
        if (kind == Xen.UVMF_TLB_FLUSH) m.Host.FlushTlb();
        else if (PageTableEntry.IsCanonical(va)) m.Host.InvalidatePage(va);
        if (vcpus != 0) m.Tlb.FlushDomain(v.Domain, vcpus);
        return rc;
    }

    /// <summary>
    /// Xen's map_guest_l1e: the L1 table and slot that map <paramref name="va"/> in the vCPU's current
    /// tables. The walk must reach a present L2 entry without superpages, and the L1 must be a
    /// validated L1 of this domain; false otherwise (Xen returns -EINVAL). Only the three upper levels
    /// are read, as Xen reaches the L1 through the L2 entry: the L1 entry itself is ModEntry's to read.
    /// </summary>
    public static bool FindGuestL1e(Vcpu v, ulong va, out ulong l1Mfn, out int index)
    {
        l1Mfn = 0;
        index = 0;
        if (!MmuExtOp.AddressOk(va)) return false;
        ulong root = v.KernelMode || v.GuestTableUser == 0 ? v.GuestTable : v.GuestTableUser;
        if (root == 0) return false;
        Machine m = v.Domain.Machine;
        PhysicalMemory mem = m.Memory;
        ulong table = root & PageTableEntry.AddressMask;
        for (int level = 4; level >= 2; level--)
        {
            ulong slot = table + (ulong)PageTableEntry.IndexAt(va, level) * 8;
            if (!mem.Contains(slot, 8)) return false;
            ulong entry = mem.Read64(slot);
            if (!PageTableEntry.IsPresent(entry) || PageTableEntry.IsLargePage(entry)) return false;
            table = PageTableEntry.Address(entry);
        }
        if (!mem.Contains(table, Layout.PageSize)) return false;
        l1Mfn = table >> Layout.PageShift;
        index = PageTableEntry.IndexAt(va, 1);
        return v.Domain.OwnsFrame(l1Mfn) && PageTableValidator.IsLiveTable(m, l1Mfn, 1);
    }
}
