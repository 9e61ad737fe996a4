using Xunit;
using Xunit.Abstractions;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The hardware-dom0 scenario (<see cref="Dom0Scenario"/>) on Debian's Xen 4.17, the reference: the
/// same disk, kernel and QEMU machine Microhv's hardware domain will be judged with.
/// </summary>
[Trait("Category", "Qemu")]
public class Dom0XenReferenceTests
{
    private readonly ITestOutputHelper _output;

    public Dom0XenReferenceTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void Xen_dom0_answers_on_its_console_drives_its_disk_and_nic_and_keeps_what_it_wrote()
        => Dom0Scenario.Run(Dom0Host.Xen, _output);
}
