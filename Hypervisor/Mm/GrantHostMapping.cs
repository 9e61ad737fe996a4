using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// The page-table half of a PV grant mapping (xen/arch/x86/pv/grant_table.c create_grant_pv_mapping,
/// replace_grant_pv_mapping). The caller (GrantTableOp) holds the references the mapping needs: a
/// general reference on the granted frame and, read-write, a writable type reference. Those are the
/// new PTE's references, exactly what put_page_from_l1e drops, so a grant PTE the guest overwrites
/// with mmu_update, or that goes when its L1 is freed, gives them back (Xen's release-build
/// behaviour); the handle then stays in the maptrack and its unmap fails because the PTE no longer
/// matches. No validation path accepts a foreign frame, so a grant PTE exists only where map_grant_ref
/// wrote it: an L1 holding one cannot be re-validated, and no alias of the granted frame can be made.
/// </summary>
public static class GrantHostMapping
{
    /// <summary>grant_to_pte_flags: the leaf Xen writes for a grant (never executable, never Global).</summary>
    public static ulong PteFlags(uint grantFlags)
    {
        ulong f = PageTableEntry.Present | PageTableEntry.Accessed | PageTableEntry.Dirty | PageTableEntry.NoExecute;
        if ((grantFlags & Gnttab.GNTMAP_application_map) != 0) f |= PageTableEntry.User;
        if ((grantFlags & Gnttab.GNTMAP_readonly) == 0) f |= PageTableEntry.Writable;
        f |= (ulong)((grantFlags >> Gnttab._GNTMAP_guest_avail0) & 7) << 9;
        return f;
    }

    /// <summary>
    /// The L1 slot <paramref name="addr"/> names for the current domain: with GNTMAP_contains_pte the
    /// machine address of the entry (8-byte aligned), otherwise a guest virtual address looked up in
    /// the current page tables. Either way the table must be a live L1 the domain owns.
    /// </summary>
    private static bool FindSlot(Vcpu v, ulong addr, uint flags, out ulong slot)
    {
        slot = 0;
        Domain d = v.Domain;
        Machine m = d.Machine;
        if ((flags & Gnttab.GNTMAP_contains_pte) != 0)
        {
            if ((addr & 7) != 0) return false;
            ulong l1 = addr >> Layout.PageShift;
            if (!m.FrameTable.IsValid(l1) || !d.OwnsFrame(l1) || !m.Memory.Contains(addr, 8)) return false;
            if (!PageTableValidator.IsLiveTable(m, l1, 1)) return false;
            slot = addr;
            return true;
        }
        if (!UpdateVaMapping.FindGuestL1e(v, addr, out ulong l1Mfn, out int index)) return false;
        slot = (l1Mfn << Layout.PageShift) + (ulong)index * 8;
        return true;
    }

    /// <summary>create_grant_host_mapping: writes the grant PTE for <paramref name="mfn"/> and drops
    /// the references of the entry it replaces. GNTST_okay or GNTST_general_error.</summary>
    public static short Create(Vcpu v, ulong addr, ulong mfn, uint flags)
    {
        if (!FindSlot(v, addr, flags, out ulong slot)) return Gnttab.GNTST_general_error;
        Machine m = v.Domain.Machine;
        ulong pte = PageTableValidator.AdjustEntry((mfn << Layout.PageShift) | PteFlags(flags), 1);
        ulong old = m.Memory.Read64(slot);
        m.Memory.Write64(slot, pte);
        PageTableValidator.PutPageFromEntry(m, old, 1, v.Domain.DomainId);
        return Gnttab.GNTST_okay;
    }

    /// <summary>
    /// replace_grant_host_mapping: the grant PTE at <paramref name="addr"/> must still map
    /// <paramref name="mfn"/> with the grant's Present and Writable bits; it is cleared, or with a
    /// <paramref name="newAddr"/> (unmap_and_replace; virtual addresses only) it takes over the PTE
    /// mapping newAddr, whose slot is cleared first (steal_linear_address), references and all. The
    /// grant's own references stay with the caller, which drops them. GNTST_okay or general_error;
    /// on failure a stolen PTE's references are dropped, as in Xen.
    /// </summary>
    public static short Replace(Vcpu v, ulong addr, ulong mfn, ulong newAddr, uint flags)
    {
        if (newAddr != 0 && (flags & Gnttab.GNTMAP_contains_pte) != 0) return Gnttab.GNTST_general_error;
        Machine m = v.Domain.Machine;
        ulong stolen = 0;
        if (newAddr != 0)
        {
            if (!FindSlot(v, newAddr, 0, out ulong newSlot)) return Gnttab.GNTST_general_error;
            stolen = m.Memory.Read64(newSlot);
            m.Memory.Write64(newSlot, 0);
            m.Host.InvalidatePage(newAddr);
        }
        short status = Gnttab.GNTST_general_error;
        if (FindSlot(v, addr, flags, out ulong slot))
        {
            ulong expected = PteFlags(flags) | PageTableEntry.User;
            ulong old = m.Memory.Read64(slot);
            const ulong mustMatch = PageTableEntry.Present | PageTableEntry.Writable;
            if (PageTableValidator.MfnOf(old) == mfn && ((old ^ expected) & mustMatch) == 0)
            {
                m.Memory.Write64(slot, stolen);
                status = Gnttab.GNTST_okay;
            }
        }
        if (status != Gnttab.GNTST_okay)
        {
            PageTableValidator.PutPageFromEntry(m, stolen, 1, v.Domain.DomainId);
            return status;
        }
        // With contains_pte the virtual address is unknown, so the whole TLB goes (Xen flushes it after every batch).
        if ((flags & Gnttab.GNTMAP_contains_pte) != 0) m.Host.FlushTlb();
        else m.Host.InvalidatePage(addr);
        // The domain's other processors too (Xen flushes its dirty CPUs after an unmap batch): once unmapped,
        // the granter may hand the frame to anyone.
        m.Tlb.FlushDomain(v.Domain, ulong.MaxValue);
        return Gnttab.GNTST_okay;
    }
}
