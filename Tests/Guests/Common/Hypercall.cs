using System.Runtime;
using System.Runtime.CompilerServices;

namespace Microhv.Guests;

/// <summary>Hypercalls through the hypercall page (Common/hypercall.asm); the result is Xen's (negative errno on failure).</summary>
public static unsafe class Hypercall
{
    [RuntimeImport("*", "xen_hypercall")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern long Call(ulong nr, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5);

    [RuntimeImport("*", "xen_raw_hypercall")] [MethodImpl(MethodImplOptions.InternalCall)]
    public static extern long Raw(ulong nr, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5);

    public static long Call0(ulong nr) => Call(nr, 0, 0, 0, 0, 0);
    public static long Call1(ulong nr, ulong a1) => Call(nr, a1, 0, 0, 0, 0);
    public static long Call2(ulong nr, ulong a1, ulong a2) => Call(nr, a1, a2, 0, 0, 0);
    public static long Call3(ulong nr, ulong a1, ulong a2, ulong a3) => Call(nr, a1, a2, a3, 0, 0);
    public static long Call4(ulong nr, ulong a1, ulong a2, ulong a3, ulong a4) => Call(nr, a1, a2, a3, a4, 0);

    public static long XenVersion(ulong cmd, void* arg) => Call2(Xen.xen_version, cmd, (ulong)arg);
    public static long ConsoleWrite(byte* text, ulong count) => Call3(Xen.console_io, Xen.CONSOLEIO_write, count, (ulong)text);
    public static long MemoryOp(ulong cmd, void* arg) => Call2(Xen.memory_op, cmd, (ulong)arg);
    public static long UpdateVaMapping(ulong va, ulong pte, ulong flags) => Call3(Xen.update_va_mapping, va, pte, flags);
    public static long EventChannelOp(ulong cmd, void* arg) => Call2(Xen.event_channel_op, cmd, (ulong)arg);
    public static long SchedOp(ulong cmd, void* arg) => Call2(Xen.sched_op, cmd, (ulong)arg);

    /// <summary>mmu_update with DOMID_SELF; <paramref name="done"/> receives the count the hypervisor applied.</summary>
    public static long MmuUpdate(ulong* requests, uint count, uint* done)
        => Call4(Xen.mmu_update, (ulong)requests, count, (ulong)done, Xen.DOMID_SELF);

    /// <summary>One mmuext_op {cmd, mfn or linear address, second argument}.</summary>
    public static long MmuextOp(uint cmd, ulong arg1, ulong arg2)
    {
        ulong* op = stackalloc ulong[3];
        op[0] = cmd;
        op[1] = arg1;
        op[2] = arg2;
        uint done = 0;
        return Call4(Xen.mmuext_op, (ulong)op, 1, (ulong)&done, Xen.DOMID_SELF);
    }

    public static void Shutdown(uint reason)
    {
        uint r = reason;
        while (true) SchedOp(Xen.SCHEDOP_shutdown, &r);
    }
}
