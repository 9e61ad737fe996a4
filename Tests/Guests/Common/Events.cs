namespace Microhv.Guests;

/// <summary>
/// 2-level event channels: the upcall handler scans the pending selector and words in shared_info
/// and counts every port it sees; checks read the counts.
/// </summary>
public static unsafe class Events
{
    private struct Counts { public fixed uint PerPort[4096]; }
    private static Counts s_counts;
    public static int Upcalls;
    public static ulong LastUpcallTsc;        // when the latest upcall began (timer latency benchmarks)

    public static uint CountOf(uint port)
    {
        if (port >= 4096) return 0;
        fixed (uint* c = s_counts.PerPort) return Cpu.Load32(&c[port]);
    }

    public static void ResetCount(uint port)
    {
        if (port < 4096) fixed (uint* c = s_counts.PerPort) c[port] = 0;
    }

    public static ulong* PendingWords => (ulong*)(Guest.SharedInfo + Xen.SH_evtchn_pending);
    public static ulong* MaskWords => (ulong*)(Guest.SharedInfo + Xen.SH_evtchn_mask);

    public static bool IsPending(uint port) => (Cpu.Load64(&PendingWords[port / 64]) & (1UL << (int)(port % 64))) != 0;

    public static void SetMasked(uint port, bool masked)
    {
        if (masked) MaskWords[port / 64] |= 1UL << (int)(port % 64);
        else Cpu.TestAndClearBit(&MaskWords[port / 64], (int)(port % 64));
    }

    /// <summary>Events masked (1) or delivered (0) for vcpu 0; unmasking forces a pending upcall.</summary>
    public static void SetUpcallMask(bool masked)
    {
        Cpu.Store8(Guest.VcpuInfo + Xen.VI_upcall_mask, (byte)(masked ? 1 : 0));
        if (!masked && Cpu.Load8(Guest.VcpuInfo + Xen.VI_upcall_pending) != 0)
            Hypercall.XenVersion(Xen.XENVER_version, null);   // any hypercall returns through event delivery
    }

    /// <summary>Called with events masked by the hypervisor; the iret hypercall restores the mask.</summary>
    public static void Upcall()
    {
        LastUpcallTsc = Cpu.Rdtsc();
        Upcalls++;
        if (Guest.SharedInfo == null) return;
        byte* vi = Guest.VcpuInfo;
        Cpu.Store8(vi + Xen.VI_upcall_pending, 0);
        ulong sel = Cpu.Xchg64((ulong*)(vi + Xen.VI_pending_sel), 0);
        ulong* pending = PendingWords;
        ulong* mask = MaskWords;
        fixed (uint* c = s_counts.PerPort)
        {
            for (int w = 0; w < 64; w++)
            {
                if ((sel & (1UL << w)) == 0) continue;
                ulong bits = pending[w] & ~mask[w];
                for (int b = 0; b < 64; b++)
                {
                    if ((bits & (1UL << b)) == 0) continue;
                    if (Cpu.TestAndClearBit(&pending[w], b) != 0) c[w * 64 + b]++;
                }
            }
        }
    }
}
