using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;
using Microhv.Kernel.Console;
using Microhv.Kernel.Memory;
using Microhv.Kernel.Timer;
using Microhv.Kernel.Traps;

namespace Microhv.Kernel.Pv;

/// <summary>
/// Turns the booted kernel into a hypervisor: the frame table, the read-only machine-to-phys table
/// at Xen's address, the hypervisor's L4 slots every guest L4 shares, the SYSCALL and INT 0x82
/// hypercall entries, then the domains from the boot modules.
/// </summary>
internal static unsafe class PvSetup
{
    public static bool Start(Multiboot2Info info, FrameAllocator frames, ref BootLayout layout)
    {
        var host = new KernelHost(Clock.TscHz, Rtc.SecondsSinceEpoch());
        var table = new FrameTable(frames.FrameCount);
        var machine = new Machine(DirectMap.Instance, frames, table, host);
        machine.Live = new GuestCopy();
        if (!MapMachineToPhys(machine, frames.FrameCount, ref layout)) return false;
        HostResources.Register(machine, info);
        if (!CreateLdtArea(machine)) return false;
        ulong l4 = KernelAddressSpace.Tables.Root;
        for (int i = 0; i < Layout.HypervisorL4SlotCount; i++)
            machine.HypervisorL4Slots[i] = DirectMap.Instance.Read64(l4 + (ulong)(Layout.FirstHypervisorL4Slot + i) * 8);

        SyscallMsrs.Enable();
        Idt.SetGuestGate(PvCpu.HypercallTrapVector);
        // As in Xen, INT3 and INTO raise #BP/#OF directly from the guest (DPL 3 gates), to be bounced.
        Idt.SetGuestGate(Vectors.Breakpoint);
        Idt.SetGuestGate(Vectors.Overflow);
        PvCpu.Machine = machine;
        host.Clock = machine.Tlb;
        PvCpu.Entries = new GuestEntry[Smp.Processors.Count];
        for (int i = 0; i < PvCpu.Entries.Length; i++) PvCpu.Entries[i] = new GuestEntry(machine, i);

        DomainSummary.FreeFramesAtStart = frames.FreeFrames;
        ScreenHandover.BeforeDomains(machine, info);
        machine.Scheduler.Start(Smp.Processors.Count);      // cpus= and affinities are judged against these, joined or not
        DomainLoader.LoadAll(machine, info);
        ulong released = PhysicalMemoryMap.ReleaseModules(info, frames);
        DomainSummary.FreeFramesAtStart += released;
        if (Log.ShowInfo)
        {
            Log.Write("memory: "); Log.Dec(released); Log.Write(" frames ("); Log.Dec(released >> 8);
            Log.Line(" MiB) of boot modules given back now that the domains are built");
        }
        DomainLoader.ReservePool(machine);
        ScreenHandover.AfterDomains(machine);
        if (machine.DomainCount == 0)
        {
            Log.Line("hypervisor: no domain could be started");
            return false;
        }
        if (Log.ShowInfo)
        {
            Log.Write("hypervisor: "); Log.Dec((ulong)machine.DomainCount); Log.Write(" domain(s), round-robin with a ");
            Log.Dec(Scheduler.SliceTicks * 1000 / Clock.Hz); Log.Write(" ms slice; M2P at "); Log.Hex(Xen.MACH2PHYS_VIRT_START);
            Log.Write(" ("); Log.Dec(machine.M2pEntries); Log.Line(" entries)");
        }
        machine.ConsoleInput.FocusInitialDomain();
        SerialInput.Enable();
        Clock.EnterDeadlineMode(machine.Host.SystemTimeNs());
        Smp.Processors.Cpus[0].Joined = true;
        PvCpu.Shared = Smp.Processors.Count > 1;             // from now on every entry takes the hypervisor's lock
        PvCpu.HeapAtStart = Internal.Runtime.KernelHeap.Allocated;
        PvCpu.Active = true;
        Smp.Processors.Release();                            // the other processors join
        return true;
    }

    /// <summary>vCPU slots of the LDT area (Hypervisor/Mm/LdtArea.cs): every domain object made at boot, the
    /// boot loader's and the pool's, takes 8.</summary>
    private const int LdtAreaTables = 8;

    /// <summary>The paging structures under the LDT area (L4 slot 260, shared by every guest L4 as the hole's
    /// other slots are), with every entry not present: the hypervisor maps vCPUs' LDT pages there on demand.</summary>
    private static bool CreateLdtArea(Machine machine)
    {
        ulong[] l1 = new ulong[LdtAreaTables];
        PageTable tables = KernelAddressSpace.Tables;
        for (int i = 0; i < l1.Length; i++)
        {
            ulong va = Hypervisor.Mm.LdtArea.DefaultStart + (ulong)i * 512 * 4096;
            if (tables.Map(va, 0, PageTableEntry.Writable, PageSize.Size4K) != MapStatus.Ok || tables.Unmap(va) != MapStatus.Ok
                || tables.Walk(va, out ulong entry, out int level) != PageWalkResult.NotPresent || level != 1)
            {
                Log.Line("hypervisor: cannot build the page tables of the LDT area");
                return false;
            }
            l1[i] = entry & ~0xFFFUL;
        }
        machine.Ldt = new Hypervisor.Mm.LdtArea(Hypervisor.Mm.LdtArea.DefaultStart, l1, KernelAddressSpace.NoExecute);
        return true;
    }

    /// <summary>One 8-byte entry per machine frame, mapped read-only (and user-readable: PV kernels
    /// read it directly) at MACH2PHYS_VIRT_START in the shared hypervisor slot 256.</summary>
    private static bool MapMachineToPhys(Machine machine, ulong entries, ref BootLayout layout)
    {
        ulong bytes = (entries * 8 + 4095) & ~4095UL;
        byte* table = Internal.Runtime.KernelHeap.AllocateAligned(bytes, 4096);
        for (ulong i = 0; i < entries; i++) ((ulong*)table)[i] = 0xFFFFFFFFFFFFFFFFUL;
        ulong physical = layout.ToPhysical((ulong)table);
        ulong flags = PageTableEntry.Present | PageTableEntry.User | KernelAddressSpace.NoExecute;
        if (KernelAddressSpace.Tables.MapRange(Xen.MACH2PHYS_VIRT_START, physical, bytes, flags, PageSize.Size4K) != MapStatus.Ok)
        {
            Log.Line("hypervisor: cannot map the machine-to-phys table");
            return false;
        }
        machine.M2pTableAddress = physical;
        machine.M2pEntries = entries;
        return true;
    }
}
