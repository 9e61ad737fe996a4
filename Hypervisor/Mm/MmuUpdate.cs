using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Mm;

/// <summary>
/// mmu_update(reqs, count, done, foreigndom): a batch of {u64 ptr; u64 val} requests, the command in
/// ptr's low 3 bits. MMU_NORMAL_PT_UPDATE / MMU_PT_UPDATE_PRESERVE_AD write val into the entry at
/// machine address ptr after validating it for the table's level; MMU_MACHPHYS_UPDATE records
/// machine frame ptr >> 12 as guest frame val. Processing stops at the first failure, whose errno
/// is returned; the number of requests done is added to *done (a u32) either way. A long batch is
/// preempted with a continuation (MMU_UPDATE_PREEMPTED in the count), as in Xen (Continuation.cs).
/// </summary>
public static class MmuUpdate
{
    public const int RequestSize = 16;
    private const uint Preempted = 0x8000_0000;     // MMU_UPDATE_PREEMPTED: a continuation of an earlier call

    public static long Do(Vcpu v, ulong reqs, ulong count, ulong doneOut, ulong foreignDom)
    {
        Domain d = v.Domain;
        uint n = (uint)count;
        uint done = 0;
        if ((n & Preempted) != 0)
        {
            n &= ~Preempted;
            if (doneOut != 0 && !GuestMemory.ReadU32(v, doneOut, out done)) done = 0;
        }

        uint ptDom = (uint)foreignDom >> 16;
        if (ptDom != 0 && ptDom - 1 != d.DomainId)
            return d.Machine.FindDomain((ushort)(ptDom - 1)) == null ? -Errno.ESRCH : -Errno.EPERM;   // foreign page tables: not supported

        long rc = 0;
        uint i = 0;
        Domain pgOwner = PgOwner.Get(d, foreignDom & 0xFFFF, out rc);
        if (pgOwner != null)
        {
            // Each request is read when it is processed, as Xen's copy_from_guest does: through the CPU's
            // own translation while the vCPU's tables are loaded (always, on the machine), else with a
            // software walk kept per page (hosted tests).
            LiveGuestMemory live = GuestMemory.LiveFor(v);
            GuestMemory.Cursor requests = default;
            PhysicalMemory mem = d.Machine.Memory;
            for (; i < n; i++)
            {
                ulong at = reqs + (ulong)i * RequestSize;
                if (i != 0 && Continuation.PreemptCheck(v))
                {
                    Continuation.Create(v, Xen.__HYPERVISOR_mmu_update, at, (n - i) | Preempted, doneOut, foreignDom);
                    break;
                }
                ulong ptr, val;
                if (live != null)
                {
                    if (!GuestMemory.AccessOk(at, RequestSize) || !live.ReadU64(at, out ptr) || !live.ReadU64(at + 8, out val))
                    {
                        rc = -Errno.EFAULT;
                        break;
                    }
                }
                else if (requests.Translate(v, at, RequestSize, false, out ulong ma))
                {
                    ptr = mem.Read64(ma);
                    val = mem.Read64(ma + 8);
                }
                else if (!requests.ReadU64(v, at, out ptr) || !requests.ReadU64(v, at + 8, out val))
                {
                    rc = -Errno.EFAULT;
                    break;
                }
                rc = One(v, pgOwner, ptr, val);
                if (rc != 0) break;
            }
        }
        if (doneOut != 0) GuestMemory.WriteU32(v, doneOut, done + i);
        return rc;
    }

    /// <summary>One request; 0 or -errno.</summary>
    public static long One(Vcpu v, Domain pgOwner, ulong ptr, ulong val)
    {
        int cmd = (int)(ptr & 7);
        switch (cmd)
        {
            case Xen.MMU_NORMAL_PT_UPDATE:
            case Xen.MMU_PT_UPDATE_PRESERVE_AD:
                return NormalPtUpdate(v, pgOwner, ptr - (ulong)cmd, val, cmd == Xen.MMU_PT_UPDATE_PRESERVE_AD);
            case Xen.MMU_MACHPHYS_UPDATE:
                return MachphysUpdate(v, pgOwner, ptr >> Layout.PageShift, val);
            default:
                return -Errno.ENOSYS;
        }
    }

    /// <summary>A write to the entry at machine address <paramref name="ma"/>: validated per the frame's
    /// page-table type, or a plain write when the frame is (or can become) an ordinary writable page.</summary>
    private static long NormalPtUpdate(Vcpu v, Domain pgOwner, ulong ma, ulong val, bool preserveAd)
    {
        Domain d = v.Domain;
        Machine m = d.Machine;
        FrameTable ft = m.FrameTable;
        ulong mfn = ma >> Layout.PageShift;
        if (!d.OwnsFrame(mfn) || !m.Memory.Contains(ma, 8)) return -Errno.EINVAL;
        int index = (int)((ma & (Layout.PageSize - 1)) >> 3);

        FrameType type = ft.TypeOf(mfn);
        bool live = ft.TypeCount(mfn) != 0 && ft.IsValidated(mfn);
        if (live)
        {
            if (PageTypes.IsPageTable(type))
            {
                int level = PageTypes.LevelOf(type);
                if (level > 1 && pgOwner != d) return -Errno.EINVAL;
                return PageTableValidator.ModEntry(m, d, pgOwner, mfn, index, level, val, preserveAd);
            }
            if (type != FrameType.Writable) return -Errno.EINVAL;
            m.Memory.Write64(ma, val);
            return 0;
        }
        if (PageTypes.GetPageType(m, d, mfn, FrameType.Writable) != 0) return -Errno.EINVAL;
        m.Memory.Write64(ma, val);
        PageTypes.PutPageType(m, mfn);
        return 0;
    }

    /// <summary>MMU_MACHPHYS_UPDATE: the M2P entry of a frame the page owner owns, and its p2m entry.</summary>
    private static long MachphysUpdate(Vcpu v, Domain pgOwner, ulong mfn, ulong pfn)
    {
        Machine m = v.Domain.Machine;
        if (!pgOwner.OwnsFrame(mfn)) return -Errno.EINVAL;
        m.SetM2p(mfn, pfn);
        if (pgOwner.P2m != null && pfn < (ulong)pgOwner.P2m.Length) pgOwner.P2m[pfn] = mfn;
        return 0;
    }
}
