namespace Microhv.Hypervisor.Public;

/// <summary>xen/include/public/physdev.h: physdev_op sub-commands.</summary>
public static class Physdev
{
    public const int PHYSDEVOP_irq_status_query = 5;
    public const int PHYSDEVOP_set_iopl = 6;          // struct physdev_set_iopl { uint32_t iopl; }
    public const int PHYSDEVOP_set_iobitmap = 7;
    public const int PHYSDEVOP_apic_read = 8;
    public const int PHYSDEVOP_apic_write = 9;
    public const int PHYSDEVOP_alloc_irq_vector = 10;
    public const int PHYSDEVOP_free_irq_vector = 11;
    public const int PHYSDEVOP_eoi = 12;
    public const int PHYSDEVOP_map_pirq = 13;
    public const int PHYSDEVOP_unmap_pirq = 14;
    public const int PHYSDEVOP_manage_pci_add = 15;
    public const int PHYSDEVOP_manage_pci_remove = 16;
    public const int PHYSDEVOP_pirq_eoi_gmfn_v1 = 17;
    public const int PHYSDEVOP_restore_msi = 19;
    public const int PHYSDEVOP_setup_gsi = 21;
    public const int PHYSDEVOP_get_free_pirq = 23;
    public const int PHYSDEVOP_pirq_eoi_gmfn_v2 = 28;
    public const int PHYSDEVOP_pci_mmcfg_reserved = 24, PHYSDEVOP_pci_device_add = 25, PHYSDEVOP_pci_device_remove = 26,
        PHYSDEVOP_restore_msi_ext = 27, PHYSDEVOP_manage_pci_add_ext = 20;

    public const uint XENIRQSTAT_needs_eoi = 1, XENIRQSTAT_shared = 2;
    public const int MAP_PIRQ_TYPE_MSI = 0, MAP_PIRQ_TYPE_GSI = 1, MAP_PIRQ_TYPE_UNKNOWN = 2, MAP_PIRQ_TYPE_MSI_SEG = 3,
        MAP_PIRQ_TYPE_MULTI_MSI = 4;

    // struct physdev_map_pirq { domid_t domid; int type, index, pirq, bus, devfn, entry_nr; uint64_t table_base; }
    public const int map_pirq_domid = 0, map_pirq_type = 4, map_pirq_index = 8, map_pirq_pirq = 12, map_pirq_bus = 16,
        map_pirq_devfn = 20, map_pirq_entry_nr = 24, map_pirq_table_base = 32;
    // struct physdev_unmap_pirq { domid_t domid; int pirq; }
    public const int unmap_pirq_domid = 0, unmap_pirq_pirq = 4;
    // struct physdev_setup_gsi { int gsi; uint8_t triggering, polarity; }
    public const int setup_gsi_gsi = 0, setup_gsi_triggering = 4, setup_gsi_polarity = 5;
    // struct physdev_irq_status_query { uint32_t irq, flags; }; struct physdev_eoi { uint32_t irq; }
    public const int irq_status_query_irq = 0, irq_status_query_flags = 4;
    // struct physdev_apic { unsigned long apic_physbase; uint32_t reg, value; }
    public const int apic_physbase = 0, apic_reg = 8, apic_value = 12;
    // struct physdev_pci_device_add { uint16_t seg; uint8_t bus, devfn; uint32_t flags; ... }
    public const int pci_device_add_seg = 0, pci_device_add_bus = 2, pci_device_add_devfn = 3;
    // struct physdev_pci_mmcfg_reserved { uint64_t address; uint16_t segment; uint8_t start_bus, end_bus; uint32_t flags; }
    public const int pci_mmcfg_address = 0, pci_mmcfg_segment = 8, pci_mmcfg_start_bus = 10, pci_mmcfg_end_bus = 11;
}
