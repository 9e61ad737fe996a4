using System;
using System.Linq;
using Microhv.Tests.Qemu;
using Xunit;

namespace Microhv.Tests.Hosted;

/// <summary>
/// The step lists of the toolstack scenario (<see cref="XlGuestScenario"/>) are consistent without booting
/// anything: Microhv's list has what its steps need, and every step comes after the steps it needs, so that
/// running a selection in <see cref="ToolstackStep"/> order works on their results.
/// </summary>
public class ToolstackStepsTests
{
    [Fact]
    public void Microhv_steps_have_what_they_need() => XlGuestScenario.Validate(Dom0ToolstackTests.MicrohvSteps);

    [Fact]
    public void Every_step_comes_after_what_it_needs()
    {
        foreach (ToolstackStep s in Enum.GetValues<ToolstackStep>())
            Assert.All(XlGuestScenario.Needs(s), need => Assert.True(need < s, $"{s} needs {need}, which runs after it"));
    }

    [Fact]
    public void A_step_without_what_it_needs_is_refused()
    {
        Assert.Throws<ArgumentException>(() => XlGuestScenario.Validate(new[] { ToolstackStep.Toolstack, ToolstackStep.Console }));
        Assert.Throws<ArgumentException>(() => XlGuestScenario.Validate(new[] { ToolstackStep.Toolstack, ToolstackStep.Create, ToolstackStep.Cycles }));
        XlGuestScenario.Validate(new[] { ToolstackStep.Toolstack, ToolstackStep.Cycles });
        XlGuestScenario.Validate(new[] { ToolstackStep.Toolstack, ToolstackStep.Create, ToolstackStep.Shutdown, ToolstackStep.FreeMemory, ToolstackStep.Cycles });
        XlGuestScenario.Validate(Enum.GetValues<ToolstackStep>());
    }
}
