using Microhv.HAL;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Irq;

/// <summary>
/// A domain's physical IRQs (Xen's struct pirq, arch/x86/physdev.c and irq.c): pirq numbers the
/// hardware domain mapped with PHYSDEVOP_map_pirq, the event channel each is bound to, and the
/// optional pirq EOI bitmap page (PHYSDEVOP_pirq_eoi_gmfn) in which the hypervisor sets the bit of
/// every bound pirq that needs PHYSDEVOP_eoi, so the guest knows without asking. For GSIs the pirq
/// number is the GSI, as Xen gives dom0; MSIs get the pirqs after the GSIs' (MsiRouting).
/// </summary>
public sealed class Pirqs
{
    public const int FirstMsiPirq = IrqRouting.MaxGsis, Count = FirstMsiPirq + MsiRouting.Slots;

    private readonly Domain _domain;
    private readonly int[] _gsi = new int[Count];
    /// <summary>MSI pirqs: the MsiRouting slot (-1: none).</summary>
    private readonly int[] _msi = new int[Count];
    private readonly int[] _port = new int[Count];
    /// <summary>Machine frame of the pirq EOI bitmap (0 = none registered) and whether v1 semantics (EOI also unmasks the port) apply.</summary>
    public ulong EoiMapMfn;
    public bool EoiMapUnmasks;

    public Pirqs(Domain domain)
    {
        _domain = domain;
        Clear();
    }

    /// <summary>No pirq mapped (a new or reused domain).</summary>
    public void Clear()
    {
        for (int i = 0; i < Count; i++) { _gsi[i] = -1; _msi[i] = -1; _port[i] = 0; }
        EoiMapMfn = 0;
        EoiMapUnmasks = false;
    }

    private bool IsMapped(int pirq) => IsValid(pirq) && (_gsi[pirq] >= 0 || _msi[pirq] >= 0);

    /// <summary>map_pirq of type MSI: the lowest free MSI pirq, its message written into the function. Returns the pirq or an errno.</summary>
    public long MapMsi(uint bus, uint devfn, ulong msixTableBase = 0, uint msixEntry = 0)
    {
        int pirq = -1;
        for (int p = FirstMsiPirq; p < Count; p++) if (_msi[p] < 0) { pirq = p; break; }
        if (pirq < 0) return -Errno.ENOSPC;
        long slot = _domain.Machine.Msis.Map(_domain.DomainId, pirq, bus, devfn, msixTableBase, msixEntry);
        if (slot < 0) return slot;
        _msi[pirq] = (int)slot;
        return pirq;
    }

    public bool IsValid(long pirq) => pirq >= 0 && pirq < Count;
    public int GsiOf(int pirq) => IsValid(pirq) ? _gsi[pirq] : -1;
    public int PortOf(int pirq) => IsValid(pirq) ? _port[pirq] : 0;

    /// <summary>map_pirq of type GSI: pirq = gsi (a pirq given by the caller must equal it).</summary>
    public long MapGsi(int gsi, int pirq)
    {
        IrqRouting r = _domain.Machine.Irqs;
        if (gsi < 0 || gsi >= r.GsiCount) return -Errno.EINVAL;
        if (pirq >= 0 && pirq != gsi) return -Errno.EINVAL;
        long rc = r.Map(gsi, _domain.DomainId, gsi);
        if (rc != 0) return rc;
        _gsi[gsi] = gsi;
        return gsi;
    }

    public long Unmap(int pirq)
    {
        if (!IsMapped(pirq)) return -Errno.EINVAL;
        if (_port[pirq] != 0) return -Errno.EBUSY;
        if (_msi[pirq] >= 0)
        {
            _domain.Machine.Msis.Unmap(_msi[pirq]);
            _msi[pirq] = -1;
            return 0;
        }
        long rc = _domain.Machine.Irqs.Unmap(_gsi[pirq]);
        if (rc == 0) _gsi[pirq] = -1;
        return rc;
    }

    /// <summary>EVTCHNOP_bind_pirq after the port was chosen: the line is routed; -EINVAL for an unmapped pirq, -EBUSY if bound.</summary>
    public long Bind(int pirq, int port)
    {
        if (!IsMapped(pirq)) return -Errno.EINVAL;
        if (_port[pirq] != 0) return -Errno.EBUSY;
        if (_msi[pirq] >= 0)
        {
            _port[pirq] = port;                               // edge: no EOI bit
            _domain.Machine.Msis.Unmask(_msi[pirq]);          // an MSI-X entry goes live now
            return 0;
        }
        IrqRouting r = _domain.Machine.Irqs;
        if (!r.Bind(_gsi[pirq])) return -Errno.EIO;
        _port[pirq] = port;
        SetEoiBit(pirq, r.IsLevel(_gsi[pirq]));
        return 0;
    }

    /// <summary>The pirq's event channel was closed.</summary>
    public void Unbind(int pirq)
    {
        if (!IsValid(pirq) || _port[pirq] == 0) return;
        if (_gsi[pirq] >= 0) _domain.Machine.Irqs.Unbind(_gsi[pirq]);
        else if (_msi[pirq] >= 0) _domain.Machine.Msis.Mask(_msi[pirq]);
        _port[pirq] = 0;
        SetEoiBit(pirq, false);
    }

    /// <summary>The line fired: its port goes pending.</summary>
    public void Raise(int pirq)
    {
        if (IsValid(pirq) && _port[pirq] != 0) _domain.EventChannels.SetPending(_port[pirq]);
    }

    /// <summary>PHYSDEVOP_eoi. With a v1 EOI map the port is unmasked too (Xen's pirq_guest_eoi after PHYSDEVOP_pirq_eoi_gmfn_v1).</summary>
    public long Eoi(int pirq)
    {
        if (!IsMapped(pirq)) return -Errno.EINVAL;
        if (EoiMapUnmasks && _port[pirq] != 0) _domain.EventChannels.Unmask(_port[pirq]);
        if (_gsi[pirq] >= 0) _domain.Machine.Irqs.Eoi(_gsi[pirq]);
        return 0;
    }

    /// <summary>irq_status_query: as Xen answers a PV domain, XENIRQSTAT_needs_eoi for any pirq in
    /// range (a guest without the EOI bitmap must always EOI; with it, the bitmap says which need it).</summary>
    public long StatusFlags(int pirq, out uint flags)
    {
        flags = 0;
        if (!IsValid(pirq)) return -Errno.EINVAL;
        flags = Physdev.XENIRQSTAT_needs_eoi;
        return 0;
    }

    /// <summary>PHYSDEVOP_pirq_eoi_gmfn_v1/v2: the guest's frame <paramref name="mfn"/> becomes the EOI bitmap,
    /// held with a writable type reference; a second registration is -EBUSY.</summary>
    public long RegisterEoiMap(ulong mfn, bool unmasks)
    {
        if (EoiMapMfn != 0) return -Errno.EBUSY;
        Machine m = _domain.Machine;
        if (!_domain.OwnsFrame(mfn)) return -Errno.EINVAL;
        if (PageTypes.GetPageAndType(m, _domain, mfn, FrameType.Writable) != 0) return -Errno.EINVAL;
        EoiMapMfn = mfn;
        EoiMapUnmasks = unmasks;
        for (int p = 0; p < Count; p++)
            SetEoiBit(p, _port[p] != 0 && _gsi[p] >= 0 && m.Irqs.IsLevel(_gsi[p]));
        return 0;
    }

    private void SetEoiBit(int pirq, bool set)
    {
        if (EoiMapMfn == 0) return;
        PhysicalMemory mem = _domain.Machine.Memory;
        ulong word = (EoiMapMfn << Layout.PageShift) + (ulong)(pirq >> 6) * 8;
        ulong bit = 1UL << (pirq & 63);
        ulong value = mem.Read64(word);
        mem.Write64(word, set ? value | bit : value & ~bit);
    }
}
