using System;
using System.Collections.Generic;
using Xunit;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The processors of the machine: ACPI's MADT as QEMU (SeaBIOS) describes one and four CPUs, with
/// the I/O APIC and the five ISA interrupt source overrides QEMU's i440fx machine has.
/// </summary>
[Trait("Category", "Qemu")]
public class SmpTests
{
    private const string Exit = "microhv.exit=isa-debug-exit";
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(60);

    private static QemuMachine Boot(string cmdline, int cpus)
    {
        List<string> args = BootConfig.Args(KernelImages.IsoFor(cmdline));
        args.Add("-smp"); args.Add(cpus.ToString());
        return QemuMachine.Start(KernelImages.WorkDir, args);
    }

    [Fact]
    public void MadtListsFourCpusTheIoApicAndItsOverrides()
    {
        using var qemu = Boot($"microhv.log=debug {Exit}", 4);
        qemu.WaitForLine("acpi: MADT: 4 CPUs (APIC ids 0,1,2,3), IO-APIC 0 at 0xfec00000 GSI 0-23, 5 overrides", Step);
        qemu.WaitForLine("acpi: local APIC at 0xfee00000, 8259 PICs present", Step);
        qemu.WaitForLine("acpi: override bus 0 IRQ 0 -> GSI 2 flags 0x0", Step);
        qemu.WaitForLine("acpi: override bus 0 IRQ 11 -> GSI 11 flags 0xd", Step);
        qemu.WaitForLine("acpi: NMI on LINT1 of processor UID all flags 0x0", Step);
        qemu.WaitForLine(BootTests.Ready, Step);
    }

    [Fact]
    public void MadtOfOneCpu()
    {
        using var qemu = Boot(Exit, 1);
        qemu.WaitForLine("acpi: MADT: 1 CPU (APIC id 0), IO-APIC 0 at 0xfec00000 GSI 0-23, 5 overrides", Step);
        qemu.WaitForLine(BootTests.Ready, Step);
    }
}
