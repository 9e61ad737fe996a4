using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Text.RegularExpressions;
using Xunit;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The guest entry (Boot/traps.asm) saves only xmm0 and xmm8 of a guest's FPU state, because that is
/// all the compiled C# code uses; the rest of the guest's state stays in the registers until a vCPU
/// switch. This reads the built image and fails when code the guest path can reach uses any other
/// SSE register, x87 or MXCSR: then the entry stub's save set must grow.
/// </summary>
[Trait("Category", "Qemu")]
public class ImageFpuUseTests
{
    /// <summary>Code that never runs while a guest's state is live: the self-tests (before guests)
    /// and the FPU self-test's register clobber.</summary>
    private static readonly string[] Allowed = { "SelfTests__", "cpu_clobber_fpu" };

    [Fact]
    public void Only_xmm0_and_xmm8_are_used_outside_the_self_tests()
    {
        Assert.True(File.Exists(KernelImages.Elf), "build the kernel first: " + KernelImages.Elf);
        var psi = new ProcessStartInfo("objdump", "-d --no-show-raw-insn " + KernelImages.Elf) { RedirectStandardOutput = true };
        using var p = Process.Start(psi);
        string function = "";
        var offenders = new List<string>();
        int xmm0 = 0, xmm8 = 0;
        string line;
        while ((line = p.StandardOutput.ReadLine()) != null)
        {
            Match f = Regex.Match(line, @"^[0-9a-f]+ <(.+)>:$");
            if (f.Success) { function = f.Groups[1].Value; continue; }
            bool allowed = false;
            foreach (string a in Allowed) if (function.Contains(a)) allowed = true;
            foreach (Match m in Regex.Matches(line, @"%[xyz]mm(\d+)"))
            {
                if (m.Groups[1].Value == "0") { xmm0++; continue; }
                if (m.Groups[1].Value == "8") { xmm8++; continue; }
                if (!allowed) offenders.Add(function + ": " + line.Trim());
            }
            if (!allowed && Regex.IsMatch(line, @"\t(f[a-z]+|ldmxcsr|stmxcsr|fxrstor|xrstor|emms)\s") && !line.Contains("fxsave") && !line.Contains("fxrstor"))
                offenders.Add(function + ": " + line.Trim());
        }
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        Assert.True(xmm0 > 0 && xmm8 > 0, "the disassembly was read (xmm0 and xmm8 are used for struct copies)");
        Assert.True(offenders.Count == 0, "SSE/x87 state the guest entry does not save:\n" + string.Join("\n", offenders.GetRange(0, offenders.Count < 20 ? offenders.Count : 20)));
    }
}
