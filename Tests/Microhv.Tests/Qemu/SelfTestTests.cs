using System;
using System.Text.RegularExpressions;
using Xunit;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The kernel's built-in self tests (microhv.selftest=...) run under BIOS, ending QEMU through
/// isa-debug-exit: QEMU's status is (code &lt;&lt; 1) | 1, so code 0 = 1, code 0x10 = 33. A triple fault
/// under -no-reboot ends QEMU with status 0 instead, which these tests tell apart.
/// </summary>
[Trait("Category", "Qemu")]
public class SelfTestTests
{
    private const string Exit = "microhv.exit=isa-debug-exit";
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(60);

    private static QemuMachine Boot(string cmdline)
        => QemuMachine.Start(KernelImages.WorkDir, BootConfig.Args(KernelImages.IsoFor(cmdline)));

    private static void AssertExitStatus(QemuMachine qemu, int expected, string meaning)
    {
        int status = qemu.WaitForExit(Step);
        if (status != expected)
            throw new QemuTestException($"QEMU exit status {status}, expected {expected} ({meaning})", qemu);
    }

    [Fact]
    public void PageFaultIsReportedWithAddressAndSymbolThenHalts()
    {
        using var qemu = Boot($"microhv.selftest=pagefault {Exit}");
        qemu.WaitForLine(BootTests.Banner, Step);
        qemu.WaitForLine(new Regex(@"^FATAL: page fault \(#PF, vector 14\)"), Step);
        qemu.WaitForLine(new Regex(@"CR2=0x00000000deadb000"), Step);
        qemu.WaitForLine(new Regex(@"^  at \S"), Step);
        qemu.WaitForLine("Microhv halted.", Step);
        AssertExitStatus(qemu, (0x10 << 1) | 1, "isa-debug-exit code 0x10 = fatal trap");
    }

    [Fact]
    public void StackOverflowHitsTheGuardPageAndTheDoubleFaultRunsOnItsOwnStack()
    {
        using var qemu = Boot($"microhv.selftest=stackoverflow {Exit}");
        var paging = qemu.WaitForLine(new Regex(@"stack guard at 0x([0-9a-f]{16});"), Step);
        ulong guard = Convert.ToUInt64(paging.Groups[1].Value, 16);
        // The #PF on the guard page cannot be delivered on the overflowed stack: the CPU raises #DF,
        // whose IST1 stack lets the dump run at all.
        qemu.WaitForLine(new Regex(@"^FATAL: double fault \(#DF, vector 8\)"), Step);
        var cr2 = qemu.WaitForLine(new Regex(@"CR2=0x([0-9a-f]{16})"), Step);
        ulong address = Convert.ToUInt64(cr2.Groups[1].Value, 16);
        Assert.True(address >= guard && address < guard + 4096, $"CR2 {address:x} is not in the guard page at {guard:x}");
        qemu.WaitForLine(new Regex(@"^  at \S*Recurse"), Step);
        qemu.WaitForLine("Microhv halted.", Step);
        AssertExitStatus(qemu, (0x10 << 1) | 1, "isa-debug-exit code 0x10 = fatal trap");
    }

    [Fact]
    public void TimerTicksAtOneHundredHertz()
    {
        using var qemu = Boot($"microhv.selftest=timer {Exit}");
        qemu.WaitForLine(BootTests.Banner, Step);
        qemu.WaitForLine(new Regex(@"^selftest: timer: 100 ticks at 100 Hz"), Step);
        qemu.WaitForLine("selftest: PASS", Step);
        AssertExitStatus(qemu, (0 << 1) | 1, "isa-debug-exit code 0 = pass");
    }

    [Fact]
    public void SseStateSurvivesTimerInterrupts()
    {
        using var qemu = Boot($"microhv.selftest=fpu {Exit}");
        qemu.WaitForLine(BootTests.Banner, Step);
        qemu.WaitForLine(new Regex(@"^selftest: fpu: SSE state preserved across "), Step);
        qemu.WaitForLine("selftest: PASS", Step);
        AssertExitStatus(qemu, (0 << 1) | 1, "isa-debug-exit code 0 = pass");
    }

    [Fact]
    public void UnknownOptionValueIsReportedAndBootContinues()
    {
        using var qemu = Boot($"microhv.selftest=bogus {Exit}");
        qemu.WaitForLine(BootTests.Banner, Step);
        qemu.WaitForLine(new Regex(@"^cmdline: unknown value"), Step);
        qemu.WaitForLine(BootTests.Ready, Step);
    }
}
