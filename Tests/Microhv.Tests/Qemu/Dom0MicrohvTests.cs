using Xunit;
using Xunit.Abstractions;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The hardware-dom0 scenario (<see cref="Dom0Scenario"/>) on Microhv: Debian's Linux 6.1 as the
/// hardware domain answers on its console, drives the AHCI disk and the e1000 with its own drivers
/// (interrupts through Microhv's IO-APIC routing), mounts its root from the disk, takes a DHCP lease,
/// and finds after a reboot what it wrote: the same checks <see cref="Dom0XenReferenceTests"/> runs on Xen 4.17.
/// </summary>
[Trait("Category", "Qemu")]
public class Dom0MicrohvTests
{
    private readonly ITestOutputHelper _output;

    public Dom0MicrohvTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void Microhv_dom0_answers_on_its_console_drives_its_disk_and_nic_and_keeps_what_it_wrote()
        => Dom0Scenario.Run(Dom0Host.Microhv, _output);
}
