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
}
