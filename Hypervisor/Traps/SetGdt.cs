using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>
/// HYPERVISOR_set_gdt (Xen's do_set_gdt / pv_set_gdt): the guest names up to 14 machine frames
/// holding its GDT and how many entries it uses. Every frame must belong to the domain and take
/// the segment-descriptor type (so it is not a page table nor mapped writable), which validates
/// all 512 descriptors in it. On success the old frames are released.
/// </summary>
public static class SetGdt
{
    public const int EntriesPerFrame = 512;
    /// <summary>Frames of the call being validated (one CPU, no nesting: no allocation in the hypercall).</summary>
    private static readonly ulong[] NewFrames = new ulong[ArchX86.FIRST_RESERVED_GDT_PAGE];

    public static long Do(Vcpu v, ulong frameList, ulong entries)
    {
        if (entries > ArchX86.FIRST_RESERVED_GDT_ENTRY) return -Errno.EINVAL;
        int nrFrames = (int)((entries + EntriesPerFrame - 1) / EntriesPerFrame);
        for (int i = 0; i < nrFrames; i++)
            if (!GuestMemory.ReadU64(v, frameList + (ulong)i * 8, out NewFrames[i])) return -Errno.EFAULT;
        long rc = Set(v, NewFrames, nrFrames, (int)entries);
        // The caller is the running vCPU: its new descriptors must be what the CPU uses from now on.
        if (rc == 0) v.Domain.Machine.Host.LoadGuestGdt(v);
        return rc;
    }

    /// <summary>pv_set_gdt: also for the domain builder or vcpu_op(initialise). Returns 0 or -EINVAL.</summary>
    public static long Set(Vcpu v, ulong[] frames, int nrFrames, int entries)
    {
        Domain d = v.Domain;
        Machine m = d.Machine;
        for (int i = 0; i < nrFrames; i++)
        {
            if (GetSegDescPage(m, d, frames[i]) != 0)
            {
                for (int j = 0; j < i; j++) PageTypes.PutPageAndType(m, frames[j]);
                return -Errno.EINVAL;
            }
        }
        Destroy(v);
        for (int i = 0; i < nrFrames; i++) v.GdtFrames[i] = frames[i];
        v.GdtEntries = entries;
        return 0;
    }

    /// <summary>pv_destroy_gdt: drops the references the current GDT frames hold.</summary>
    public static void Destroy(Vcpu v)
    {
        Machine m = v.Domain.Machine;
        int nr = (v.GdtEntries + EntriesPerFrame - 1) / EntriesPerFrame;
        for (int i = 0; i < nr && i < v.GdtFrames.Length; i++)
        {
            PageTypes.PutPageAndType(m, v.GdtFrames[i]);
            v.GdtFrames[i] = 0;
        }
        v.GdtEntries = 0;
    }

    /// <summary>get_page_and_type(PGT_seg_desc_page): taking the type the first time validates (and
    /// fixes up) every descriptor in the frame, as Xen's alloc_segdesc_page does. For a GDT frame and
    /// for an LDT page mapped on demand (Mm/LdtShadow.cs).</summary>
    public static long GetSegDescPage(Machine m, Domain d, ulong mfn)
    {
        if (!m.FrameTable.IsValid(mfn) || !d.OwnsFrame(mfn)) return -Errno.EINVAL;
        bool inUse = m.FrameTable.TypeCount(mfn) != 0;
        // In use as anything else (a page table, a writable mapping): refused before it is touched.
        if (inUse && m.FrameTable.TypeOf(mfn) != FrameType.SegDesc) return -Errno.EINVAL;
        if (!inUse && !ValidatePage(m, mfn)) return -Errno.EINVAL;
        return PageTypes.GetPageAndType(m, d, mfn, FrameType.SegDesc);
    }

    /// <summary>Checks all 512 descriptors of a frame and writes back their fixed-up forms.</summary>
    public static bool ValidatePage(Machine m, ulong mfn)
    {
        ulong pa = mfn << Layout.PageShift;
        for (int i = 0; i < EntriesPerFrame; i++)
            if (!DescriptorCheck.Check(m.Memory.Read64(pa + (ulong)i * 8), out _)) return false;
        for (int i = 0; i < EntriesPerFrame; i++)
        {
            ulong at = pa + (ulong)i * 8;
            ulong desc = m.Memory.Read64(at);
            DescriptorCheck.Check(desc, out ulong fixedUp);
            if (fixedUp != desc) m.Memory.Write64(at, fixedUp);
        }
        return true;
    }
}
