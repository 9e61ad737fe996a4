using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The paravirt-ops guest (Tests/Guests/PvOps): one ELF file, checked by SHA-256 before every run,
/// boots natively from GRUB (native backend and native shim), under Microhv (hypercall API, ABI ROM,
/// and the hypercall fallback when the ROM's version is not the one asked for) and under Xen 4.17,
/// and prints the same `pvops: result` line every time. Each run must also name the backend it was
/// asked for (a silent fallback fails), patch every paravirt call site of the image for it (none skipped;
/// natively the native instructions inline, under a hypervisor direct calls) and print the three phases
/// with the op counts the workload implies, whatever the backend.
/// </summary>
[Trait("Category", "Qemu")]
public class PvOpsTests
{
    /// <summary>A run takes 30-100 s under TCG (the timer phase alone is 50 ticks of 10 ms); the rest is slack.</summary>
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(240);
    private static readonly TimeSpan Hard = TimeSpan.FromMinutes(6);

    private static readonly Regex Result = new(@"pvops: result address_spaces=4 switches=200 pages=64 timer_ticks=50 irq_pairs=100000 checksum=0x[0-9a-f]{16}$");
    private static readonly Regex Phase = new(@"pvops: phase ([a-z_]+): (\d+) ops, (\d+) tsc$");
    private static readonly Regex Done = new(@"pvops: done$");
    private static readonly Regex Patched = new(@"pvops: patched (\d+) sites: (\d+) call, (\d+) native, (\d+) nop(?:, \d+ skipped)?$");

    private static readonly Lazy<(string Path, string Sha)> Built = new(Build);
    private static readonly Lazy<Run> Native = new(() => RunNative("", "pvops: backend native (multiboot2 entry)"));
    private static string Elf => Path.Combine(KernelImages.RepoRoot, "build", "pvops.elf");

    private readonly ITestOutputHelper _output;
    public PvOpsTests(ITestOutputHelper output) => _output = output;

    /// <summary>What one boot printed: its backend line, result line and phases.</summary>
    private sealed record Run(string Backend, string Result, Dictionary<string, (long Ops, long Tsc)> Phases, (int Sites, int Call, int Native, int Nop) Patch);

    private static (string, string) Build()
    {
        var psi = new ProcessStartInfo("dotnet", "build Tests/Guests/PvOps/PvOps.csproj -v q") { WorkingDirectory = KernelImages.RepoRoot, UseShellExecute = false };
        using (var p = Process.Start(psi)!) { p.WaitForExit(); Assert.True(p.ExitCode == 0, "building pvops failed"); }
        return (Elf, Sha(Elf));
    }

    private static string Sha(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    /// <summary>The one ELF; asserts it is still the file first built.</summary>
    private static string Guest()
    {
        var (path, sha) = Built.Value;
        Assert.Equal(sha, Sha(path));
        return path;
    }

    private static string Strip(string line) => line.Substring(line.IndexOf("pvops: ", StringComparison.Ordinal));

    /// <summary>
    /// Reads the run in order: the backend line (exactly <paramref name="backend"/>, so a fallback to
    /// another backend fails), the three phases, the result, done.
    /// </summary>
    private static Run Read(QemuMachine qemu, Regex backend)
    {
        string backendLine = Strip(qemu.WaitForLine(backend, Step).Value);
        Match p = qemu.WaitForLine(Patched, Step);
        var patch = (int.Parse(p.Groups[1].Value), int.Parse(p.Groups[2].Value), int.Parse(p.Groups[3].Value), int.Parse(p.Groups[4].Value));
        Assert.True(patch.Item1 > 0 && patch.Item1 == patch.Item2 + patch.Item3 + patch.Item4, $"sites skipped or none: {p.Value}\n{qemu.Describe()}");
        var phases = new Dictionary<string, (long, long)>();
        foreach (string name in new[] { "address_spaces", "timer", "irq" })
        {
            Match m = qemu.WaitForLine(Phase, Step);
            Assert.True(m.Groups[1].Value == name, $"phase {name} expected, got: {m.Value}\n{qemu.Describe()}");
            phases[name] = (long.Parse(m.Groups[2].Value), long.Parse(m.Groups[3].Value));
        }
        string result = Strip(qemu.WaitForLine(Result, Step).Value);
        Assert.DoesNotContain("(errors)", result);
        qemu.WaitForLine(Done, Step);
        var run = new Run(backendLine, result, phases, patch);
        CheckPhases(run, qemu);
        return run;
    }

    /// <summary>
    /// The op counts follow from the workload (Workload.cs), not the backend: per space 4 alloc_pt,
    /// 16 set_pte, set_pmd, set_pud and 2 set_pgd (96); 200 write_cr3, 25 invlpg, 4 flush_tlb, the
    /// write_cr3 back and 16 release_pt (246): 342. The timer phase makes 6 ops per tick when each
    /// tick needs one halt (more if a halt wakes early); the irq phase 2 per pair.
    /// </summary>
    private static void CheckPhases(Run run, QemuMachine qemu)
    {
        Assert.True(run.Phases["address_spaces"].Ops == 342, $"address_spaces ops {run.Phases["address_spaces"].Ops}\n{qemu.Describe()}");
        Assert.True(run.Phases["timer"].Ops >= 300, $"timer ops {run.Phases["timer"].Ops}\n{qemu.Describe()}");
        Assert.True(run.Phases["irq"].Ops == 200000, $"irq ops {run.Phases["irq"].Ops}\n{qemu.Describe()}");
        foreach (var (name, p) in run.Phases) Assert.True(p.Tsc > 0, $"phase {name}: no TSC ticks");
        // 50 ticks of 10 ms cannot take less than 0.5 s; no TSC runs below 100 MHz, so at least 5e7 ticks.
        Assert.True(run.Phases["timer"].Tsc >= 50_000_000, $"timer phase too short for 50 x 10 ms: {run.Phases["timer"].Tsc} tsc");
    }

    private static string NativeIso(string cmdline)
    {
        string iso = Path.Combine(KernelImages.WorkDir, $"pvops-{Convert.ToHexString(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(cmdline)))[..12]}.iso");
        var psi = new ProcessStartInfo("bash") { UseShellExecute = false, WorkingDirectory = KernelImages.RepoRoot };
        foreach (string a in new[] { KernelImages.MkIso, Guest(), iso, cmdline }) psi.ArgumentList.Add(a);
        using (var p = Process.Start(psi)!) { p.WaitForExit(); Assert.True(p.ExitCode == 0, "mkiso failed"); }
        return iso;
    }

    /// <summary>GRUB boots the ELF itself (multiboot2); it powers off through isa-debug-exit with code 0.</summary>
    private static Run RunNative(string cmdline, string backendLine)
    {
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, BootConfig.Args(NativeIso("pvops.exit=isa-debug-exit " + cmdline), memoryMiB: 512), Hard);
        Run run = Read(qemu, new Regex("^" + Regex.Escape(backendLine) + "$"));
        Assert.Equal(1, qemu.WaitForExit(Step));
        return run;
    }

    /// <summary>Microhv runs the ELF as domain 0 and powers off (status 1) once it has shut down cleanly.</summary>
    private static Run RunMicrohv(string guestCmdline, string backendPattern)
    {
        string iso = KernelImages.IsoWithModules("microhv.log=info microhv.exit=isa-debug-exit", (Guest(), "name=pvops -- " + guestCmdline));
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, BootConfig.Args(iso, memoryMiB: 512), Hard);
        // The ELF's Microhv ABI_ROM note asks for the ROM; Microhv maps it whatever backend the guest then picks.
        qemu.WaitForLine(new Regex(@"domain: 0: ABI ROM 1\.0 mapped at 0xffffffffffc00000"), Step);
        Run run = Read(qemu, new Regex("^" + backendPattern + "$"));
        qemu.WaitForLine(new Regex(@"summary: domain 0 \(pvops\): poweroff, code 0"), Step);
        Assert.Equal(1, qemu.WaitForExit(Step));
        return run;
    }

    private void Show(string what, Run run)
    {
        _output.WriteLine($"{what}: {run.Backend}");
        _output.WriteLine($"  patched {run.Patch.Sites} sites: {run.Patch.Call} call, {run.Patch.Native} native, {run.Patch.Nop} nop");
        _output.WriteLine($"  {run.Result}");
        foreach (var (name, p) in run.Phases) _output.WriteLine($"  phase {name}: {p.Ops} ops, {p.Tsc} tsc");
    }

    [Fact]
    public void SameResultOnEveryBackend()
    {
        Run native = Native.Value;
        Show("native", native);
        Run shim = RunNative("pvops.backend=shim", "pvops: backend shim (multiboot2 entry, pvops.backend=shim: the hypercall API served in ring 0)");
        Show("shim", shim);
        Run hypercall = RunMicrohv("pvops.backend=hypercall", @"pvops: backend hypercall \(pvops\.backend=hypercall\)");
        Show("microhv hypercall", hypercall);
        Assert.Equal(native.Result, shim.Result);
        Assert.Equal(native.Result, hypercall.Result);
        Assert.True(native.Patch.Native > 0 && native.Patch.Nop == 0, "natively the operations with native bytes are inlined");
        foreach (Run pv in new[] { shim, hypercall })
        {
            Assert.Equal(native.Patch.Sites, pv.Patch.Sites);
            Assert.Equal(pv.Patch.Sites, pv.Patch.Call);      // the API: a direct call to the backend's function at every site
        }
    }

    [Fact]
    public void AbiRomBackendOnMicrohv()
    {
        Run native = Native.Value;
        Run rom = RunMicrohv("", @"pvops: backend rom \(ROM 1\.0 at 0xffffffffffc00000, checksum ok, \d+ calls bound: \d+ call, 0 nop, 0 native\)");
        Show("microhv rom", rom);
        Assert.Equal(native.Result, rom.Result);
        Assert.Equal(native.Patch.Sites, rom.Patch.Sites);
        Assert.Equal(rom.Patch.Sites, rom.Patch.Call);        // every ROM call is CALL_REL: one direct call into the ROM per site
    }

    [Fact]
    public void UnsupportedRomVersionFallsBackToHypercalls()
    {
        Run native = Native.Value;
        Run fallback = RunMicrohv("pvops.rom_version=2", @"pvops: backend hypercall \(ROM version 1\.0 not supported, wanted 2\.x, falling back\)");
        Show("microhv rom_version=2", fallback);
        Assert.Equal(native.Result, fallback.Result);
    }

    /// <summary>Xen ignores the Microhv notes, so the guest's probe of the ROM address faults: "no ROM". Xen never exits QEMU.</summary>
    [Fact]
    public void XenHypercallBackend()
    {
        Run native = Native.Value;
        using var qemu = QemuMachine.Start(KernelImages.WorkDir, XenHypervisor.Args(Guest()), Hard);
        Run xen = Read(qemu, new Regex(@"^pvops: backend hypercall \(no ROM\)$"));
        Show("xen", xen);
        Assert.Equal(native.Result, xen.Result);
    }
}
