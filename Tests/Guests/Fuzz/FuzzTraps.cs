using System.Runtime.InteropServices;

namespace Microhv.Guests.Fuzz;

/// <summary>The frame Common/guest.asm builds for every bounced exception and event upcall.</summary>
public struct TrapFrame
{
    public ulong R15, R14, R13, R12, R11, R10, R9, R8, Rbp, Rdi, Rsi, Rdx, Rcx, Rbx, Rax;
    public ulong Vector, ErrorCode;
    public ulong Rip, Cs, Rflags, Rsp, Ss;
}

/// <summary>
/// The fuzzer's trap handler (Common/guest.asm's stubs call guest_trap). Every call runs under
/// Cpu.CheckRun; a trap abandons it (guest_check_abort) and the next call starts clean. Three traps
/// are resumed instead: #NM (the hypervisor clears the virtual CR0.TS when it delivers it, as Xen
/// does, so the instruction is retried), #DB (debug registers a call armed: cleared) and the event
/// upcall (events stay masked: pending bits are cleared, the frame's IF too). A trap outside a call
/// is the fuzzer's own bug or the hypervisor's: it is reported and the domain crashes. A trap inside a
/// hypercall counts as unexpected when it is at our own code; at any other address it is "wild": the
/// call sent us there through a callback or frame it registered itself.
/// </summary>
internal static unsafe class FuzzTraps
{
    public const ulong VectorEvent = 0x100, VectorFailsafe = 0x101;
    public static bool InCall, InProbe;
    public static ulong Traps, Unexpected, NmTraps, Wild;
    public static ulong LastVector, LastRip, LastError;
    private static int s_nmInRow;
    /// <summary>Where vcpu_info lives if a call moved it (VCPUOP_register_vcpu_info on the victim page), else 0.</summary>
    public static ulong MovedVcpuInfo;

    /// <summary>Our trap table, built once (probes.asm's fenced call re-installs it without compiled code).</summary>
    public static ulong* Table;

    public static long Install()
    {
        if (Table == null) Table = (ulong*)Internal.Runtime.KernelHeap.Allocate((nuint)(2 * 21 * 8));
        ulong* table = Table;
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

    /// <summary>Event and failsafe callbacks back to our stubs (callback_op register).</summary>
    public static void InstallCallbacks()
    {
        ulong* cb = stackalloc ulong[2];
        cb[0] = 0 | 1 << 16;                         // CALLBACKTYPE_event, CALLBACKF_mask_events
        cb[1] = Cpu.Symbol(Cpu.SymEventCallback);
        Hypercall.Call2(Xen.callback_op, Xen.CALLBACKOP_register, (ulong)cb);
        cb[0] = 1;                                   // CALLBACKTYPE_failsafe
        cb[1] = Cpu.Symbol(Cpu.SymFailsafeCallback);
        Hypercall.Call2(Xen.callback_op, Xen.CALLBACKOP_register, (ulong)cb);
        Hypercall.Call2(28, 0, 0);                   // nmi_op unregister_callback: none of ours
    }

    [UnmanagedCallersOnly(EntryPoint = "guest_trap")]
    private static void Handle(TrapFrame* f)
    {
        if (f->Vector == VectorEvent) { ClearEvents(); f->Rflags &= ~0x200UL; return; }
        Traps++;
        if (f->Vector == 7)
        {
            NmTraps++;
            // Xen clears the virtual TS when it delivers #NM; if it stays set, clear it ourselves.
            if (++s_nmInRow > 2) Hypercall.Call1(5, 0);
            return;
        }
        s_nmInRow = 0;
        if (f->Vector == 1)
        {
            Hypercall.Call2(8, 7, 0);                // set_debugreg(7, 0)
            f->Rflags &= ~0x100UL;
            if (InCall) Abandon(f);
            return;
        }
        LastVector = f->Vector; LastRip = f->Rip; LastError = f->ErrorCode;
        if (InCall)
        {
            // A trap at an address outside our image comes from a control transfer the call itself set up
            // (a junk event or failsafe callback registered by one multicall entry and entered when another
            // let an upcall through): our doing, as it would be on Xen. Inside our image it is a fault the
            // hypercall instruction should not have raised.
            bool ours = f->Rip >= Guest.Layout->ImageStart && f->Rip < Guest.Layout->ImageEnd;
            if (InProbe) { }
            else if (ours) Unexpected++;
            else Wild++;
            Abandon(f);
            return;
        }
        XenConsole.Write("fuzz: trap outside a call: vector ");
        XenConsole.Dec((long)f->Vector);
        XenConsole.Write(" at ");
        XenConsole.Hex(f->Rip);
        XenConsole.Write(" error ");
        XenConsole.Hex(f->ErrorCode);
        if (f->Vector == 14 && Guest.SharedInfo != null) { XenConsole.Write(" cr2 "); XenConsole.Hex(*(ulong*)(Guest.VcpuInfo + Xen.VI_cr2)); }
        XenConsole.Line("");
        Hypercall.Shutdown(Xen.SHUTDOWN_crash);
    }

    /// <summary>Resumes at guest_check_abort on the kernel's selectors: the frame's may be ones the CPU refused
    /// (an iret of ours to a bad CS or SS), which an iret back to it would only refuse again.</summary>
    private static void Abandon(TrapFrame* f)
    {
        f->Rip = Cpu.Symbol(Cpu.SymCheckAbort);
        f->Cs = (f->Cs & ~0xFFFFUL) | (Xen.FLAT_KERNEL_CS & ~3UL);
        f->Ss = Xen.FLAT_KERNEL_SS;
    }

    private static void ClearEvents()
    {
        if (Guest.SharedInfo == null) return;
        Clear(Guest.VcpuInfo);
        if (MovedVcpuInfo != 0) Clear((byte*)MovedVcpuInfo);
        ulong* pending = (ulong*)(Guest.SharedInfo + Xen.SH_evtchn_pending);
        for (int w = 0; w < 64; w++) pending[w] = 0;
    }

    private static void Clear(byte* vi)
    {
        Cpu.Store8(vi + Xen.VI_upcall_mask, 1);
        Cpu.Store8(vi + Xen.VI_upcall_pending, 0);
        Cpu.Xchg64((ulong*)(vi + Xen.VI_pending_sel), 0);
    }
}
