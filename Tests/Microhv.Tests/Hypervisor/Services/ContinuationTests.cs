using Microhv.HAL;
using Microhv.Hypervisor;
using Xunit;

namespace Microhv.Tests.Hypervisor.Services;

/// <summary>
/// Long hypercalls end in continuations (Continuation.cs), as in Xen: the guest re-issues the call
/// with advanced arguments, so no count keeps Microhv busy. The count below is the one from issue 14
/// that kept a multicall from ever returning.
/// </summary>
public class ContinuationTests
{
    private const ulong GrantTableOp = 20, Multicall = 13, MmuUpdate = 1, GNTTABOP_unmap_grant_ref = 1;
    private const ulong HugeCount = 0x0a971ee7092a2d25;
    private const ulong HypercallRip = 0x1000;

    /// <summary>Issues the hypercall in regs the way a guest would, re-issuing continuations, until it returns.</summary>
    private static long Run(Vcpu v, ref TrapFrame regs, out int entries)
    {
        entries = 0;
        ulong nr = regs.Rax;
        while (true)
        {
            regs.Rip = HypercallRip + 2;
            Hypercalls.Dispatch(v, ref regs);
            entries++;
            if (regs.Rip == HypercallRip + 2) return (long)regs.Rax;
            Assert.Equal(HypercallRip, regs.Rip);          // back on the SYSCALL, with the number again
            Assert.Equal(nr, regs.Rax);
            Assert.True(entries < 100, "the call never finished");
        }
    }

    [Fact]
    public void An_absurd_grant_unmap_count_is_worked_through_in_bounded_steps()
    {
        var g = new ServiceGuest();
        // The ops start at Base + 0x20; 8 writable pages hold 1364 of them, the read-only page's take no
        // status: the call ends in -EFAULT after about 1536 operations.
        TrapFrame regs = default;
        regs.Rax = GrantTableOp; regs.Rdi = GNTTABOP_unmap_grant_ref; regs.Rsi = ServiceGuest.Base + 0x20; regs.Rdx = HugeCount;
        long rc = Run(g.V, ref regs, out int entries);
        Assert.Equal(-14, rc);
        Assert.True(entries > 4, $"{entries} hypercall entries: not preempted");
    }

    [Fact]
    public void The_same_call_inside_a_multicall_continues_the_multicall_and_rewrites_its_entry()
    {
        var g = new ServiceGuest();
        ulong list = ServiceGuest.Base;
        g.W64(list, GrantTableOp); g.W64(list + 8, 0xDEAD);
        g.W64(list + 16, GNTTABOP_unmap_grant_ref); g.W64(list + 24, ServiceGuest.Base + 0x1000); g.W64(list + 32, HugeCount);
        g.W64(list + 64, 17); g.W64(list + 72, 0xDEAD); g.W64(list + 80, 0); g.W64(list + 88, 0);   // then xen_version
        TrapFrame regs = default;
        regs.Rax = Multicall; regs.Rdi = list; regs.Rsi = 2;
        regs.Rip = HypercallRip + 2;
        Hypercalls.Dispatch(g.V, ref regs);
        // Preempted inside the first entry: the multicall is re-issued from that entry, whose arguments
        // now name the operations not yet done.
        Assert.Equal(HypercallRip, regs.Rip);
        Assert.Equal(Multicall, regs.Rax);
        Assert.Equal(list, regs.Rdi);
        Assert.Equal(2UL, regs.Rsi);
        Assert.Equal(ServiceGuest.Base + 0x1000 + (ulong)Continuation.Budget * 24, g.R64(list + 24));
        Assert.Equal((HugeCount & 0xFFFF_FFFF) - (ulong)Continuation.Budget, g.R64(list + 32));
        long rc = Run(g.V, ref regs, out int entries);
        Assert.Equal(0, rc);
        Assert.Equal(unchecked((ulong)-14L), g.R64(list + 8));
        Assert.Equal(0x0004_0011UL, g.R64(list + 72));
        Assert.True(entries > 2);
    }

    [Fact]
    public void A_long_multicall_is_continued_between_entries()
    {
        var g = new ServiceGuest();
        ulong list = ServiceGuest.Base;
        int n = Continuation.Budget + 44;
        for (int i = 0; i < n; i++)
        {
            ulong e = list + (ulong)i * 64;
            g.W64(e, 17); g.W64(e + 8, 0xDEAD); g.W64(e + 16, 0); g.W64(e + 24, 0);
        }
        TrapFrame regs = default;
        regs.Rax = Multicall; regs.Rdi = list; regs.Rsi = (ulong)n;
        long rc = Run(g.V, ref regs, out int entries);
        Assert.Equal(0, rc);
        Assert.Equal(2, entries);
        for (int i = 0; i < n; i++) Assert.Equal(0x0004_0011UL, g.R64(list + (ulong)i * 64 + 8));
    }

    [Fact]
    public void A_long_mmu_update_batch_is_continued_with_MMU_UPDATE_PREEMPTED_and_counts_every_request_done()
    {
        var g = new ServiceGuest();
        // MMU_MACHPHYS_UPDATE of our own frame 3 to pfn 3, again and again: each succeeds.
        ulong reqs = ServiceGuest.Base, done = ServiceGuest.Base + 7 * 4096;
        int n = Continuation.Budget * 2 + 10;
        for (int i = 0; i < n; i++) { g.W64(reqs + (ulong)i * 16, g.Mfns[3] << 12 | 1); g.W64(reqs + (ulong)i * 16 + 8, 3); }
        TrapFrame regs = default;
        regs.Rax = MmuUpdate; regs.Rdi = reqs; regs.Rsi = (ulong)n; regs.Rdx = done; regs.R10 = 0x7FF0;
        regs.Rip = HypercallRip + 2;
        Hypercalls.Dispatch(g.V, ref regs);
        Assert.Equal(HypercallRip, regs.Rip);
        Assert.Equal(reqs + (ulong)Continuation.Budget * 16, regs.Rdi);
        Assert.Equal(0x8000_0000UL | (ulong)(n - Continuation.Budget), regs.Rsi);
        Assert.Equal((uint)Continuation.Budget, g.R32(done));
        long rc = Run(g.V, ref regs, out int entries);
        Assert.Equal(0, rc);
        Assert.Equal((uint)n, g.R32(done));
    }
}
