using System;
using System.Collections.Generic;

namespace Microhv.Bench;

/// <summary>The table's columns: where the pvops guest runs.</summary>
public enum Column { Native, MicrohvHypercall, MicrohvRom, Xen }

/// <summary>
/// One QEMU boot of the pvops guest: how its image is made and how QEMU is started. The icount
/// arguments make the guest's TSC advance one tick per instruction, so figures do not depend on
/// the host; the wall-clock boot runs leave them out.
/// </summary>
public sealed class Configuration
{
    public static readonly string[] Icount = { "-icount", "shift=0,sleep=off", "-rtc", "base=2026-01-01T00:00:00,clock=vm" };

    public const string MicrohvElf = "build/microhv.elf";
    /// <summary>The guest; BENCH_GUEST overrides it (for trying the harness with another image).</summary>
    public static readonly string PvOpsElf = Environment.GetEnvironmentVariable("BENCH_GUEST") ?? "build/pvops.elf";
    public const string XenElf = "build/xen/xen";
    public const string XenCommandLine = "console=com1 com1=115200,8n1 dom0_mem=64M noreboot";

    public string Key { get; init; }
    public Column Column { get; init; }
    public string Title { get; init; }
    /// <summary>Boot/mkiso.sh arguments after the ISO path (kernel cmdline, then module/cmdline pairs); null: no ISO (Xen boots with -kernel).</summary>
    public string[] IsoArgs { get; init; }
    public string IsoKernel { get; init; }
    public string IsoPath { get; init; }
    /// <summary>How many guests must print "pvops: done" before the run is complete.</summary>
    public int Guests { get; init; } = 1;
    /// <summary>The guest's "pvops: backend X" line must name this backend: the guest falls back from the ROM to the API by itself.</summary>
    public string Backend { get; init; }
    /// <summary>True for the ping-pong runs that measure domain_switch (not part of the boot-time table).</summary>
    public bool PingPong { get; init; }

    private List<string> _baseArgs;

    public IReadOnlyList<string> Args(bool icount)
    {
        var args = new List<string>(_baseArgs);
        if (icount) args.AddRange(Icount);
        return args;
    }

    private static readonly string[] IsoQemu = { "-serial", "stdio", "-display", "none", "-no-reboot", "-m", "512M", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04" };

    private static string Guest(string mode, string backend, string extra)
        => "pvops.mode=" + mode + (backend != null ? " pvops.backend=" + backend : "") + (extra.Length > 0 ? " " + extra : "");

    /// <summary>The four benchmark configurations and the two Microhv ping-pong runs; <paramref name="extra"/> is added to the guest's command line (--quick).</summary>
    public static List<Configuration> All(string workDir, string extra)
    {
        var list = new List<Configuration>();

        string nativeIso = workDir + "/native.iso";
        list.Add(new Configuration
        {
            Key = "native", Column = Column.Native, Title = "native (GRUB)", Backend = "native",
            IsoKernel = PvOpsElf, IsoPath = nativeIso,
            IsoArgs = new[] { Guest("bench", null, extra) + " pvops.exit=isa-debug-exit" },
            _baseArgs = Cdrom(nativeIso),
        });

        foreach (var (key, column, backend, title) in new[]
        {
            ("hypercall", Column.MicrohvHypercall, "hypercall", "Microhv, hypercall API"),
            ("rom", Column.MicrohvRom, "rom", "Microhv, ABI ROM"),
        })
        {
            string iso = workDir + "/microhv-" + key + ".iso";
            list.Add(new Configuration
            {
                Key = key, Column = column, Title = title, Backend = backend,
                IsoKernel = MicrohvElf, IsoPath = iso,
                IsoArgs = new[] { "microhv.exit=isa-debug-exit", PvOpsElf, "name=pvops -- " + Guest("bench", backend, extra) },
                _baseArgs = Cdrom(iso),
            });
        }

        list.Add(new Configuration
        {
            Key = "xen", Column = Column.Xen, Title = "Xen 4.17, hypercall API", Backend = "hypercall",
            _baseArgs = new List<string>
            {
                "-m", "512", "-cpu", "max", "-kernel", XenElf,
                // QEMU's multiboot loader passes "file args" as the module string; Xen drops the file name.
                "-initrd", PvOpsElf + " " + Guest("bench", "hypercall", extra),
                "-append", XenCommandLine,
                "-serial", "stdio", "-display", "none", "-no-reboot",
            },
        });

        foreach (var (key, column, backend) in new[] { ("pingpong-hypercall", Column.MicrohvHypercall, "hypercall"), ("pingpong-rom", Column.MicrohvRom, "rom") })
        {
            string iso = workDir + "/microhv-" + key + ".iso";
            string cmd = Guest("pingpong", backend, extra);
            list.Add(new Configuration
            {
                Key = key, Column = column, Title = "Microhv ping-pong, " + backend, Backend = backend, PingPong = true, Guests = 2,
                IsoKernel = MicrohvElf, IsoPath = iso,
                IsoArgs = new[] { "microhv.exit=isa-debug-exit", PvOpsElf, "name=ping -- " + cmd, PvOpsElf, "name=pong -- " + cmd },
                _baseArgs = Cdrom(iso),
            });
        }
        return list;
    }

    private static List<string> Cdrom(string iso)
    {
        var args = new List<string> { "-cdrom", iso };
        args.AddRange(IsoQemu);
        return args;
    }
}
