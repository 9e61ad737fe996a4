using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Microhv.Tests.Qemu;

/// <summary>
/// Xen's own toolstack in the hardware dom0 (issue 12): with `xen-toolstack` on its command
/// line dom0 starts Debian's xen-utils-4.17 (xenfs, oxenstored, xen-init-dom0, xenconsoled); then `xl info`
/// prints the machine as the hypervisor reports it (sysctl physinfo, xen_version, sched_id, cpupool),
/// `xl list` shows Domain-0 with its memory (sysctl getdomaininfolist plus the name xen-init-dom0 wrote into
/// xenstore), and xenstore answers a write and a read. Then the rest of the issue's scenario
/// (<see cref="XlGuestScenario"/>): `xl create` of a Debian Linux guest with a disk and a vif, its console, disk
/// and network, `xl shutdown`, the disk read back in dom0, free memory back, create/destroy cycles. One boot per
/// hypervisor; Xen 4.17 is the reference and passes every step; Microhv's test runs <see cref="MicrohvSteps"/>
/// and lists the others as not run yet.
/// </summary>
[Trait("Category", "Qemu")]
public class Dom0ToolstackTests
{
    private readonly ITestOutputHelper _output;

    public Dom0ToolstackTests(ITestOutputHelper output) => _output = output;

    /// <summary>
    /// The steps Microhv passes today. As the hypervisor learns more, add them (with the steps they need,
    /// <see cref="XlGuestScenario.Needs"/>). For a trial run without editing, MICROHV_TOOLSTACK_STEPS in the
    /// environment replaces the list: step names separated by commas (Toolstack is always run), or `all`.
    /// </summary>
    public static readonly ToolstackStep[] MicrohvSteps = Enum.GetValues<ToolstackStep>();

    [Fact]
    public void Xen_dom0_runs_the_toolstack_and_an_xl_created_guest() => Run(Dom0Host.XenWith("xen-toolstack"), Enum.GetValues<ToolstackStep>(), _output);

    [Fact]
    public void Microhv_dom0_runs_the_toolstack_and_an_xl_created_guest() => Run(Dom0Host.MicrohvWith("xen-toolstack"), MicrohvStepsToRun(), _output);

    private static ToolstackStep[] MicrohvStepsToRun()
    {
        string env = Environment.GetEnvironmentVariable("MICROHV_TOOLSTACK_STEPS");
        if (string.IsNullOrWhiteSpace(env)) return MicrohvSteps;
        if (env.Trim() == "all") return Enum.GetValues<ToolstackStep>();
        return env.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(n => Enum.Parse<ToolstackStep>(n, ignoreCase: true)).Append(ToolstackStep.Toolstack).Distinct().ToArray();
    }

    /// <summary>One dom0 boot for every step: under TCG on a loaded machine the whole scenario takes 4-8 minutes.</summary>
    public static readonly TimeSpan HardTimeout = TimeSpan.FromMinutes(12);

    /// <summary>QEMU's memory (Dom0Machine.Devices: -m 2048) and dom0's (512 MiB on both hypervisors).</summary>
    private const int MachineMiB = 2048, Dom0MiB = 512;

    private static void Run(Dom0Host host, ToolstackStep[] steps, ITestOutputHelper output)
    {
        XlGuestScenario.Validate(steps);
        string disk = Dom0Machine.CopyDisk(KernelImages.WorkDir);
        try
        {
            using var dom0 = Dom0Session.Boot(host, disk, HardTimeout);
            // rcS starts the toolstack after the root is mounted and before the shell, and says what
            // /proc/xen/capabilities holds (the lines come in this order; WaitForLine reads on from the last match).
            dom0.Qemu.WaitForLine(Dom0Session.RootMounted, Dom0Scenario.BootTimeout);
            dom0.Qemu.WaitForLine("xen-toolstack: control_d", Dom0Scenario.BootTimeout);
            dom0.Qemu.WaitForLine(Dom0Session.ShellBanner, Dom0Scenario.BootTimeout);
            output.WriteLine($"{host.Name}: toolstack started, dom0 shell after {dom0.Clock.Elapsed.TotalSeconds:0.0} s");
            dom0.Run("dmesg -n 1", Dom0Scenario.CommandTimeout);
            // rcS's DHCP hook writes its lease line to the console whenever the lease comes, which may be
            // in the middle of a command's output: leave it out.
            List<string> Run(string command) => dom0.Run(command, Dom0Scenario.CommandTimeout)
                .Where(l => !l.StartsWith("udhcpc: ", StringComparison.Ordinal)).ToList();

            var infoLines = Run("xl info");
            foreach (string l in infoLines) output.WriteLine($"{host.Name}: {l}");
            var info = new Dictionary<string, string>();
            foreach (string l in infoLines)
            {
                Match m = Regex.Match(l, @"^(\w+)\s+: ?(.*)$");
                if (m.Success) info[m.Groups[1].Value] = m.Groups[2].Value.Trim();
            }
            string Field(string name)
            {
                Assert.True(info.ContainsKey(name), $"xl info has no {name}:\n" + string.Join("\n", infoLines) + "\n" + dom0.Qemu.Describe());
                return info[name];
            }
            Assert.Equal("4", Field("xen_major"));
            Assert.Equal("17", Field("xen_minor"));
            Assert.True(int.Parse(Field("nr_cpus")) >= 1, "nr_cpus: " + Field("nr_cpus"));
            Assert.Equal(int.Parse(Field("nr_cpus")) - 1, int.Parse(Field("max_cpu_id")));
            Assert.Equal("1", Field("nr_nodes"));
            Assert.True(double.Parse(Field("cpu_mhz"), System.Globalization.CultureInfo.InvariantCulture) > 100, "cpu_mhz: " + Field("cpu_mhz"));
            Assert.Contains("pv", Field("virt_caps").Split(' '));
            Assert.Contains("gnttab-v1", Field("virt_caps").Split(' '));
            int total = int.Parse(Field("total_memory")), free = int.Parse(Field("free_memory"));
            Assert.InRange(total, MachineMiB - 64, MachineMiB);
            // Dom0 holds its 512 MiB; the rest, less what the hypervisor keeps, is free.
            Assert.InRange(free, MachineMiB - Dom0MiB - 400, total - Dom0MiB);
            Assert.Equal("0", Field("free_cpus"));
            Assert.Matches(@"^(credit|credit2)$", Field("xen_scheduler"));
            Assert.Equal("4096", Field("xen_pagesize"));
            Assert.StartsWith("xen-3.0-x86_64", Field("xen_caps"));

            var list = Run("xl list");
            foreach (string l in list) output.WriteLine($"{host.Name}: {l}");
            Assert.True(list.Count >= 2 && Regex.IsMatch(list[0], @"^Name\s+ID\s+Mem\s+VCPUs\s+State\s+Time\(s\)"),
                "xl list has no header:\n" + string.Join("\n", list) + "\n" + dom0.Qemu.Describe());
            Match d0 = Regex.Match(list[1], @"^Domain-0\s+0\s+(\d+)\s+1\s+r-----\s+(\d+\.\d)$");
            Assert.True(d0.Success, "xl list does not show Domain-0 running with one vCPU:\n" + string.Join("\n", list) + "\n" + dom0.Qemu.Describe());
            Assert.InRange(int.Parse(d0.Groups[1].Value), Dom0MiB - 16, Dom0MiB);
            Assert.Equal(2, list.Count);

            var store = Run("xenstore-read /local/domain/0/name; xenstore-write /tool/microhv-test ok-42 && xenstore-read /tool/microhv-test");
            Assert.Equal(new[] { "Domain-0", "ok-42" }, store.Select(l => l.TrimEnd()).ToArray());
            output.WriteLine($"{host.Name}: step {ToolstackStep.Toolstack} passed");

            var guest = new XlGuestScenario(dom0, output);
            guest.Run(steps);
            var notRun = Enum.GetValues<ToolstackStep>().Where(s => !steps.Contains(s)).ToList();
            if (notRun.Count > 0)
                output.WriteLine($"{host.Name}: steps not run (not done on {host.Name} yet): {string.Join(", ", notRun)}");
            if (guest.GuestLeftRunning)
            {
                // The steps that end the guest were not run: dom0's poweroff would not end the machine on every
                // hypervisor, so QEMU is stopped instead.
                output.WriteLine($"{host.Name}: a guest is still running; QEMU stopped without dom0's poweroff");
                return;
            }

            int status = dom0.PowerOff(Dom0Scenario.CommandTimeout);
            output.WriteLine($"{host.Name}: powered off after {dom0.Clock.Elapsed.TotalSeconds:0.0} s, QEMU status {status}");
            Assert.Equal(host.PowerOffExitCode, status);
        }
        finally
        {
            try { Directory.Delete(Path.GetDirectoryName(disk)!, recursive: true); } catch (IOException) { }
        }
    }
}
