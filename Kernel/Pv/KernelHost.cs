using Microhv.Hypervisor;
using Microhv.Kernel.Console;
using Microhv.Kernel.Timer;

namespace Microhv.Kernel.Pv;

/// <summary>The hypervisor's view of this machine: the kernel log, the TSC-based system time, the real TLB and CR3.</summary>
internal sealed unsafe class KernelHost : HypervisorHost
{
    private readonly ulong _tscAtBoot;
    private readonly uint _mul;
    private readonly sbyte _shift;
    private readonly ulong _wallclock;
    private readonly uint _khz;

    public KernelHost(ulong tscHz, ulong wallclockSeconds)
    {
        _tscAtBoot = Cpu.ReadTsc();
        _wallclock = wallclockSeconds;
        _khz = (uint)(tscHz / 1000);
        // Xen's scale: ns = ((tsc shifted by shift) * mul) >> 32, mul < 2^32: shift until tsc_hz > 10^9 >= tsc_hz / 2.
        sbyte shift = 0;
        ulong hz = tscHz == 0 ? 1000000000UL : tscHz;
        while (hz > 2000000000UL) { hz >>= 1; shift--; }
        while (hz <= 1000000000UL) { hz <<= 1; shift++; }
        _shift = shift;
        _mul = (uint)((1000000000UL << 32) / hz);
    }

    public override void ConsoleWrite(byte b) => Log.Put(b);
    public override ulong ReadTsc() => Cpu.ReadTsc();
    public override uint TscToSystemMul => _mul;
    public override sbyte TscShift => _shift;
    public override ulong WallclockSecondsAtBoot => _wallclock;
    public override uint CpuKhz => _khz;

    public override ulong SystemTimeNs()
    {
        ulong delta = Cpu.ReadTsc() - _tscAtBoot;
        delta = _shift >= 0 ? delta << _shift : delta >> -_shift;
        return (delta >> 32) * _mul + (((delta & 0xFFFFFFFFUL) * _mul) >> 32);
    }

    public override void CpuId(uint leaf, uint subleaf, out uint a, out uint b, out uint c, out uint d)
    {
        uint* r = stackalloc uint[4];
        Cpu.CpuId(leaf, subleaf, r);
        a = r[0]; b = r[1]; c = r[2]; d = r[3];
    }

    /// <summary>The clock told of every CR3 load (set once the machine exists).</summary>
    public Hypervisor.Mm.TlbFlushClock Clock;

    // The clock matters only when other processors take guests (PvCpu.Shared).
    public override void FlushTlb()
    {
        Cpu.WriteCr3(Cpu.ReadCr3());
        if (PvCpu.Shared) Clock.Flushed(Smp.Processors.Current);
    }
    public override void InvalidatePage(ulong va) => Cpu.InvalidatePage(va);
    public override void Serialize() => PvCpu.Serialize();
    public override void LoadPageTableBase(ulong l4MachineAddress)
    {
        if (!PvCpu.Shared)
        {
            Cpu.WriteCr3(l4MachineAddress);
            return;
        }
        // Also reached without the lock (a guest's system call or iret): the tick comes first (TlbFlushClock).
        uint time = Clock.BeginFlush();
        Cpu.WriteCr3(l4MachineAddress);
        Clock.FlushedAt(Smp.Processors.Current, time);
    }

    public override uint PhysicalCpuCount => (uint)Smp.Processors.Count;
    public override uint PhysicalCpuApicId(uint cpu) => cpu < (uint)Smp.Processors.Count ? Smp.Processors.Cpus[cpu].ApicId : 0;
    public override void FlushCpus(ulong cpus) => Smp.Ipi.Flush(cpus);
    public override void Kick(ulong cpus) => Smp.Ipi.Kick(cpus);
    public override void WaitDescheduled(Vcpu v) => PvCpu.WaitDescheduled(v);

    public override int GsiCount => Irq.IoApic.Lines;
    // Every line goes to the boot processor, whichever processor asks.
    public override bool RouteGsi(int gsi, byte vector, bool level, bool activeLow, bool masked)
        => Irq.IoApic.Route(gsi, vector, level, activeLow, masked, Smp.Processors.Cpus[0].ApicId);
    public override bool ReadIoApic(ulong physicalBase, uint reg, out uint value) => Irq.IoApic.ReadRegister(physicalBase, reg, out value);

    public override uint PortIn(uint port, int size)
        => size == 1 ? Cpu.InB((ushort)port) : size == 2 ? Cpu.InW((ushort)port) : Cpu.InD((ushort)port);

    public override void PortOut(uint port, int size, uint value)
    {
        if (size == 1) Cpu.OutB((ushort)port, (byte)value);
        else if (size == 2) Cpu.OutW((ushort)port, (ushort)value);
        else Cpu.OutD((ushort)port, value);
    }

    public override void LoadGuestGdt(Vcpu v) => GuestGdt.Load(v);
    public override void LoadLdt(Vcpu v) => GuestGdt.LoadLdt(v);

    // While the hypervisor runs, the guest's selectors are still in the CPU (nothing in ring 0 loads DS, ES, FS or GS).
    public override void SaveSegments(Vcpu v)
    {
        ushort* s = stackalloc ushort[4];
        Cpu.ReadSelectors(s);
        v.Ds = s[0]; v.Es = s[1]; v.Fs = s[2]; v.Gs = s[3];
    }

    // Loading GS in ring 0 changes GS_BASE, this processor's block: the routine writes it back. A #PF of the LDT
    // area meanwhile maps the page (TrapDispatch, PvCpu.LdtFault); the FS and GS bases are written after this.
    public override int LoadSegments(Vcpu v)
    {
        Hypervisor.Traps.GuestEntry entry = PvCpu.Entry;
        ulong block = Cpu.ReadMsr(GsBaseMsr);
        entry.LoadingSegments = true;
        int refused = Cpu.LoadGuestSelectors(v.Ds, v.Es, v.Fs, v.Gs, block);
        entry.LoadingSegments = false;
        return refused;
    }

    // As LoadSegments, for GS alone: the selector's base as the CPU gives it (an LDT page mapped on demand meanwhile).
    public override ulong LoadUserGs(Vcpu v, ushort selector)
    {
        Hypervisor.Traps.GuestEntry entry = PvCpu.Entry;
        ulong block = Cpu.ReadMsr(GsBaseMsr);
        entry.LoadingSegments = true;
        ulong b = Cpu.LoadUserGs(selector, block);
        entry.LoadingSegments = false;
        return b;
    }

    private const uint GsBaseMsr = 0xC0000101;
    // While the hypervisor runs the guest's GS base waits in KERNEL_GS_BASE (the entry's SWAPGS).
    public override ulong ReadGuestFsBase() => Cpu.ReadMsr(0xC0000100);
    public override ulong ReadGuestGsBase() => Cpu.ReadMsr(Smp.CpuBlock.KernelGsBaseMsr);
    public override void ResetVcpuFpu(Vcpu v) => DomainLoader.InitFpuArea(v.FpuArea);
    public override void WriteGuestGdtEntry(int index, ulong descriptor) => GuestGdt.Write(index, descriptor);
}
