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
    /// <summary>vCPUs whose GDT was (re)loaded into the CPU, and single GDT entries written, in order.</summary>
    public readonly List<Vcpu> GdtLoads = new();
    public readonly List<(int Index, ulong Descriptor)> GdtEntryWrites = new();
    public override void LoadGuestGdt(Vcpu v) => GdtLoads.Add(v);
    public override void WriteGuestGdtEntry(int index, ulong descriptor) => GdtEntryWrites.Add((index, descriptor));
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
    private ulong _nextFrame;

    public TestMachine(int frames = 1024, ulong firstFreeFrame = 16)
    {
        Memory = new SimulatedMemory(0, frames * 4096);
        FrameTable = new FrameTable((ulong)frames);
        _nextFrame = firstFreeFrame;
        Machine = new Machine(Memory, new BumpFrameSource(Memory, (ulong)(frames / 2) * 4096, frames / 2), FrameTable, Host);
    }

    /// <summary>Adds a domain with the given id to the machine.</summary>
    public Domain AddDomain(ushort id, bool initial = false)
    {
        var d = new Domain(Machine, id) { IsInitialDomain = initial, State = DomainState.Running };
        Machine.Domains[Machine.DomainCount++] = d;
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
