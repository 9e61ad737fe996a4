using System;
using System.IO;
using System.Linq;

namespace Microhv.Bench;

/// <summary>The machine, the tools and the image the figures belong to, and the clean build time.</summary>
public sealed class HostInfo
{
    public string Date, QemuVersion, Cpu, Commit, XenVersion;
    public int Cores;
    public long? Text, Data, Bss, IsoBytes;
    public string SizeFailure;
    public double? CleanBuildSeconds;
    public string CleanBuildNote;

    public static HostInfo Collect(bool cleanBuild, string root)
    {
        var h = new HostInfo
        {
            Date = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'"),
            Cores = Environment.ProcessorCount,
        };
        var q = Tool.Run("qemu-system-x86_64", new[] { "--version" }, null, TimeSpan.FromSeconds(20));
        h.QemuVersion = q.ExitCode == 0 ? q.Output.Split('\n')[0].Trim() : "unknown (qemu-system-x86_64 --version failed)";
        h.Cpu = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").Where(l => l.StartsWith("model name")).Select(l => l.Substring(l.IndexOf(':') + 1).Trim()).FirstOrDefault() ?? "unknown"
            : "unknown";
        var head = Tool.Run("git", new[] { "rev-parse", "--short", "HEAD" }, null, TimeSpan.FromSeconds(20));
        var dirty = Tool.Run("git", new[] { "status", "--porcelain", "--untracked-files=no" }, null, TimeSpan.FromSeconds(20));
        h.Commit = head.ExitCode == 0 ? head.Output.Trim() + (dirty.ExitCode == 0 && dirty.Output.Trim().Length > 0 ? " with uncommitted changes" : "") : "unknown";
        h.XenVersion = File.Exists("build/xen/VERSION") ? File.ReadAllText("build/xen/VERSION").Trim() : "not fetched";

        // `size` (Berkeley format): a header line, then "text data bss dec hex filename".
        var size = Tool.Run("size", new[] { Configuration.MicrohvElf }, null, TimeSpan.FromSeconds(20));
        string[] words = size.ExitCode == 0 ? size.Output.Split('\n').Skip(1).FirstOrDefault()?.Split(new[] { ' ', '\t' }, StringSplitOptions.RemoveEmptyEntries) : null;
        if (words != null && words.Length >= 3 && long.TryParse(words[0], out long t) && long.TryParse(words[1], out long d) && long.TryParse(words[2], out long b))
        { h.Text = t; h.Data = d; h.Bss = b; }
        else h.SizeFailure = "size " + Configuration.MicrohvElf + " failed";
        if (File.Exists("build/microhv.iso")) h.IsoBytes = new FileInfo("build/microhv.iso").Length;

        if (cleanBuild) h.MeasureCleanBuild(root);
        else h.CleanBuildNote = "not measured in this run (--quick or --no-clean-build)";
        return h;
    }

    /// <summary>
    /// A clean build in a fresh clone at HEAD, so that build/ and obj/ of the working tree (and any
    /// build running there) are left alone. Build servers are off so that warm compiler processes
    /// from earlier builds do not shorten it; NuGet packages come from the local cache.
    /// </summary>
    private void MeasureCleanBuild(string root)
    {
        string clone = Path.Combine(Path.GetTempPath(), $"microhv-benchclone-{Environment.ProcessId}");
        try
        {
            if (Directory.Exists(clone)) Directory.Delete(clone, true);
            var c = Tool.Run("git", new[] { "clone", "--quiet", "--depth", "1", "file://" + root, clone }, null, TimeSpan.FromMinutes(2));
            if (c.ExitCode != 0) { CleanBuildNote = "git clone failed: " + Program.Short(c.Output); return; }
            Console.WriteLine("bench: timing a clean kernel build in " + clone);
            var b = Tool.Run("dotnet", new[] { "build", "Kernel/Kernel.csproj", "-nologo", "-v", "q", "--disable-build-servers" }, clone, TimeSpan.FromMinutes(10));
            if (b.ExitCode != 0 || !File.Exists(Path.Combine(clone, Configuration.MicrohvElf)))
            {
                CleanBuildNote = "the clean build failed: " + Program.Short(Tool.Tail(b.Output, 1));
                return;
            }
            CleanBuildSeconds = b.Seconds;
            CleanBuildNote = $"`dotnet build Kernel/Kernel.csproj --disable-build-servers` in a fresh clone at HEAD ({Commit.Split(' ')[0]}); kernel ELF and ISO; NuGet packages from the local cache";
            Console.WriteLine($"bench: clean build: {b.Seconds:0.0} s");
        }
        finally
        {
            try { if (Directory.Exists(clone)) Directory.Delete(clone, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
