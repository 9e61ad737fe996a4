using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Xunit;

namespace Microhv.Tests.Hypervisor.Services;

public class ConsoleIoTests
{
    private const ulong CONSOLEIO_write = 0, CONSOLEIO_read = 1;   // xen.h

    [Fact]
    public void Write_prefixes_every_line_with_the_domain_id_and_returns_zero()
    {
        var g = new ServiceGuest(id: 1);
        g.Write(ServiceGuest.Base, "hello\nworld\n");
        Assert.Equal(0, ConsoleIo.Do(g.V, CONSOLEIO_write, 12, ServiceGuest.Base));
        Assert.Equal("(d1) hello\n(d1) world\n", g.ConsoleText);
    }

    [Fact]
    public void A_line_split_across_writes_gets_one_prefix()
    {
        var g = new ServiceGuest(id: 12);
        g.Write(ServiceGuest.Base, "abc\n");
        Assert.Equal(0, ConsoleIo.Do(g.V, CONSOLEIO_write, 2, ServiceGuest.Base));
        Assert.Equal(0, ConsoleIo.Do(g.V, CONSOLEIO_write, 2, ServiceGuest.Base + 2));
        Assert.Equal("(d12) abc\n", g.ConsoleText);
    }

    [Fact]
    public void A_line_left_open_by_one_domain_does_not_swallow_another_domains_line()
    {
        // Found by the fuzzer (seeds 1 and 2): a domain's console_io of bytes without a newline, then
        // another domain's line, printed the second line's text inside the first one's.
        var d1 = new ServiceGuest(id: 1);
        var d2 = new ServiceGuest(id: 2, machine: d1.Tm);
        d1.Write(ServiceGuest.Base, "junk");
        d2.Write(ServiceGuest.Base, "fuzz: done\n");
        Assert.Equal(0, ConsoleIo.Do(d1.V, CONSOLEIO_write, 4, ServiceGuest.Base));
        Assert.Equal(0, ConsoleIo.Do(d2.V, CONSOLEIO_write, 11, ServiceGuest.Base));
        Assert.Equal(0, ConsoleIo.Do(d1.V, CONSOLEIO_write, 4, ServiceGuest.Base));
        Assert.Equal("(d1) junk\n(d2) fuzz: done\n(d1) junk", d1.ConsoleText);
        ConsoleRing.EndOpenLine(d1.Tm.Machine);                         // before a line of the hypervisor's own
        Assert.Equal("(d1) junk\n(d2) fuzz: done\n(d1) junk\n", d1.ConsoleText);
        ConsoleRing.EndOpenLine(d1.Tm.Machine);
        Assert.Equal("(d1) junk\n(d2) fuzz: done\n(d1) junk\n", d1.ConsoleText);
    }

    [Fact]
    public void Write_across_a_page_boundary_copies_both_pages()
    {
        var g = new ServiceGuest();
        ulong va = ServiceGuest.Base + 4096 - 3;
        g.Write(va, "abcdef");
        Assert.Equal(0, ConsoleIo.Do(g.V, CONSOLEIO_write, 6, va));
        Assert.Equal("(d1) abcdef", g.ConsoleText);
    }

    [Fact]
    public void Bad_pointer_is_efault_and_prints_nothing()
    {
        var g = new ServiceGuest();
        Assert.Equal(-14, ConsoleIo.Do(g.V, CONSOLEIO_write, 4, ServiceGuest.Unmapped));
        // Starts mapped, runs into the unmapped page after the read-only one.
        ulong tail = ServiceGuest.ReadOnlyPage + 4096 - 2;
        Assert.Equal(-14, ConsoleIo.Do(g.V, CONSOLEIO_write, 4, tail));
        Assert.Equal(-14, ConsoleIo.Do(g.V, CONSOLEIO_write, 4, Xen.HYPERVISOR_VIRT_START));
        Assert.Equal(-14, ConsoleIo.Do(g.V, CONSOLEIO_write, 16, 0xFFFF_FFFF_FFFF_FFF8));
        Assert.Empty(g.Tm.Host.Console);
    }

    /// <summary>Xen's guest_console_write: any length, 127 bytes a step; once the entry's budget is used up the rest
    /// is a continuation (the same call, count and buffer advanced), and a step that cannot be read is -EFAULT
    /// with what came before it printed.</summary>
    [Fact]
    public void A_write_longer_than_a_budget_is_continued_with_the_rest()
    {
        var g = new ServiceGuest();
        g.Write(ServiceGuest.Base, new string('x', ServiceGuest.Pages * 4096));
        Continuation.Begin(g.V);
        ConsoleIo.Do(g.V, CONSOLEIO_write, 0xFFFF_FFFF, ServiceGuest.Base);
        ulong done = (ulong)Continuation.Budget * ConsoleIo.Chunk;
        Assert.True(g.V.PendingCall.Pending);
        Assert.Equal((ulong)Xen.__HYPERVISOR_console_io, g.V.PendingCall.Nr);
        Assert.Equal((CONSOLEIO_write, 0xFFFF_FFFFUL - done, ServiceGuest.Base + done), (g.V.PendingCall.A1, g.V.PendingCall.A2, g.V.PendingCall.A3));
        Assert.Equal("(d1) " + new string('x', (int)done), g.ConsoleText);

        // Re-issued: the steps go on until one runs past the mapped pages.
        Continuation.Begin(g.V);
        Assert.Equal(-14, ConsoleIo.Do(g.V, CONSOLEIO_write, g.V.PendingCall.A2, g.V.PendingCall.A3));
        Assert.False(g.V.PendingCall.Pending);
        ulong readable = (ServiceGuest.Pages + 1) * 4096UL - done;              // the read-only page reads too
        Assert.Equal((int)(done + readable / ConsoleIo.Chunk * ConsoleIo.Chunk), g.ConsoleText.Length - "(d1) ".Length);
    }

    [Fact]
    public void Read_is_empty_for_the_initial_domain_and_privileged_otherwise()
    {
        var dom0 = new ServiceGuest(id: 0, initial: true);
        Assert.Equal(0, ConsoleIo.Do(dom0.V, CONSOLEIO_read, 16, ServiceGuest.Base));
        Assert.Equal(-38, ConsoleIo.Do(dom0.V, 7, 0, 0));
        var domU = new ServiceGuest(id: 1);
        Assert.Equal(-1, ConsoleIo.Do(domU.V, CONSOLEIO_read, 16, ServiceGuest.Base));
    }
}

public class ConsoleRingTests
{
    // io/console.h struct xencons_interface: in[1024], out[2048], in_cons, in_prod, out_cons, out_prod.
    private const ulong Out = 1024, OutCons = 3072 + 8, OutProd = 3072 + 12;

    private static (ServiceGuest g, ulong ring) Guest()
    {
        var g = new ServiceGuest(id: 3);
        ulong mfn = g.Tm.NewFrame(3);
        g.D.ConsoleRingMfn = mfn;
        return (g, mfn * 4096);
    }

    private static void Produce(ServiceGuest g, ulong ring, uint prod, string text)
    {
        for (int i = 0; i < text.Length; i++)
            g.Tm.Memory.Write8(ring + Out + ((prod + (uint)i) & 2047), (byte)text[i]);
        g.Tm.Memory.Write32(ring + OutProd, prod + (uint)text.Length);
    }

    [Fact]
    public void Drain_prints_pending_output_with_prefix_and_consumes_it()
    {
        var (g, ring) = Guest();
        Produce(g, ring, 0, "boot\nok");
        ConsoleRing.Drain(g.D);
        Assert.Equal("(d3) boot\n(d3) ok", g.ConsoleText);
        Assert.Equal(7u, g.Tm.Memory.Read32(ring + OutCons));
        ConsoleRing.Drain(g.D);   // nothing new
        Assert.Equal("(d3) boot\n(d3) ok", g.ConsoleText);
    }

    [Fact]
    public void Drain_follows_the_indices_around_the_ring_and_past_2_pow_32()
    {
        var (g, ring) = Guest();
        uint start = 0xFFFF_FFFE;   // indices run freely; 2046 mod 2048 then wrap to 0
        g.Tm.Memory.Write32(ring + OutCons, start);
        Produce(g, ring, start, "wxyz\n");
        ConsoleRing.Drain(g.D);
        Assert.Equal("(d3) wxyz\n", g.ConsoleText);
        Assert.Equal(start + 5, g.Tm.Memory.Read32(ring + OutCons));
    }

    [Fact]
    public void Corrupt_indices_drain_at_most_one_ring_and_resync()
    {
        var (g, ring) = Guest();
        g.Tm.Memory.Write32(ring + OutCons, 0);
        g.Tm.Memory.Write32(ring + OutProd, 0x8000_0000);
        ConsoleRing.Drain(g.D);
        Assert.True(g.Tm.Host.Console.Count <= 2048 + 2048 * 6);   // bytes plus a prefix per line at most
        Assert.Equal(0x8000_0000u, g.Tm.Memory.Read32(ring + OutCons));
    }

    [Fact]
    public void A_ring_frame_the_domain_does_not_own_is_ignored()
    {
        var (g, ring) = Guest();
        Produce(g, ring, 0, "x");
        g.Tm.FrameTable.SetOwner(ring / 4096, 9);
        ConsoleRing.Drain(g.D);
        Assert.Empty(g.Tm.Host.Console);
        Assert.Equal(0u, g.Tm.Memory.Read32(ring + OutCons));
    }
}

public class ConsoleRingNotifyTests
{
    [Fact]
    public void Drain_notifies_the_console_port_only_after_consuming()
    {
        var g = new ServiceGuest(id: 4);
        ulong ring = g.Tm.NewFrame(4);
        g.D.ConsoleRingMfn = ring;
        g.D.SharedInfoMfn = g.Tm.NewFrame(4);
        int port = g.D.EventChannels.BindConsolePort();
        Assert.True(port > 0);
        ulong pendingWord = g.D.SharedInfoMfn * 4096 + SharedInfo.evtchn_pending + (ulong)(port / 64) * 8;

        ConsoleRing.Drain(g.D);   // empty ring: no notification
        Assert.Equal(0UL, g.Tm.Memory.Read64(pendingWord) & (1UL << (port % 64)));

        g.Tm.Memory.Write8(ring * 4096 + 1024, (byte)'z');
        g.Tm.Memory.Write32(ring * 4096 + 3084, 1);   // out_prod
        ConsoleRing.Drain(g.D);
        Assert.NotEqual(0UL, g.Tm.Memory.Read64(pendingWord) & (1UL << (port % 64)));
    }
}
