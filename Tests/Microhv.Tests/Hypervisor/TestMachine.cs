using System.Collections.Generic;
using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Tests.Hosted;

namespace Microhv.Tests.Hypervisor;

/// <summary>A HypervisorHost that records what the hypervisor asked of the CPU.</summary>
public sealed class RecordingHost : HypervisorHost
{
    public readonly List<byte> Console = new();
    public int TlbFlushes;
    public readonly List<ulong> InvalidatedPages = new();
    public readonly List<ulong> LoadedPageTableBases = new();
    public ulong NowNs;

    public override void ConsoleWrite(byte b) => Console.Add(b);
    public override ulong SystemTimeNs() => NowNs;
    public override ulong ReadTsc() => NowNs;
    public override uint TscToSystemMul => 1u << 31;
    public override sbyte TscShift => 1;
    public override ulong WallclockSecondsAtBoot => 1_700_000_000;
    public override void FlushTlb() => TlbFlushes++;
    public override void InvalidatePage(ulong va) => InvalidatedPages.Add(va);
    public override void LoadPageTableBase(ulong l4MachineAddress) => LoadedPageTableBases.Add(l4MachineAddress);
    /// <summary>Each request to flush other processors' TLBs (a CPU mask), in order.</summary>
    public readonly List<ulong> CpuFlushes = new();
    public override void FlushCpus(ulong cpus) => CpuFlushes.Add(cpus);
    /// <summary>vCPUs a pauser waited for (HypervisorHost.WaitDescheduled), in order; OnWaitDescheduled plays the
    /// processor that runs the vCPU (its exit), as the lock dropped while the kernel waits lets it do.</summary>
    public readonly List<Vcpu> DescheduleWaits = new();
    public System.Action<Vcpu> OnWaitDescheduled;
    public override void WaitDescheduled(Vcpu v)
    {
        DescheduleWaits.Add(v);
        OnWaitDescheduled?.Invoke(v);
    }
    /// <summary>Times the hypervisor asked for the lock from an unlocked path (HypervisorHost.Serialize).</summary>
    public int Serializations;
    public override void Serialize() => Serializations++;
    /// <summary>vCPUs whose GDT was (re)loaded into the CPU, and single GDT entries written, in order.</summary>
    public readonly List<Vcpu> GdtLoads = new();
    public readonly List<(int Index, ulong Descriptor)> GdtEntryWrites = new();
    public override void LoadGuestGdt(Vcpu v) => GdtLoads.Add(v);
    /// <summary>vCPUs whose LDT was loaded into the CPU (SET_LDT), in order.</summary>
    public readonly List<Vcpu> LdtLoads = new();
    public override void LoadLdt(Vcpu v) => LdtLoads.Add(v);
    /// <summary>save_segments calls (the vCPU whose selectors were read) and load_segments calls, in order;
    /// "the CPU" refuses the selectors in RefuseSegments on the next load.</summary>
    public readonly List<Vcpu> SegmentSaves = new();
    public readonly List<Vcpu> SegmentLoads = new();
    public int RefuseSegments;
    public override void SaveSegments(Vcpu v) => SegmentSaves.Add(v);
    public override int LoadSegments(Vcpu v)
    {
        SegmentLoads.Add(v);
        int refused = RefuseSegments;
        RefuseSegments = 0;
        return refused;
    }
    /// <summary>The FS base and active GS base "in the CPU" (a guest changes them with a selector load, or WRFSBASE
    /// and WRGSBASE), and how often each was read.</summary>
    public ulong LiveFsBase, LiveGsBase;
    public int FsBaseReads, GsBaseReads;
    public int SegmentBaseReads => FsBaseReads + GsBaseReads;
    public override ulong ReadGuestFsBase() { FsBaseReads++; return LiveFsBase; }
    public override ulong ReadGuestGsBase() { GsBaseReads++; return LiveGsBase; }
    /// <summary>Selectors set_segment_base(SEGBASE_GS_USER_SEL) loaded into "the CPU's" GS, in order.</summary>
    public readonly List<ushort> UserGsLoads = new();
    public override ulong LoadUserGs(Vcpu v, ushort selector)
    {
        UserGsLoads.Add(selector);
        return base.LoadUserGs(v, selector);
    }
    public override void WriteGuestGdtEntry(int index, ulong descriptor) => GdtEntryWrites.Add((index, descriptor));
    /// <summary>Port I/O the hypervisor performed, in order (In: Value is what was returned).</summary>
    public readonly List<(bool In, uint Port, int Size, uint Value)> PortAccesses = new();
    /// <summary>What a port reads as (one value per port, truncated to the access size); all ones when unset.</summary>
    public readonly Dictionary<uint, uint> PortValues = new();
    /// <summary>A simulated PCI configuration space behind mechanism #1: dwords keyed by (CONFIG_ADDRESS &amp; ~3) | enable.</summary>
    public readonly Dictionary<uint, uint> PciConfig = new();
    private uint _cf8;
    public override uint PortIn(uint port, int size)
    {
        uint mask = size == 4 ? 0xFFFF_FFFFu : (1u << (size * 8)) - 1;
        uint value;
        if ((port & ~3u) == 0xCFC && size != 4 || port == 0xCFC)
            value = PciConfig.TryGetValue(_cf8 & ~3u, out uint dword) ? (dword >> (int)((port & 3) * 8)) & mask : mask;
        else value = PortValues.TryGetValue(port, out uint v) ? v & mask : mask;
        PortAccesses.Add((true, port, size, value));
        return value;
    }
    public override void PortOut(uint port, int size, uint value)
    {
        PortAccesses.Add((false, port, size, value));
        if (port == 0xCF8 && size == 4) _cf8 = value;
        else if ((port & ~3u) == 0xCFC)
        {
            int shift = (int)((port & 3) * 8);
            uint mask = (size == 4 ? 0xFFFF_FFFFu : (1u << (size * 8)) - 1) << shift;
            PciConfig.TryGetValue(_cf8 & ~3u, out uint dword);
            PciConfig[_cf8 & ~3u] = (dword & ~mask) | ((value << shift) & mask);
        }
    }
    /// <summary>IO-APIC lines the simulated machine has, and every redirection entry the hypervisor programmed.</summary>
    public int Gsis = 24;
    public readonly List<(int Gsi, byte Vector, bool Level, bool ActiveLow, bool Masked)> GsiRoutes = new();
    public override int GsiCount => Gsis;
    public override bool RouteGsi(int gsi, byte vector, bool level, bool activeLow, bool masked)
    {
        if (gsi < 0 || gsi >= Gsis) return false;
        GsiRoutes.Add((gsi, vector, level, activeLow, masked));
        return true;
    }
    /// <summary>IO-APIC registers by (base, register).</summary>
    public readonly Dictionary<(ulong, uint), uint> IoApicRegisters = new();
    public override bool ReadIoApic(ulong physicalBase, uint reg, out uint value) => IoApicRegisters.TryGetValue((physicalBase, reg), out value);
    /// <summary>CPUID answers a test sets per leaf (subleaf ignored); zeros otherwise.</summary>
    public readonly Dictionary<uint, (uint a, uint b, uint c, uint d)> CpuIdLeaves = new();
    public override void CpuId(uint leaf, uint subleaf, out uint a, out uint b, out uint c, out uint d)
    {
        CpuIdLeaves.TryGetValue(leaf, out var r);
        (a, b, c, d) = r;
    }
}

/// <summary>
/// A Machine over simulated memory starting at physical address 0 (so machine frame n is at n * 4 KiB
/// and the frame table covers all of it), with a recording host. NewFrame hands out frames from the
/// lower half; the Machine's frame source hands out the upper half.
/// </summary>
public sealed class TestMachine
{
    public readonly SimulatedMemory Memory;
    public readonly FrameTable FrameTable;
    public readonly RecordingHost Host = new();
    public readonly Machine Machine;
    /// <summary>The machine's frame source (the upper half of memory); set Reuse to have freed frames handed out again.</summary>
    public readonly BumpFrameSource Frames;
    private ulong _nextFrame;

    public TestMachine(int frames = 1024, ulong firstFreeFrame = 16)
    {
        Memory = new SimulatedMemory(0, frames * 4096);
        FrameTable = new FrameTable((ulong)frames);
        _nextFrame = firstFreeFrame;
        Frames = new BumpFrameSource(Memory, (ulong)(frames / 2) * 4096, frames / 2);
        Machine = new Machine(Memory, Frames, FrameTable, Host);
    }

    /// <summary>Adds a domain with the given id to the machine.</summary>
    public Domain AddDomain(ushort id, bool initial = false)
    {
        var d = new Domain(Machine, id) { IsInitialDomain = initial, State = DomainState.Running };
        d.Vcpu.Online = true;
        Machine.AddDomain(d);
        return d;
    }

    /// <summary>A zeroed frame owned by <paramref name="owner"/> (taken after the frames the frame source hands out).</summary>
    public ulong NewFrame(ushort owner)
    {
        ulong mfn = _nextFrame++;
        Memory.Fill(mfn * 4096, 0, 4096);
        FrameTable.SetOwner(mfn, owner);
        return mfn;
    }
}
