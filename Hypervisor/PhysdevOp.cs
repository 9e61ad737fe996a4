using Microhv.HAL;
using Microhv.Hypervisor.Io;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// physdev_op (xen/arch/x86/physdev.c): the I/O privilege level every PV kernel sets, and the
/// hardware domain's interrupt routing and PCI reports. A GSI becomes a pirq with map_pirq (pirq =
/// GSI, as Xen gives dom0), gets its trigger and polarity with setup_gsi, is bound to an event channel
/// with EVTCHNOP_bind_pirq and acknowledged with eoi (Irq/). The EOI bitmap page is any domain's
/// (Linux registers it as a domU too). Everything about devices is the hardware domain's alone: others
/// get -EPERM and one log line. MSI and MSI-X are routed (Irq/MsiRouting); multi-message MSI is not
/// (-EOPNOTSUPP: Linux falls back to one message).
/// </summary>
public static class PhysdevOp
{
    public static long Do(Vcpu v, ulong cmd, ulong arg)
    {
        Domain d = v.Domain;
        switch ((int)(uint)cmd)
        {
            case Physdev.PHYSDEVOP_set_iopl: return SetIopl(v, arg);
            case Physdev.PHYSDEVOP_pirq_eoi_gmfn_v1:
            case Physdev.PHYSDEVOP_pirq_eoi_gmfn_v2:
            {
                if (!GuestMemory.ReadU64(v, arg, out ulong gmfn)) return -Errno.EFAULT;
                return d.Pirqs.RegisterEoiMap(gmfn, (int)(uint)cmd == Physdev.PHYSDEVOP_pirq_eoi_gmfn_v1);
            }
            case Physdev.PHYSDEVOP_irq_status_query:
            {
                if (!GuestMemory.ReadU32(v, arg + Physdev.irq_status_query_irq, out uint pirq)) return -Errno.EFAULT;
                long rc = d.Pirqs.StatusFlags((int)pirq, out uint flags);
                if (rc != 0) return rc;
                return GuestMemory.WriteU32(v, arg + Physdev.irq_status_query_flags, flags) ? 0 : -Errno.EFAULT;
            }
            case Physdev.PHYSDEVOP_eoi:
            {
                if (!GuestMemory.ReadU32(v, arg, out uint pirq)) return -Errno.EFAULT;
                return d.Pirqs.Eoi((int)pirq);
            }
            case Physdev.PHYSDEVOP_map_pirq: return MapPirq(v, arg);
            case Physdev.PHYSDEVOP_unmap_pirq: return UnmapPirq(v, arg);
            case Physdev.PHYSDEVOP_setup_gsi: return SetupGsi(v, arg);
            case Physdev.PHYSDEVOP_apic_read: return ApicRead(v, arg);
            case Physdev.PHYSDEVOP_alloc_irq_vector:
            {
                // struct physdev_irq { uint32_t irq; uint32_t vector; }: vectors are the hypervisor's
                // business, so Xen answers the IRQ number itself, to the domain that owns the IO-APIC lines.
                if (!d.IsHardwareDomain) return DeviceRefusal.Refuse(d, DeviceRefusal.Pirqs, "allocate IRQ vectors");
                if (!GuestMemory.ReadU32(v, arg, out uint irq)) return -Errno.EFAULT;
                return GuestMemory.WriteU32(v, arg + 4, irq) ? 0 : -Errno.EFAULT;
            }
            case Physdev.PHYSDEVOP_pci_device_add:
            case Physdev.PHYSDEVOP_pci_device_remove:
            {
                if (!d.IsHardwareDomain) return DeviceRefusal.Refuse(d, DeviceRefusal.Pci, "report PCI devices");
                if (!GuestMemory.ReadU16(v, arg + Physdev.pci_device_add_seg, out ushort seg)
                    || !GuestMemory.ReadU8(v, arg + Physdev.pci_device_add_bus, out byte bus)
                    || !GuestMemory.ReadU8(v, arg + Physdev.pci_device_add_devfn, out byte devfn)) return -Errno.EFAULT;
                uint sbdf = PciDevices.Sbdf(seg, bus, devfn);
                return (int)(uint)cmd == Physdev.PHYSDEVOP_pci_device_add ? d.Machine.PciDevices.Add(sbdf) : d.Machine.PciDevices.Remove(sbdf);
            }
            case Physdev.PHYSDEVOP_pci_mmcfg_reserved:
            {
                if (!d.IsHardwareDomain) return DeviceRefusal.Refuse(d, DeviceRefusal.Pci, "report PCI devices");
                if (!GuestMemory.ReadU64(v, arg + Physdev.pci_mmcfg_address, out ulong address)
                    || !GuestMemory.ReadU16(v, arg + Physdev.pci_mmcfg_segment, out ushort segment)
                    || !GuestMemory.ReadU8(v, arg + Physdev.pci_mmcfg_start_bus, out byte start)
                    || !GuestMemory.ReadU8(v, arg + Physdev.pci_mmcfg_end_bus, out byte end)) return -Errno.EFAULT;
                return d.Machine.PciDevices.AddMmcfg(address, segment, start, end);
            }
            default: return -Errno.ENOSYS;
        }
    }

    /// <summary>struct physdev_set_iopl { uint32_t iopl; }: the level the guest kernel's port I/O is checked against.</summary>
    private static long SetIopl(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg, out uint iopl)) return -Errno.EFAULT;
        if (iopl > 3) return -Errno.EINVAL;
        v.Iopl = (int)iopl;
        return 0;
    }

    /// <summary>The domain a map/unmap names: itself (DOMID_SELF or its id); another only for a privileged caller, which Microhv has no use for yet.</summary>
    private static long Target(Vcpu v, ushort domid)
    {
        Domain d = v.Domain;
        if (domid != Xen.DOMID_SELF && domid != d.DomainId)
            return d.Machine.FindDomain(domid) == null ? -Errno.ESRCH : -Errno.EPERM;
        return d.IsHardwareDomain ? 0 : DeviceRefusal.Refuse(d, DeviceRefusal.Pirqs, "map physical IRQs");
    }

    /// <summary>map_pirq: GSIs (pirq = GSI) and MSIs and MSI-X entries (a table base given) of segment 0 (a
    /// free MSI pirq), the pirq written back. Multi-message MSI: -EOPNOTSUPP.</summary>
    private static long MapPirq(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU16(v, arg + Physdev.map_pirq_domid, out ushort domid)
            || !GuestMemory.ReadU32(v, arg + Physdev.map_pirq_type, out uint type)
            || !GuestMemory.ReadU32(v, arg + Physdev.map_pirq_index, out uint index)
            || !GuestMemory.ReadU32(v, arg + Physdev.map_pirq_pirq, out uint pirqIn)) return -Errno.EFAULT;
        long rc = Target(v, domid);
        if (rc != 0) return rc;
        switch ((int)type)
        {
            case Physdev.MAP_PIRQ_TYPE_GSI:
            {
                long pirq = v.Domain.Pirqs.MapGsi((int)index, (int)pirqIn);
                if (pirq < 0) return pirq;
                return GuestMemory.WriteU32(v, arg + Physdev.map_pirq_pirq, (uint)pirq) ? 0 : -Errno.EFAULT;
            }
            case Physdev.MAP_PIRQ_TYPE_MSI:
            case Physdev.MAP_PIRQ_TYPE_MSI_SEG:
            {
                if (!GuestMemory.ReadU32(v, arg + Physdev.map_pirq_bus, out uint bus)
                    || !GuestMemory.ReadU32(v, arg + Physdev.map_pirq_devfn, out uint devfn)
                    || !GuestMemory.ReadU32(v, arg + Physdev.map_pirq_entry_nr, out uint entry)
                    || !GuestMemory.ReadU64(v, arg + Physdev.map_pirq_table_base, out ulong tableBase)) return -Errno.EFAULT;
                uint segment = (int)type == Physdev.MAP_PIRQ_TYPE_MSI_SEG ? bus >> 16 : 0;
                if (segment != 0 || (bus & 0xFF00) != 0 || devfn > 0xFF) return -Errno.EINVAL;
                long pirq = v.Domain.Pirqs.MapMsi(bus & 0xFF, devfn, tableBase, entry);
                if (pirq < 0) return pirq;
                return GuestMemory.WriteU32(v, arg + Physdev.map_pirq_pirq, (uint)pirq) ? 0 : -Errno.EFAULT;
            }
            case Physdev.MAP_PIRQ_TYPE_MULTI_MSI:
                return -Errno.EOPNOTSUPP;
            default: return -Errno.EINVAL;
        }
    }

    private static long UnmapPirq(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU16(v, arg + Physdev.unmap_pirq_domid, out ushort domid)
            || !GuestMemory.ReadU32(v, arg + Physdev.unmap_pirq_pirq, out uint pirq)) return -Errno.EFAULT;
        long rc = Target(v, domid);
        return rc != 0 ? rc : v.Domain.Pirqs.Unmap((int)pirq);
    }

    /// <summary>setup_gsi { int gsi; uint8_t triggering (1 = level); uint8_t polarity (1 = active low); }.</summary>
    private static long SetupGsi(Vcpu v, ulong arg)
    {
        Domain d = v.Domain;
        if (!d.IsHardwareDomain) return DeviceRefusal.Refuse(d, DeviceRefusal.Pirqs, "set up interrupt lines");
        if (!GuestMemory.ReadU32(v, arg + Physdev.setup_gsi_gsi, out uint gsi)
            || !GuestMemory.ReadU8(v, arg + Physdev.setup_gsi_triggering, out byte triggering)
            || !GuestMemory.ReadU8(v, arg + Physdev.setup_gsi_polarity, out byte polarity)) return -Errno.EFAULT;
        return d.Machine.Irqs.SetupGsi((int)gsi, triggering != 0, polarity != 0);
    }

    /// <summary>apic_read: a register of one of the machine's IO-APICs, read for real (Linux reads their versions at boot).</summary>
    private static long ApicRead(Vcpu v, ulong arg)
    {
        Domain d = v.Domain;
        if (!d.IsHardwareDomain) return DeviceRefusal.Refuse(d, DeviceRefusal.Pirqs, "read IO-APIC registers");
        if (!GuestMemory.ReadU64(v, arg + Physdev.apic_physbase, out ulong physbase)
            || !GuestMemory.ReadU32(v, arg + Physdev.apic_reg, out uint reg)) return -Errno.EFAULT;
        if (!d.Machine.Host.ReadIoApic(physbase, reg, out uint value)) return -Errno.EINVAL;
        return GuestMemory.WriteU32(v, arg + Physdev.apic_value, value) ? 0 : -Errno.EFAULT;
    }
}
