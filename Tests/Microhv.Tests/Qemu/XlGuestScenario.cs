using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The steps of issue 12's scenario, in the order they run. A hypervisor's test names the steps it must pass
/// (<see cref="Dom0ToolstackTests"/>), each with the steps it needs (<see cref="XlGuestScenario.Needs"/>); the
/// others are not run and the test output lists them.
/// </summary>
public enum ToolstackStep
{
    /// <summary>The toolstack runs in dom0: `xl info`, `xl list`, xenstore.</summary>
    Toolstack,
    /// <summary>`xl create /root/guest.cfg` returns success; `xl list guest` shows the guest.</summary>
    Create,
    /// <summary>`xl console guest` shows the guest's /init line and a shell that answers a command.</summary>
    Console,
    /// <summary>The guest mounted its xvda (blkfront over dom0's blkback and a loop device) and writes a token to it.</summary>
    Disk,
    /// <summary>The guest and dom0 ping each other over xenbr0 (netfront, netback).</summary>
    Network,
    /// <summary>16 MiB each way between dom0 and the guest over TCP, the checksum compared on both sides.</summary>
    Transfer,
    /// <summary>`xl shutdown -w guest`, then the guest is gone from `xl list`.</summary>
    Shutdown,
    /// <summary>Dom0 mounts the guest's disk image and reads the guest's token.</summary>
    DiskReadBack,
    /// <summary>`xl info`'s free_memory is back where it was before the create.</summary>
    FreeMemory,
    /// <summary>Two create/destroy cycles of the guest without devices (`xl destroy`), free_memory back after each.</summary>
    Cycles,
}

/// <summary>
/// `xl create` of a Debian Linux PV guest from the dom0 image (make-rootfs.sh, rootfs-domu.sh: /root/guest.cfg),
/// driven through dom0's serial console as a user would: create, console, disk, network, shutdown, destroy.
/// Each step really checks what it names; <see cref="Run"/> runs the steps the caller asks for, in order.
/// </summary>
public sealed class XlGuestScenario
{
    public static readonly TimeSpan CreateTimeout = TimeSpan.FromSeconds(180);
    public static readonly TimeSpan GuestBootTimeout = TimeSpan.FromSeconds(180);
    public static readonly TimeSpan TransferTimeout = TimeSpan.FromSeconds(240);
    private static readonly TimeSpan CommandTimeout = Dom0Scenario.CommandTimeout;

    /// <summary>The line the guest's /init prints once its front-end drivers are loaded.</summary>
    public static readonly Regex GuestInitLine = new(@"^domu-init: up, kernel (\S+), (\d+) CPU\(s\), (\d+) kB\s*$");
    private const string GuestToken = "/mnt/guest-token", DeviceLessOverrides = "'disk=[]' 'vif=[]'";
    private const int TransferMiB = 16;

    private readonly Dom0Session _dom0;
    private readonly ITestOutputHelper _output;
    private readonly string _name;
    private readonly string _token = Guid.NewGuid().ToString("N");
    private int _freeBefore = -1, _probes;
    private bool _attached;
    private readonly Stopwatch _sinceCreate = new();
    private IReadOnlyCollection<ToolstackStep> _selected = Array.Empty<ToolstackStep>();

    /// <summary>xl's overrides for the devices no selected step uses: a run without the Disk step creates the
    /// guest without its disk, one without Network without its vif (the steps that need them are not run).</summary>
    private string UnusedDeviceOverrides()
        => ((_selected.Contains(ToolstackStep.Disk) ? "" : " 'disk=[]'") + (_selected.Contains(ToolstackStep.Network) ? "" : " 'vif=[]'")).TrimStart();

    /// <summary>True while a guest made by this scenario may still exist.</summary>
    public bool GuestLeftRunning { get; private set; }

    public XlGuestScenario(Dom0Session dom0, ITestOutputHelper output)
    {
        _dom0 = dom0;
        _output = output;
        _name = dom0.Host.Name;
    }

    /// <summary>The steps <paramref name="step"/> works on the results of: a test that runs it runs them too.</summary>
    public static ToolstackStep[] Needs(ToolstackStep step) => step switch
    {
        ToolstackStep.Create => new[] { ToolstackStep.Toolstack },
        ToolstackStep.Console => new[] { ToolstackStep.Create },
        ToolstackStep.Disk => new[] { ToolstackStep.Console },
        ToolstackStep.Network => new[] { ToolstackStep.Console },
        ToolstackStep.Transfer => new[] { ToolstackStep.Network },
        ToolstackStep.Shutdown => new[] { ToolstackStep.Create },
        ToolstackStep.DiskReadBack => new[] { ToolstackStep.Disk, ToolstackStep.Shutdown },
        ToolstackStep.FreeMemory => new[] { ToolstackStep.Shutdown },
        ToolstackStep.Cycles => new[] { ToolstackStep.Toolstack },
        _ => Array.Empty<ToolstackStep>(),
    };

    /// <summary>Fails unless every step in <paramref name="steps"/> has what it needs (and the cycles' guest name is free).</summary>
    public static void Validate(IReadOnlyCollection<ToolstackStep> steps)
    {
        foreach (ToolstackStep s in steps)
            foreach (ToolstackStep need in Needs(s))
                if (!steps.Contains(need)) throw new ArgumentException($"toolstack step {s} needs step {need}");
        if (steps.Contains(ToolstackStep.Cycles) && steps.Contains(ToolstackStep.Create) && !steps.Contains(ToolstackStep.Shutdown))
            throw new ArgumentException("toolstack step Cycles after Create needs step Shutdown (the first guest must be gone)");
    }

    /// <summary>Runs the steps in <paramref name="selected"/> after <see cref="ToolstackStep.Toolstack"/>, in order.</summary>
    public void Run(IReadOnlyCollection<ToolstackStep> selected)
    {
        Validate(selected);
        _selected = selected;
        var steps = new (ToolstackStep Step, Action Body)[]
        {
            (ToolstackStep.Create, Create), (ToolstackStep.Console, Console), (ToolstackStep.Disk, Disk),
            (ToolstackStep.Network, Network), (ToolstackStep.Transfer, Transfer), (ToolstackStep.Shutdown, Shutdown),
            (ToolstackStep.DiskReadBack, DiskReadBack), (ToolstackStep.FreeMemory, FreeMemoryBack), (ToolstackStep.Cycles, Cycles),
        };
        foreach (var (step, body) in steps.Where(s => selected.Contains(s.Step)))
        {
            var clock = Stopwatch.StartNew();
            body();
            _output.WriteLine($"{_name}: step {step} passed ({clock.Elapsed.TotalSeconds:0.0} s)");
        }
    }

    /// <summary>dom0's shell command, without the DHCP hook's lease lines (they may come at any time).</summary>
    private List<string> Dom0(string command, TimeSpan? timeout = null)
        => _dom0.Run(command, timeout ?? CommandTimeout).Where(l => !l.StartsWith("udhcpc: ", StringComparison.Ordinal)).ToList();

    /// <summary>A command in the guest's shell, through `xl console` (the same markers as in dom0).</summary>
    private List<string> Guest(string command, TimeSpan? timeout = null) => _dom0.Run(command, timeout ?? CommandTimeout).ToList();

    private string Fail(string what, IEnumerable<string> lines) => $"{_name}: {what}:\n" + string.Join("\n", lines) + "\n" + _dom0.Qemu.Describe();

    private int FreeMemory()
    {
        var lines = Dom0("xl info | grep '^free_memory'");
        Match m = lines.Select(l => Regex.Match(l, @"^free_memory\s+:\s+(\d+)\s*$")).FirstOrDefault(x => x.Success);
        Assert.True(m != null, Fail("xl info printed no free_memory", lines));
        return int.Parse(m.Groups[1].Value);
    }

    private void Create()
    {
        _freeBefore = FreeMemory();
        _output.WriteLine($"{_name}: free_memory before xl create: {_freeBefore} MiB");
        var clock = Stopwatch.StartNew();
        _sinceCreate.Restart();
        GuestLeftRunning = true;
        string overrides = UnusedDeviceOverrides();
        if (overrides.Length != 0) _output.WriteLine($"{_name}: the guest is created without the devices no selected step uses: {overrides}");
        // Two vCPUs (guest.cfg says 1): the guest brings the second one up with VCPUOP_initialise and VCPUOP_up.
        string command = ($"xl create /root/guest.cfg vcpus={GuestVcpus} " + overrides).TrimEnd();
        var created = Dom0(command + " && echo xl-create-ok", CreateTimeout);
        foreach (string l in created) _output.WriteLine($"{_name}: {l}");
        Assert.True(created.Any(l => Dom0Session.Line("xl-create-ok").IsMatch(l)), Fail(command + " failed", created));
        _output.WriteLine($"{_name}: xl create took {clock.Elapsed.TotalSeconds:0.0} s");
        AssertListed(128);
    }

    /// <summary>The guest's vCPUs (xl create's override of guest.cfg's vcpus = 1).</summary>
    public const int GuestVcpus = 2;

    /// <summary>`xl list guest` shows the guest with its online vCPUs (vCPU 0 until the guest brings up the others) and about <paramref name="mib"/> MiB, running or blocked
    /// (not paused, shut down, crashed or dying).</summary>
    private void AssertListed(int mib)
    {
        var list = Dom0("xl list guest");
        foreach (string l in list) _output.WriteLine($"{_name}: {l}");
        Match m = list.Select(l => Regex.Match(l, @"^guest\s+(\d+)\s+(\d+)\s+[1-" + GuestVcpus + @"]\s+[r-][b-]----\s+\d+\.\d\s*$")).FirstOrDefault(x => x.Success);
        Assert.True(m != null, Fail("xl list guest does not show the guest", list));
        Assert.True(int.Parse(m.Groups[1].Value) > 0, Fail("the guest has domain id 0", list));
        Assert.InRange(int.Parse(m.Groups[2].Value), mib - 2, mib + 2);
    }

    private void Console()
    {
        var clock = Stopwatch.StartNew();
        _dom0.Qemu.Type("xl console guest\r");
        // The guest's console output waits in xenconsoled until a client attaches, so the line is there
        // however fast the guest booted.
        _attached = true;
        Match init = _dom0.Qemu.WaitForLine(GuestInitLine, GuestBootTimeout);
        _output.WriteLine($"{_name}: {init.Value.TrimEnd()}");
        Assert.Equal(GuestVcpus.ToString(), init.Groups[2].Value);
        Assert.InRange(int.Parse(init.Groups[3].Value), 64 * 1024, 128 * 1024);
        _dom0.Qemu.WaitForLine(Dom0Session.ShellBanner, GuestBootTimeout);
        _dom0.Qemu.Type("echo domu-$((6*7))\r");
        _dom0.Qemu.WaitForLine(Dom0Session.Line("domu-42"), CommandTimeout);
        _output.WriteLine($"{_name}: xl console -> the guest's shell answered domu-42 after {clock.Elapsed.TotalSeconds:0.0} s " +
            $"(xl create -> the guest's shell: {_sinceCreate.Elapsed.TotalSeconds:0.0} s)");
        Guest("dmesg -n 1");
        var host = Guest("hostname; uname -r");
        Assert.True(host.Count == 2 && host[0].Trim() == "guest", Fail("the console is not the guest's shell", host));
    }

    private void Disk()
    {
        var mounts = Guest("grep ' /mnt ' /proc/mounts");
        Assert.True(mounts.Any(l => l.StartsWith("/dev/xvda /mnt ext4 rw", StringComparison.Ordinal)), Fail("the guest has not mounted /dev/xvda on /mnt", mounts));
        var written = Guest($"echo {_token} > {GuestToken} && sync && cat {GuestToken}");
        Assert.True(written.Any(l => l.Trim() == _token), Fail($"the guest could not write {GuestToken}", written));
        _output.WriteLine($"{_name}: the guest wrote {_token} to {GuestToken} on its xvda");
    }

    private void Network()
    {
        var addr = Guest("ip -4 -o addr show dev eth0");
        Assert.True(addr.Any(l => l.Contains("inet 10.0.0.2/24")), Fail("the guest's eth0 has no 10.0.0.2/24", addr));
        AssertPing(Guest("ping -c 3 -W 2 10.0.0.1", TimeSpan.FromSeconds(90)), "the guest -> dom0 (10.0.0.1)");
        Detach();
        AssertPing(Dom0("ping -c 3 -W 2 10.0.0.2", TimeSpan.FromSeconds(90)), "dom0 -> the guest (10.0.0.2)");
        Attach();
    }

    private void AssertPing(List<string> lines, string what)
    {
        string summary = lines.FirstOrDefault(l => l.Contains("packets transmitted"));
        _output.WriteLine($"{_name}: ping {what}: {summary?.Trim()}");
        Match m = summary == null ? Match.Empty : Regex.Match(summary, @"(\d+) packets received");
        Assert.True(m.Success && int.Parse(m.Groups[1].Value) >= 1, Fail($"ping {what} got no answer", lines));
    }

    /// <summary>
    /// 16 MiB of random data each way, over TCP with busybox nc; md5sum on the sender and the receiver. The
    /// listener's input is a pipe that stays silent: at an end of its input nc would half-close the connection,
    /// and the sender, seeing that, would stop sending. The receiver keeps what it got in /tmp/rx and sums it in
    /// the foreground once its nc has ended (/tmp/rx.done), so a sum the console garbled is computed again from
    /// the data, not read again from a file that kept the garbled line (on Xen 4.17 a background md5sum's
    /// /tmp/rx.md5 once read `ÿ  -` three times in a row).
    /// </summary>
    private void Transfer()
    {
        string size = $"bs=1M count={TransferMiB}";
        // dom0 -> the guest: the guest listens (in its shell's background), dom0 sends.
        Guest(Listen(5000));
        Detach();
        string sent = Md5(Dom0($"dd if=/dev/urandom of=/tmp/tx {size} 2>/dev/null; md5sum /tmp/tx"), "dom0's /tmp/tx", () => Dom0("md5sum /tmp/tx"));
        var clock = Stopwatch.StartNew();
        var send = Dom0(Send("10.0.0.2", 5000), TransferTimeout);
        Assert.True(send.Any(l => l.Trim().StartsWith("nc-done")), Fail("dom0's nc to the guest did not end", send));
        double toGuest = clock.Elapsed.TotalSeconds;
        Attach();
        string received = Md5(Guest(SumReceived, TransferTimeout), "the guest's received data", () => Guest("md5sum /tmp/rx"));
        Guest("rm -f /tmp/rx");
        _output.WriteLine($"{_name}: dom0 -> guest {TransferMiB} MiB in {toGuest:0.0} s ({Tries(send)}): sent md5 {sent}, received md5 {received}");
        Assert.True(sent == received, Fail($"the guest received md5 {received}, dom0 sent {sent} (dom0's nc: {string.Join(" | ", send)})", new string[0]));

        // The guest -> dom0: dom0 listens, the guest sends.
        Detach();
        Dom0(Listen(5001));
        Attach();
        string guestSent = Md5(Guest($"dd if=/dev/urandom of=/tmp/tx {size} 2>/dev/null; md5sum /tmp/tx"), "the guest's /tmp/tx", () => Guest("md5sum /tmp/tx"));
        clock.Restart();
        var guestSend = Guest(Send("10.0.0.1", 5001) + "; rm -f /tmp/tx", TransferTimeout);
        Assert.True(guestSend.Any(l => l.Trim().StartsWith("nc-done")), Fail("the guest's nc to dom0 did not end", guestSend));
        double fromGuest = clock.Elapsed.TotalSeconds;
        Detach();
        string dom0Received = Md5(Dom0(SumReceived, TransferTimeout), "dom0's received data", () => Dom0("md5sum /tmp/rx"));
        Dom0("rm -f /tmp/tx /tmp/rx");
        _output.WriteLine($"{_name}: guest -> dom0 {TransferMiB} MiB in {fromGuest:0.0} s ({Tries(guestSend)}): sent md5 {guestSent}, received md5 {dom0Received}");
        Assert.True(guestSent == dom0Received, Fail($"dom0 received md5 {dom0Received}, the guest sent {guestSent} (the guest's nc: {string.Join(" | ", guestSend)})", new string[0]));
        Attach();
    }

    /// <summary>Sends /tmp/tx to <paramref name="host"/>:<paramref name="port"/>, trying again (5 tries, 1 s apart) while nc
    /// fails: the listener was started in the other shell's background just before, and on a loaded host it may not
    /// be listening yet (a refused connect sends nothing: the receiver then sums an empty file). `nc-done N` says how
    /// many tries it took; a transfer cut short still fails on the sums, since the listener takes one connection.</summary>
    private static string Send(string host, int port)
        => $"n=1; until nc {host} {port} < /tmp/tx; do [ $n -ge 5 ] && break; n=$((n+1)); sleep 1; done; echo nc-done $n";

    /// <summary>What <see cref="Send"/> printed about its tries.</summary>
    private static string Tries(IEnumerable<string> lines)
        => lines.Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("nc-done")) is string d ? "nc tries: " + d.Substring("nc-done".Length).Trim() : "nc tries: ?";

    /// <summary>Listens on <paramref name="port"/> in the shell's background: what arrives goes to /tmp/rx, and
    /// /tmp/rx.done appears once nc has ended (the brace group ends then; the silent `sleep` keeps running).</summary>
    private static string Listen(int port)
        => $"rm -f /tmp/rx /tmp/rx.done; (sleep 600 | {{ nc -l -p {port} > /tmp/rx; touch /tmp/rx.done; }}) & echo listening";

    /// <summary>Waits (up to 60 s) for the listener to end, then sums what it received.</summary>
    private const string SumReceived = "i=0; while [ ! -e /tmp/rx.done ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done; md5sum /tmp/rx";

    /// <summary>The md5sum in <paramref name="lines"/>. A line the serial console garbled (seen on Xen 4.17's hvc0 under
    /// load: `6¿W[  -`, `ÿ  -` where the 32 digits were) is read again with <paramref name="reread"/>, twice at most,
    /// and said so; the sums are still compared, so a wrong sum still fails.</summary>
    private string Md5(List<string> lines, string what, Func<List<string>> reread)
    {
        for (int attempt = 0; ; attempt++)
        {
            Match m = lines.Select(l => Regex.Match(l, @"^([0-9a-f]{32})\s")).FirstOrDefault(x => x.Success);
            if (m != null) return m.Groups[1].Value;
            Assert.True(attempt < 2, Fail($"no md5sum of {what}", lines));
            _output.WriteLine($"{_name}: the md5sum of {what} came out unreadable ({string.Join(" | ", lines)}): reading it again");
            lines = reread();
        }
    }

    private void Shutdown()
    {
        if (_attached) Detach();
        var clock = Stopwatch.StartNew();
        var shut = Dom0("xl shutdown -w guest && echo xl-shutdown-ok", GuestBootTimeout);
        Assert.True(shut.Any(l => l.Trim() == "xl-shutdown-ok"), Fail("xl shutdown -w guest failed", shut));
        double shutdown = clock.Elapsed.TotalSeconds;
        WaitUntilGone();
        _output.WriteLine($"{_name}: xl shutdown -w took {shutdown:0.0} s; the guest left xl list after {clock.Elapsed.TotalSeconds:0.0} s");
    }

    /// <summary>Waits (up to 60 s) until `xl list guest` fails: the domain is destroyed, not only shut down.</summary>
    private void WaitUntilGone()
    {
        var gone = Dom0("i=0; while xl list guest >/dev/null 2>&1 && [ $i -lt 120 ]; do sleep 0.5; i=$((i+1)); done; " +
                        "xl list guest >/dev/null 2>&1 && echo guest-still-listed || echo guest-gone", TimeSpan.FromSeconds(120));
        Assert.True(gone.Any(l => l.Trim() == "guest-gone"), Fail("the guest is still in xl list 60 s later", gone));
        GuestLeftRunning = false;
    }

    private void DiskReadBack()
    {
        var read = Dom0($"mkdir -p /mnt/guest && mount -o loop,ro /root/guest.img /mnt/guest && cat /mnt/guest/{GuestToken.Substring(5)}; umount /mnt/guest");
        Assert.True(read.Any(l => l.Trim() == _token), Fail($"dom0 does not read the guest's token {_token} from /root/guest.img", read));
        _output.WriteLine($"{_name}: dom0 read the guest's token back from /root/guest.img");
    }

    private void FreeMemoryBack() => AssertFreeMemoryBack("after the guest");

    /// <summary>free_memory comes back to its value before the first create within 20 s (Xen frees a dying domain's memory late).</summary>
    private void AssertFreeMemoryBack(string when)
    {
        int free = FreeMemory();
        for (int i = 0; i < 10 && free != _freeBefore; i++)
        {
            System.Threading.Thread.Sleep(2000);
            free = FreeMemory();
        }
        _output.WriteLine($"{_name}: free_memory {when}: {free} MiB (before the first create: {_freeBefore} MiB)");
        Assert.True(free == _freeBefore, $"{_name}: free_memory {when} is {free} MiB, before the first create it was {_freeBefore} MiB\n" + _dom0.Qemu.Describe());
    }

    private void Cycles()
    {
        if (_freeBefore < 0)
        {
            _freeBefore = FreeMemory();
            _output.WriteLine($"{_name}: free_memory before the first create: {_freeBefore} MiB");
        }
        for (int cycle = 1; cycle <= 2; cycle++)
        {
            GuestLeftRunning = true;
            var clock = Stopwatch.StartNew();
            var created = Dom0($"xl create /root/guest.cfg {DeviceLessOverrides} && echo xl-create-ok", CreateTimeout);
            Assert.True(created.Any(l => l.Trim() == "xl-create-ok"), Fail($"cycle {cycle}: xl create without devices failed", created));
            double create = clock.Elapsed.TotalSeconds;
            AssertListed(128);
            clock.Restart();
            var destroyed = Dom0("xl destroy guest && echo xl-destroy-ok", GuestBootTimeout);
            Assert.True(destroyed.Any(l => l.Trim() == "xl-destroy-ok"), Fail($"cycle {cycle}: xl destroy guest failed", destroyed));
            double destroy = clock.Elapsed.TotalSeconds;
            WaitUntilGone();
            _output.WriteLine($"{_name}: cycle {cycle}: xl create (no devices) {create:0.0} s, xl destroy {destroy:0.0} s, gone after {clock.Elapsed.TotalSeconds:0.0} s");
            AssertFreeMemoryBack($"after cycle {cycle}");
        }
    }

    /// <summary>A command in the guest's shell (the Console step left `xl console` attached), then Ctrl-] back to dom0's shell.</summary>
    public List<string> InGuestThenDetach(string command)
    {
        var lines = Guest(command);
        Detach();
        return lines;
    }

    /// <summary>Ctrl-] ends `xl console`; then dom0's shell answers again.</summary>
    private void Detach()
    {
        _dom0.Qemu.Type("\x1d");
        _attached = false;
        System.Threading.Thread.Sleep(1000);
        Probe("dom0");
    }

    /// <summary>`xl console guest` again; then the guest's shell answers.</summary>
    private void Attach()
    {
        _dom0.Qemu.Type("xl console guest\r");
        _attached = true;
        System.Threading.Thread.Sleep(1000);
        Probe("guest");
    }

    /// <summary>
    /// Types `echo probe-N-$(hostname)` until the shell of <paramref name="host"/> answers (up to 60 s): xl console
    /// sets up its terminal after it starts and the typed input before that may be flushed, so one try is not enough
    /// (a try cut in two by such a flush is a wrong command that ends with the next try's line).
    /// </summary>
    private void Probe(string host)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            int n = ++_probes;
            _dom0.Qemu.Type($"echo probe-{n}-$(hostname)\r");
            try
            {
                Match m = _dom0.Qemu.WaitForLine(new Regex($@"^probe-{n}-(dom0|guest)(\[ *[0-9]+\.[0-9]+\] .*)?\s*$"), TimeSpan.FromSeconds(5));
                if (m.Groups[1].Value == host) return;
                // The other shell answered. Leaving: xenconsole detaches only when one read returns Ctrl-] alone, so
                // the keystroke can be taken as part of a longer read and reach the guest; type it again.
                if (host == "dom0") _dom0.Qemu.Type("\x1d");
            }
            catch (QemuTestException) when (!_dom0.Qemu.HasExited && deadline.Elapsed < TimeSpan.FromSeconds(60)) { }
            if (deadline.Elapsed >= TimeSpan.FromSeconds(60))
                Assert.Fail($"{_name}: the {host}'s shell did not answer within 60 s\n" + _dom0.Qemu.Describe());
        }
    }
}
