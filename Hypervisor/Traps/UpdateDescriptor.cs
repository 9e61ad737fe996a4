using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>
/// HYPERVISOR_update_descriptor (Xen's do_update_descriptor): writes one 8-byte descriptor at a
/// machine address the guest names, after check_descriptor. The frame must be the domain's and
/// either already a descriptor page or able to be a writable one (never a page table).
/// </summary>
public static class UpdateDescriptor
{
    public static long Do(Vcpu v, ulong machineAddress, ulong descriptor)
    {
        Domain d = v.Domain;
        Machine m = d.Machine;
        if ((machineAddress & 7) != 0) return -Errno.EINVAL;
        if (!DescriptorCheck.Check(descriptor, out ulong fixedUp)) return -Errno.EINVAL;
        ulong mfn = machineAddress >> Layout.PageShift;
        if (!m.FrameTable.IsValid(mfn) || !d.OwnsFrame(mfn)) return -Errno.EINVAL;
        FrameType type = m.FrameTable.TypeOf(mfn) == FrameType.SegDesc && m.FrameTable.TypeCount(mfn) != 0
            ? FrameType.SegDesc : FrameType.Writable;
        long rc = PageTypes.GetPageAndType(m, d, mfn, type);
        if (rc != 0) return -Errno.EINVAL;
        m.Memory.Write64(machineAddress, fixedUp);
        PageTypes.PutPageAndType(m, mfn);
        int index = GdtIndex(v, mfn, machineAddress);
        if (index >= 0) m.Host.WriteGuestGdtEntry(index, fixedUp);   // e.g. Linux's TLS entries on every task switch
        return 0;
    }

    /// <summary>Which entry of the vCPU's loaded GDT the machine address is, or -1 if it is not in it.</summary>
    public static int GdtIndex(Vcpu v, ulong mfn, ulong machineAddress)
    {
        int frames = (v.GdtEntries + SetGdt.EntriesPerFrame - 1) / SetGdt.EntriesPerFrame;
        for (int i = 0; i < frames && i < v.GdtFrames.Length; i++)
        {
            if (v.GdtFrames[i] != mfn) continue;
            int index = i * SetGdt.EntriesPerFrame + (int)((machineAddress & (Layout.PageSize - 1)) >> 3);
            return index < v.GdtEntries ? index : -1;
        }
        return -1;
    }
}
