using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// multicall (xen/common/multicall.c): a guest batches hypercalls in an array of struct
/// multicall_entry { xen_ulong_t op, result; xen_ulong_t args[6]; } and each result is written back
/// into its entry. The first entry that cannot be read or written back ends the batch with -EFAULT,
/// so a hostile count never reads past what the guest has mapped. A nested multicall gets -EINVAL,
/// as Xen refuses re-entry; so does iret, which replaces the whole register frame and cannot be
/// batched. The batch stops when the domain stops running (it shut down or crashed mid-batch).
/// </summary>
public static class Multicall
{
    public const int EntrySize = 64;
    public const int OffsetOp = 0, OffsetResult = 8, OffsetArgs = 16;

    public static long Do(Vcpu v, ref TrapFrame regs, ulong calls, ulong count)
    {
        uint nr = (uint)count;   // uint32_t nr_calls in Xen's prototype
        Domain d = v.Domain;
        for (uint i = 0; i < nr; i++)
        {
            if (d.State == DomainState.Shutdown || d.State == DomainState.Crashed) break;
            ulong entry = calls + (ulong)i * EntrySize;
            if (!GuestMemory.ReadU64(v, entry + OffsetOp, out ulong op)) return -Errno.EFAULT;
            long result;
            if (!HypercallTable.AllowedInMulticall(op)) result = -Errno.EINVAL;
            else
            {
                // The whole entry is read, as Xen copies it: a fault anywhere in it is -EFAULT.
                if (!GuestMemory.ReadU64(v, entry + OffsetArgs, out ulong a1)) return -Errno.EFAULT;
                if (!GuestMemory.ReadU64(v, entry + OffsetArgs + 8, out ulong a2)) return -Errno.EFAULT;
                if (!GuestMemory.ReadU64(v, entry + OffsetArgs + 16, out ulong a3)) return -Errno.EFAULT;
                if (!GuestMemory.ReadU64(v, entry + OffsetArgs + 24, out ulong a4)) return -Errno.EFAULT;
                if (!GuestMemory.ReadU64(v, entry + OffsetArgs + 32, out ulong a5)) return -Errno.EFAULT;
                result = Hypercalls.Call(v, ref regs, op, a1, a2, a3, a4, a5);
            }
            if (!GuestMemory.WriteU64(v, entry + OffsetResult, (ulong)result)) return -Errno.EFAULT;
        }
        return 0;
    }
}
