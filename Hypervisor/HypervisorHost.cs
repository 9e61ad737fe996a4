namespace Microhv.Hypervisor;

/// <summary>
/// What the hypervisor logic needs from the machine it runs on. The kernel implements it with the
/// real CPU (Kernel/Pv/KernelHost.cs); hosted tests implement it with a recording double, since a
/// TLB cannot be flushed on the host.
/// </summary>
public abstract class HypervisorHost
{
    /// <summary>One byte to the hypervisor console (serial and screen).</summary>
    public abstract void ConsoleWrite(byte b);
    /// <summary>Nanoseconds since boot (Xen's system time).</summary>
    public abstract ulong SystemTimeNs();
    /// <summary>The CPU's time-stamp counter.</summary>
    public abstract ulong ReadTsc();
    /// <summary>vcpu_time_info scale: system_time = ((tsc &lt;&lt; shift or &gt;&gt; -shift) * mul) &gt;&gt; 32.</summary>
    public abstract uint TscToSystemMul { get; }
    public abstract sbyte TscShift { get; }
    /// <summary>Seconds since the epoch at boot (shared_info wallclock).</summary>
    public abstract ulong WallclockSecondsAtBoot { get; }
    /// <summary>Flushes non-global TLB entries of the current address space.</summary>
    public abstract void FlushTlb();
    public abstract void InvalidatePage(ulong va);
    /// <summary>Loads CR3 with the machine address of an L4 (the vCPU being run switched tables).</summary>
    public abstract void LoadPageTableBase(ulong l4MachineAddress);
    /// <summary>The caller is about to change state other processors share (a domain's state, an event to another
    /// domain): the kernel takes the hypervisor's lock here if this processor entered without it (GuestEntry's
    /// unlocked path) and has not taken it since; otherwise, and in the hosted tests, nothing happens.</summary>
    public virtual void Serialize() { }
    /// <summary>Flushes the whole TLB of each processor in <paramref name="cpus"/> (bit n = processor n, never
    /// the caller) and returns once every one has done it (a flush IPI, answered without the hypervisor's lock).</summary>
    public virtual void FlushCpus(ulong cpus) { }
    /// <summary>Interrupts each processor in <paramref name="cpus"/> (an event-check IPI) so that it enters the
    /// hypervisor and decides again: deliver an upcall, run a woken vCPU, stop one that may no longer run.</summary>
    public virtual void Kick(ulong cpus) { }
    /// <summary>Xen's vcpu_sleep_sync wait: <paramref name="v"/> may no longer run but another processor still runs it
    /// (<see cref="VcpuPause.Descheduled"/> is false). The kernel kicks that processor, lets the hypervisor's lock go
    /// while it waits (that processor needs it to leave the vCPU), answers flush requests meanwhile, and returns
    /// holding the lock again once Descheduled is true: the vCPU's registers, segments and FPU state are in it.
    /// Hosted tests play the other processor here; with one processor it is never called.</summary>
    public virtual void WaitDescheduled(Vcpu v) { }
    /// <summary>The host CPU's CPUID leaf/subleaf; the PV CPUID policy filters it before the guest sees it.</summary>
    public abstract void CpuId(uint leaf, uint subleaf, out uint a, out uint b, out uint c, out uint d);
    /// <summary>Physical CPUs the machine has, and each one's local APIC ID and ACPI processor ID (platform_op get_cpuinfo).</summary>
    public virtual uint PhysicalCpuCount => 1;
    public virtual uint PhysicalCpuApicId(uint cpu) => 0;
    public virtual uint PhysicalCpuAcpiId(uint cpu) => cpu;
    /// <summary>The CPU clock in kHz as the TSC counts it (sysctl physinfo's cpu_khz); 0 when unknown.</summary>
    public virtual uint CpuKhz => 0;
    /// <summary>Port input of 1, 2 or 4 bytes (the hardware domain's permitted ports, PCI configuration, RTC).</summary>
    public abstract uint PortIn(uint port, int size);
    public abstract void PortOut(uint port, int size, uint value);
    /// <summary>Interrupt lines (GSIs) of the machine's IO-APICs; 0 when the hypervisor drives none.</summary>
    public virtual int GsiCount => 0;
    /// <summary>Programs line <paramref name="gsi"/>'s redirection entry: fixed delivery of <paramref name="vector"/>
    /// to the boot CPU, with that trigger mode, polarity and mask. False when the line does not exist.</summary>
    public virtual bool RouteGsi(int gsi, byte vector, bool level, bool activeLow, bool masked) => false;
    /// <summary>Reads register <paramref name="reg"/> of the IO-APIC at <paramref name="physicalBase"/>; false when there is none there.</summary>
    public virtual bool ReadIoApic(ulong physicalBase, uint reg, out uint value) { value = 0; return false; }
    /// <summary>Makes the vCPU's GDT (its set_gdt frames) the CPU's entries below Xen's reserved ones, as
    /// Xen maps those frames into its per-CPU GDT: called when the vCPU starts running and after set_gdt.</summary>
    public virtual void LoadGuestGdt(Vcpu v) { }
    /// <summary>The running guest's FS base as the CPU holds it (FS_BASE): a selector load or WRFSBASE changes it
    /// without trapping (Traps/SegmentBases.cs).</summary>
    public virtual ulong ReadGuestFsBase() => 0;
    /// <summary>The running guest's active GS base as the CPU holds it (KERNEL_GS_BASE while the hypervisor runs).</summary>
    public virtual ulong ReadGuestGsBase() => 0;
    /// <summary>Puts a reused vCPU's FPU area back in its power-on state (the kernel owns the area; nothing in hosted tests).</summary>
    public virtual void ResetVcpuFpu(Vcpu v) { }
    /// <summary>save_segments: <paramref name="v"/> leaves this processor: its DS, ES, FS and GS selectors as the CPU
    /// holds them go into it (its bases: Traps/SegmentBases.Save).</summary>
    public virtual void SaveSegments(Vcpu v) { }
    /// <summary>load_segments: loads <paramref name="v"/>'s DS, ES, FS and GS selectors (its GDT and LDT are loaded);
    /// one the CPU refuses becomes null. Returns SegmentReload's bits of the refused ones (0: all loaded).</summary>
    public virtual int LoadSegments(Vcpu v) => 0;
    /// <summary>set_segment_base(SEGBASE_GS_USER_SEL) for the running <paramref name="v"/>: loads GS with
    /// <paramref name="selector"/> (null if the CPU refuses it) and returns the base that load gave it (0 when
    /// refused). The default reads the base from the vCPU's GDT, as hosted tests model the CPU.</summary>
    public virtual ulong LoadUserGs(Vcpu v, ushort selector) => Traps.SetSegmentBase.SelectorBase(v, selector);
    /// <summary>Loads the running vCPU's LDT (SET_LDT changed it): an LDT descriptor for its part of the
    /// LdtArea with its size when it has entries, none otherwise (Xen's load_LDT).</summary>
    public virtual void LoadLdt(Vcpu v) { }
    /// <summary>update_descriptor changed entry <paramref name="index"/> of the running vCPU's GDT.</summary>
    public virtual void WriteGuestGdtEntry(int index, ulong descriptor) { }
}
