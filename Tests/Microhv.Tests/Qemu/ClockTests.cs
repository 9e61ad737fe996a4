using System;
using System.Text.RegularExpressions;
using System.Threading;
using Xunit;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The local APIC timer's calibration on a busy host (issue 14: one preempted 10 ms wait once gave
/// 1,129,091 counts instead of about 626,000, and Linux's clock ran at 0.55x). QEMU's APIC timer runs
/// at 1 GHz / 16, so 10 ms is 625,000 counts; the boot must find that within 1% while two threads
/// of this test keep the host's cores busy.
/// </summary>
[Trait("Category", "Qemu")]
public class ClockTests
{
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(90);

    [Fact]
    public void ApicTimerCalibrationHoldsOnABusyHost()
    {
        using var stop = new CancellationTokenSource();
        var hogs = new Thread[2];
        for (int i = 0; i < hogs.Length; i++)
        {
            hogs[i] = new Thread(() => { ulong x = 0; while (!stop.IsCancellationRequested) x = x * 6364136223846793005UL + 1; }) { IsBackground = true };
            hogs[i].Start();
        }
        try
        {
            using var qemu = QemuMachine.Start(KernelImages.WorkDir, BootConfig.Args(KernelImages.IsoFor("microhv.log=debug microhv.exit=isa-debug-exit")));
            var timer = qemu.WaitForLine(new Regex(@"^timer: local APIC timer at 100 Hz \((\d+) bus/16 counts per 10 ms, calibrated by PIT\), legacy PIC masked$"), Step);
            ulong counts = ulong.Parse(timer.Groups[1].Value);
            Assert.InRange(counts, 618_750UL, 631_250UL);
            var kept = qemu.WaitForLine(new Regex(@"^timer: TSC (\d+) kHz; calibration kept ([345]) of 5 PIT windows"), Step);
            Assert.True(ulong.Parse(kept.Groups[1].Value) > 0);
            qemu.WaitForLine(BootTests.Ready, Step);
        }
        finally
        {
            stop.Cancel();
            foreach (var t in hogs) t.Join();
        }
    }
}
