namespace Microhv.Guests;

/// <summary>
/// Event channels: the upcall handler scans the pending selector and words in shared_info (2-level)
/// or, once <see cref="UseFifo"/> named a control block and an event-array page, consumes the FIFO
/// queues as Linux's evtchn_fifo does; it counts every port it sees and keeps the order of the last
/// ones; checks read the counts.
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

    // ---- FIFO (event_channel.h: event words, control block) ----
    private static uint* s_fifoControl, s_fifoWords;
    private struct Heads { public fixed uint Head[16]; }
    private static Heads s_heads;
    /// <summary>The ports the FIFO handler delivered, in order (the first 16 since <see cref="ResetOrder"/>).</summary>
    private struct Order { public fixed uint Port[16]; }
    private static Order s_order;
    public static int OrderCount;

    /// <summary>From now on the upcall consumes FIFO queues: vCPU 0's control block and the one event-array page
    /// (ports 0-1023); null, null goes back to 2-level.</summary>
    public static void UseFifo(uint* control, uint* words)
    {
        fixed (uint* h = s_heads.Head) for (int i = 0; i < 16; i++) h[i] = 0;
        s_fifoWords = words;
        s_fifoControl = control;
    }

    public static void ResetOrder() => OrderCount = 0;
    public static uint OrderAt(int i)
    {
        if (i < 0 || i >= 16) return 0;
        fixed (uint* o = s_order.Port) return o[i];
    }

    private const uint FifoPending = 1u << 31, FifoMasked = 1u << 30, FifoLinked = 1u << 29, FifoLinkMask = (1u << 17) - 1;

    /// <summary>Linux's __evtchn_fifo_handle_events: take READY, then from the highest-priority ready queue one
    /// event at a time (its local head, or the control block's head when the queue was empty), re-reading READY.</summary>
    private static void FifoUpcall()
    {
        uint* control = s_fifoControl;
        uint ready = Cpu.Xchg32(control, 0);
        fixed (uint* heads = s_heads.Head)
        fixed (uint* counts = s_counts.PerPort)
        fixed (uint* order = s_order.Port)
        {
            int guard = 0;
            while (ready != 0 && guard++ < 4096)
            {
                int q = 0;
                while ((ready & (1u << q)) == 0) q++;
                uint port = heads[q];
                if (port == 0) port = Cpu.Load32(control + 2 + q);
                if (port == 0 || port >= 1024) { ready &= ~(1u << q); continue; }
                uint* word = s_fifoWords + port;
                // clear_linked: LINKED and LINK go together; the next port is what LINK held.
                uint w = Cpu.Load32(word), seen;
                while ((seen = Cpu.CompareExchange32(word, w & ~(FifoLinked | FifoLinkMask), w)) != w) w = seen;
                uint next = w & FifoLinkMask;
                if (next == 0) ready &= ~(1u << q);
                heads[q] = next;
                if ((w & FifoPending) != 0 && (w & FifoMasked) == 0)
                {
                    while ((seen = Cpu.CompareExchange32(word, w & ~FifoPending, w)) != w) w = seen;   // the handler acks it
                    counts[port]++;
                    if (OrderCount < 16) order[OrderCount] = port;
                    OrderCount++;
                }
                ready |= Cpu.Xchg32(control, 0);
            }
        }
    }

    /// <summary>Called with events masked by the hypervisor; the iret hypercall restores the mask.</summary>
    public static void Upcall()
    {
        LastUpcallTsc = Cpu.Rdtsc();
        Upcalls++;
        if (Guest.SharedInfo == null) return;
        if (s_fifoControl != null)
        {
            Cpu.Store8(Guest.VcpuInfo + Xen.VI_upcall_pending, 0);
            FifoUpcall();
            return;
        }
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
