using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Kernel.Console;
using Microhv.Kernel.Memory;

namespace Microhv.Kernel.Pv;

/// <summary>
/// Turns the multiboot2 modules into domains. A module's command line (the words after its path on
/// GRUB's module2 line) is Microhv's first, then the guest's after "--":
///   module2 /boot/guest.elf name=web pages=4096 initial -- console=hvc0
/// pages=N (default 4096 = 16 MiB), initial (the initial domain: SIF_INITDOMAIN, console_io, id 0;
/// default: the first module), name=... for the log, vcpus=N (1 to Domain.VcpuCapacity; default one
/// per started CPU for the initial domain, as Xen's dom0, and 1 for the others: vCPU 0 starts, the
/// guest brings the others up with VCPUOP_initialise and VCPUOP_up), cpus=LIST (xl.cfg's: the processors its vCPUs
/// may run on, e.g. cpus=0-1,3, HAL/CpuList.cs; the started ones of them, and a list naming none is refused). A module whose only word is "initrd" is not a
/// domain: it is the initial ramdisk of the module just before it (start_info mod_start, as a PFN):
///   module2 /boot/initrd.gz initrd
/// A module that cannot be built is refused with the reason; the others still start.
/// </summary>
internal static unsafe class DomainLoader
{
    public const ulong DefaultPages = 4096;
    public const ulong MaxPages = 262144;   // 1 GiB

    public static void LoadAll(Machine machine, Multiboot2Info info)
    {
        int initialIndex = FindInitial(info);
        ushort nextDomU = 1;
        for (int m = 0; m < info.ModuleCount; m++)
        {
            info.GetModule(m, out ulong start, out ulong end, out _, out _);
            byte[] buffer = new byte[1024];
            var line = ModuleLine(info, m, buffer);
            int len = line.Length;

            ulong pages = DefaultPages;
            ulong vcpus = 0, cpus = 0;
            int cpusStart = 0, cpusLength = 0;
            ulong started = machine.Scheduler.Started;
            int nameStart = 0, nameLength = 0, guestStart = len;
            bool bad = false, isInitrd = false;
            int pos = 0;
            while (line.NextWord(ref pos, out int ws, out int wl))
            {
                if (line.BytesEqual(ws, wl, "--")) { guestStart = pos; break; }
                if (line.BytesEqual(ws, wl, "initrd")) { isInitrd = true; continue; }
                line.SplitWord(ws, wl, out int kl, out bool hasValue, out int vs, out int vl);
                if (line.BytesEqual(ws, kl, "pages") && hasValue && ParseNumber(buffer, vs, vl, out ulong p) && p >= 64 && p <= MaxPages) pages = p;
                else if (line.BytesEqual(ws, kl, "vcpus") && hasValue && ParseNumber(buffer, vs, vl, out ulong nv) && nv >= 1 && nv <= Domain.VcpuCapacity) vcpus = nv;
                else if (line.BytesEqual(ws, kl, "cpus") && hasValue && CpuList.TryParse(buffer, vs, vl, out ulong mask))
                {
                    cpus = mask & started;
                    cpusStart = vs; cpusLength = vl;
                    if (cpus != 0) continue;
                    Log.Write("domain: module "); Log.Dec((ulong)m); Log.Write(": '"); Log.Write(Pointer(buffer, ws), wl);
                    Log.Line("' names no processor that was started");
                    bad = true;
                }
                else if (line.BytesEqual(ws, wl, "initial")) { }
                else if (line.BytesEqual(ws, kl, "name") && hasValue) { nameStart = vs; nameLength = vl; }
                else
                {
                    Log.Write("domain: module "); Log.Dec((ulong)m); Log.Write(": unknown or bad word '");
                    Log.Write(Pointer(buffer, ws), wl); Log.Line("'");
                    bad = true;
                }
            }
            if (bad) { Log.Write("domain: module "); Log.Dec((ulong)m); Log.Line(" refused: fix its command line (pages=64..262144, vcpus=1..8, cpus=0-1,3, initial, name=..., -- guest words)"); continue; }
            if (isInitrd)
            {
                if (m == 0) { Log.Write("domain: module 0 is an initrd with no kernel module before it: ignored"); Log.Line(); }
                continue;   // taken by the module before it
            }
            while (guestStart < len && buffer[guestStart] == (byte)' ') guestStart++;
            ulong initrdStart = 0, initrdLength = 0;
            if (m + 1 < info.ModuleCount && IsInitrd(info, m + 1))
            {
                info.GetModule(m + 1, out initrdStart, out ulong initrdEnd, out _, out _);
                initrdLength = initrdEnd - initrdStart;
            }

            bool initial = m == initialIndex;
            ushort id = initial ? (ushort)0 : nextDomU;
            byte[] guestCmdline = new byte[1024];
            int guestLen = 0;
            for (int i = guestStart; i < len && guestLen < 1023; i++) guestCmdline[guestLen++] = buffer[i];

            DomainBuildStatus status = DomainBuilder.Build(machine, id, start, end - start, pages, initial, guestCmdline, guestLen,
                initrdStart, initrdLength, out Domain d);
            Log.Write("domain: module "); Log.Dec((ulong)m); Log.Write(" (");
            if (nameLength > 0) Log.Write(Pointer(buffer, nameStart), nameLength); else Log.Write("unnamed");
            if (status != DomainBuildStatus.Ok)
            {
                Log.Write("): refused: "); Log.Line(DomainBuilder.StatusName(status));
                continue;
            }
            if (!initial) nextDomU++;
            byte[] name = new byte[nameLength];
            for (int i = 0; i < nameLength; i++) name[i] = buffer[nameStart + i];
            d.Name = name;
            if (vcpus == 0) vcpus = initial ? (ulong)(Smp.Processors.Count < Domain.VcpuCapacity ? Smp.Processors.Count : Domain.VcpuCapacity) : 1;
            d.MaxVcpus = (int)vcpus;
            for (int i = 0; i < Domain.VcpuCapacity; i++)
            {
                d.Vcpus[i].FpuArea = NewFpuArea();
                if (cpus != 0) d.Vcpus[i].HardAffinity = cpus;          // xl.cfg's cpus=: every vCPU's hard affinity
            }
            if (GrantTable.Create(d) == null) Log.Line("domain: no frame for a grant table; grant operations will fail");
            d.State = DomainState.Running;
            Log.Write(") is domain "); Log.Dec(d.DomainId); Log.Write(initial ? " (initial)" : ""); Log.Write(": ");
            Log.Dec(pages); Log.Write(" pages, entry "); Log.Hex(d.Vcpu.Regs.Rip); Log.Write(", start_info "); Log.Hex(d.Vcpu.Regs.Rsi);
            if (initrdLength != 0) { Log.Write(", initrd of "); Log.Dec(initrdLength); Log.Write(" bytes"); }
            if (vcpus > 1) { Log.Write(", "); Log.Dec(vcpus); Log.Write(" vCPUs"); }
            if (cpus != 0) { Log.Write(", on CPUs "); Log.Write(Pointer(buffer, cpusStart), cpusLength); }
            Log.Line();
            if (d.AbiRomAddress != 0)
            {
                Log.Write("domain: "); Log.Dec(d.DomainId); Log.Write(": ABI ROM "); Log.Dec(Microhv.Hypervisor.Public.AbiRomLayout.VersionMajor);
                Log.Write("."); Log.Dec(Microhv.Hypervisor.Public.AbiRomLayout.VersionMinor); Log.Write(" mapped at "); Log.Hex(d.AbiRomAddress);
                Log.Write(" (guest asked for "); Log.Dec(d.AbiRomRequestedMajor); Log.Write("."); Log.Dec(d.AbiRomRequestedMinor); Log.Line(")");
            }
        }
    }

    /// <summary>True when module <paramref name="m"/>'s own words (before "--") include "initrd".</summary>
    private static bool IsInitrd(Multiboot2Info info, int m) => HasOwnWord(info, m, "initrd");

    private static int FindInitial(Multiboot2Info info)
    {
        for (int m = 0; m < info.ModuleCount; m++)
            if (HasOwnWord(info, m, "initial")) return m;
        return 0;
    }

    /// <summary>Module <paramref name="m"/>'s command line, copied out of the boot information.</summary>
    private static CommandLine ModuleLine(Multiboot2Info info, int m, byte[] buffer)
    {
        info.GetModule(m, out _, out _, out ulong str, out uint strLen);
        int len = CommandLine.CopyFrom(DirectMap.Instance, str, strLen, buffer, out _);
        return new CommandLine(buffer, len);
    }

    /// <summary>True when the words Microhv reads (those before "--") include <paramref name="word"/>.</summary>
    private static bool HasOwnWord(Multiboot2Info info, int m, string word)
    {
        var line = ModuleLine(info, m, new byte[1024]);
        int pos = 0;
        while (line.NextWord(ref pos, out int ws, out int wl))
        {
            if (line.BytesEqual(ws, wl, "--")) return false;
            if (line.BytesEqual(ws, wl, word)) return true;
        }
        return false;
    }

    private static bool ParseNumber(byte[] b, int start, int length, out ulong value)
    {
        value = 0;
        if (length == 0 || length > 12) return false;
        for (int i = 0; i < length; i++)
        {
            byte c = b[start + i];
            if (c < (byte)'0' || c > (byte)'9') return false;
            value = value * 10 + (ulong)(c - '0');
        }
        return true;
    }

    private static unsafe byte* Pointer(byte[] b, int offset)
    {
        fixed (byte* p = b) return p + offset;
    }

    /// <summary>A 16-byte-aligned FXSAVE image in the power-on state.</summary>
    private static unsafe ulong NewFpuArea()
    {
        byte* a = Internal.Runtime.KernelHeap.AllocateAligned(512, 16);
        InitFpuArea((ulong)a);
        return (ulong)a;
    }

    /// <summary>Puts an FXSAVE image in the power-on state: FCW 0x37F, MXCSR 0x1F80, everything else 0.</summary>
    public static unsafe void InitFpuArea(ulong area)
    {
        if (area == 0) return;
        byte* a = (byte*)area;
        for (int i = 0; i < 512; i++) a[i] = 0;
        *(ushort*)a = 0x037F;
        *(uint*)(a + 24) = 0x1F80;
        *(uint*)(a + 28) = 0xFFFF;    // MXCSR_MASK
    }

    /// <summary>
    /// The domain objects the toolstack's createdomain takes (DomainPool), made now because a hypercall
    /// allocates nothing: only when an initial domain exists that could run a toolstack. Each gets its
    /// FPU area. The boot log says how many and the heap they took.
    /// </summary>
    public static void ReservePool(Machine machine)
    {
        bool control = false;
        for (int i = 0; i < machine.DomainCount; i++) if (machine.Domains[i].IsControlDomain) control = true;
        if (!control) return;
        ulong before = Internal.Runtime.KernelHeap.Allocated;
        int size = DomainPool.DefaultSize;
        if (size > Machine.MaxDomains - machine.DomainCount) size = Machine.MaxDomains - machine.DomainCount;
        ulong need = (ulong)size * 256 * 1024;
        if (Internal.Runtime.KernelHeap.Remaining < need + 2 * 1024 * 1024)
        {
            Log.Line("domain: not enough heap for the toolstack's domain pool; createdomain will fail with -ENOMEM");
            return;
        }
        DomainPool pool = DomainPool.Fill(machine, size);
        // Fill's domains are in the pool already; give each its FPU area.
        for (int i = 0; i < size; i++)
        {
            Domain d = pool.Peek(i);
            for (int n = 0; n < Domain.VcpuCapacity; n++) d.Vcpus[n].FpuArea = NewFpuArea();
        }
        machine.Pool = pool;
        Log.Write("domain: "); Log.Dec((ulong)size); Log.Write(" domain objects ready for the toolstack (");
        Log.Dec((Internal.Runtime.KernelHeap.Allocated - before) >> 10); Log.Line(" KiB)");
    }
}
