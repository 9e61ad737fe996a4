using Microhv.Hypervisor.Io;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Irq;

/// <summary>
/// Message-signalled interrupts of the hardware domain's PCI functions (Xen's map_domain_pirq for
/// MAP_PIRQ_TYPE_MSI, arch/x86/msi.c): the hypervisor picks a vector, writes the message (the boot
/// CPU's local APIC address, fixed delivery, edge) into the function's MSI capability, and the vector
/// raises the domain's pirq. Linux then sets the capability's enable bit itself and never writes the
/// message (pci_msi_ignore_mask under Xen). An MSI is edge-triggered: no EOI, no masking. For MSI-X
/// the message goes into the entry of the function's MSI-X table (in the BAR the domain names), which
/// stays masked until the domain binds the pirq, and the table and PBA pages become read-only to the
/// domain (Xen's msix table protection). Pirqs of MSIs follow the GSIs' (Pirqs.FirstMsiPirq...).
/// </summary>
public sealed class MsiRouting
{
    /// <summary>Vectors FirstVector .. FirstVector + Slots - 1 carry MSIs (the GSIs' are 0x40-0x7F).</summary>
    public const int FirstVector = 0xA0, Slots = 32;
    public const byte PCI_CAP_ID_MSI = 0x05, PCI_CAP_ID_MSIX = 0x11;
    private const uint MsixEntrySize = 16, MsixVectorCtrlMask = 1;
    private const uint PCI_STATUS_CAP_LIST = 0x10;
    private const ulong MsiAddressBase = 0xFEE00000;

    private readonly Machine _machine;
    private readonly ushort[] _owner = new ushort[Slots];
    private readonly int[] _pirq = new int[Slots];
    private readonly uint[] _sbdf = new uint[Slots];
    /// <summary>MSI-X: machine address of the slot's table entry (0: plain MSI).</summary>
    private readonly ulong[] _msixEntry = new ulong[Slots];
    public ulong Delivered, Spurious;

    public MsiRouting(Machine machine)
    {
        _machine = machine;
        for (int i = 0; i < Slots; i++) _pirq[i] = -1;
    }

    public static bool VectorToSlot(int vector, out int slot)
    {
        slot = vector - FirstVector;
        return slot >= 0 && slot < Slots;
    }

    public int PirqOf(int slot, out ushort owner)
    {
        owner = slot >= 0 && slot < Slots ? _owner[slot] : (ushort)0;
        return slot >= 0 && slot < Slots ? _pirq[slot] : -1;
    }

    /// <summary>
    /// Finds the MSI capability of segment 0 bus/devfn, takes a free vector and writes the message
    /// into the function. Returns the slot, or -ENODEV (no such function), -EOPNOTSUPP (no MSI
    /// capability), -ENOSPC (no free vector).
    /// </summary>
    public long Map(ushort owner, int pirq, uint bus, uint devfn, ulong msixTableBase = 0, uint msixEntry = 0)
    {
        uint cf8 = 0x8000_0000u | (bus & 0xFF) << 16 | (devfn & 0xFF) << 8;
        if ((ConfigRead(cf8, 0, 2) & 0xFFFF) == 0xFFFF) return -Errno.ENODEV;
        uint cap = FindCapability(cf8, msixTableBase != 0 ? PCI_CAP_ID_MSIX : PCI_CAP_ID_MSI);
        if (cap == 0) return -Errno.EOPNOTSUPP;
        int slot = -1;
        for (int i = 0; i < Slots; i++) if (_pirq[i] < 0) { slot = i; break; }
        if (slot < 0) return -Errno.ENOSPC;

        uint control = ConfigRead(cf8, cap + 2, 2);
        uint address = (uint)MsiAddressBase | (_machine.Host.PhysicalCpuApicId(0) & 0xFF) << 12;
        uint data = (uint)(FirstVector + slot);                 // fixed delivery, edge, this vector
        ulong entry = 0;
        if (msixTableBase != 0)
        {
            long rc = MapMsix(cf8, cap, control, msixTableBase, msixEntry, address, data, out entry);
            if (rc != 0) return rc;
        }
        else
        {
            ConfigWrite(cf8, cap + 4, 4, address);
            if ((control & 0x80) != 0)                              // 64-bit message address
            {
                ConfigWrite(cf8, cap + 8, 4, 0);
                ConfigWrite(cf8, cap + 12, 2, data);
            }
            else ConfigWrite(cf8, cap + 8, 2, data);
        }

        _msixEntry[slot] = entry;
        _owner[slot] = owner;
        _pirq[slot] = pirq;
        _sbdf[slot] = PciDevices.Sbdf(0, bus & 0xFF, devfn & 0xFF);
        return slot;
    }

    /// <summary>
    /// The MSI-X half of Map: entry <paramref name="index"/> of the table the capability places in the
    /// BAR at <paramref name="tableBase"/> gets the message, masked; the table's and the PBA's pages
    /// become read-only to the hardware domain.
    /// </summary>
    private long MapMsix(uint cf8, uint cap, uint control, ulong tableBase, uint index, uint address, uint data, out ulong entry)
    {
        entry = 0;
        uint tableSize = (control & 0x7FF) + 1;
        if (index >= tableSize) return -Errno.EINVAL;
        uint table = ConfigRead(cf8, cap + 4, 4), pba = ConfigRead(cf8, cap + 8, 4);
        ulong tableAt = tableBase + (table & ~7u);
        entry = tableAt + index * MsixEntrySize;
        HAL.PhysicalMemory mem = _machine.Memory;
        if (!mem.Contains(entry, MsixEntrySize)) return -Errno.EINVAL;
        mem.Write32(entry + 12, mem.Read32(entry + 12) | MsixVectorCtrlMask);    // masked while it changes
        mem.Write32(entry, address);
        mem.Write32(entry + 4, 0);
        mem.Write32(entry + 8, data);
        ProtectReadOnly(tableAt, tableSize * MsixEntrySize);
        if ((pba & 7) == (table & 7)) ProtectReadOnly(tableBase + (pba & ~7u), (tableSize + 63) / 64 * 8);
        return 0;
    }

    private void ProtectReadOnly(ulong address, ulong length)
    {
        ulong first = address >> 12, last = (address + length - 1) >> 12;
        if (!_machine.IoMem.IsReadOnly(first) || !_machine.IoMem.IsReadOnly(last))
            _machine.IoMem.ReadOnly(first, last, "MSI-X table or PBA");
    }

    /// <summary>The domain bound the pirq: an MSI-X entry is unmasked (a plain MSI is enabled by the domain itself).</summary>
    public void Unmask(int slot) => SetMsixMask(slot, false);

    /// <summary>The pirq's event channel was closed: an MSI-X entry is masked again.</summary>
    public void Mask(int slot) => SetMsixMask(slot, true);

    private void SetMsixMask(int slot, bool masked)
    {
        if (slot < 0 || slot >= Slots || _msixEntry[slot] == 0) return;
        HAL.PhysicalMemory mem = _machine.Memory;
        ulong ctrl = _msixEntry[slot] + 12;
        uint value = mem.Read32(ctrl);
        mem.Write32(ctrl, masked ? value | MsixVectorCtrlMask : value & ~MsixVectorCtrlMask);
    }

    public void Unmap(int slot)
    {
        if (slot < 0 || slot >= Slots) return;
        SetMsixMask(slot, true);
        _pirq[slot] = -1;
        _msixEntry[slot] = 0;
    }

    /// <summary>The slot's vector fired (the kernel EOIs the local APIC): its owner's pirq event.</summary>
    public Domain OnInterrupt(int slot)
    {
        if (slot < 0 || slot >= Slots || _pirq[slot] < 0) { Spurious++; return null; }
        Domain d = _machine.FindDomain(_owner[slot]);
        if (d == null || !d.IsAlive) { Spurious++; return null; }
        Delivered++;
        d.Pirqs.Raise(_pirq[slot]);
        return d;
    }

    /// <summary>Walks the function's capability list (at most 48 entries, as Linux's pci_find_capability).</summary>
    private uint FindCapability(uint cf8, byte id)
    {
        if ((ConfigRead(cf8, 0x06, 2) & PCI_STATUS_CAP_LIST) == 0) return 0;
        uint pos = ConfigRead(cf8, 0x34, 1) & 0xFC;
        for (int ttl = 48; ttl > 0 && pos >= 0x40; ttl--)
        {
            uint header = ConfigRead(cf8, pos, 2);
            if ((header & 0xFF) == id) return pos;
            pos = (header >> 8) & 0xFC;
        }
        return 0;
    }

    private uint ConfigRead(uint cf8, uint reg, int size) => GuestIo.PciConfigRead(_machine, cf8 | (reg & 0xFC), reg & 3, size);
    private void ConfigWrite(uint cf8, uint reg, int size, uint value) => GuestIo.PciConfigWrite(_machine, cf8 | (reg & 0xFC), reg & 3, size, value);
}
