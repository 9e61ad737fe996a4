using System;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Xunit;

namespace Microhv.Tests.Qemu;

/// <summary>
/// Xen PV guests on Microhv: pvtest (the same ELF file that passes on the real Xen 4.17, see
/// XenGuestTests) as the initial domain must pass every check; four domains with different
/// workloads run together; a malformed module is refused and a crashing guest is killed while
/// the others finish. Microhv ends QEMU through isa-debug-exit: status 1 when every domain powered
/// off, 3 otherwise.
/// </summary>
[Trait("Category", "Qemu")]
public class PvGuestTests
{
    private const string Cmdline = "microhv.log=info microhv.exit=isa-debug-exit";
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(120);
    /// <summary>pvtest's summary when every check of its suite passed (XenGuestTests runs the same suite on Xen 4.17).</summary>
    private const string AllChecksPassed = "pvtest: 75 passed, 0 failed";
    private static readonly Regex CheckLine = new(@"^check (\S+): (PASS|FAIL)(.*)$");
    /// <summary>Every frame a domain held, shut down or crashed, is free again once the last one ended.</summary>
    private static readonly Regex FramesBalanced = new(@"^summary: frames: (\d+) free before the domains were built, \1 after the last one ended$");

    private static QemuMachine Boot(params (string, string)[] modules) => BootOn(null, modules);

    private static QemuMachine BootOn(string cpu, params (string, string)[] modules) => BootOn(cpu, 1, modules);

    private static QemuMachine BootOn(string cpu, int cpus, params (string, string)[] modules)
    {
        var args = BootConfig.Args(KernelImages.IsoWithModules(Cmdline, modules), memoryMiB: 512);
        if (cpu != null) args.AddRange(new[] { "-cpu", cpu });
        if (cpus > 1) args.AddRange(new[] { "-smp", cpus.ToString() });
        return QemuMachine.Start(KernelImages.WorkDir, args);
    }

    private static int Exit(QemuMachine qemu) => qemu.WaitForExit(Step);

    /// <summary>On QEMU's default CPU and on -cpu max, whose FSGSBASE the PV CPUID policy offers (the
    /// cr4_fsgsbase check then sets CR4.FSGSBASE, as Linux does; XenGuestTests runs Xen on -cpu max). Two
    /// CPUs, so pvtest (the initial domain, one vCPU per CPU) runs its secondary-vCPU checks, as on Xen.</summary>
    [Theory]
    [InlineData(null)]
    [InlineData("max")]
    public void PvTestPassesEveryCheckOnMicrohv(string cpu)
    {
        string guest = XenHypervisor.EnsurePvTest();
        using var qemu = BootOn(cpu, 2, (guest, "name=pvtest"));
        var summary = qemu.WaitForLine(new Regex(@"^pvtest: (\d+) passed, (\d+) failed$"), Step);
        var checks = qemu.Lines.Select(l => CheckLine.Match(l)).Where(m => m.Success).ToList();
        var failed = checks.Where(m => m.Groups[2].Value != "PASS").Select(m => m.Value).ToList();
        Assert.True(failed.Count == 0, "failed checks:\n" + string.Join("\n", failed) + "\n" + qemu.Describe());
        Assert.True(checks.Count >= 40, $"only {checks.Count} checks ran\n{qemu.Describe()}");
        Assert.Equal(checks.Count.ToString(), summary.Groups[1].Value);
        Assert.Equal(5, checks.Count(m => m.Groups[1].Value.StartsWith("vcpu_secondary_", StringComparison.Ordinal)));
        Assert.Equal("0", summary.Groups[2].Value);
        qemu.WaitForLine("summary: domain 0 (pvtest): poweroff, code 0", Step);
        // Its bad pointers went through the live copies and their fault fixups (Boot/guest_copy.asm): at least
        // xen_version into its read-only L4 and into 0x1000, multicall, mmu_update and mmuext_op at 0x1000.
        var fixups = qemu.WaitForLine(new Regex(@"^summary: (\d+) guest accesses faulted in the hypervisor's copies \(-EFAULT\)$"), Step);
        Assert.True(int.Parse(fixups.Groups[1].Value) >= 5, qemu.Describe());
        // iret_refused_selector_or_rip_is_the_guests_fault and iret_to_a_descriptor_made_not_present: its CS past the
        // GDT, its LDT CS, its SS past the GDT and its not-present CS made Microhv's own IRETQ fault (caught, given to
        // the guest); the non-canonical RIP faults there on Intel, at the fetch in ring 3 under QEMU's TCG.
        qemu.WaitForLine(new Regex(@"^summary: [45] exits to a guest refused by the CPU at their IRETQ \(its CS, SS or RIP\), given to the guest as its own fault$"), Step);
        // debugreg_movss_syscall_data_breakpoint's watched xen_version buffer: Microhv's own write raised #DB at
        // CPL 0 on its IST stack (Boot/traps.asm isr1), which it dropped and counted, as Xen drops it.
        qemu.WaitForLine(new Regex(@"^summary: [1-9]\d* #DB in the hypervisor's own context"), Step);
        Assert.Equal(1, Exit(qemu));
    }

    /// <summary>Containment (issue 14): a domain writing 1 MiB to the console as fast as console_io takes it
    /// does not keep a compute-bound domain from its share: the spinner is done before the flood has
    /// printed half of its lines.</summary>
    [Fact]
    public void AConsoleFloodDoesNotStarveAnotherDomain()
    {
        string guest = XenHypervisor.EnsurePvTest();
        using var qemu = Boot((guest, "name=spin initial -- workload=spin"), (guest, "name=flood -- workload=flood kib=1024"));
        qemu.WaitForLine("Microhv: powering off (isa-debug-exit)", TimeSpan.FromMinutes(5));
        var lines = qemu.Lines.ToList();
        int spinDone = lines.FindIndex(l => l.StartsWith("pvtest: workload spin done", StringComparison.Ordinal));
        int floodDone = lines.FindIndex(l => l == "(d1) pvtest: workload flood done, 64 writes of 16300 bytes, 0 refused");
        Assert.True(spinDone >= 0 && floodDone >= 0, qemu.Describe(40));
        int floodLines = lines.Count(l => l.StartsWith("(d1) ffff", StringComparison.Ordinal));
        int floodBeforeSpin = lines.Take(spinDone).Count(l => l.StartsWith("(d1) ffff", StringComparison.Ordinal));
        Assert.True(floodBeforeSpin < floodLines / 2, $"the spinner finished after {floodBeforeSpin} of {floodLines} flood lines");
        Assert.Contains(lines, l => FramesBalanced.IsMatch(l));
    }

    [Fact]
    public void FourDomainsWithDifferentWorkloadsRunConcurrently()
    {
        string guest = XenHypervisor.EnsurePvTest();
        using var qemu = Boot((guest, "name=checks"), (guest, "name=spin -- workload=spin"),
                              (guest, "name=block -- workload=block"), (guest, "name=yield -- workload=yield"));
        qemu.WaitForLine("Microhv: powering off (isa-debug-exit)", Step);
        var lines = qemu.Lines;
        Assert.Contains(AllChecksPassed, lines);
        Assert.Contains(lines, l => Regex.IsMatch(l, @"^\(d1\) pvtest: workload spin done, checksum 0x[0-9a-f]+$"));
        Assert.Contains("(d2) pvtest: workload block done, 20 timer events", lines);
        Assert.Contains("(d3) pvtest: workload yield done, 300 yields", lines);
        foreach (string d in new[] { "0 (checks)", "1 (spin)", "2 (block)", "3 (yield)" })
            Assert.Contains($"summary: domain {d}: poweroff, code 0", lines);
        // No allocation on the hypercall and trap paths: the managed heap did not grow while four guests ran.
        Assert.Contains(lines, l => Regex.IsMatch(l, @"^summary: \d+ traps, \d+ hypercalls, \d+ vCPU switches; managed heap \d+ bytes at guest start, \+0 while guests ran$"));
        Assert.Contains(lines, l => FramesBalanced.IsMatch(l));
        // Concurrency, not a sequence: the spinning domain's rounds interleave with other domains' output.
        int firstRound = lines.ToList().FindIndex(l => l == "(d1) pvtest: workload spin: round 1");
        int lastRound = lines.ToList().FindIndex(l => l == "(d1) pvtest: workload spin: round 3");
        int checksDone = lines.ToList().FindIndex(l => l == AllChecksPassed);
        Assert.True(firstRound >= 0 && lastRound > firstRound, qemu.Describe());
        Assert.True(checksDone > firstRound, $"domain 0 finished before domain 1 started\n{qemu.Describe()}");
        Assert.Equal(1, Exit(qemu));
    }

    [Fact]
    public void MalformedModuleIsRefusedAndACrashingGuestIsContained()
    {
        string guest = XenHypervisor.EnsurePvTest();
        string junk = Path.Combine(KernelImages.WorkDir, "not-an-elf.bin");
        File.WriteAllBytes(junk, System.Text.Encoding.ASCII.GetBytes("this is not an ELF image\n"));
        using var qemu = Boot((guest, "name=checks"), (junk, "name=junk"), (guest, "name=crasher -- workload=crash"),
                              (guest, "name=spin -- workload=spin"));
        qemu.WaitForLine("domain: module 1 (junk): refused: not an ELF64 x86-64 image", Step);
        qemu.WaitForLine(new Regex(@"^domain 1 crashed: fatal #PF \(vector 14\)"), Step);
        qemu.WaitForLine(new Regex(@"^  CR2=0x0000000000000010 "), Step);
        qemu.WaitForLine("Microhv: powering off (isa-debug-exit)", Step);
        var lines = qemu.Lines;
        Assert.Contains(AllChecksPassed, lines);
        Assert.Contains(lines, l => l.StartsWith("(d2) pvtest: workload spin done"));
        Assert.Contains("summary: domain 0 (checks): poweroff, code 0", lines);
        Assert.Contains(lines, l => l.StartsWith("summary: domain 1 (crasher): crashed"));
        Assert.Contains("summary: domain 2 (spin): poweroff, code 0", lines);
        Assert.Contains(lines, l => FramesBalanced.IsMatch(l));     // the crashed domain's frames too
        Assert.Equal(3, Exit(qemu));
    }

    /// <summary>Issue 14: a vCPU's DS, ES, FS and GS (from its own LDT) are saved when it leaves the processor and
    /// loaded again when it comes back (Xen's save_segments / load_segments): two domains holding different LDT
    /// selectors yield to each other on one processor 300 times and find theirs each time, FS still reading
    /// through its descriptor's base (the second changes its LDT before each yield, so Microhv's reload of its
    /// selectors faults on the LDT page and maps it on demand); a third drops its LDT while its selectors name it,
    /// and the switch back loads null selectors and enters its failsafe callback once.</summary>
    [Fact]
    public void SegmentSelectorsSurviveSwitchesAndARefusedOneIsTheFailsafe()
    {
        string guest = XenHypervisor.EnsurePvTest();
        using var qemu = Boot((guest, "name=a -- workload=segments"), (guest, "name=b -- workload=segments variant=2 remap"),
                              (guest, "name=c -- workload=segments failsafe rounds=50"));
        qemu.WaitForLine("Microhv: powering off (isa-debug-exit)", Step);
        var lines = qemu.Lines;
        Assert.DoesNotContain(lines, l => l.StartsWith("FATAL", StringComparison.Ordinal));
        Assert.Contains("pvtest: workload segments done: 300 yields, DS ES FS GS 0xf 0x17 0x1f 0x17 kept, FS reads through its LDT base", lines);
        Assert.Contains("(d1) pvtest: workload segments done: 300 yields, DS ES FS GS 0x17 0xf 0x1f 0xf kept, FS reads through its LDT base", lines);
        Assert.True(lines.Any(l => Regex.IsMatch(l, @"^\(d2\) pvtest: workload segments failsafe: callback 1 time\(s\) after \d+ yields, DS ES FS GS now 0x0 0x0 0x0 0x0 $")), qemu.Describe());
        foreach (string d in new[] { "0 (a)", "1 (b)", "2 (c)" })
            Assert.Contains($"summary: domain {d}: poweroff, code 0", lines);
        Assert.Contains(lines, l => FramesBalanced.IsMatch(l));
        Assert.Equal(1, Exit(qemu));
    }

    /// <summary>A domain irets to a CS the CPU refuses with no #GP handler (Boot/traps.asm exit_iretq_faulted,
    /// Hypervisor/Traps/ExitFault.cs): that domain is crashed with the reason, the other runs to its end.</summary>
    [Fact]
    public void IretTheCpuRefusesCrashesOnlyThatDomain()
    {
        string guest = XenHypervisor.EnsurePvTest();
        using var qemu = Boot((guest, "name=spin -- workload=spin"), (guest, "name=iret -- workload=iret-crash"));
        qemu.WaitForLine(new Regex(@"^domain 1 crashed: fatal #GP \(vector 13\) returning to the guest: the CPU refused the CS, SS or RIP it chose"), Step);
        qemu.WaitForLine("Microhv: powering off (isa-debug-exit)", Step);
        var lines = qemu.Lines;
        Assert.DoesNotContain(lines, l => l.StartsWith("FATAL", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("pvtest: workload spin done", StringComparison.Ordinal));
        Assert.Contains("summary: domain 0 (spin): poweroff, code 0", lines);
        Assert.Contains(lines, l => l.StartsWith("summary: domain 1 (iret): crashed", StringComparison.Ordinal));
        Assert.Contains("summary: 1 exits to a guest refused by the CPU at their IRETQ (its CS, SS or RIP), given to the guest as its own fault", lines);
        Assert.Contains(lines, l => FramesBalanced.IsMatch(l));
        Assert.Equal(3, Exit(qemu));
    }

    [Fact]
    public void GrantedPageIsMappedAcrossDomains()
    {
        // Domain 1 grants a page to domain 0 (grant reference 8); domain 0 maps it with
        // GNTTABOP_map_grant_ref, reads the offer, writes a reply, unmaps; domain 1 sees the reply.
        string guest = XenHypervisor.EnsurePvTest();
        using var qemu = Boot((guest, "name=mapper -- workload=grant-map"), (guest, "name=offerer -- workload=grant-offer"));
        qemu.WaitForLine("pvtest: workload grant-map done, read the offer from domain 1's page, wrote the reply, unmap status 0", Step);
        qemu.WaitForLine("(d1) pvtest: workload grant-offer done, domain 0 wrote its reply into our page", Step);
        qemu.WaitForLine("Microhv: powering off (isa-debug-exit)", Step);
        Assert.Contains("summary: domain 0 (mapper): poweroff, code 0", qemu.Lines);
        Assert.Contains("summary: domain 1 (offerer): poweroff, code 0", qemu.Lines);
        Assert.Contains(qemu.Lines, l => FramesBalanced.IsMatch(l));
        Assert.Equal(1, Exit(qemu));
    }

    [Fact]
    public void ADomainThatIsNotTheHardwareDomainIsRefusedTheDevices()
    {
        // Domain 1 tries a port, map_pirq, setup_gsi, a PTE naming MMIO, XENMEM_exchange, the host's
        // memory map and platform_op, then the toolstack's domctl, sysctl, populate_physmap for dom0 and a
        // foreign mmu_update: each refused (-EPERM; the port reads all ones), the hypervisor logs each
        // device kind once (map_pirq and setup_gsi are one kind), and both domains run to their end.
        string guest = XenHypervisor.EnsurePvTest();
        using var qemu = Boot((guest, "name=hwdom -- workload=yield"), (guest, "name=intruder -- workload=devices"));
        qemu.WaitForLine("(d1) pvtest: workload devices: 11 of 11 refused", Step);
        qemu.WaitForLine("Microhv: powering off (isa-debug-exit)", Step);
        foreach (string what in new[] { "map physical IRQs", "map I/O memory", "exchange memory", "read the machine's memory map", "use platform_op" })
            Assert.Single(qemu.Lines, $"hwdom: d1 may not {what}: not the hardware domain (-EPERM; logged once)");
        Assert.Contains("summary: domain 0 (hwdom): poweroff, code 0", qemu.Lines);
        Assert.Contains("summary: domain 1 (intruder): poweroff, code 0", qemu.Lines);
        Assert.Equal(1, Exit(qemu));
    }

    [Theory]
    [InlineData(Firmware.Bios)]
    [InlineData(Firmware.Uefi)]
    public void DefaultIsoRunsItsGuestThenPowersOffThroughAcpi(Firmware firmware)
    {
        // build/microhv.iso: pvtest as the default guest, no exit device on the command line.
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, BootConfig.Args(KernelImages.DefaultIso, firmware));
        qemu.WaitForLine(new Regex(@"^acpi: power-off through S5: PM1a_CNT 0x[0-9a-f]+, SLP_TYPa \d+$"), Step);
        qemu.WaitForLine(AllChecksPassed, Step);
        qemu.WaitForLine("Microhv: powering off (ACPI S5)", Step);
        // ACPI S5 ends QEMU by itself, with status 0; a halted machine would be killed at the hard timeout.
        Assert.Equal(0, Exit(qemu));
        Assert.DoesNotContain("Microhv: the machine did not turn off", qemu.Lines);
    }
}
