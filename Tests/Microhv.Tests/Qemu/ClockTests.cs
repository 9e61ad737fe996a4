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
    private readonly Xunit.Abstractions.ITestOutputHelper _output;
    public ClockTests(Xunit.Abstractions.ITestOutputHelper output) => _output = output;

    /// <summary>A guest's clock (Xen's system time, from the calibrated TSC) against real time over a
    /// minute on a busy host: pvtest workload=clock prints it each guest second and this test timestamps
    /// the lines as they arrive. Within 1% (the issue's 0.55x came from one preempted calibration).</summary>
    [Fact]
    public void GuestTimeKeepsToRealTimeOnABusyHost()
    {
        const int Seconds = 60;
        string guest = XenHypervisor.EnsurePvTest();
        var line = new Regex(@"^pvtest: clock (\d+) s, system time (\d+) ns$");
        using var stop = new CancellationTokenSource();
        var hogs = Hogs(stop.Token);
        try
        {
            using var qemu = QemuMachine.Start(KernelImages.WorkDir, BootConfig.Args(KernelImages.IsoWithModules("microhv.exit=isa-debug-exit",
                (guest, $"name=clock -- workload=clock seconds={Seconds}"))), TimeSpan.FromSeconds(Seconds * 3 + 60));
            var first = qemu.WaitForLine(line, Step);
            var wall = System.Diagnostics.Stopwatch.StartNew();
            Match last = first;
            for (int s = 1; s <= Seconds; s++) last = qemu.WaitForLine(line, TimeSpan.FromSeconds(Seconds * 2));
            double host = wall.Elapsed.TotalSeconds;
            double guestSeconds = (ulong.Parse(last.Groups[2].Value) - ulong.Parse(first.Groups[2].Value)) / 1e9;
            double ratio = guestSeconds / host;
            _output.WriteLine($"guest time {guestSeconds:0.000} s over {host:0.000} s of real time on a busy host: ratio {ratio:0.0000}");
            Assert.InRange(ratio, 0.99, 1.01);
        }
        finally
        {
            stop.Cancel();
            foreach (var t in hogs) t.Join();
        }
    }

    private static Thread[] Hogs(CancellationToken stop)
    {
        var hogs = new Thread[2];
        for (int i = 0; i < hogs.Length; i++)
        {
            hogs[i] = new Thread(() => { ulong x = 0; while (!stop.IsCancellationRequested) x = x * 6364136223846793005UL + 1; }) { IsBackground = true };
            hogs[i].Start();
        }
        return hogs;
    }

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
