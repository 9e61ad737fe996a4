using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The processors of the machine: ACPI's MADT as QEMU (SeaBIOS) describes one and four CPUs, with the
/// I/O APIC and the five ISA interrupt source overrides of QEMU's i440fx machine; every application
/// processor started (INIT-SIPI-SIPI), halted when there is no domain, or as many as microhv.maxcpus
/// allows; with domains, every processor takes guests: pvtest passes every check with four, and four
/// domains ballooning at once run on all four processors at the same time, frames passing between them
/// through the pool with every new frame zero and every frame back at the end; hard affinity (cpus= on a
/// module line, xl vcpu-pin in dom0) holds vCPUs to their processors; xl pause stops a busy guest on every processor.
/// </summary>
[Trait("Category", "Qemu")]
public class SmpTests
{
    private readonly ITestOutputHelper _output;

    public SmpTests(ITestOutputHelper output) { _output = output; }

    private const string Exit = "microhv.exit=isa-debug-exit";
    private const string Halted = "smp: no domain to run: the application processors halt";
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(90);

    private static QemuMachine Boot(string iso, int cpus, int memoryMiB = 256, Firmware firmware = Firmware.Bios)
    {
        List<string> args = BootConfig.Args(iso, firmware, memoryMiB: memoryMiB);
        args.Add("-smp"); args.Add(cpus.ToString());
        return QemuMachine.Start(KernelImages.WorkDir, args);
    }

    private static void AssertNoLine(QemuMachine qemu, string prefix)
    {
        var found = qemu.Lines.Where(l => l.StartsWith(prefix, StringComparison.Ordinal)).ToList();
        Assert.True(found.Count == 0, $"unexpected '{prefix}' lines:\n{string.Join("\n", found)}\n{qemu.Describe()}");
    }

    [Fact]
    public void FourCpusAreListedAndStarted()
    {
        using var qemu = Boot(KernelImages.IsoFor($"microhv.log=debug {Exit}"), 4);
        qemu.WaitForLine("acpi: MADT: 4 CPUs (APIC ids 0,1,2,3), IO-APIC 0 at 0xfec00000 GSI 0-23, 5 overrides", Step);
        qemu.WaitForLine("acpi: local APIC at 0xfee00000, 8259 PICs present", Step);
        qemu.WaitForLine("acpi: override bus 0 IRQ 0 -> GSI 2 flags 0x0", Step);
        qemu.WaitForLine("acpi: override bus 0 IRQ 11 -> GSI 11 flags 0xd", Step);
        qemu.WaitForLine("acpi: NMI on LINT1 of processor UID all flags 0x0", Step);
        qemu.WaitForLine("smp: 4 CPUs: APIC 0 (BSP), 1, 2, 3 started", Step);
        qemu.WaitForLine(BootTests.Ready, Step);
        qemu.WaitForLine(Halted, Step);
        // QEMU's own view: every processor left the BIOS and halts in the kernel.
        string cpus = qemu.MonitorCommand("info cpus");
        Assert.Equal(4, Regex.Matches(cpus, @"CPU #\d").Count);
        var gdts = new HashSet<string>();
        for (int cpu = 0; cpu < 4; cpu++)
        {
            var reply = qemu.Qmp("human-monitor-command", new Dictionary<string, object> { ["command-line"] = "info registers", ["cpu-index"] = cpu });
            string regs = reply.GetString();
            gdts.Add(Regex.Match(regs, @"GDT=\s+([0-9a-f]+)").Groups[1].Value);
            if (cpu == 0) continue;
            Assert.Matches(@"RIP=ffff82d0[0-9a-f]{8} ", regs);                   // in the kernel image, not the BIOS
            Assert.Matches(@"HLT=1", regs);
            Assert.Matches(@"TR =e040 ", regs);                                   // its own TSS loaded
            Assert.Matches(@"CR0=8001", regs);                                    // paging and write protection, as on CPU 0
        }
        Assert.Equal(4, gdts.Count);                                              // a GDT of its own each
    }

    [Fact]
    public void MaxCpusLimitsTheProcessorsStarted()
    {
        using var qemu = Boot(KernelImages.IsoFor($"microhv.maxcpus=2 {Exit}"), 4);
        qemu.WaitForLine("smp: 2 CPUs: APIC 0 (BSP), 1 started; 2 more left off by microhv.maxcpus=2", Step);
        qemu.WaitForLine(BootTests.Ready, Step);
        qemu.WaitForLine(Halted, Step);
    }

    [Fact]
    public void ABadMaxCpusIsReportedAndIgnored()
    {
        using var qemu = Boot(KernelImages.IsoFor($"microhv.maxcpus=0 {Exit}"), 2);
        qemu.WaitForLine("cmdline: unknown value in 'microhv.maxcpus=0' ignored", Step);
        qemu.WaitForLine("smp: 2 CPUs: APIC 0 (BSP), 1 started", Step);
        qemu.WaitForLine(BootTests.Ready, Step);
    }

    [Fact]
    public void TwoCpusUnderUefi()
    {
        // OVMF leaves low memory differently from SeaBIOS: the trampoline must still find its page.
        using var qemu = Boot(KernelImages.IsoFor(Exit), 2, firmware: Firmware.Uefi);
        qemu.WaitForLine("acpi: MADT: 2 CPUs (APIC ids 0,1), IO-APIC 0 at 0xfec00000 GSI 0-23, 5 overrides", BootTests.UefiBoot);
        qemu.WaitForLine("smp: 2 CPUs: APIC 0 (BSP), 1 started", BootTests.UefiBoot);
        qemu.WaitForLine(BootTests.Ready, BootTests.UefiBoot);
    }

    [Fact]
    public void OneCpu()
    {
        using var qemu = Boot(KernelImages.IsoFor(Exit), 1);
        qemu.WaitForLine("acpi: MADT: 1 CPU (APIC id 0), IO-APIC 0 at 0xfec00000 GSI 0-23, 5 overrides", Step);
        qemu.WaitForLine("smp: 1 CPU: APIC 0 (BSP)", Step);
        qemu.WaitForLine(BootTests.Ready, Step);
        AssertNoLine(qemu, "smp: no domain");
    }

    [Fact]
    public void PvTestPassesEveryCheckWithFourCpus()
    {
        string guest = XenHypervisor.EnsurePvTest();
        using var qemu = Boot(KernelImages.IsoWithModules($"microhv.log=info {Exit}", (guest, "name=pvtest")), 4, 512);
        qemu.WaitForLine("smp: 4 CPUs: APIC 0 (BSP), 1, 2, 3 started", Step);
        // The application processors join in any order (seen: CPU 3 before CPU 1 and 2), so none is waited for in turn.
        var summary = qemu.WaitForLine(new Regex(@"^pvtest: (\d+) passed, (\d+) failed$"), Step);
        Assert.Equal("0", summary.Groups[2].Value);
        Assert.True(int.Parse(summary.Groups[1].Value) >= 40, qemu.Describe());
        qemu.WaitForLine("summary: domain 0 (pvtest): poweroff, code 0", Step);
        for (int cpu = 1; cpu < 4; cpu++)
            Assert.True(qemu.Lines.Contains($"smp: CPU {cpu} (APIC {cpu}) takes guests"), $"CPU {cpu} took no guests\n" + qemu.Describe());
        Assert.Equal(1, qemu.WaitForExit(Step));
    }

    /// <summary>Four single-vCPU domains on four processors: each balloons (decrease_reservation, then
    /// populate_physmap of 16 frames, every new frame checked zero), so frames freed by a domain on one
    /// processor are handed to a domain on another (the TLB-flush clock's fence); the summary's guest time
    /// per CPU shows all four ran guests, and every frame is free again at the end.</summary>
    [Fact]
    public void FourBallooningDomainsRunOnFourCpusAtOnce()
    {
        const int rounds = 4000;
        string guest = XenHypervisor.EnsurePvTest();
        string words = $"workload=balloon rounds={rounds}";
        var run = TimeSpan.FromMinutes(6);
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, BootConfig.Args(KernelImages.IsoWithModules($"microhv.log=info {Exit}",
            (guest, "name=b0 initial -- " + words), (guest, "name=b1 -- " + words), (guest, "name=b2 -- " + words),
            (guest, "name=b3 -- " + words)), memoryMiB: 512).Concat(new[] { "-smp", "4" }).ToList(), run);
        qemu.WaitForLine("Microhv: powering off (isa-debug-exit)", run);
        var lines = qemu.Lines;
        string log = qemu.Describe(60);
        string done = $"pvtest: workload balloon done, {rounds} rounds, {rounds * 16} new frames zero";
        Assert.True(lines.Contains(done), $"domain 0 did not finish\n{log}");
        for (int d = 1; d < 4; d++) Assert.True(lines.Contains($"(d{d}) " + done), $"domain {d} did not finish\n{log}");
        Assert.DoesNotContain(lines, l => l.Contains("FATAL"));
        Assert.Contains(lines, l => Regex.IsMatch(l, @"^summary: frames: (\d+) free before the domains were built, \1 after the last one ended$"));
        var perCpu = Regex.Match(string.Join("\n", lines), @"summary: guest time per CPU: CPU0 (\d+) ms, CPU1 (\d+) ms, CPU2 (\d+) ms, CPU3 (\d+) ms");
        Assert.True(perCpu.Success, log);
        for (int c = 1; c <= 4; c++) Assert.True(int.Parse(perCpu.Groups[c].Value) > 0, $"CPU {c - 1} ran no guest\n{log}");
        Assert.Equal(1, qemu.WaitForExit(TimeSpan.FromMinutes(1)));
    }
    /// <summary>xl.cfg's cpus= on a module line: two ballooning domains, one held to CPU 2 and one to CPU 3, run
    /// there only (CPUs 0 and 1 run no guest at all), and a list naming no started processor refuses its module.</summary>
    [Fact]
    public void CpusOnAModuleLineHoldsItsVcpusToThoseProcessors()
    {
        const int rounds = 500;
        string guest = XenHypervisor.EnsurePvTest();
        string words = $"workload=balloon rounds={rounds}";
        var run = TimeSpan.FromMinutes(4);
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, BootConfig.Args(KernelImages.IsoWithModules($"microhv.log=info {Exit}",
            (guest, "name=b0 initial cpus=2 -- " + words), (guest, "name=b1 cpus=3 -- " + words), (guest, "name=none cpus=5-7 -- " + words)),
            memoryMiB: 512).Concat(new[] { "-smp", "4" }).ToList(), run);
        qemu.WaitForLine("Microhv: powering off (isa-debug-exit)", run);
        var lines = qemu.Lines;
        string log = qemu.Describe(60);
        Assert.Contains(lines, l => l.StartsWith("domain: module 0 (b0) is domain 0 (initial): ", StringComparison.Ordinal) && l.EndsWith(", on CPUs 2", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("domain: module 1 (b1) is domain 1: ", StringComparison.Ordinal) && l.EndsWith(", on CPUs 3", StringComparison.Ordinal));
        Assert.Contains("domain: module 2: 'cpus=5-7' names no processor that was started", lines);
        Assert.Contains(lines, l => l.StartsWith("domain: module 2 refused: fix its command line", StringComparison.Ordinal));
        string done = $"pvtest: workload balloon done, {rounds} rounds, {rounds * 16} new frames zero";
        Assert.True(lines.Contains(done) && lines.Contains("(d1) " + done), $"a domain did not finish\n{log}");
        var perCpu = Regex.Match(string.Join("\n", lines), @"summary: guest time per CPU: CPU0 (\d+) ms, CPU1 (\d+) ms, CPU2 (\d+) ms, CPU3 (\d+) ms");
        Assert.True(perCpu.Success, log);
        Assert.Equal(("0", "0"), (perCpu.Groups[1].Value, perCpu.Groups[2].Value));
        Assert.True(int.Parse(perCpu.Groups[3].Value) > 0 && int.Parse(perCpu.Groups[4].Value) > 0, $"CPU 2 or 3 ran no guest\n{log}");
        Assert.Equal(1, qemu.WaitForExit(TimeSpan.FromMinutes(1)));
    }

    [Fact]
    public void XlVcpuPinHoldsADom0VcpuToItsProcessor() => XlVcpuPin(Dom0Host.MicrohvWith("xen-toolstack"));

    [Fact]
    public void XlVcpuPinHoldsADom0VcpuToItsProcessorOnXen() => XlVcpuPin(Dom0Host.XenWith("xen-toolstack"));

    /// <summary>xl vcpu-pin (setvcpuaffinity) in dom0 on -smp 4: vCPU 0 pinned to CPU 2 runs there from then on
    /// (xl vcpu-list's CPU column, getvcpuinfo) with '2 / all' as its affinity, a mask naming no processor of
    /// the machine is refused (-EINVAL), and pinning back to all is accepted.</summary>
    private static void XlVcpuPin(Dom0Host host)
    {
        using var dom0 = new ToolstackDom0(host);

        var pin = dom0.Run("xl vcpu-pin 0 0 2; echo rc=$?");
        Assert.True(pin.SequenceEqual(new[] { "rc=0" }), dom0.Fail(pin));
        // Where vCPU 0 is, five times over a second, and its affinity: CPU 2 every time.
        var list = dom0.Run("for i in 1 2 3 4 5; do xl vcpu-list 0 | awk '$3 == 0 { print $4, $(NF-2), $(NF-1), $NF }'; sleep 0.2; done");
        Assert.True(list.Count == 5 && list.All(l => l == "2 2 / all"), dom0.Fail(list));
        var refused = dom0.Run("xl vcpu-pin 0 1 5-7; echo rc=$?");
        Assert.True(refused.Any(l => l.Contains("Invalid argument")) && refused.Last() == "rc=1", dom0.Fail(refused));
        var all = dom0.Run("xl vcpu-pin 0 all all; echo rc=$?; xl vcpu-list 0 | awk '$3 == 0 { print $(NF-2), $(NF-1), $NF }'");
        Assert.True(all.SequenceEqual(new[] { "rc=0", "all / all" }), dom0.Fail(all));
        Assert.Equal(host.PowerOffExitCode, dom0.Session.PowerOff(TimeSpan.FromMinutes(2)));
    }

    [Fact]
    public void XlPauseStopsABusyGuestOnEveryProcessor() => XlPause(Dom0Host.MicrohvWith("xen-toolstack"));

    [Fact]
    public void XlPauseStopsABusyGuestOnEveryProcessorOnXen() => XlPause(Dom0Host.XenWith("xen-toolstack"));

    /// <summary>xl pause / xl unpause (pausedomain, Xen's domain_pause_by_systemcontroller: it returns once no
    /// processor runs a vCPU of the domain) in dom0 on -smp 4, of an xl-created guest whose two vCPUs spin in
    /// user space: three times over, the paused guest is 'p' in xl list and its CPU time stands still for a
    /// second, and xl vcpu-list shows both vCPUs neither running nor blocked; then it runs again and its time grows. On Microhv the
    /// summary counts the pauser's waits for a vCPU to leave another processor (there is one at least).</summary>
    private void XlPause(Dom0Host host)
    {
        using var dom0 = new ToolstackDom0(host);

        var guest = new XlGuestScenario(dom0.Session, _output);
        guest.Run(new[] { ToolstackStep.Toolstack, ToolstackStep.Create, ToolstackStep.Console });
        var busy = guest.InGuestThenDetach("for i in 1 2; do (while :; do :; done) & done; echo spinning-$(nproc)");
        Assert.True(busy.Any(l => l.Trim() == "spinning-2"), dom0.Fail(busy));
        // xl list's State and Time(s) columns for the guest.
        const string State = "xl list guest | awk '$1 == \"guest\" { print $5, $6 }'";
        for (int round = 1; round <= 3; round++)
        {
            var paused = dom0.Run($"xl pause guest; echo rc=$?; {State}; sleep 1; {State}; xl vcpu-list guest | awk '$1 == \"guest\" {{ print $5 }}'");
            _output.WriteLine($"{host.Name}: round {round} paused: {string.Join(" | ", paused)}");
            Assert.True(paused.Count == 5 && paused[0] == "rc=0", dom0.Fail(paused));
            string[] a = paused[1].Split(' '), b = paused[2].Split(' ');
            Assert.True(a[0] == "--p---" && b[0] == "--p---", dom0.Fail(paused));
            Assert.True(a[1] == b[1], $"the paused guest's CPU time went from {a[1]} to {b[1]}\n" + dom0.Fail(paused));
            Assert.True(paused.Skip(3).All(l => l == "---"), dom0.Fail(paused));          // neither running nor blocked
            var running = dom0.Run($"xl unpause guest; echo rc=$?; sleep 1; {State}");
            _output.WriteLine($"{host.Name}: round {round} unpaused: {string.Join(" | ", running)}");
            Assert.True(running.Count == 2 && running[0] == "rc=0", dom0.Fail(running));
            string[] c = running[1].Split(' ');
            Assert.True((c[0] == "r-----" || c[0] == "------") && double.Parse(c[1], System.Globalization.CultureInfo.InvariantCulture)
                > double.Parse(b[1], System.Globalization.CultureInfo.InvariantCulture), dom0.Fail(running));
        }
        var destroyed = dom0.Run("xl destroy guest; echo rc=$?");
        Assert.True(destroyed.Contains("rc=0"), dom0.Fail(destroyed));
        Assert.Equal(host.PowerOffExitCode, dom0.Session.PowerOff(TimeSpan.FromMinutes(2)));
        if (host.Name == "Microhv")
        {
            Match waits = dom0.Session.Qemu.Lines.Select(l => Regex.Match(l, @"TLB-flush IPIs, (\d+) waits for a paused vCPU to leave its processor")).FirstOrDefault(m => m.Success);
            Assert.True(waits != null && int.Parse(waits.Groups[1].Value) > 0, "no wait for a paused vCPU counted\n" + dom0.Session.Qemu.Describe(40));
            _output.WriteLine($"{host.Name}: {waits.Value}");
        }
    }

    /// <summary>Debian's dom0 with Xen's toolstack on -smp 4, booted from a copy of the disk to its shell (the copy
    /// removed at the end), with the shell's output of a command as lines (udhcpc's chatter left out) and a failure
    /// message that ends with the console.</summary>
    private sealed class ToolstackDom0 : IDisposable
    {
        private readonly string _disk;
        public readonly Dom0Session Session;

        public ToolstackDom0(Dom0Host host)
        {
            _disk = Dom0Machine.CopyDisk(KernelImages.WorkDir);
            try
            {
                Session = Dom0Session.Boot(host, _disk, Dom0Scenario.SmpHardTimeout, "-smp", "4");
                Session.Qemu.WaitForLine(Dom0Session.RootMounted, Dom0Scenario.SmpBootTimeout);
                Session.Qemu.WaitForLine("xen-toolstack: control_d", Dom0Scenario.SmpBootTimeout);
                Session.Qemu.WaitForLine(Dom0Session.ShellBanner, Dom0Scenario.SmpBootTimeout);
                Session.Run("dmesg -n 1", Dom0Scenario.CommandTimeout);
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        public List<string> Run(string command) => Session.Run(command, Dom0Scenario.CommandTimeout)
            .Where(l => !l.StartsWith("udhcpc: ", StringComparison.Ordinal)).Select(l => l.TrimEnd()).ToList();

        public string Fail(IEnumerable<string> lines) => string.Join("\n", lines) + "\n" + Session.Qemu.Describe(40);

        public void Dispose()
        {
            Session?.Dispose();
            try { Directory.Delete(Path.GetDirectoryName(_disk)!, recursive: true); } catch (IOException) { }
        }
    }
}
