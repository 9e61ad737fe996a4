using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// mmuext_op(ops, count, done, foreigndom): extended MMU operations, each a struct mmuext_op
/// {u32 cmd; u32 pad; union arg1 {mfn, linear_addr}; union arg2 {u32 nr_ents, vcpumask, src_mfn}}
/// of 24 bytes. Pinning holds a validated page-table type on a frame; NEW_BASEPTR /
/// NEW_USER_BASEPTR switch the vCPU's kernel and user L4s; the rest flush the TLB, set the LDT and
/// clear or copy pages. Stops at the first failure and adds the number done to *done (a u32), as
/// Xen does; a long batch is preempted with a continuation (Continuation.cs).
/// </summary>
public static class MmuExtOp
{
    public const int OpSize = 24;
    private const uint Preempted = 0x8000_0000;
    /// <summary>Largest LDT (entries), as Xen checks in MMUEXT_SET_LDT.</summary>
    public const ulong MaxLdtEntries = 8192;

    public static long Do(Vcpu v, ulong ops, ulong count, ulong doneOut, ulong foreignDom)
    {
        Domain d = v.Domain;
        uint n = (uint)count;
        uint done = 0;
        if ((n & Preempted) != 0)
        {
            n &= ~Preempted;
            if (doneOut != 0 && !GuestMemory.ReadU32(v, doneOut, out done)) done = 0;
        }
        Domain pgOwner = PgOwner.Get(d, foreignDom & 0xFFFF, out long rc);
        if (pgOwner == null) return rc;

        uint i = 0;
        GuestMemory.Cursor cursor = default;   // without the live translation: the op array walked once per page
        PhysicalMemory mem = d.Machine.Memory;
        for (; i < n; i++)
        {
            ulong at = ops + (ulong)i * OpSize;
            if (i != 0 && Continuation.PreemptCheck(v))
            {
                Continuation.Create(v, Xen.__HYPERVISOR_mmuext_op, at, (n - i) | Preempted, doneOut, foreignDom);
                rc = 0;
                break;
            }
            uint cmd;
            ulong arg1, arg2;
            // Through the CPU's own translation when it is the vCPU's (asked per op: NEW_BASEPTR changes it),
            // else with the software walk kept per page.
            LiveGuestMemory live = GuestMemory.LiveFor(v);
            if (live != null)
            {
                if (!GuestMemory.AccessOk(at, OpSize) || !live.ReadU32(at, out cmd) || !live.ReadU64(at + 8, out arg1)
                    || !live.ReadU64(at + 16, out arg2))
                {
                    rc = -Errno.EFAULT;
                    break;
                }
            }
            else if (cursor.Translate(v, at, OpSize, false, out ulong ma))
            {
                cmd = mem.Read32(ma);
                arg1 = mem.Read64(ma + 8);
                arg2 = mem.Read64(ma + 16);
            }
            else if (!cursor.ReadU32(v, at, out cmd) || !cursor.ReadU64(v, at + 8, out arg1)
                || !cursor.ReadU64(v, at + 16, out arg2))
            {
                rc = -Errno.EFAULT;
                break;
            }
            rc = One(v, pgOwner, cmd, arg1, arg2);
            if (rc != 0) break;
        }
        if (doneOut != 0) GuestMemory.WriteU32(v, doneOut, done + i);
        return rc;
    }

    /// <summary>One operation; 0 or -errno.</summary>
    public static long One(Vcpu v, Domain pgOwner, uint cmd, ulong arg1, ulong arg2)
    {
        Domain d = v.Domain;
        Machine m = d.Machine;
        bool foreign = pgOwner != d;
        switch (cmd)
        {
            case Xen.MMUEXT_PIN_L1_TABLE: return Pin(m, pgOwner, arg1, FrameType.L1PageTable);
            case Xen.MMUEXT_PIN_L2_TABLE: return Pin(m, pgOwner, arg1, FrameType.L2PageTable);
            case Xen.MMUEXT_PIN_L3_TABLE: return Pin(m, pgOwner, arg1, FrameType.L3PageTable);
            case Xen.MMUEXT_PIN_L4_TABLE: return Pin(m, pgOwner, arg1, FrameType.L4PageTable);
            case Xen.MMUEXT_UNPIN_TABLE: return Unpin(m, pgOwner, arg1);
            case Xen.MMUEXT_NEW_BASEPTR: return foreign ? -Errno.EPERM : NewBaseptr(v, arg1);
            case Xen.MMUEXT_NEW_USER_BASEPTR: return foreign ? -Errno.EPERM : NewUserBaseptr(v, arg1);

            case Xen.MMUEXT_TLB_FLUSH_LOCAL:
            case Xen.MMUEXT_TLB_FLUSH_ALL:
                if (foreign) return -Errno.EPERM;
                m.Host.FlushTlb();
                if (cmd == Xen.MMUEXT_TLB_FLUSH_ALL) m.Tlb.FlushDomain(d, ulong.MaxValue);
                return 0;
            case Xen.MMUEXT_INVLPG_LOCAL:
            case Xen.MMUEXT_INVLPG_ALL:
                if (foreign) return -Errno.EPERM;
                InvalidatePage(m, arg1);
                // Other processors flush their whole TLB: one IPI, and a vCPU switched in later reloads CR3 anyway.
                if (cmd == Xen.MMUEXT_INVLPG_ALL) m.Tlb.FlushDomain(d, ulong.MaxValue);
                return 0;
            case Xen.MMUEXT_TLB_FLUSH_MULTI:
            case Xen.MMUEXT_INVLPG_MULTI:
            {
                if (foreign) return -Errno.EPERM;
                // The vCPU mask (a bitmap, one 64-bit word for Microhv's vCPUs) must be readable. This processor
                // flushes whatever it says; each other one running a vCPU in the mask is flushed by IPI, and a vCPU
                // not on a processor reloads CR3 (flushing) when it is next switched in.
                if (!GuestMemory.ReadU64(v, arg2, out ulong vcpus)) return -Errno.EINVAL;
                if (cmd == Xen.MMUEXT_TLB_FLUSH_MULTI) m.Host.FlushTlb();
                else InvalidatePage(m, arg1);
                m.Tlb.FlushDomain(d, vcpus);
                return 0;
            }

            case Xen.MMUEXT_FLUSH_CACHE:
                if (foreign) return -Errno.EPERM;
                // Only a domain with device access may ask (cache_flush_permitted); guest memory is
                // write-back and coherent, so there is nothing to write back for it here.
                return d.IsInitialDomain ? 0 : -Errno.EACCES;
            case Xen.MMUEXT_FLUSH_CACHE_GLOBAL:
                if (foreign) return -Errno.EPERM;
                return d.IsInitialDomain ? 0 : -Errno.EINVAL;

            case Xen.MMUEXT_SET_LDT: return foreign ? -Errno.EPERM : SetLdt(v, arg1, (uint)arg2);
            case Xen.MMUEXT_CLEAR_PAGE: return ClearPage(m, pgOwner, arg1);
            case Xen.MMUEXT_COPY_PAGE: return CopyPage(m, pgOwner, arg1, arg2);
            case Xen.MMUEXT_MARK_SUPER:
            case Xen.MMUEXT_UNMARK_SUPER:
                return -Errno.EOPNOTSUPP;
            default:
                return -Errno.ENOSYS;
        }
    }

    /// <summary>Xen's __addr_ok for a 64-bit guest: canonical and outside the hypervisor hole.</summary>
    public static bool AddressOk(ulong va)
        => PageTableEntry.IsCanonical(va) && !Layout.InHypervisorHole(va);

    private static void InvalidatePage(Machine m, ulong va)
    {
        // INVLPG of a non-canonical address faults; Xen ignores such requests.
        if (PageTableEntry.IsCanonical(va)) m.Host.InvalidatePage(va);
    }

    /// <summary>PIN_Ln_TABLE: a general and a type reference held until UNPIN; pinning twice is -EINVAL.</summary>
    private static long Pin(Machine m, Domain pgOwner, ulong mfn, FrameType type)
    {
        if (!PageTypes.GetPage(m, mfn, pgOwner.DomainId)) return -Errno.EINVAL;
        long rc = PageTypes.GetPageType(m, pgOwner, mfn, type);
        if (rc != 0)
        {
            PageTypes.PutPage(m, mfn);
            return rc;
        }
        if (m.FrameTable.IsPinned(mfn))
        {
            PageTypes.PutPageAndType(m, mfn);
            return -Errno.EINVAL;
        }
        m.FrameTable.SetPinned(mfn, true);
        return 0;
    }

    private static long Unpin(Machine m, Domain pgOwner, ulong mfn)
    {
        if (!pgOwner.OwnsFrame(mfn)) return -Errno.EINVAL;
        if (!m.FrameTable.IsPinned(mfn)) return -Errno.EINVAL;
        m.FrameTable.SetPinned(mfn, false);
        PageTypes.PutPageAndType(m, mfn);
        return 0;
    }

    /// <summary>new_guest_cr3: the new L4 must validate; the old one loses the reference guest_table held.</summary>
    private static long NewBaseptr(Vcpu v, ulong mfn)
    {
        Machine m = v.Domain.Machine;
        ulong oldMfn = v.GuestTable >> Layout.PageShift;
        if (v.GuestTable != 0 && oldMfn == mfn)
        {
            if (v.KernelMode) m.Host.LoadPageTableBase(v.GuestTable);
            return 0;
        }
        long rc = PageTypes.GetPageAndType(m, v.Domain, mfn, FrameType.L4PageTable);
        if (rc != 0) return rc;
        // The LDT's pages were found through the old tables: mapped again on demand (Xen's new_guest_cr3).
        bool ldtDropped = LdtShadow.Destroy(v);
        v.GuestTable = mfn << Layout.PageShift;
        // The hypercall runs on the vCPU's own tables; loading CR3 also flushes its TLB.
        if (v.KernelMode) m.Host.LoadPageTableBase(v.GuestTable);
        else if (ldtDropped) m.Host.FlushTlb();
        if (oldMfn != 0) PageTypes.PutPageAndType(m, oldMfn);
        return 0;
    }

    /// <summary>The L4 used while the guest runs its user space; 0 removes it.</summary>
    private static long NewUserBaseptr(Vcpu v, ulong mfn)
    {
        Machine m = v.Domain.Machine;
        ulong oldMfn = v.GuestTableUser >> Layout.PageShift;
        if (oldMfn == mfn) return 0;
        if (mfn != 0)
        {
            long rc = PageTypes.GetPageAndType(m, v.Domain, mfn, FrameType.L4PageTable);
            if (rc != 0) return rc;
        }
        v.GuestTableUser = mfn << Layout.PageShift;
        if (oldMfn != 0) PageTypes.PutPageAndType(m, oldMfn);
        return 0;
    }

    /// <summary>SET_LDT (Xen's MMUEXT_SET_LDT): at most 8192 entries and, with entries, a page-aligned address
    /// outside the hypervisor's hole (__addr_ok), else -EINVAL. A change drops the pages of the old LDT that
    /// were mapped (flushing this processor's TLB when there were some) and loads the new LDT descriptor now;
    /// its pages are mapped on demand (LdtShadow).</summary>
    private static long SetLdt(Vcpu v, ulong linear, uint entries)
    {
        ulong ptr = entries != 0 ? linear : 0;
        if (entries > MaxLdtEntries || entries != 0 && ((ptr & (Layout.PageSize - 1)) != 0 || !AddressOk(ptr))) return -Errno.EINVAL;
        if (v.LdtEntries == entries && v.LdtBase == ptr) return 0;
        Machine m = v.Domain.Machine;
        if (LdtShadow.Destroy(v)) m.Host.FlushTlb();
        v.LdtBase = ptr;
        v.LdtEntries = entries;
        m.Host.LoadLdt(v);
        return 0;
    }

    private static long ClearPage(Machine m, Domain pgOwner, ulong mfn)
    {
        if (!m.Memory.Contains(mfn << Layout.PageShift, Layout.PageSize)) return -Errno.EINVAL;
        if (!PageTypes.GetPage(m, mfn, pgOwner.DomainId)) return -Errno.EINVAL;
        if (PageTypes.GetPageType(m, pgOwner, mfn, FrameType.Writable) != 0)
        {
            PageTypes.PutPage(m, mfn);
            return -Errno.EINVAL;
        }
        m.Memory.Fill(mfn << Layout.PageShift, 0, Layout.PageSize);
        PageTypes.PutPageAndType(m, mfn);
        return 0;
    }

    private static long CopyPage(Machine m, Domain pgOwner, ulong dstMfn, ulong srcMfn)
    {
        if (!m.Memory.Contains(srcMfn << Layout.PageShift, Layout.PageSize)
            || !m.Memory.Contains(dstMfn << Layout.PageShift, Layout.PageSize)) return -Errno.EINVAL;
        if (!PageTypes.GetPage(m, srcMfn, pgOwner.DomainId)) return -Errno.EINVAL;
        if (!PageTypes.GetPage(m, dstMfn, pgOwner.DomainId))
        {
            PageTypes.PutPage(m, srcMfn);
            return -Errno.EINVAL;
        }
        if (PageTypes.GetPageType(m, pgOwner, dstMfn, FrameType.Writable) != 0)
        {
            PageTypes.PutPage(m, dstMfn);
            PageTypes.PutPage(m, srcMfn);
            return -Errno.EINVAL;
        }
        m.Memory.Copy(dstMfn << Layout.PageShift, srcMfn << Layout.PageShift, Layout.PageSize);
        PageTypes.PutPageAndType(m, dstMfn);
        PageTypes.PutPage(m, srcMfn);
        return 0;
    }
}
