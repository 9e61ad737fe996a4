using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The hardware-dom0 scenario, for any <see cref="Dom0Host"/>: Debian's Linux 6.1 boots as dom0 from the
/// AHCI disk built by make-rootfs.sh and is used as an ordinary machine through its serial console.
/// First boot: the shell answers what is typed, lspci shows the AHCI controller and the e1000 bound to
/// Linux's drivers, /dev/sda1 is the root filesystem, eth0 has QEMU's DHCP address, the disk's and the
/// NIC's interrupt counts grow under load, the screen is dom0's (tty1's shell prompt is on it, hvc0's output
/// is not), and a random token is written and synced before poweroff.
/// Second boot of the same disk, on four processors (QEMU -smp 4): the token is read back, dom0 has a
/// vCPU per processor (Linux brings the others up with VCPUOP_initialise and VCPUOP_up: `Brought up 1
/// node, 4 CPUs`) and four checksums computed at once give the right result while every CPU works.
/// </summary>
public static class Dom0Scenario
{
    /// <summary>QEMU start to dom0's shell takes 30-60 s of wall time here under TCG; the rest is slack for a loaded machine.</summary>
    public static readonly TimeSpan BootTimeout = TimeSpan.FromSeconds(180);
    public static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan HardTimeout = TimeSpan.FromMinutes(5);
    /// <summary>Four emulated processors on a 2-core host boot slower (Xen 4.17's dom0 took more than 180 s to its
    /// root mount once under load here).</summary>
    public static readonly TimeSpan SmpBootTimeout = TimeSpan.FromSeconds(420), SmpHardTimeout = TimeSpan.FromMinutes(10);

    // The added controller and the NIC are the first devices after q35's own (Dom0Machine.Devices order).
    private const string AhciSlot = "00:02.0", NicSlot = "00:03.0";
    private const string DiskIrqName = Dom0Machine.DiskIrqName, NicIrqName = "eth0";
    /// <summary>How each interrupt reaches dom0, as /proc/interrupts names it: the AHCI controller by MSI, the
    /// e1000 (no MSI capability) by its level-triggered IO-APIC line, both as Xen pirqs.</summary>
    private static readonly (string Name, string Chip)[] IrqChips = { (DiskIrqName, "xen-pirq -msi"), (NicIrqName, "xen-pirq -ioapic-level") };

    /// <summary>The /proc/interrupts line of <paramref name="name"/> ends with <paramref name="chip"/> (its words, any spacing) and the name.</summary>
    private static bool DeliveredAs(string line, string name, string chip)
        => Regex.IsMatch(line, @"\s" + string.Join(@"\s+", chip.Split(' ').Select(Regex.Escape)) + @"\s+" + Regex.Escape(name) + @"\s*$");
    private const string TokenFile = "/root/dom0-token";

    public static void Run(Dom0Host host, ITestOutputHelper output)
    {
        string disk = Dom0Machine.CopyDisk(KernelImages.WorkDir);
        try
        {
            string token = Guid.NewGuid().ToString("N");
            FirstBoot(host, disk, token, output);
            SecondBoot(host, disk, token, output);
        }
        finally
        {
            try { Directory.Delete(Path.GetDirectoryName(disk)!, recursive: true); } catch (IOException) { }
        }
    }

    private static void FirstBoot(Dom0Host host, string disk, string token, ITestOutputHelper output)
    {
        using var dom0 = Dom0Session.Boot(host, disk, HardTimeout);
        dom0.WaitForShell(BootTimeout);
        output.WriteLine($"{host.Name}: first boot, dom0 shell after {dom0.Clock.Elapsed.TotalSeconds:0.0} s");

        dom0.Qemu.Type("echo hello-$((6*7))\r");
        dom0.Qemu.WaitForLine(Dom0Session.Line("hello-42"), CommandTimeout);
        // Kernel messages on hvc0 would cut into the commands' output from here on.
        dom0.Run("dmesg -n 1", CommandTimeout);

        AssertScreenIsDom0s(dom0, output);

        var roots = dom0.Run("grep ' / ' /proc/mounts", CommandTimeout);
        Assert.True(roots.Any(l => l.StartsWith("/dev/sda1 / ext4 rw", StringComparison.Ordinal)),
            "/dev/sda1 is not mounted read-write as / :\n" + string.Join("\n", roots) + "\n" + dom0.Qemu.Describe());

        var lspci = dom0.Run("lspci -k", CommandTimeout);
        AssertBound(lspci, AhciSlot, "SATA controller", "ahci", dom0);
        AssertBound(lspci, NicSlot, "Ethernet controller", "e1000", dom0);

        // The lease is taken in the background by rcS: give it up to 30 s.
        var addr = dom0.Run("i=0; while ! ip -4 -o addr show dev eth0 | grep -q inet && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done; " +
                            "ip -4 -o addr show dev eth0", CommandTimeout);
        Assert.True(addr.Any(l => Regex.IsMatch(l, @"^\d+: eth0 +inet 10\.0\.2\.15/24 ")),
            "eth0 has no address from QEMU's DHCP (10.0.2.15/24):\n" + string.Join("\n", addr) + "\n" + dom0.Qemu.Describe());

        // The e1000e (no udev: loaded by hand) takes MSI-X vectors when its interface comes up.
        dom0.Run("modprobe e1000e && ip link set eth1 up && sleep 2", CommandTimeout);
        var table = dom0.Run("cat /proc/interrupts", CommandTimeout);
        // Its vectors (eth1-rx-0, eth1-tx-0, eth1) are Xen pirqs of type MSI-X, and the link change arrives on one.
        var msix = table.Select(l => Regex.Match(l, @"^\s*\d+:\s+(\d+)\s+xen-pirq\s+-msi-x\s+eth1")).Where(m => m.Success).ToList();
        Assert.True(msix.Count >= 1 && msix.Sum(m => long.Parse(m.Groups[1].Value)) > 0,
            "/proc/interrupts shows no MSI-X vector of the e1000e (eth1) that fired:\n" + string.Join("\n", table) + "\n" + dom0.Qemu.Describe());
        foreach (var (name, chip) in IrqChips)
            Assert.True(table.Any(l => DeliveredAs(l, name, chip)),
                $"/proc/interrupts does not deliver {name} as {chip}:\n" + string.Join("\n", table) + "\n" + dom0.Qemu.Describe());
        var before = ProcInterrupts.Counts(table);
        dom0.Run("dd if=/dev/sda of=/dev/null bs=64k count=256 iflag=direct; ping -c 3 -W 1 10.0.2.2", CommandTimeout);
        var after = ProcInterrupts.Counts(dom0.Run("cat /proc/interrupts", CommandTimeout));
        foreach (string name in new[] { DiskIrqName, NicIrqName })
        {
            Assert.True(before.ContainsKey(name) && after.ContainsKey(name), $"/proc/interrupts has no line for {name}\n" + dom0.Qemu.Describe());
            output.WriteLine($"{host.Name}: interrupts of {name}: {before[name]} -> {after[name]}");
            Assert.True(after[name] > before[name], $"the interrupts of {name} did not count ({before[name]} -> {after[name]})\n" + dom0.Qemu.Describe());
        }

        var written = dom0.Run($"echo {token} > {TokenFile} && sync && cat {TokenFile}", CommandTimeout);
        Assert.Contains(token, written);
        int status = dom0.PowerOff(CommandTimeout);
        output.WriteLine($"{host.Name}: first boot powered off after {dom0.Clock.Elapsed.TotalSeconds:0.0} s, QEMU status {status}");
        AssertPoweredOff(dom0, status);
    }

    private static void SecondBoot(Dom0Host host, string disk, string token, ITestOutputHelper output)
    {
        using var dom0 = Dom0Session.Boot(host, disk, SmpHardTimeout, "-smp", "4");
        dom0.WaitForShell(SmpBootTimeout);
        output.WriteLine($"{host.Name}: second boot, dom0 shell after {dom0.Clock.Elapsed.TotalSeconds:0.0} s");
        dom0.Run("dmesg -n 1", CommandTimeout);
        var read = dom0.Run($"cat {TokenFile}", CommandTimeout);
        Assert.True(read.Contains(token), $"the token {token} written before poweroff is not in {TokenFile} after the reboot:\n" +
            string.Join("\n", read) + "\n" + dom0.Qemu.Describe());
        AssertEveryVcpuWorks(dom0, output);
        // Three vCPUs busy in user space when vCPU 0 powers off: the machine must end on the last processor to
        // leave dom0, after dom0 gave back its frames (Microhv once ended it on the first, its frames still out).
        dom0.Run("for i in 1 2 3; do (while :; do :; done) & done", CommandTimeout);
        int status = dom0.PowerOff(CommandTimeout);
        output.WriteLine($"{host.Name}: second boot powered off after {dom0.Clock.Elapsed.TotalSeconds:0.0} s, QEMU status {status}");
        AssertPoweredOff(dom0, status);
    }

    /// <summary>QEMU ended with the host's poweroff status; otherwise the console's end (Microhv's summary says
    /// which domain did not power off or which frames did not come back) goes into the failure.</summary>
    private static void AssertPoweredOff(Dom0Session dom0, int status)
    {
        if (status != dom0.Host.PowerOffExitCode)
            throw new QemuTestException($"{dom0.Host.Name}: QEMU ended with status {status} after dom0's poweroff, not {dom0.Host.PowerOffExitCode}", dom0.Qemu);
    }

    /// <summary>MD5 of the 32 MiB of zeros each of the parallel checksums reads.</summary>
    private static readonly string ZerosMd5 = Convert.ToHexString(System.Security.Cryptography.MD5.HashData(new byte[32 << 20])).ToLowerInvariant();

    /// <summary>
    /// dom0 on a 4-processor machine: Linux brought up 4 CPUs, nproc is 4 and CPUs 0-3 are online, and four
    /// md5sums run at once all print the right sum while CPUs 1, 2 and 3 each accumulate user or system
    /// time (the work spread over the vCPUs, and they ran at the same time on Microhv's processors).
    /// </summary>
    private static void AssertEveryVcpuWorks(Dom0Session dom0, ITestOutputHelper output)
    {
        var cpus = dom0.Run("nproc; cat /sys/devices/system/cpu/online; dmesg | grep -o 'Brought up 1 node, [0-9]* CPUs'", CommandTimeout);
        Assert.True(cpus.Count >= 3 && cpus[0].Trim() == "4" && cpus[1].Trim() == "0-3" && cpus[2].Trim() == "Brought up 1 node, 4 CPUs",
            $"{dom0.Host.Name}: dom0 does not have four online CPUs (nproc, cpu/online, dmesg):\n" + string.Join("\n", cpus) + "\n" + dom0.Qemu.Describe());
        var lines = dom0.Run("grep '^cpu[1-3] ' /proc/stat; for i in 0 1 2 3; do (dd if=/dev/zero bs=1M count=32 2>/dev/null | md5sum > /tmp/md5.$i) & done; " +
                             "wait; cat /tmp/md5.0 /tmp/md5.1 /tmp/md5.2 /tmp/md5.3; grep '^cpu[1-3] ' /proc/stat", TimeSpan.FromSeconds(240));
        var sums = lines.Where(l => Regex.IsMatch(l, "^[0-9a-f]{32} ")).Select(l => l.Substring(0, 32)).ToList();
        Assert.True(sums.Count == 4 && sums.All(s => s == ZerosMd5),
            $"{dom0.Host.Name}: the four parallel md5sums are not all {ZerosMd5}:\n" + string.Join("\n", lines) + "\n" + dom0.Qemu.Describe());
        // user + system jiffies of CPUs 1-3, before and after
        var busy = lines.Where(l => Regex.IsMatch(l, "^cpu[1-3] ")).Select(l =>
        {
            var f = l.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return (Cpu: f[0], Jiffies: long.Parse(f[1]) + long.Parse(f[3]));
        }).ToList();
        Assert.True(busy.Count == 6, $"{dom0.Host.Name}: /proc/stat lines missing:\n" + string.Join("\n", lines));
        var grew = new List<string>();
        for (int i = 0; i < 3; i++)
        {
            Assert.True(busy[i + 3].Jiffies > busy[i].Jiffies,
                $"{dom0.Host.Name}: {busy[i].Cpu} did no work during the checksums ({busy[i].Jiffies} -> {busy[i + 3].Jiffies} jiffies):\n" + string.Join("\n", lines) + "\n" + dom0.Qemu.Describe());
            grew.Add($"{busy[i].Cpu} {busy[i].Jiffies} -> {busy[i + 3].Jiffies}");
        }
        output.WriteLine($"{dom0.Host.Name}: Brought up 1 node, 4 CPUs; nproc 4, CPUs 0-3 online; four md5sums at once = {ZerosMd5}; user+system jiffies {string.Join(", ", grew)}");
    }

    /// <summary>
    /// The screen is dom0's: the shell busybox init runs on tty1 shows its prompt where a person at the
    /// machine would read it, and what dom0 writes to hvc0 is not drawn there (the hypervisor no longer
    /// mirrors its console on the screen once the hardware domain has it, and says so; Xen 4.17 stops
    /// drawing at dom0's start unless vga=keep). Linux's text mode defaults (xen_init_vga) equal what
    /// start_info describes under BIOS, so the structure itself is checked by the hosted tests. Read back from QEMU screendumps by glyph matching (<see cref="ScreenText"/>).
    /// tty1's shell is restarted first (init respawns it) so its prompt is the screen's last line after
    /// `dmesg -n 1`, not scrolled away by kernel messages on tty0.
    /// </summary>
    private static void AssertScreenIsDom0s(Dom0Session dom0, ITestOutputHelper output)
    {
        var hvc = dom0.Run("echo hvc0-only-$((6*7)); for p in /proc/[0-9]*; do " +
                           "[ \"$(readlink $p/fd/0)\" = /dev/tty1 ] && kill -9 ${p#/proc/}; done", CommandTimeout);
        Assert.True(hvc.Contains(HvcMarker), $"hvc0 did not echo {HvcMarker}:\n" + string.Join("\n", hvc) + "\n" + dom0.Qemu.Describe());
        var deadline = DateTime.UtcNow + CommandTimeout;
        ScreenText screen;
        PpmImage image;
        while (true)
        {
            string dump = dom0.Qemu.Screendump(Path.Combine(KernelImages.WorkDir, $"dom0-screen-{Guid.NewGuid():N}.ppm"));
            image = PpmImage.Load(dump);
            screen = ScreenText.Decode(image, Microhv.HAL.Font8x16.Glyphs);
            File.Delete(dump);
            if (screen.Rows.Any(r => r.Contains(ShellPrompt))) break;
            if (DateTime.UtcNow > deadline)
                throw new QemuTestException($"{dom0.Host.Name}: dom0's prompt \"{ShellPrompt}\" is not on the {image.Width}x{image.Height} screen; " +
                    $"it reads (cells {screen.CellWidth}x16, mean glyph distance {screen.MeanDistance:0.0}):\n{screen}", dom0.Qemu);
            System.Threading.Thread.Sleep(2000);
        }
        if (screen.Rows.Any(r => r.Contains(HvcMarker)))
            throw new QemuTestException($"{dom0.Host.Name}: hvc0's output \"{HvcMarker}\" is drawn on the screen dom0 owns:\n{screen}", dom0.Qemu);
        if (dom0.Host == Dom0Host.Microhv && !dom0.Qemu.Lines.Any(l => l.StartsWith(RelinquishLine, StringComparison.Ordinal)))
            throw new QemuTestException($"Microhv did not say it gave the screen to dom0 (\"{RelinquishLine} ...\")", dom0.Qemu);
        output.WriteLine($"{dom0.Host.Name}: tty1's prompt on the {image.Width}x{image.Height} screen, row " +
            $"{screen.Rows.ToList().FindLastIndex(r => r.Contains(ShellPrompt))}; hvc0's output not on it");
    }

    private const string HvcMarker = "hvc0-only-42";
    /// <summary>Microhv's boot line when it stops drawing on the screen for the hardware domain.</summary>
    public const string RelinquishLine = "console: Microhv is relinquishing the screen to the hardware domain";

    /// <summary>The root shell's prompt in / (PS1 from make-rootfs.sh's /etc/profile, hostname dom0).</summary>
    public const string ShellPrompt = "root@dom0:/#";

    /// <summary>The lspci -k block of the device in <paramref name="slot"/> is a <paramref name="kind"/> with <paramref name="driver"/> in use.</summary>
    private static void AssertBound(IReadOnlyList<string> lspci, string slot, string kind, string driver, Dom0Session dom0)
    {
        int at = lspci.ToList().FindIndex(l => l.StartsWith(slot + " " + kind + ":", StringComparison.Ordinal));
        Assert.True(at >= 0, $"lspci -k shows no {kind} at {slot}:\n" + string.Join("\n", lspci) + "\n" + dom0.Qemu.Describe());
        var block = lspci.Skip(at + 1).TakeWhile(l => l.StartsWith("\t", StringComparison.Ordinal)).Select(l => l.Trim()).ToList();
        Assert.True(block.Contains("Kernel driver in use: " + driver),
            $"{slot} ({kind}) is not bound to {driver}:\n" + string.Join("\n", lspci) + "\n" + dom0.Qemu.Describe());
    }
}
