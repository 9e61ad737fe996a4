using System;
using System.Linq;
using System.Text.RegularExpressions;
using Xunit;

namespace Microhv.Tests.Qemu;

/// <summary>
/// Typing on the serial console: pvtest's echo workload reads its input (console_io read after
/// VIRQ_CONSOLE as the initial domain, its console ring otherwise) and echoes each line. The same
/// guest, typed at the same way, runs on Xen 4.17 first, so the expected behaviour is Xen's.
/// </summary>
[Trait("Category", "Qemu")]
public class ConsoleInputTests
{
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(90);
    private const string CtrlA3 = "\x01\x01\x01";

    [Fact]
    public void Xen_gives_typed_lines_to_dom0_and_switches_input_with_ctrl_a()
    {
        string guest = XenHypervisor.EnsurePvTest();
        var args = XenHypervisor.Args(guest + " workload=echo").ToList();
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, args, TimeSpan.FromMinutes(4));
        qemu.WaitForLine("(XEN) *** Serial input to DOM0 (type 'CTRL-a' three times to switch input)", Step);
        qemu.WaitForLine("pvtest: workload echo: type a line", Step);
        qemu.Type("hello\r");
        qemu.WaitForLine("pvtest: echo: hello", Step);
        qemu.Type(CtrlA3);
        qemu.WaitForLine("(XEN) *** Serial input to Xen (type 'CTRL-a' three times to switch input)", Step);
        qemu.Type("q");
        qemu.WaitForLine(new Regex(@"^\(XEN\) 'q' pressed -> dumping domain info"), Step);
        // Xen prints the dump from a tasklet: switch back only after its last line, or the two interleave.
        qemu.WaitForLine(new Regex(@"^\(XEN\) Shared frames \d+ -- Saved frames \d+$"), Step);
        qemu.Type(CtrlA3);
        qemu.WaitForLine("(XEN) *** Serial input to DOM0 (type 'CTRL-a' three times to switch input)", Step);
        qemu.Type("quit\r");
        qemu.WaitForLine("pvtest: echo: quit", Step);
        qemu.WaitForLine("(XEN) Hardware Dom0 halted: halting machine", Step);
    }

    [Fact]
    public void Microhv_gives_typed_lines_to_the_focused_domain_and_has_debug_keys()
    {
        string guest = XenHypervisor.EnsurePvTest();
        string iso = KernelImages.IsoWithModules("microhv.log=info microhv.exit=isa-debug-exit",
            (guest, "name=con0 -- workload=echo"), (guest, "name=con1 -- workload=echo"));
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, BootConfig.Args(iso, memoryMiB: 512));
        qemu.WaitForLine("*** Serial input to DOM0 (type 'CTRL-a' three times to switch input)", Step);
        qemu.WaitForLine("(d1) pvtest: workload echo: type a line", Step);
        Assert.Contains("pvtest: workload echo: type a line", qemu.Lines);

        qemu.Type("hello\r");
        qemu.WaitForLine("pvtest: echo: hello", Step);
        qemu.Type(CtrlA3);
        qemu.WaitForLine("*** Serial input to DOM1 (type 'CTRL-a' three times to switch input)", Step);
        qemu.Type("world\r");
        qemu.WaitForLine("(d1) pvtest: echo: world", Step);
        qemu.Type(CtrlA3);
        qemu.WaitForLine("*** Serial input to Microhv (type 'CTRL-a' three times to switch input)", Step);
        qemu.Type("q");
        qemu.WaitForLine("'q' pressed -> dumping domain info", Step);
        qemu.WaitForLine("General information for domain 0 (con0): running, initial", Step);
        qemu.WaitForLine("General information for domain 1 (con1): running", Step);
        qemu.Type("r");
        qemu.WaitForLine("'r' pressed -> dumping run queues", Step);
        qemu.WaitForLine(new Regex(@"^CPU\[00\] running=idle switches=\d+$"), Step);
        qemu.Type(CtrlA3);
        qemu.WaitForLine("*** Serial input to DOM0 (type 'CTRL-a' three times to switch input)", Step);
        qemu.Type("quit\r");
        qemu.WaitForLine("pvtest: echo: quit", Step);
        // Domain 0 has ended: the input moves on to domain 1, which is the last one running.
        qemu.Type(CtrlA3);
        qemu.WaitForLine("*** Serial input to DOM1 (type 'CTRL-a' three times to switch input)", Step);
        qemu.Type("quit\r");
        qemu.WaitForLine("(d1) pvtest: echo: quit", Step);
        qemu.WaitForLine("summary: domain 0 (con0): poweroff, code 0", Step);
        qemu.WaitForLine("summary: domain 1 (con1): poweroff, code 0", Step);
        Assert.Equal(1, qemu.WaitForExit(Step));
    }
}
