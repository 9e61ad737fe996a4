using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;
using Microhv.Tests.Hypervisor.Mm;
using Xunit;

namespace Microhv.Tests.Hypervisor.Events;

/// <summary>Requests the hostile-guest fuzzer (Tests/Guests/Fuzz) made when it stalled, replayed on the host.</summary>
public sealed class FuzzSeedTests
{
    private const ulong Ms = 1_000_000;
    private readonly TestMachine _t = new();
    private readonly EventsGuest _a;

    public FuzzSeedTests()
    {
        _a = new EventsGuest(_t, 1);
        _t.Host.NowNs = 100 * Ms;
    }

    private void Entry(ulong va, ulong op, ulong a1)
    {
        ulong ma = _a.G.Data[0] * 4096 + (va - MmGuest.Va(1));
        _t.Memory.Write64(ma, op);
        _t.Memory.Write64(ma + 8, 0xDEAD);
        _t.Memory.Write64(ma + 16, a1);
        for (ulong i = 1; i < 6; i++) _t.Memory.Write64(ma + 16 + i * 8, 0);
    }

    /// <summary>
    /// Seed 208, call 474377 (booted beside seeds 205-207, 10^6 calls each): multicall(list, 0x80000001)
    /// from a wild list holding sched_op(SCHEDOP_block), made with VIRQ_TIMER bound and a 10 ms periodic
    /// timer running, but with the timer's port (and the console's) masked, because an earlier request
    /// of the fuzzer had copied page-table entries over the evtchn_mask words of its own shared_info.
    /// As on Xen the vCPU sleeps: a masked port wakes no one, and the periodic timer stops while its vCPU
    /// is switched out (Xen's sched_context_switch), so unmasking the port finds nothing pending either.
    /// The multicall stops at the block and continues itself from the next entry (Xen's
    /// hypercall_preempt_check sees the scheduler's softirq); an event on an unmasked port (here its
    /// one-shot timer) wakes the vCPU. Microhv lost no wakeup and ran nothing unbounded: the fuzzer
    /// blocked itself (it now also arms a one-shot timer before each multicall).
    /// </summary>
    [Fact]
    public void Seed208_a_block_with_every_port_masked_sleeps_as_on_Xen_until_an_unmasked_port_fires()
    {
        long timer = _a.BindVirq(Xen.VIRQ_TIMER);
        Assert.Equal(10 * Ms, _a.V.PeriodicPeriod);
        ulong list = MmGuest.Va(1);
        Entry(list, Xen.__HYPERVISOR_sched_op, Sched.SCHEDOP_block);
        Entry(list + 64, Xen.__HYPERVISOR_xen_version, 0);

        _t.Host.NowNs = 0;
        Assert.Same(_a.V, _t.Machine.Scheduler.PickNext(null, true));   // running
        _a.ClearAllEvents();
        _a.SetMask(timer, true);
        TrapFrame regs = default;
        Continuation.Begin(_a.V);
        Multicall.Do(_a.V, ref regs, list, 0x80000001);
        Assert.True(_a.V.Blocked);
        Assert.True(_a.V.PendingCall.Pending);                       // continued from entry 1, not run while asleep
        Assert.Equal((ulong)Xen.__HYPERVISOR_multicall, _a.V.PendingCall.Nr);
        Assert.Equal(list + 64, _a.V.PendingCall.A1);
        Assert.Equal(0x80000000UL, _a.V.PendingCall.A2);
        Assert.Equal(0xDEADUL, _t.Memory.Read64(_a.G.Data[0] * 4096 + 64 + 8));

        Assert.Null(_t.Machine.Scheduler.PickNext(_a.V, true));        // switched out
        for (ulong now = 100 * Ms; now <= 1000 * Ms; now += 10 * Ms)
        {
            _t.Host.NowNs = now;
            Timers.Tick(_t.Machine);
            Assert.False(_a.Pending(timer));
            Assert.True(_a.V.Blocked);
        }
        Assert.Equal(0, _a.UpcallPending);

        Assert.Equal(0, _a.Unmask((uint)timer));
        Assert.True(_a.V.Blocked);                                       // nothing was pending
        Timers.SetSingleshot(_a.V, 1005 * Ms, 1000 * Ms);
        _t.Host.NowNs = 1005 * Ms;
        Timers.Tick(_t.Machine);
        Assert.False(_a.V.Blocked);
        Assert.Equal(1, _a.UpcallPending);
    }
}
