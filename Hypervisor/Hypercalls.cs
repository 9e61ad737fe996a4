using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// The hypercall dispatcher: number in RAX, arguments in RDI, RSI, RDX, R10, R8 (Xen's x86-64
/// convention), result back in RAX, a negative errno on failure. Every call is counted per domain.
/// A number with no handler in <see cref="HypercallTable"/> returns -ENOSYS, like Xen does. A long
/// call may end in a continuation (Continuation.cs): the guest then re-issues it with advanced arguments.
/// </summary>
public static unsafe class Hypercalls
{
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static void Dispatch(Vcpu v, ref TrapFrame regs)
    {
        Continuation.Begin(v);
        ulong nr = regs.Rax;
        // iret, the way back from every bounced exception and event upcall, is called directly (inlined
        // here) before the table, as Xen 4.17's pv_hypercall does with its priority-1 hypercalls
        // (hypercall-defs.c, call_handlers_pv64). Multicall entries go through the table.
        long result;
        if (nr == Xen.__HYPERVISOR_iret)
        {
            CountIret(v.Domain);
            result = HypercallTable.Iret(v, ref regs);
        }
        else result = Call(v, ref regs, nr, regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8);
        if (!Continuation.Apply(v, ref regs)) regs.Rax = (ulong)result;   // a continuation re-issues the call instead
    }

    /// <summary>iret's count, atomically: other processors count theirs without the hypervisor's lock
    /// (GuestEntry.SyscallUnlocked). An iret inside a multicall is counted by <see cref="Call"/> like any entry.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static void CountIret(Domain d) => System.Threading.Interlocked.Increment(ref d.HypercallCounts[Xen.__HYPERVISOR_iret]);

    /// <summary>One hypercall, counted; multicall calls this for each of its entries.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static long Call(Vcpu v, ref TrapFrame regs, ulong nr, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5)
    {
        HypercallDef[] table = HypercallTable.Entries;
        if (nr < (ulong)table.Length)
        {
            var handler = table[(int)nr].Handler;
            if (handler != null)
            {
                v.Domain.HypercallCounts[(int)nr]++;
                return handler(v, ref regs, a1, a2, a3, a4, a5);
            }
        }
        return Unimplemented(v.Domain, nr);
    }

    /// <summary>A number Xen defines but Microhv does not implement is counted under its name; one Xen
    /// does not know is counted as unknown. Both are -ENOSYS, as on Xen.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static long Unimplemented(Domain d, ulong nr)
    {
        if (HypercallTable.NameOf(nr) == null) d.UnknownHypercalls++;
        else d.HypercallCounts[(int)nr]++;
        return -Errno.ENOSYS;
    }
}
