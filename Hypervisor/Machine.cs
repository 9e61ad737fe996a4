using Microhv.HAL;

namespace Microhv.Hypervisor;

/// <summary>
/// Everything the hypervisor manages on this machine: physical memory (through the HAL's
/// PhysicalMemory), the free frames, the frame table (owner and type of every frame), the host
/// services the kernel provides, and the domains. The kernel creates one; hosted tests create
/// their own over simulated memory.
/// </summary>
public sealed class Machine
{
    /// <summary>Domains alive at once: the boot loader's and the toolstack's.</summary>
    public const int MaxDomains = 16;
    /// <summary>Processors the hypervisor can use (bit n of a CPU mask = processor n).</summary>
    public const int MaxCpus = 64;

    public readonly PhysicalMemory Memory;
    public readonly FrameSource Frames;
    public readonly FrameTable FrameTable;
    public readonly HypervisorHost Host;
    /// <summary>The CPU's live translation of the running guest's addresses (the kernel's fault-fixup
    /// copies); null in hosted tests, where GuestMemory walks the guest tables in software.</summary>
    public LiveGuestMemory Live;
    public readonly Domain[] Domains = new Domain[MaxDomains];
    public readonly Scheduler Scheduler;
    /// <summary>The processor running the hypervisor now: one at a time holds the hypervisor's lock
    /// (docs/smp.md), and the kernel sets this when it takes it. 0 in hosted tests unless a test says otherwise.</summary>
    public int Cpu;
    /// <summary>Which processors may still translate through a frame (Mm/TlbFlushClock.cs).</summary>
    public readonly Mm.TlbFlushClock Tlb;
    /// <summary>Where serial input goes (a domain or the debug keys).</summary>
    public readonly ConsoleInput ConsoleInput;
    public int DomainCount;
    /// <summary>Domain objects for the toolstack's createdomain (null until the kernel fills it at boot).</summary>
    public DomainPool Pool;
    /// <summary>Where createdomain looks for the next free id (Xen's rover: ids are not reused at once).</summary>
    public ushort DomidRover;
    /// <summary>The domain whose console line is open (its last byte was no newline), or null.</summary>
    public Domain ConsoleLineOpenBy;

    /// <summary>The firmware's memory map, the ports and the I/O memory Microhv keeps for itself (filled by the kernel at boot).</summary>
    public readonly Io.E820Map HostMemoryMap = new Io.E820Map();
    public readonly Io.IoPorts IoPorts = new Io.IoPorts();
    public readonly Io.IoMem IoMem = new Io.IoMem();
    /// <summary>The IO-APIC lines and which domain's pirq each is.</summary>
    public readonly Irq.IrqRouting Irqs;
    /// <summary>Message-signalled interrupts and which domain's pirq each is.</summary>
    public readonly Irq.MsiRouting Msis;
    /// <summary>PCI devices and MMCONFIG regions the hardware domain reported (PHYSDEVOP_pci_device_add, pci_mmcfg_reserved).</summary>
    public readonly Io.PciDevices PciDevices = new Io.PciDevices();
    /// <summary>The screen the hardware domain is told about in its start_info (none until the kernel fills it).</summary>
    public readonly VgaConsoleInfo VgaConsole = new VgaConsoleInfo();

    /// <summary>The hypervisor's own L4 entries for slots 256..271 (Xen's reserved hole), copied into
    /// every guest L4 when it is validated; zero entries in hosted tests that don't need them.</summary>
    public readonly ulong[] HypervisorL4Slots = new ulong[Layout.HypervisorL4SlotCount];

    /// <summary>Where vCPUs' LDT pages are mapped for the CPU (Mm/LdtArea.cs); null when none was set up
    /// (hosted tests that do not need one): SET_LDT then records the LDT and no page is ever mapped.</summary>
    public Mm.LdtArea Ldt;
    /// <summary>vCPU objects made so far: each takes the next LdtArea slot (Vcpu.LdtSlot).</summary>
    public int VcpusMade;

    /// <summary>Machine frame number of the first frame of the read-only machine-to-phys table (0 = none).</summary>
    public ulong M2pTableAddress;
    public ulong M2pEntries;

    /// <summary>XENMEM_exchange's output extents of one chunk, allocated once so the hypercall allocates nothing.</summary>
    public readonly ulong[] ExchangeScratch = new ulong[1 << Mm.MemoryExchange.MaxOrder];

    /// <summary>sysctl/domctl operations already logged as unsupported (Sysctl.LogUnknownOnce).</summary>
    public readonly ulong[] ToolstackOpsLogged = new ulong[4];

    /// <summary>Wall-clock time at system time 0, in ns since the epoch (shared_info's wc_*); platform_op settime moves it.</summary>
    public ulong WallclockAtBootNs;

    public Machine(PhysicalMemory memory, FrameSource frames, FrameTable frameTable, HypervisorHost host)
    {
        Memory = memory;
        Frames = frames;
        FrameTable = frameTable;
        Host = host;
        Scheduler = new Scheduler(this);
        Tlb = new Mm.TlbFlushClock(this);
        if (frameTable != null) frameTable.Clock = Tlb;
        if (frames != null) frames.Fence = Tlb;
        ConsoleInput = new ConsoleInput(this);
        Irqs = new Irq.IrqRouting(this);
        Msis = new Irq.MsiRouting(this);
        WallclockAtBootNs = host.WallclockSecondsAtBoot * 1_000_000_000UL;
    }

    public Domain FindDomain(ushort id)
    {
        for (int i = 0; i < DomainCount; i++) if (Domains[i].DomainId == id) return Domains[i];
        return null;
    }

    /// <summary>Makes <paramref name="d"/> one of the machine's domains; false when the table is full.</summary>
    public bool AddDomain(Domain d)
    {
        if (DomainCount >= MaxDomains) return false;
        Domains[DomainCount++] = d;
        return true;
    }

    /// <summary>Takes a domain out of the machine's list (it has given back every frame); the order of the others stays.</summary>
    public void RemoveDomain(Domain d)
    {
        int i = 0;
        while (i < DomainCount && Domains[i] != d) i++;
        if (i == DomainCount) return;
        for (; i + 1 < DomainCount; i++) Domains[i] = Domains[i + 1];
        Domains[--DomainCount] = null;
        Scheduler.Forget(d);
        if (ConsoleLineOpenBy == d) ConsoleLineOpenBy = null;
    }

    /// <summary>Records machine frame <paramref name="mfn"/> as guest frame <paramref name="pfn"/> in the M2P table.</summary>
    public void SetM2p(ulong mfn, ulong pfn)
    {
        if (M2pTableAddress != 0 && mfn < M2pEntries) Memory.Write64(M2pTableAddress + mfn * 8, pfn);
    }
}
