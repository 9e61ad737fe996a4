using Microhv.HAL;

namespace Microhv.Hypervisor;

public enum DomainState { Building, Running, Shutdown, Crashed }

/// <summary>
/// A paravirtualized guest: its memory (guest frame → machine frame, Xen's p2m), its one vCPU,
/// event channels, shared_info page, and the bookkeeping the summary prints.
/// </summary>
public sealed class Domain
{
    public readonly Machine Machine;
    public readonly ushort DomainId;
    /// <summary>The name given on the module line (name=...), for the log and the debug keys; empty if none.</summary>
    public byte[] Name = new byte[0];
    public DomainState State = DomainState.Building;
    /// <summary>SIF_PRIVILEGED|SIF_INITDOMAIN for the initial domain.</summary>
    public bool IsInitialDomain;
    /// <summary>The domain that owns the machine's devices (ports, MMIO, interrupts, PCI configuration
    /// space): the initial domain, as Xen's default hardware domain is dom0.</summary>
    public bool IsHardwareDomain => IsInitialDomain;
    /// <summary>The domain that may run the toolstack (sysctl, domctl): the initial domain, as Xen's dom0 is its control domain.</summary>
    public bool IsControlDomain => IsInitialDomain;
    /// <summary>This domain's CONFIG_ADDRESS (port 0xCF8) and RTC index (port 0x70), latched by GuestIo.</summary>
    public uint PciCf8;
    public byte CmosIndex;
    /// <summary>Kinds of device access already refused and logged (Io/DeviceRefusal).</summary>
    public ulong DeviceRefusalsLogged;

    /// <summary>Xen's p2m: guest pseudo-physical frame number → machine frame number.</summary>
    public ulong[] P2m;
    public ulong NrPages;
    /// <summary>Xen's max_pages: the pages the domain was built with; a balloon may give frames back and take them again up to it.</summary>
    public ulong MaxPages;

    public ulong SharedInfoMfn;
    /// <summary>Grant table (GrantTable.Create at build time); null when none could be allocated.</summary>
    public GrantTable GrantTable;
    /// <summary>Console output state: inside a line (the next byte gets no "(dN) " prefix).</summary>
    public bool ConsoleMidLine;
    public readonly Vcpu Vcpu;
    public EventChannels EventChannels;
    /// <summary>Physical IRQs routed to this domain (the hardware domain's).</summary>
    public readonly Irq.Pirqs Pirqs;

    /// <summary>Where the ABI ROM is mapped in this guest (0 = not requested) and the version the guest asked for.</summary>
    public ulong AbiRomAddress;
    public ushort AbiRomRequestedMajor, AbiRomRequestedMinor;

    /// <summary>Enabled vm_assist types (bit n = VMASST_TYPE n).</summary>
    public ulong VmAssist;

    /// <summary>Console ring of a non-initial domain (start_info.console.domU), drained by the hypervisor.</summary>
    public ulong ConsoleRingMfn;
    public int ConsoleEvtchn = -1;

    /// <summary>sched_op(shutdown) reason (SHUTDOWN_*), or the crash cause.</summary>
    public int ShutdownReason = -1;
    public ulong ShutdownCode;
    public string CrashReason;

    /// <summary>Calls per hypercall number, printed in the summary.</summary>
    public readonly ulong[] HypercallCounts = new ulong[Public.Xen.NR_hypercalls];
    public ulong UnknownHypercalls;

    /// <summary>Module command line (a copy; at most 1023 bytes).</summary>
    public byte[] CommandLine = new byte[1024];
    public int CommandLineLength;

    public Domain(Machine machine, ushort domainId)
    {
        Machine = machine;
        DomainId = domainId;
        Vcpu = new Vcpu(this);
        EventChannels = new EventChannels(this);
        Pirqs = new Irq.Pirqs(this);
    }

    public bool IsAlive => State == DomainState.Running;
    /// <summary>Dead and its frames given back (DomainRelinquish.cs).</summary>
    public bool Relinquished;

    /// <summary>Machine frame of guest frame <paramref name="pfn"/>, or false if the domain has no such frame.</summary>
    public bool PfnToMfn(ulong pfn, out ulong mfn)
    {
        if (P2m == null || pfn >= (ulong)P2m.Length || P2m[pfn] == Invalid) { mfn = 0; return false; }
        mfn = P2m[pfn];
        return true;
    }

    public const ulong Invalid = 0xFFFF_FFFF_FFFF_FFFF;

    /// <summary>True when the machine frame belongs to this domain.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public bool OwnsFrame(ulong mfn) => Machine.FrameTable.OwnerOf(mfn) == DomainId;

    /// <summary>Kills the domain (a fault it cannot handle, a failed build); the others run on.</summary>
    public void Crash(string reason)
    {
        if (State == DomainState.Crashed || State == DomainState.Shutdown) return;
        State = DomainState.Crashed;
        CrashReason = reason;
        ShutdownReason = Public.Sched.SHUTDOWN_crash;
    }
}
