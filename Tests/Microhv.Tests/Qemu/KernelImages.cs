using System.Linq;
using System;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO;

namespace Microhv.Tests.Qemu;

/// <summary>
/// The kernel under test and ISOs made from it. The kernel itself is built before the tests run:
/// Microhv.Tests.csproj has a ProjectReference to Kernel/Kernel.csproj (no assembly reference), so
/// `dotnet test Microhv.sln` and `dotnet test Tests/Microhv.Tests` both build build/microhv.elf and
/// build/microhv.iso first. Other command lines get their own ISO from Boot/mkiso.sh, made once per
/// test run in a temporary directory that is deleted when the run ends.
/// </summary>
public static class KernelImages
{
    public static readonly string RepoRoot = FindRepoRoot();
    public static string Elf => Path.Combine(RepoRoot, "build", "microhv.elf");
    public static string MkIso => Path.Combine(RepoRoot, "Boot", "mkiso.sh");

    /// <summary>Per-run scratch directory (ISOs, screen dumps, sockets); short, for unix socket paths.</summary>
    public static readonly string WorkDir = CreateWorkDir();

    private static readonly ConcurrentDictionary<string, Lazy<string>> Isos = new();
    private static int _isoCount;

    /// <summary>build/microhv.iso as the build made it (command line microhv.log=info).</summary>
    public static string DefaultIso
    {
        get
        {
            string iso = Path.Combine(RepoRoot, "build", "microhv.iso");
            RequireFile(iso);
            return iso;
        }
    }

    /// <summary>An ISO that boots build/microhv.elf with <paramref name="cmdline"/>; made once per run.</summary>
    public static string IsoFor(string cmdline)
        => Isos.GetOrAdd(cmdline, c => new Lazy<string>(() => MakeIso(c))).Value;

    /// <summary>An ISO with multiboot2 modules: pairs of (file, module command line).</summary>
    public static string IsoWithModules(string cmdline, params (string File, string Cmdline)[] modules)
    {
        string key = cmdline + "\0" + string.Join("\0", modules.Select(m => m.File + "\0" + m.Cmdline));
        return Isos.GetOrAdd(key, _ => new Lazy<string>(() => MakeIso(cmdline, modules))).Value;
    }

    private static string MakeIso(string cmdline, params (string File, string Cmdline)[] modules)
    {
        RequireFile(Elf);
        string iso = Path.Combine(WorkDir, $"microhv-{System.Threading.Interlocked.Increment(ref _isoCount)}.iso");
        var psi = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in new[] { MkIso, Elf, iso, cmdline }) psi.ArgumentList.Add(a);
        foreach (var m in modules) { psi.ArgumentList.Add(m.File); psi.ArgumentList.Add(m.Cmdline); }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        string stderr = p.StandardError.ReadToEnd();
        if (!p.WaitForExit(120_000))
        {
            p.Kill(entireProcessTree: true);
            throw new InvalidOperationException("Boot/mkiso.sh did not finish within 120 s");
        }
        if (p.ExitCode != 0 || !File.Exists(iso))
            throw new InvalidOperationException($"Boot/mkiso.sh failed ({p.ExitCode}) for \"{cmdline}\":\n{stdout.Result}{stderr}");
        return iso;
    }

    private static void RequireFile(string path)
    {
        if (!File.Exists(path))
            throw new InvalidOperationException(
                $"{path} does not exist: build the kernel first (dotnet build Kernel/Kernel.csproj; dotnet test builds it through the project reference)");
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Microhv.sln")) && File.Exists(Path.Combine(dir.FullName, "Boot", "mkiso.sh")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"cannot find the Microhv repository above {AppContext.BaseDirectory}");
    }

    private static string CreateWorkDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"microhv-tests-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
        return dir;
    }
}
