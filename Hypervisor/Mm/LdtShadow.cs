using Microhv.HAL;
using Microhv.Hypervisor.Traps;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// A vCPU's LDT as Xen 4.17 gives it to a PV guest (pv_map_ldt_shadow_page in pv/mm.c, pv_destroy_ldt in
/// pv/descriptor-tables.c, handle_ldt_mapping_fault in traps.c): MMUEXT_SET_LDT only records the table's
/// linear address and size; the CPU's first use of a descriptor page (a selector with TI=1 loaded, by the
/// guest or by the hypervisor's own reload of its segments) faults in the vCPU's part of the LdtArea, and
/// the guest frame its kernel page tables map there is then taken as a descriptor page (PGT_seg_desc_page:
/// every descriptor checked as for set_gdt, so the guest can no longer map it writable) and mapped. The
/// pages keep that reference until the LDT changes (SET_LDT, a new page-table base), the vCPU is reset or
/// its domain relinquished; as in Xen 4.17, the guest unmapping its own mapping of such a page does not end it
/// (put_page_from_l1e only drops that mapping's reference), so the page stays a descriptor page until then.
/// </summary>
public static class LdtShadow
{
    private const ulong PfUser = 4, PfReserved = 8;
    /// <summary>#GP error code bits: external event, IDT, table indicator (LDT).</summary>
    private const ulong XecExt = 1, XecIdt = 2, XecTi = 4;

    /// <summary>pv_map_ldt_shadow_page: maps the guest's LDT page holding byte <paramref name="offset"/> of
    /// <paramref name="v"/>'s LDT into its area. False when the offset is past the LDT, the kernel tables do
    /// not map that page, or the frame is not the domain's or cannot be a descriptor page.</summary>
    public static bool MapPage(Vcpu v, uint offset)
    {
        Machine m = v.Domain.Machine;
        LdtArea area = m.Ldt;
        if (area == null || !area.HasSlot(v.LdtSlot)) return false;
        if ((offset >> 3) >= v.LdtEntries) return false;
        ulong linear = v.LdtBase + offset;
        ulong l1e = GuestKernelL1e(v, linear);
        if (!PageTableEntry.IsPresent(l1e)) return false;
        ulong mfn = PageTableValidator.MfnOf(l1e);
        if (SetGdt.GetSegDescPage(m, v.Domain, mfn) != 0) return false;
        ulong at = area.EntryAddress(v.LdtSlot, (int)(offset >> Layout.PageShift));
        ulong old = m.Memory.Read64(at);
        m.Memory.Write64(at, area.EntryFor(mfn));
        if (PageTableEntry.IsPresent(old)) PageTypes.PutPageAndType(m, PageTableValidator.MfnOf(old));
        return true;
    }

    /// <summary>guest_get_eff_kern_l1e: the leaf entry the vCPU's kernel tables hold for <paramref name="linear"/>
    /// (empty when an upper level is not present, a large page, or the address is not a guest one).</summary>
    public static ulong GuestKernelL1e(Vcpu v, ulong linear)
    {
        if (v.GuestTable == 0 || !MmuExtOp.AddressOk(linear)) return 0;
        PhysicalMemory mem = v.Domain.Machine.Memory;
        if (PageTable.Walk(mem, v.GuestTable, linear, out ulong entryAddress, out int level) != PageWalkResult.Mapped || level != 1) return 0;
        return mem.Read64(entryAddress);
    }

    /// <summary>pv_destroy_ldt: unmaps every LDT page of <paramref name="v"/>'s area, dropping their references.
    /// True when one was mapped (the caller flushes the TLBs that may hold it).</summary>
    public static bool Destroy(Vcpu v)
    {
        Machine m = v.Domain.Machine;
        LdtArea area = m.Ldt;
        if (area == null || !area.HasSlot(v.LdtSlot)) return false;
        bool dropped = false;
        for (int page = 0; page < LdtArea.PagesPerVcpu; page++)
        {
            ulong at = area.EntryAddress(v.LdtSlot, page);
            ulong e = m.Memory.Read64(at);
            if (!PageTableEntry.IsPresent(e)) continue;
            m.Memory.Write64(at, 0);
            PageTypes.PutPageAndType(m, PageTableValidator.MfnOf(e));
            dropped = true;
        }
        return dropped;
    }

    /// <summary>The machine frame mapped at page <paramref name="page"/> of <paramref name="v"/>'s LDT, 0 when none.</summary>
    public static ulong MappedFrame(Vcpu v, int page)
    {
        LdtArea area = v.Domain.Machine.Ldt;
        if (area == null || !area.HasSlot(v.LdtSlot)) return 0;
        ulong e = v.Domain.Machine.Memory.Read64(area.EntryAddress(v.LdtSlot, page));
        return PageTableEntry.IsPresent(e) ? PageTableValidator.MfnOf(e) : 0;
    }

    /// <summary>
    /// A #PF at <paramref name="cr2"/> with error code <paramref name="err"/> while <paramref name="v"/> ran
    /// (handle_gdt_ldt_mapping_fault): false unless it is the CPU's own access to <paramref name="v"/>'s LDT
    /// area. Then the page is mapped and the faulting instruction runs again; or, when it cannot be, the guest
    /// gets the fault at its LDT's own address (#PF with that CR2), or #GP with the selector's offset and TI
    /// when that address is not canonical.
    /// </summary>
    public static bool OnPageFault(Vcpu v, ref TrapFrame regs, ulong cr2, ulong err)
    {
        LdtArea area = v.Domain.Machine.Ldt;
        if (area == null || !area.Contains(cr2) || (err & (PfUser | PfReserved)) != 0) return false;
        if (!area.HasSlot(v.LdtSlot)) return false;
        ulong offset = cr2 - area.VirtualAddressOf(v.LdtSlot);
        if (offset >= LdtArea.BytesPerVcpu) return false;           // another vCPU's part: no descriptor load of ours
        if (MapPage(v, (uint)offset)) return true;
        ulong linear = v.LdtBase + offset;
        if (!PageTableEntry.IsCanonical(linear))
            TrapBounce.Bounce(v, ref regs, TrapBounce.VectorGP, true, (offset & ~(XecExt | XecIdt)) | XecTi, 0);
        else
            TrapBounce.Bounce(v, ref regs, TrapBounce.VectorPF, true, err, linear);
        return true;
    }

    /// <summary>The hypervisor's own access faulted in the area (its reload of a vCPU's segments): true when
    /// <paramref name="v"/>'s page is now mapped and the access can be retried; else its fixup applies.</summary>
    public static bool OnHypervisorFault(Vcpu v, ulong cr2, ulong err)
    {
        LdtArea area = v?.Domain.Machine.Ldt;
        if (area == null || !area.HasSlot(v.LdtSlot) || (err & (PfUser | PfReserved)) != 0) return false;
        ulong offset = cr2 - area.VirtualAddressOf(v.LdtSlot);
        return offset < LdtArea.BytesPerVcpu && MapPage(v, (uint)offset);
    }

    /// <summary>Every vCPU of a domain being relinquished gives its LDT pages back (domain_relinquish_resources).</summary>
    public static void DestroyAll(Domain d)
    {
        for (int i = 0; i < Domain.VcpuCapacity; i++) Destroy(d.Vcpus[i]);
    }
}
