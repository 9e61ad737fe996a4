using System.Runtime.InteropServices;

namespace Microhv.Guests;

/// <summary>The frame Common/guest.asm builds for every bounced exception and event upcall.</summary>
public struct TrapFrame
{
    public ulong R15, R14, R13, R12, R11, R10, R9, R8, Rbp, Rdi, Rsi, Rdx, Rcx, Rbx, Rax;
    public ulong Vector, ErrorCode;
    public ulong Rip, Cs, Rflags, Rsp, Ss;
}

/// <summary>
/// Exceptions the hypervisor bounces to us. A check announces the one trap it provokes (Expect);
/// the handler records it and resumes after the faulting instruction. Any other trap fails the
/// running check and abandons it, so the next check still runs.
/// </summary>
public static unsafe class Traps
{
    public const ulong VectorEvent = 0x100, VectorFailsafe = 0x101;

    private static ulong s_expectVector = 0xFFFF;
    private static ulong s_skip, s_resumeAt;
    public static bool Seen;
    public static ulong SeenVector, SeenError, SeenRip, SeenCs, SeenCr2;
    public static int Count;

    /// <summary>Expects one trap with <paramref name="vector"/>; on it, resume <paramref name="skip"/> bytes after the reported rip.</summary>
    public static void Expect(ulong vector, ulong skip)
    {
        Seen = false;
        s_expectVector = vector;
        s_skip = skip;
        s_resumeAt = 0;
    }

    /// <summary>Expects one trap with <paramref name="vector"/> whose frame may hold selectors or a RIP we
    /// cannot return to (an iret the CPU refused): on it, resume at <paramref name="resumeAt"/> on the
    /// kernel's own CS and SS.</summary>
    public static void ExpectAt(ulong vector, ulong resumeAt)
    {
        Expect(vector, 0);
        s_resumeAt = resumeAt;
    }

    /// <summary>A frame we resume somewhere else: the kernel's selectors (RPL 0, the saved upcall mask kept).</summary>
    private static void KernelSelectors(TrapFrame* f)
    {
        f->Cs = (f->Cs & ~0xFFFFUL) | (Xen.FLAT_KERNEL_CS & ~3UL);
        f->Ss = Xen.FLAT_KERNEL_SS;
    }

    public static void ExpectNone() => s_expectVector = 0xFFFF;

    /// <summary>A workload's own handler (pvtest's pt-stress, on every vCPU at once), asked first for every
    /// exception: true when it dealt with it.</summary>
    public static delegate*<TrapFrame*, bool> Filter;

    /// <summary>Installs the trap table: every exception a guest can see, DPL 3 for int3 so ring 3 can raise it.</summary>
    public static long Install()
    {
        // struct trap_info { uint8_t vector; uint8_t flags; uint16_t cs; unsigned long address; }
        ulong* table = stackalloc ulong[2 * 21];
        int n = 0;
        for (int v = 0; v < 20; v++)
        {
            ulong handler = Cpu.Symbol(Cpu.SymTrapBase + v);
            if (handler == 0) continue;
            ulong dpl = v == 3 || v == 4 ? 3UL : 0UL;
            table[2 * n] = (ulong)(uint)v | (dpl << 8) | ((ulong)Xen.FLAT_KERNEL_CS << 16);
            table[2 * n + 1] = handler;
            n++;
        }
        table[2 * n] = 0;
        table[2 * n + 1] = 0;
        return Hypercall.Call1(Xen.set_trap_table, (ulong)table);
    }

    [UnmanagedCallersOnly(EntryPoint = "guest_trap")]
    private static void Handle(TrapFrame* f)
    {
        if (f->Vector == VectorEvent) { Events.Upcall(); return; }
        if (Filter != null && Filter(f)) return;
        Count++;
        ulong cr2 = Guest.SharedInfo != null ? *(ulong*)(Guest.VcpuInfo + Xen.VI_cr2) : 0;
        if (f->Vector == 1) f->Rflags &= ~0x100UL;                  // a single step is one: TF off in what we resume
        if (f->Vector == s_expectVector)
        {
            Seen = true;
            SeenVector = f->Vector;
            SeenError = f->ErrorCode;
            SeenRip = f->Rip;
            SeenCs = f->Cs;
            SeenCr2 = cr2;
            s_expectVector = 0xFFFF;
            if (s_resumeAt != 0)
            {
                f->Rip = s_resumeAt;
                KernelSelectors(f);
                s_resumeAt = 0;
            }
            else f->Rip += s_skip;
            return;
        }
        if (f->Vector == VectorFailsafe) Checks.Fail("failsafe callback");
        else
        {
            Checks.Fail("unexpected trap ");
            Checks.AppendSigned((long)f->Vector);
            Checks.Append(" err ");
            Checks.AppendHex(f->ErrorCode);
            Checks.Append(" at ");
            Checks.AppendHex(f->Rip);
            if (f->Vector == 14) { Checks.Append(" cr2 "); Checks.AppendHex(cr2); }
        }
        if (!Checks.Running)
        {
            XenConsole.Line("pvtest: trap outside a check");
            Hypercall.Shutdown(Xen.SHUTDOWN_crash);
        }
        f->Rip = Cpu.Symbol(Cpu.SymCheckAbort);
        KernelSelectors(f);
    }
}
