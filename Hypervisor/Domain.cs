using Microhv.HAL;

namespace Microhv.Hypervisor;

public enum DomainState { Building, Running, Shutdown, Crashed }

/// <summary>
/// A paravirtualized guest: its memory (guest frame → machine frame, Xen's p2m), its vCPUs,
/// event channels, shared_info page, and the bookkeeping the summary prints.
/// </summary>
public sealed class Domain
{
    public readonly Machine Machine;
    /// <summary>The domain's id; a pooled domain (DomainPool) gets one when the toolstack creates it.</summary>
    public ushort DomainId { get; private set; }
    /// <summary>The name given on the module line (name=...), for the log and the debug keys; empty if none.</summary>
    public byte[] Name = Empty;
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
    /// <summary>Xen's max_pages: the pages the domain was built with, or the toolstack's max_mem; a balloon may
    /// give frames back and take them again up to it, and no allocation goes past it.</summary>
    public ulong MaxPages;

    public ulong SharedInfoMfn;
    /// <summary>Grant table (GrantTable.Create at build time); null when none could be allocated.</summary>
    public GrantTable GrantTable;
    /// <summary>Console output state: inside a line (the next byte gets no "(dN) " prefix).</summary>
    public bool ConsoleMidLine;
    /// <summary>vCPU 0, which every domain has (the one the builder starts).</summary>
    public readonly Vcpu Vcpu;
    /// <summary>Every vCPU the domain can have, allocated with it; ids at or past <see cref="MaxVcpus"/> do not exist.</summary>
    public readonly Vcpu[] Vcpus = new Vcpu[VcpuCapacity];
    /// <summary>Xen's d->max_vcpus: the vCPUs this domain has (vcpus= on its module line, domctl max_vcpus).</summary>
    public int MaxVcpus = 1;
    /// <summary>vCPUs per domain Microhv can hold: shared_info's vcpu_info slots (XEN_LEGACY_MAX_VCPUS) are 32;
    /// the storage is allocated when the domain object is, so a hypercall never allocates one.</summary>
    public const int VcpuCapacity = 8;
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
        for (int i = 0; i < VcpuCapacity; i++) Vcpus[i] = new Vcpu(this, i);
        Vcpu = Vcpus[0];
        EventChannels = new EventChannels(this);
        Pirqs = new Irq.Pirqs(this);
    }

    public bool IsAlive => State == DomainState.Running;
    /// <summary>Dead and its frames given back (DomainRelinquish.cs).</summary>
    public bool Relinquished;

    // ---- What the toolstack (domctl) sets; Toolstack/*.cs. ----
    /// <summary>Made by domctl createdomain: kept after it dies until the toolstack destroys it, as in Xen.</summary>
    public bool CreatedByToolstack;
    /// <summary>domctl pausedomain nesting (Xen's pause_count); a paused domain's vCPUs do not run.
    /// A toolstack domain starts paused once (createdomain), until unpausedomain.</summary>
    public int PauseCount;
    public bool Paused => PauseCount > 0;
    /// <summary>domctl destroydomain was called (XEN_DOMINF_dying): the domain waits for its last frames.</summary>
    public bool Dying;
    /// <summary>Frames kept after relinquish because another domain still maps them (freed on the last unmap).</summary>
    public ulong FramesKept;
    /// <summary>The toolstack's 16-byte handle (the domain's UUID), echoed by getdomaininfo.</summary>
    public readonly byte[] Handle = new byte[Public.Domctl.XEN_DOMAIN_HANDLE_LEN];
    /// <summary>XENMEM_claim_pages: pages set aside for the domain's build (0 = no claim).</summary>
    public ulong ClaimedPages;
    /// <summary>An allocation past max_pages was logged already (once per domain: a guest cannot flood the log).</summary>
    public bool OverAllocationLogged;
    /// <summary>Credit scheduler parameters the toolstack set (Microhv's round-robin gives equal shares).</summary>
    public uint SchedWeight = 256, SchedCap;
    /// <summary>XENMEM_set_memory_map: the pseudo-physical E820 the toolstack gave (XENMEM_memory_map returns it).</summary>
    public readonly ulong[] MemoryMap = new ulong[MaxMemoryMapEntries * 3];
    public int MemoryMapEntries;
    public const int MaxMemoryMapEntries = 16;
    /// <summary>CPUID feature words the toolstack cleared (set_cpu_policy), in Xen's featureset order: 1 = hidden.</summary>
    public readonly uint[] CpuidMask = new uint[Toolstack.CpuPolicy.FeatureWords];
    /// <summary>settscinfo: the TSC mode (XEN_CPUID_TSC_MODE_*) and the incarnation gettscinfo reports.</summary>
    public uint TscMode, TscIncarnation;
    /// <summary>The toolstack unpaused the domain for the first time (Xen's creation_finished): its CPU policy is fixed.</summary>
    public bool CreationFinished;
    /// <summary>settimeoffset: seconds added to the wall clock this domain sees.</summary>
    public long TimeOffsetSeconds;

    /// <summary>
    /// Makes a pooled domain object a new domain with id <paramref name="id"/>: every field as a new
    /// Domain has it, the preallocated storage (p2m, ports, grant table, vCPU) kept and emptied. The
    /// caller made sure its frames were given back and no other domain refers to it.
    /// </summary>
    public void Reinitialize(ushort id)
    {
        DomainId = id;
        Name = Empty;
        State = DomainState.Building;
        IsInitialDomain = false;
        PciCf8 = 0; CmosIndex = 0; DeviceRefusalsLogged = 0;
        if (P2m != null) for (int i = 0; i < P2m.Length; i++) P2m[i] = Invalid;
        NrPages = 0;
        SharedInfoMfn = 0;
        if (GrantTable != null) GrantTable.Clear();
        ConsoleMidLine = false;
        for (int i = 0; i < VcpuCapacity; i++) Vcpus[i].Reset();
        MaxVcpus = 1;
        EventChannels.Clear();
        Pirqs.Clear();
        AbiRomAddress = 0; AbiRomRequestedMajor = 0; AbiRomRequestedMinor = 0;
        VmAssist = 0;
        ConsoleRingMfn = 0; ConsoleEvtchn = -1;
        ShutdownReason = -1; ShutdownCode = 0; CrashReason = null;
        Zero.Fill(HypercallCounts);
        UnknownHypercalls = 0;
        Zero.Fill(CommandLine);
        CommandLineLength = 0;
        Relinquished = false;
        CreatedByToolstack = false;
        PauseCount = 0;
        Dying = false;
        FramesKept = 0;
        Zero.Fill(Handle);
        MaxPages = 0; ClaimedPages = 0; OverAllocationLogged = false;
        SchedWeight = 256; SchedCap = 0;
        Zero.Fill(MemoryMap);
        MemoryMapEntries = 0;
        Zero.Fill(CpuidMask);
        TscMode = 0; TscIncarnation = 0;
        CreationFinished = false;
        TimeOffsetSeconds = 0;
    }

    private static readonly byte[] Empty = new byte[0];

    /// <summary>Xen's domain_vcpu: vCPU <paramref name="id"/> of this domain, or null if it has no such vCPU.</summary>
    public Vcpu VcpuById(ulong id) => id < (ulong)MaxVcpus ? Vcpus[id] : null;

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
        Machine.Host.Serialize();                   // a crash found on an unlocked path takes the lock first
        if (State == DomainState.Crashed || State == DomainState.Shutdown) return;
        State = DomainState.Crashed;
        CrashReason = reason;
        ShutdownReason = Public.Sched.SHUTDOWN_crash;
        Toolstack.DomainLifecycle.NotifyDomExc(Machine);
    }
}
