using System.Linq;
using System.Text;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Xunit;

namespace Microhv.Tests.Hypervisor.Services;

/// <summary>
/// Serial input, as Xen's console.c has it: focus on the initial domain after boot, Ctrl-A three
/// times moves it on (domains by id, then Microhv, then round), the initial domain reads its
/// 128-byte buffer with CONSOLEIO_read after VIRQ_CONSOLE, other domains get in[] of their ring.
/// </summary>
public class ConsoleInputTests
{
    private const ulong CONSOLEIO_read = 1;
    private const ulong InCons = 3072, InProd = 3076;

    private readonly ServiceGuest _dom0 = new(id: 0, initial: true);
    private readonly Domain _domU;
    private readonly ulong _ring;
    private readonly int _virqPort, _ringPort;

    public ConsoleInputTests()
    {
        Tm.Machine.Domains[0].SharedInfoMfn = Tm.NewFrame(FrameTable.OwnerXen);
        _virqPort = _dom0.D.EventChannels.BindVirq((uint)Xen.VIRQ_CONSOLE, 0);
        Assert.True(_virqPort > 0);
        _domU = Tm.AddDomain(3);
        _domU.SharedInfoMfn = Tm.NewFrame(FrameTable.OwnerXen);
        _domU.ConsoleRingMfn = Tm.NewFrame(3);
        _ring = _domU.ConsoleRingMfn * 4096;
        _ringPort = _domU.EventChannels.BindConsolePort();
        Assert.True(_ringPort > 0);
    }

    private TestMachine Tm => _dom0.Tm;
    private ConsoleInput Input => Tm.Machine.ConsoleInput;
    private string Console => Encoding.ASCII.GetString(Tm.Host.Console.ToArray());

    private void Type(string s) { foreach (char c in s) Input.Receive((byte)c); }

    private string ReadDom0(uint count)
    {
        long n = ConsoleIo.Do(_dom0.V, CONSOLEIO_read, count, ServiceGuest.Base);
        Assert.True(n >= 0, $"CONSOLEIO_read returned {n}");
        return _dom0.RString(ServiceGuest.Base, (int)n).Substring(0, (int)n);
    }

    private string RingInput()
    {
        uint cons = Tm.Memory.Read32(_ring + InCons), prod = Tm.Memory.Read32(_ring + InProd);
        var sb = new StringBuilder();
        for (uint i = cons; i != prod; i++) sb.Append((char)Tm.Memory.Read8(_ring + (i & 1023)));
        return sb.ToString();
    }

    private static int Occurrences(string text, string part)
        => Enumerable.Range(0, text.Length).Count(i => string.CompareOrdinal(text, i, part, 0, part.Length) == 0);

    [Fact]
    public void Boot_gives_the_input_to_the_initial_domain_and_says_so()
    {
        Input.FocusInitialDomain();
        Assert.Equal(0, Input.Focus);
        Assert.Equal("*** Serial input to DOM0 (type 'CTRL-a' three times to switch input)\n", Console);
    }

    [Fact]
    public void Initial_domain_reads_what_was_typed_and_gets_VIRQ_CONSOLE()
    {
        Input.FocusInitialDomain();
        _dom0.D.EventChannels.Unmask(_virqPort);
        Type("echo hi\r");
        Assert.True(_dom0.D.EventChannels.IsPending(_virqPort));
        Assert.Equal("echo", ReadDom0(4));           // no more than asked
        Assert.Equal(" hi\r", ReadDom0(64));
        Assert.Equal("", ReadDom0(64));
        Assert.Equal(0u, Input.Buffered);
    }

    [Fact]
    public void Ctrl_a_three_times_cycles_domains_by_id_then_Microhv_then_back()
    {
        Input.FocusInitialDomain();
        Type("\x01\x01\x01");
        Assert.Equal(3, Input.Focus);
        Type("\x01\x01\x01");
        Assert.Equal(ConsoleInput.FocusMicrohv, Input.Focus);
        Type("\x01\x01\x01");
        Assert.Equal(0, Input.Focus);
        Assert.Contains("*** Serial input to DOM3 (type 'CTRL-a' three times to switch input)\n", Console);
        Assert.Contains("*** Serial input to Microhv (type 'CTRL-a' three times to switch input)\n", Console);
        Assert.Equal(0u, Input.Buffered);            // the switch codes are eaten
    }

    [Fact]
    public void One_or_two_ctrl_a_are_ordinary_input()
    {
        Input.FocusInitialDomain();
        Type("\x01" + "x" + "\x01\x01" + "y");
        Assert.Equal(0, Input.Focus);
        Assert.Equal("\x01x\x01\x01y", ReadDom0(64));
    }

    [Fact]
    public void Another_domain_gets_its_input_in_the_ring_and_an_event()
    {
        Input.FocusInitialDomain();
        Type("\x01\x01\x01" + "ls\r");
        Assert.Equal("ls\r", RingInput());
        Assert.True(_domU.EventChannels.IsPending(_ringPort));
        Assert.Equal(0u, Input.Buffered);
    }

    [Fact]
    public void Ring_input_wraps_past_the_index_limit()
    {
        Tm.Memory.Write32(_ring + InCons, 0xFFFF_FFFE);
        Tm.Memory.Write32(_ring + InProd, 0xFFFF_FFFE);
        Input.FocusInitialDomain();
        Type("\x01\x01\x01" + "abcd");
        Assert.Equal(2u, Tm.Memory.Read32(_ring + InProd));
        Assert.Equal("abcd", RingInput());
    }

    [Fact]
    public void A_full_buffer_drops_and_says_so_once_until_read()
    {
        Input.FocusInitialDomain();
        Type(new string('a', ConsoleInput.RxSize + 10));
        Assert.Equal((uint)ConsoleInput.RxSize, Input.Buffered);
        Assert.Equal(10UL, Input.Dropped);
        const string drop = "*** Serial input to DOM0 dropped: its input buffer is full (reported once until it reads)\n";
        Assert.Equal(1, Occurrences(Console, drop));
        Assert.Equal(new string('a', ConsoleInput.RxSize), ReadDom0(1000));
        Type(new string('b', ConsoleInput.RxSize + 1));
        Assert.Equal(2, Occurrences(Console, drop));
    }

    [Fact]
    public void A_ring_whose_guest_scribbled_on_in_cons_takes_nothing_and_nobody_else_suffers()
    {
        Tm.Memory.Write32(_ring + InCons, 0x1234_5678);
        Input.FocusInitialDomain();
        Type("\x01\x01\x01" + "zz");
        Assert.Equal(0u, Tm.Memory.Read32(_ring + InProd));
        Assert.Equal(2UL, Input.Dropped);
        Type("\x01\x01\x01\x01\x01\x01" + "ok");
        Assert.Equal("ok", ReadDom0(8));
    }

    [Fact]
    public void Domains_that_cannot_take_input_are_skipped_and_a_dead_focus_returns_to_Microhv()
    {
        Input.FocusInitialDomain();
        Type("\x01\x01\x01");
        Assert.Equal(3, Input.Focus);
        _domU.State = DomainState.Shutdown;
        Type("h");
        Assert.Equal(ConsoleInput.FocusMicrohv, Input.Focus);
        Assert.Contains("*** Serial input to Microhv (the domain that had it ended)\n", Console);
        Assert.Contains("'h' pressed -> showing installed handlers\n", Console);
        Type("\x01\x01\x01");
        Assert.Equal(0, Input.Focus);
        Type("\x01\x01\x01");
        Assert.Equal(ConsoleInput.FocusMicrohv, Input.Focus);   // DOM3 is gone: straight to Microhv
    }

    [Fact]
    public void Read_with_a_bad_buffer_is_efault_and_a_domU_read_is_eperm()
    {
        Input.FocusInitialDomain();
        Type("abc");
        Assert.Equal(-Errno.EFAULT, ConsoleIo.Do(_dom0.V, CONSOLEIO_read, 3, ServiceGuest.Unmapped));
        Assert.Equal(-Errno.EFAULT, ConsoleIo.Do(_dom0.V, CONSOLEIO_read, 3, ServiceGuest.ReadOnlyPage));
        Assert.Equal("abc", ReadDom0(3));           // nothing was consumed by the faults
        Assert.Equal(-Errno.EPERM, ConsoleIo.Do(_domU.Vcpu, CONSOLEIO_read, 3, ServiceGuest.Base));
    }

    [Fact]
    public void Debug_keys_describe_the_domains_and_unknown_keys_say_so()
    {
        Input.FocusInitialDomain();
        Type("\x01\x01\x01\x01\x01\x01");
        Tm.Host.Console.Clear();
        Type("qrz\r");
        string text = Console;
        Assert.StartsWith("'q' pressed -> dumping domain info\nGeneral information for domain 0: running, initial\n", text);
        Assert.Contains("General information for domain 3: running\n", text);
        Assert.Contains("'r' pressed -> dumping run queues\nCPU[00] running=idle switches=0\n", text);
        Assert.Contains("  runnable: d0v0\n  runnable: d3v0\n", text);
        Assert.EndsWith("'z' pressed -> no such key (type 'h' for help)\n", text);
    }
}
