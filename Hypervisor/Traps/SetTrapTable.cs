using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>
/// HYPERVISOR_set_trap_table (Xen's do_set_trap_table): the guest's virtual IDT, a list of
/// trap_info {vector, flags, cs, address} ending with address 0. A null list clears the table;
/// entries already copied stay when a later one faults (-EFAULT), as in Xen.
/// </summary>
public static class SetTrapTable
{
    /// <summary>Bound on one call (Xen preempts long lists with a continuation instead); 16 passes over the 256 vectors.</summary>
    public const int MaxEntries = 4096;

    public static long Do(Vcpu v, ulong traps)
    {
        if (traps == 0)
        {
            for (int i = 0; i < v.TrapTable.Length; i++) v.TrapTable[i] = default;
            return 0;
        }
        for (int n = 0; n < MaxEntries; n++)
        {
            ulong entry = traps + (ulong)n * ArchX86.trap_info_size;
            if (!GuestMemory.ReadU64(v, entry, out ulong head) || !GuestMemory.ReadU64(v, entry + ArchX86.trap_info_address, out ulong address))
                return -Errno.EFAULT;
            if (address == 0) return 0;
            if (!PageTableEntry.IsCanonical(address)) return -Errno.EINVAL;
            byte vector = (byte)head;
            TrapInfo ti;
            ti.Vector = vector;
            ti.Flags = (byte)(head >> 8);
            ti.Cs = (ushort)DescriptorCheck.FixupGuestSelector((head >> 16) & 0xFFFF);
            ti.Address = address;
            v.TrapTable[vector] = ti;
        }
        return -Errno.E2BIG;
    }
}
