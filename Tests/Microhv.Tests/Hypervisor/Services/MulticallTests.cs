using Microhv.HAL;
using Microhv.Hypervisor;
using Xunit;

namespace Microhv.Tests.Hypervisor.Services;

public class MulticallTests
{
    // struct multicall_entry { xen_ulong_t op, result; xen_ulong_t args[6]; }: 64 bytes.
    private static void Entry(ServiceGuest g, ulong va, ulong op, params ulong[] args)
    {
        g.W64(va, op);
        g.W64(va + 8, 0xDEAD);
        for (int i = 0; i < 6; i++) g.W64(va + 16 + (ulong)i * 8, i < args.Length ? args[i] : 0);
    }

    [Fact]
    public void Each_result_is_written_back_into_its_entry()
    {
        var g = new ServiceGuest();
        ulong list = ServiceGuest.Base;
        g.Write(ServiceGuest.Base + 4096, "hi\n");
        Entry(g, list, 17, 0, 0);                                     // xen_version(XENVER_version)
        Entry(g, list + 64, 18, 0, 3, ServiceGuest.Base + 4096);      // console_io(write, 3, buf)
        Entry(g, list + 128, 13, list, 1);                            // nested multicall
        Entry(g, list + 192, 63);                                     // no such hypercall
        TrapFrame regs = default;
        Assert.Equal(0, Multicall.Do(g.V, ref regs, list, 4));
        Assert.Equal(0x0004_0011UL, g.R64(list + 8));
        Assert.Equal(0UL, g.R64(list + 64 + 8));
        Assert.Equal(unchecked((ulong)-22L), g.R64(list + 128 + 8));
        Assert.Equal(unchecked((ulong)-38L), g.R64(list + 192 + 8));
        Assert.Equal("(d1) hi\n", g.ConsoleText);
    }

    [Fact]
    public void A_bad_list_is_efault_and_stops_at_the_first_unreadable_entry()
    {
        var g = new ServiceGuest();
        TrapFrame regs = default;
        Assert.Equal(-14, Multicall.Do(g.V, ref regs, ServiceGuest.Unmapped, 1));
        // Last entry of the mapped range is fine, the next one is past the read-only page.
        ulong last = ServiceGuest.Base + ServiceGuest.Pages * 4096UL - 64;
        Entry(g, last, 17, 0, 0);
        Assert.Equal(-14, Multicall.Do(g.V, ref regs, last, 0xFFFF_FFFF));
        Assert.Equal(0x0004_0011UL, g.R64(last + 8));
    }

    [Fact]
    public void A_result_that_cannot_be_written_back_is_efault()
    {
        var g = new ServiceGuest();
        TrapFrame regs = default;
        // The read-only page holds zeros: op 0 (set_trap_table) with a zero list; its result cannot be stored.
        Assert.Equal(-14, Multicall.Do(g.V, ref regs, ServiceGuest.ReadOnlyPage, 1));
    }

    [Fact]
    public void The_batch_stops_once_the_domain_has_shut_down()
    {
        var g = new ServiceGuest();
        Entry(g, ServiceGuest.Base, 17, 0, 0);
        g.D.State = DomainState.Shutdown;
        TrapFrame regs = default;
        Assert.Equal(0, Multicall.Do(g.V, ref regs, ServiceGuest.Base, 1));
        Assert.Equal(0xDEADUL, g.R64(ServiceGuest.Base + 8));
    }
}
