using Microhv.HAL;
using Microhv.Hypervisor.Mm;

namespace Microhv.Hypervisor.Traps;

/// <summary>
/// The way back to a guest faulted: the exit's IRETQ (Boot/traps.asm) raised #GP, #NP or #SS in ring 0
/// because the CPU refused the CS, SS or RIP of the frame, which the guest chose: HYPERVISOR_iret takes
/// them from its iret context unchecked (as Xen's do_iret does), and update_descriptor can make the
/// descriptor of a selector the guest already runs on not present. Xen 4.17 reports such a fault to the
/// guest as that very exception at the iret's target (entry.S: the exception-table fixup of .Lft0 runs
/// handle_exception on the refused frame; the failsafe callback is not used for it since Xen 4.7), so
/// the guest's own handler gets it with the refused selector in the frame's CS or SS; a guest with no
/// handler for it is crashed, alone. Either way the hypervisor and the other domains run on.
/// </summary>
public static class ExitFault
{
    /// <summary><paramref name="regs"/> is the refused frame as a trap of <paramref name="v"/>'s, with the
    /// fault's vector (marked with <see cref="TrapFrame.ExitFaultFlag"/>) and error code.</summary>
    public static void Handle(Vcpu v, ref TrapFrame regs, ulong cr2 = 0)
    {
        regs.Vector &= ~TrapFrame.ExitFaultFlag;
        int vector = (int)regs.Vector;
        // A CS or SS of the vCPU's LDT whose page is not mapped yet: mapped, and the IRETQ runs again; or the
        // guest's own #PF (or #GP) at its LDT's address, as for any descriptor load of its own (LdtShadow).
        if (vector == TrapBounce.VectorPF && LdtShadow.OnPageFault(v, ref regs, cr2, regs.ErrorCode)) return;
        if (vector != TrapBounce.VectorGP && vector != TrapBounce.VectorNP && vector != TrapBounce.VectorSS)
        {
            v.Domain.Crash("the return to the guest raised an exception other than #GP, #NP or #SS");
            return;
        }
        if (v.TrapTable[vector].Address == 0)
        {
            v.Domain.Crash(NoHandlerReason(vector));
            return;
        }
        // As any exception of the guest's: #GP with error code 0 (a non-canonical RIP, a null selector)
        // is first offered to the privileged-instruction emulator at the target, as Xen's do_general_protection does.
        GuestTraps.HandleException(v, ref regs, 0);
    }

    private static string NoHandlerReason(int vector) => vector switch
    {
        TrapBounce.VectorNP => "fatal #NP (vector 11) returning to the guest: the CPU refused the CS or SS it chose (not present), and it has no handler",
        TrapBounce.VectorSS => "fatal #SS (vector 12) returning to the guest: the CPU refused the SS it chose, and it has no handler",
        _ => "fatal #GP (vector 13) returning to the guest: the CPU refused the CS, SS or RIP it chose, and it has no handler",
    };
}
