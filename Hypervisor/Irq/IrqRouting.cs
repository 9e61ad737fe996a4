using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Irq;

/// <summary>
/// The machine's IO-APIC interrupt lines (GSIs) as the hypervisor routes them to the hardware
/// domain (Xen's irq_desc and its guest action, arch/x86/irq.c, for IO-APIC lines). Microhv owns the
/// IO-APIC: a line's redirection entry changes only here — its trigger and polarity from
/// PHYSDEVOP_setup_gsi, its vector fixed per line, unmasked when a domain binds the line's pirq to
/// an event channel. A level-triggered line is masked when it fires and unmasked when the domain
/// EOIs the pirq (Xen's ACKTYPE_UNMASK), so a device that keeps its line asserted cannot storm the
/// CPU before the guest's driver has run. An edge-triggered line needs no EOI.
/// </summary>
public sealed class IrqRouting
{
    /// <summary>Vectors FirstVector .. FirstVector + MaxGsis - 1 carry GSIs 0 .. MaxGsis - 1.</summary>
    public const int FirstVector = 0x40, MaxGsis = 64;

    private readonly Machine _machine;
    private readonly bool[] _configured = new bool[MaxGsis];
    private readonly bool[] _level = new bool[MaxGsis];
    private readonly bool[] _activeLow = new bool[MaxGsis];
    /// <summary>The domain the line's pirq belongs to and the pirq number (-1: none).</summary>
    private readonly ushort[] _owner = new ushort[MaxGsis];
    private readonly int[] _pirq = new int[MaxGsis];
    /// <summary>Bound to an event channel: the redirection entry is live (unmasked unless in flight).</summary>
    private readonly bool[] _bound = new bool[MaxGsis];
    /// <summary>A level interrupt delivered and not yet EOI'd by the domain: the line is masked.</summary>
    private readonly bool[] _inFlight = new bool[MaxGsis];
    public ulong Delivered, Spurious;

    public IrqRouting(Machine machine)
    {
        _machine = machine;
        for (int i = 0; i < MaxGsis; i++) _pirq[i] = -1;
    }

    /// <summary>Lines the machine's IO-APICs have (the host's count, at most MaxGsis).</summary>
    public int GsiCount { get { int n = _machine.Host.GsiCount; return n < MaxGsis ? n : MaxGsis; } }

    public static bool VectorToGsi(int vector, out int gsi)
    {
        gsi = vector - FirstVector;
        return gsi >= 0 && gsi < MaxGsis;
    }

    public bool IsLevel(int gsi) => gsi >= 0 && gsi < MaxGsis && _level[gsi];
    public bool IsBound(int gsi) => gsi >= 0 && gsi < MaxGsis && _bound[gsi];
    public bool IsInFlight(int gsi) => gsi >= 0 && gsi < MaxGsis && _inFlight[gsi];
    public int PirqOf(int gsi, out ushort owner) { owner = gsi >= 0 && gsi < MaxGsis ? _owner[gsi] : (ushort)0; return gsi >= 0 && gsi < MaxGsis ? _pirq[gsi] : -1; }

    /// <summary>PHYSDEVOP_setup_gsi: the line's trigger mode and polarity (ACPI's, from the domain's _PRT
    /// or MADT overrides). -EEXIST once the line is bound (Xen's answer for a pin already in use).</summary>
    public long SetupGsi(int gsi, bool level, bool activeLow)
    {
        if (gsi < 0 || gsi >= GsiCount) return -Errno.EINVAL;
        if (_bound[gsi]) return -Errno.EEXIST;
        _configured[gsi] = true;
        _level[gsi] = level;
        _activeLow[gsi] = activeLow;
        return 0;
    }

    /// <summary>map_pirq for a GSI: the line becomes <paramref name="owner"/>'s pirq <paramref name="pirq"/>.
    /// An ISA line (below 16) nobody set up is edge-triggered and active high, as ISA IRQs are.</summary>
    public long Map(int gsi, ushort owner, int pirq)
    {
        if (gsi < 0 || gsi >= GsiCount) return -Errno.EINVAL;
        if (_pirq[gsi] >= 0 && (_owner[gsi] != owner || _pirq[gsi] != pirq)) return -Errno.EBUSY;
        _owner[gsi] = owner;
        _pirq[gsi] = pirq;
        return 0;
    }

    public long Unmap(int gsi)
    {
        if (gsi < 0 || gsi >= MaxGsis || _pirq[gsi] < 0) return -Errno.EINVAL;
        if (_bound[gsi]) return -Errno.EBUSY;
        _pirq[gsi] = -1;
        return 0;
    }

    /// <summary>EVTCHNOP_bind_pirq reached the line: program its redirection entry and unmask it.</summary>
    public bool Bind(int gsi)
    {
        if (gsi < 0 || gsi >= GsiCount || _pirq[gsi] < 0) return false;
        if (!_machine.Host.RouteGsi(gsi, (byte)(FirstVector + gsi), _level[gsi], _activeLow[gsi], masked: false)) return false;
        _bound[gsi] = true;
        _inFlight[gsi] = false;
        return true;
    }

    /// <summary>The event channel was closed: the line is masked again.</summary>
    public void Unbind(int gsi)
    {
        if (gsi < 0 || gsi >= MaxGsis || !_bound[gsi]) return;
        _machine.Host.RouteGsi(gsi, (byte)(FirstVector + gsi), _level[gsi], _activeLow[gsi], masked: true);
        _bound[gsi] = false;
        _inFlight[gsi] = false;
    }

    /// <summary>
    /// The line's vector fired (the kernel EOIs the local APIC afterwards). The owner's pirq event
    /// is raised; a level line is masked until the owner EOIs. Returns the domain woken, or null.
    /// </summary>
    public Domain OnInterrupt(int gsi)
    {
        if (gsi < 0 || gsi >= MaxGsis || !_bound[gsi]) { Spurious++; return null; }
        Domain d = _machine.FindDomain(_owner[gsi]);
        if (d == null || !d.IsAlive) { Spurious++; return null; }
        if (_level[gsi])
        {
            _machine.Host.RouteGsi(gsi, (byte)(FirstVector + gsi), true, _activeLow[gsi], masked: true);
            _inFlight[gsi] = true;
        }
        Delivered++;
        d.Pirqs.Raise(_pirq[gsi]);
        return d;
    }

    /// <summary>PHYSDEVOP_eoi: a level line delivered to its owner is unmasked again.</summary>
    public void Eoi(int gsi)
    {
        if (gsi < 0 || gsi >= MaxGsis || !_bound[gsi] || !_inFlight[gsi]) return;
        _inFlight[gsi] = false;
        _machine.Host.RouteGsi(gsi, (byte)(FirstVector + gsi), true, _activeLow[gsi], masked: false);
    }
}
