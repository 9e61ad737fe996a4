using Microhv.HAL;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Traps;

/// <summary>
/// What happens to an exception raised by guest code (Xen's do_general_protection, do_invalid_op,
/// do_page_fault, do_device_not_available and the plain do_trap for the rest, for a PV guest): it is
/// emulated when it stands for something a ring-3 kernel may not do itself, and otherwise bounced to
/// the guest's own handler from its trap table.
/// </summary>
public static class GuestTraps
{
    private const ulong XecIdt = 2;         // #GP error code: the selector names an IDT entry (INT n)
    private const ulong PfPresent = 1, PfWrite = 2, PfReserved = 8, PfFetch = 16;

    /// <summary>ud2; .ascii "xen" — Xen's forced-emulation prefix, followed here by cpuid (0f a2).</summary>
    private static readonly byte[] ForcedEmulationPrefix = { 0x0F, 0x0B, 0x78, 0x65, 0x6E };

    /// <summary>The vectors the switch below handles itself (emulation, #PF and #NM bookkeeping, the
    /// machine-level ones that crash the domain); every other one below 32 is a plain bounce.</summary>
    private const uint DecidedHere = (1u << TrapBounce.VectorGP) | (1u << TrapBounce.VectorUD) | (1u << TrapBounce.VectorPF) |
        (1u << TrapBounce.VectorNM) | (1u << TrapBounce.VectorNMI) | (1u << TrapBounce.VectorDF) | (1u << TrapBounce.VectorMC);

    private static readonly byte[] Fetch = new byte[InstructionDecoder.MaxLength];
    private static ulong _lastSpuriousRip, _lastSpuriousCr2;
    private static int _spuriousRepeats;

    /// <summary>GuestEntry calls this for an exception (vector &lt; 32 in regs.Vector, error code in
    /// regs.ErrorCode) raised while the guest ran; <paramref name="cr2"/> is the CPU's CR2 for #PF. A
    /// domain it crashes is seen by the exit path from the domain's state, the one record of it.
    /// Inlined into the trap entry, with a plain bounce's frame built there too (the default case: no call).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static void HandleException(Vcpu v, ref TrapFrame regs, ulong cr2)
    {
        int vector = (int)regs.Vector;
        ulong err = regs.ErrorCode;
        // The common case first: a vector with nothing to emulate or refuse goes to the guest's handler.
        if ((uint)vector < 32 && (DecidedHere & (1u << vector)) == 0)
        {
            bool hasError = (TrapBounce.ExceptionsWithErrorCode & (1u << vector)) != 0;
            TrapBounce.BounceException(v, ref regs, vector, hasError, hasError ? err : 0);
            return;
        }
        switch (vector)
        {
            case TrapBounce.VectorGP: GeneralProtection(v, ref regs, err); break;
            case TrapBounce.VectorUD: InvalidOp(v, ref regs); break;
            case TrapBounce.VectorPF: PageFault(v, ref regs, cr2, err); break;
            case TrapBounce.VectorNM: DeviceNotAvailable(v, ref regs); break;
            case TrapBounce.VectorNMI:
            case TrapBounce.VectorDF:
            case TrapBounce.VectorMC:
                v.Domain.Crash("machine-level exception (NMI, #DF or #MC) while the guest ran");
                break;
            default:
                v.Domain.Crash("guest trap with a vector outside 0-31");
                break;
        }
    }

    /// <summary>
    /// GuestEntry calls this instead of the hypercall dispatcher for a SYSCALL made while the guest
    /// was in user mode (!v.KernelMode): it is the guest's own system call, not a hypercall (Xen's
    /// switch_to_kernel).
    /// </summary>
    public static void HandleUserSyscall(Vcpu v, ref TrapFrame regs) => TrapBounce.SyscallFromUser(v, ref regs);

    private static void GeneralProtection(Vcpu v, ref TrapFrame regs, ulong err)
    {
        if ((err & XecIdt) != 0)
        {
            // INT n blocked by our IDT's DPL. The vector comes from the instruction (CD ib): QEMU's TCG
            // pushes a wrong error code for this case; the code is the fallback.
            int vector = (int)((err >> 3) & 0xFF);
            int n = EmulatePrivOp.FetchInstruction(v, regs.Rip, Fetch, 2);   // CD ib
            if (n >= 2 && Fetch[0] == 0xCD) vector = Fetch[1];
            err = ((ulong)vector << 3) | XecIdt;
            TrapInfo ti = v.TrapTable[vector];
            if (PermitSoftint(ArchX86.TI_GET_DPL(ti.Flags), v))
            {
                regs.Rip += 2;
                TrapBounce.BounceSoftwareInterrupt(v, ref regs, vector);
                return;
            }
        }
        else if (err == 0)
        {
            if (EmulatePrivOp.Emulate(v, ref regs) != PrivOpResult.NotEmulated) return;
        }
        TrapBounce.Bounce(v, ref regs, TrapBounce.VectorGP, true, err, 0);
    }

    /// <summary>Xen's permit_softint: the guest kernel (virtual ring 1) may raise vectors of DPL ≥ 1, user space only DPL 3.</summary>
    public static bool PermitSoftint(int dpl, Vcpu v) => dpl >= (v.KernelMode ? 1 : 3);

    private static void InvalidOp(Vcpu v, ref TrapFrame regs)
    {
        // Only the bytes the check needs: the prefix and cpuid's two.
        int n = EmulatePrivOp.FetchInstruction(v, regs.Rip, Fetch, ForcedEmulationPrefix.Length + 2);
        bool forced = n >= ForcedEmulationPrefix.Length + 2;
        for (int i = 0; forced && i < ForcedEmulationPrefix.Length; i++) forced = Fetch[i] == ForcedEmulationPrefix[i];
        if (forced && Fetch[5] == 0x0F && Fetch[6] == 0xA2)
        {
            EmulatePrivOp.Cpuid(v, ref regs);
            regs.Rip += (ulong)ForcedEmulationPrefix.Length + 2;
            if ((regs.Rflags & ArchX86.X86_EFLAGS_TF) != 0) TrapBounce.Bounce(v, ref regs, TrapBounce.VectorDB, false, 0, 0);
            return;
        }
        TrapBounce.Bounce(v, ref regs, TrapBounce.VectorUD, false, 0, 0);
    }

    private static void PageFault(Vcpu v, ref TrapFrame regs, ulong cr2, ulong err)
    {
        if (LdtShadow.OnPageFault(v, ref regs, cr2, err)) return;     // the CPU read a descriptor of the vCPU's LDT
        if ((err & (PfPresent | PfWrite)) == (PfPresent | PfWrite) && WritablePageTables.TryEmulate(v, ref regs, cr2, err)) return;
        if (IsSpurious(v, ref regs, cr2, err))
        {
            v.Domain.Machine.Host.InvalidatePage(cr2);
            return;
        }
        TrapBounce.Bounce(v, ref regs, TrapBounce.VectorPF, true, err, cr2);
    }

    /// <summary>
    /// Xen's spurious_page_fault: the guest tables already allow the access (a stale TLB entry after
    /// an update that was not flushed), so flushing and retrying is the whole fix. A fault that keeps
    /// recurring at the same place is passed to the guest rather than retried forever.
    /// </summary>
    private static bool IsSpurious(Vcpu v, ref TrapFrame regs, ulong cr2, ulong err)
    {
        if ((err & PfReserved) != 0) return false;
        ulong root = v.KernelMode || v.GuestTableUser == 0 ? v.GuestTable : v.GuestTableUser;
        if (root == 0 || Layout.InHypervisorHole(cr2) || !PageTableEntry.IsCanonical(cr2)) return false;
        Machine m = v.Domain.Machine;
        if (!PageTable.Translate(m.Memory, root, cr2, out ulong pa, out ulong flags, out PageSize _)) return false;
        if ((flags & PageTableEntry.User) == 0) return false;
        if ((err & PfWrite) != 0 && (flags & PageTableEntry.Writable) == 0) return false;
        if ((err & PfFetch) != 0 && (flags & PageTableEntry.NoExecute) != 0) return false;
        if (regs.Rip == _lastSpuriousRip && cr2 == _lastSpuriousCr2)
        {
            if (++_spuriousRepeats > 2) { _spuriousRepeats = 0; return false; }
        }
        else
        {
            _lastSpuriousRip = regs.Rip;
            _lastSpuriousCr2 = cr2;
            _spuriousRepeats = 0;
        }
        return true;
    }

    /// <summary>Xen's do_device_not_available: the guest's virtual TS was set, so it gets #NM and TS
    /// clears (the kernel then runs it with CR0.TS clear); otherwise the #NM was the host's own.</summary>
    private static void DeviceNotAvailable(Vcpu v, ref TrapFrame regs)
    {
        if (!v.FpuTaskSwitched) return;
        TrapBounce.Bounce(v, ref regs, TrapBounce.VectorNM, false, 0, 0);
        v.FpuTaskSwitched = false;
    }
}
