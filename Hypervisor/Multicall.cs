using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// multicall (xen/common/multicall.c): a guest batches hypercalls in an array of struct
/// multicall_entry { xen_ulong_t op, result; xen_ulong_t args[6]; } and each result is written back
/// into its entry. The first entry that cannot be read or written back ends the batch with -EFAULT,
/// so a hostile count never reads past what the guest has mapped. A nested multicall gets -EINVAL,
/// as Xen refuses re-entry. An iret entry is performed and ends the batch (Xen's mc_exit): it
/// replaces the register frame from the iret context on the guest's stack, its result (the restored
/// RAX) is written back as far as the new address space allows and is the multicall's return value.
/// The batch stops when the domain stops running (it shut down or crashed mid-batch).
/// Like Xen, it is preemptible: between entries (at once after an entry that blocked or yielded), and when an entry's call ends in a continuation
/// (whose arguments are then written back into the entry), the multicall continues itself from
/// that entry, so neither the count nor one entry's work is unbounded.
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
            if (i != 0 && (GaveUpTheCpu(v) || Continuation.PreemptCheck(v))) return Continuation.Create(v, Xen.__HYPERVISOR_multicall, entry, nr - i);
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
                if (v.PendingCall.Pending) return ContinueAt(v, entry, nr - i);
                if (op == Xen.__HYPERVISOR_iret)
                {
                    GuestMemory.WriteU64(v, entry + OffsetResult, (ulong)result);   // best effort, as Xen
                    return result;
                }
            }
            if (!GuestMemory.WriteU64(v, entry + OffsetResult, (ulong)result)) return -Errno.EFAULT;
        }
        return 0;
    }

    /// <summary>An entry blocked or yielded: Xen's hypercall_preempt_check then sees the scheduler's softirq
    /// pending, so the batch stops there and continues itself from the next entry once the vCPU runs again.</summary>
    private static bool GaveUpTheCpu(Vcpu v) => (v.PendingExitWork & Traps.ExitWork.Reschedule) != 0;

    /// <summary>The entry's call recorded a continuation: its new arguments go back into the entry
    /// and the multicall is continued from it (Xen's MCSF_call_preempted). If the entry cannot be
    /// rewritten the continuation is dropped and the multicall fails with -EFAULT.</summary>
    private static long ContinueAt(Vcpu v, ulong entry, uint left)
    {
        PendingContinuation c = v.PendingCall;
        v.PendingCall.Pending = false;
        if (!GuestMemory.WriteU64(v, entry + OffsetArgs, c.A1) || !GuestMemory.WriteU64(v, entry + OffsetArgs + 8, c.A2)
            || !GuestMemory.WriteU64(v, entry + OffsetArgs + 16, c.A3) || !GuestMemory.WriteU64(v, entry + OffsetArgs + 24, c.A4)
            || !GuestMemory.WriteU64(v, entry + OffsetArgs + 32, c.A5))
            return -Errno.EFAULT;
        return Continuation.Create(v, Xen.__HYPERVISOR_multicall, entry, left);
    }
}
