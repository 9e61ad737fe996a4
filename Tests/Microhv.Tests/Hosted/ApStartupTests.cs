using Microhv.HAL;
using Xunit;

namespace Microhv.Tests.Hosted;

/// <summary>Which processors the kernel starts, and where the real-mode trampoline goes.</summary>
public class ApStartupTests
{
    private static AcpiMadt Madt(params (uint ApicId, bool Enabled)[] cpus)
    {
        var madt = new AcpiMadt();
        foreach (var c in cpus)
        {
            madt.Processors[madt.ProcessorCount].ApicId = c.ApicId;
            madt.Processors[madt.ProcessorCount].Enabled = c.Enabled;
            madt.ProcessorCount++;
        }
        return madt;
    }

    [Fact]
    public void StartsEveryEnabledProcessorButTheBootProcessor()
    {
        var targets = new uint[8];
        int n = ApStartup.SelectTargets(Madt((0, true), (1, true), (2, false), (3, true)), 0, 0, targets, out int leftOff, out int unreachable);
        Assert.Equal(2, n);
        Assert.Equal(new uint[] { 1, 3 }, targets[..2]);
        Assert.Equal(0, leftOff);
        Assert.Equal(0, unreachable);
    }

    [Fact]
    public void TheBootProcessorNeedNotBeFirstOrApicZero()
    {
        var targets = new uint[8];
        Assert.Equal(2, ApStartup.SelectTargets(Madt((0, true), (2, true), (4, true)), 2, 0, targets, out _, out _));
        Assert.Equal(new uint[] { 0, 4 }, targets[..2]);
    }

    [Fact]
    public void MaxCpusCountsTheBootProcessor()
    {
        var targets = new uint[8];
        var madt = Madt((0, true), (1, true), (2, true), (3, true));
        Assert.Equal(1, ApStartup.SelectTargets(madt, 0, 2, targets, out int leftOff, out _));
        Assert.Equal(1u, targets[0]);
        Assert.Equal(2, leftOff);
        Assert.Equal(0, ApStartup.SelectTargets(madt, 0, 1, targets, out leftOff, out _));
        Assert.Equal(3, leftOff);
        Assert.Equal(3, ApStartup.SelectTargets(madt, 0, 4096, targets, out leftOff, out _));
        Assert.Equal(0, leftOff);
    }

    [Fact]
    public void TheCapacityAndXApicReachAreLimits()
    {
        var targets = new uint[2];
        Assert.Equal(2, ApStartup.SelectTargets(Madt((0, true), (1, true), (2, true), (3, true), (300, true)), 0, 0, targets, out int leftOff, out int unreachable));
        Assert.Equal(1, leftOff);
        Assert.Equal(1, unreachable);
    }

    private static Multiboot2Info Info(byte[] blob)
    {
        var mem = new SimulatedMemory(0x10_0000, blob);
        var info = new Multiboot2Info();
        Assert.Equal(Multiboot2Status.Ok, Multiboot2.Parse(mem, 0x10_0000, info));
        return info;
    }

    [Fact]
    public void TheTrampolineGoesInTheFirstFreeAvailablePageBelow640K()
    {
        var info = Info(new Mb2Builder().MemoryMap(24, (0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0x10_0000, 0x7EE_0000, 1)).Build());
        Assert.True(ApStartup.FindTrampolinePage(info, out ulong page));
        Assert.Equal(0x1000UL, page);
    }

    [Fact]
    public void TheTrampolineAvoidsReservedMemoryAndModules()
    {
        var info = Info(new Mb2Builder()
            .Module(0x1000, 0x3800, "/boot/low-module")
            .MemoryMap(24, (0, 0x5000, 2), (0x5000, 0x9AC00, 1), (0x10_0000, 0x7EE_0000, 1)).Build());
        Assert.True(ApStartup.FindTrampolinePage(info, out ulong page));
        Assert.Equal(0x5000UL, page);

        var moduleInTheWay = Info(new Mb2Builder()
            .Module(0x5000, 0x6001, "/boot/low-module")
            .MemoryMap(24, (0, 0x5000, 2), (0x5000, 0x9AC00, 1)).Build());
        Assert.True(ApStartup.FindTrampolinePage(moduleInTheWay, out page));
        Assert.Equal(0x7000UL, page);
    }

    [Fact]
    public void NoAvailableLowPageIsReported()
    {
        var info = Info(new Mb2Builder().MemoryMap(24, (0, 0xA0000, 2), (0x10_0000, 0x7EE_0000, 1)).Build());
        Assert.False(ApStartup.FindTrampolinePage(info, out _));
    }
}
