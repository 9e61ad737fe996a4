using System.Runtime;
using System.Runtime.CompilerServices;
using Microhv.Kernel.Console;
using Microhv.Kernel.Timer;

namespace Microhv.Kernel.Smp;

/// <summary>
/// Interrupts between processors, through the local APIC's command register: a kick (an event-check
/// IPI: the target enters the hypervisor and decides again, Xen's EVENT_CHECK_VECTOR) and a TLB flush
/// the sender waits for (Xen's INVALIDATE_TLB_VECTOR). The flush is answered without the hypervisor's
/// lock, which its sender holds: by the IPI's handler (PvCpu) when the target runs a guest or idles, and
/// by the lock's wait loop when the target is waiting to enter (Boot/smp.asm).
/// </summary>
internal static unsafe class Ipi
{
    public const byte KickVector = 0xF2, FlushVector = 0xF1;
    /// <summary>How long a flush may wait for one processor before Microhv gives up on it (about a second of spins).</summary>
    private const int FlushPatience = 200_000_000;

    /// <summary>Kicks sent (the summary reports them; flushes are counted by the hypervisor's TlbFlushClock).</summary>
    public static ulong KicksSent;

    [RuntimeImport("*", "hv_flush_answer")] [MethodImpl(MethodImplOptions.InternalCall)]
    public static extern void AnswerFlush();

    public static void Kick(ulong cpus)
    {
        for (int c = 0; cpus != 0; c++, cpus >>= 1)
        {
            if ((cpus & 1) == 0) continue;
            LocalApic.SendFixed(Processors.Cpus[c].ApicId, KickVector);
            KicksSent++;
        }
    }

    /// <summary>Flushes the whole TLB of every processor in <paramref name="cpus"/> and returns when each has.</summary>
    public static void Flush(ulong cpus)
    {
        ulong left = cpus;
        for (int c = 0; left != 0; c++, left >>= 1)
        {
            if ((left & 1) == 0) continue;
            Write(&Processors.Cpus[c].Block->FlushRequest, 1);
            LocalApic.SendFixed(Processors.Cpus[c].ApicId, FlushVector);
        }
        left = cpus;
        for (int c = 0; left != 0; c++, left >>= 1)
        {
            if ((left & 1) == 0) continue;
            int spins = 0;
            while (Read(&Processors.Cpus[c].Block->FlushRequest) != 0)
            {
                if (++spins == FlushPatience)
                {
                    Log.Write("smp: CPU "); Log.Dec((ulong)c); Log.Line(" does not answer a TLB flush; still waiting");
                }
                Cpu.Pause();
            }
        }
    }

    // Real memory accesses: the word is written by another processor.
    [MethodImpl(MethodImplOptions.NoInlining)] private static ulong Read(ulong* p) => *p;
    [MethodImpl(MethodImplOptions.NoInlining)] private static void Write(ulong* p, ulong value) => *p = value;
}
