using Microhv.HAL;

namespace Microhv.Hypervisor;

/// <summary>A hypercall to be re-issued with new arguments (Xen's hypercall_create_continuation).</summary>
public struct PendingContinuation
{
    public bool Pending;
    public ulong Nr, A1, A2, A3, A4, A5;
}

/// <summary>
/// Bounded hypercalls, Xen's way: an operation over a guest-sized array checks for preemption
/// between elements (hypercall_preempt_check) and, when due, records a continuation — the same
/// hypercall with its arguments advanced past the work done. At the top level the guest's
/// registers are rewritten and its RIP moved back onto the 2-byte SYSCALL / INT 0x82, so the guest
/// re-issues the call after any pending interrupt has been taken; inside a multicall the entry's
/// arguments are rewritten and the multicall itself is continued at that entry. No guest count can
/// keep the hypervisor busy for longer than one budget. Microhv's "preemption due" is a work budget
/// per hypercall entry (interrupts are masked while a hypercall runs, so none can be seen pending).
/// </summary>
public static class Continuation
{
    /// <summary>Elements one hypercall entry may process before it is continued.</summary>
    public const int Budget = 256;
    /// <summary>Length of the hypercall instructions (SYSCALL 0F 05, INT 0x82 CD 82).</summary>
    public const ulong HypercallInstructionLength = 2;

    /// <summary>A new hypercall entry: a fresh budget, no continuation.</summary>
    public static void Begin(Vcpu v)
    {
        v.PreemptBudget = Budget;
        v.PendingCall.Pending = false;      // Create writes every field before it sets Pending again
    }

    /// <summary>hypercall_preempt_check: called before each element after the first; true when this
    /// entry has used its budget and the caller must create a continuation now.</summary>
    public static bool PreemptCheck(Vcpu v) => --v.PreemptBudget <= 0;

    /// <summary>Records hypercall <paramref name="nr"/> with these arguments to be re-issued; returns
    /// the value the handler returns (ignored: the guest never sees it).</summary>
    public static long Create(Vcpu v, ulong nr, ulong a1, ulong a2, ulong a3 = 0, ulong a4 = 0, ulong a5 = 0)
    {
        v.PendingCall.Pending = true;
        v.PendingCall.Nr = nr;
        v.PendingCall.A1 = a1; v.PendingCall.A2 = a2; v.PendingCall.A3 = a3; v.PendingCall.A4 = a4; v.PendingCall.A5 = a5;
        return (long)nr;
    }

    /// <summary>At the top level: if a continuation is pending, the registers become the hypercall to
    /// re-issue and RIP points at the hypercall instruction again. True when it did.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static bool Apply(Vcpu v, ref TrapFrame regs) => v.PendingCall.Pending && Reissue(v, ref regs);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static bool Reissue(Vcpu v, ref TrapFrame regs)
    {
        v.PendingCall.Pending = false;
        regs.Rax = v.PendingCall.Nr;
        regs.Rdi = v.PendingCall.A1; regs.Rsi = v.PendingCall.A2; regs.Rdx = v.PendingCall.A3;
        regs.R10 = v.PendingCall.A4; regs.R8 = v.PendingCall.A5;
        regs.Rip -= HypercallInstructionLength;
        return true;
    }
}
