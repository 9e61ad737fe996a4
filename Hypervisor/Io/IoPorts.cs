namespace Microhv.Hypervisor.Io;

/// <summary>
/// The I/O ports Microhv keeps for itself (Xen's ioports_deny_access calls in dom0_setup_permissions).
/// The hardware domain may use every other port; no other domain may use any. This list is the one
/// place that says which ports are the hypervisor's: the kernel adds the ports of the devices it
/// drives at boot, and the `i` debug key and docs/hardware-domain.md show it.
/// </summary>
public sealed class IoPorts
{
    public const int MaxRanges = 32;

    private struct Range { public ushort First, Last; public string Owner; }
    private readonly Range[] _denied = new Range[MaxRanges];
    public int Count { get; private set; }

    /// <summary>The ports Xen denies dom0 on every PC, whatever the hypervisor drives: both 8259 PICs,
    /// the 8254 PIT, the speaker/NMI-status port, and PCI configuration data (reached through the
    /// emulated 0xCF8/0xCFC mechanism instead, see GuestIo).</summary>
    public void DenyPcDefaults()
    {
        Deny(0x20, 0x21, "8259 PIC (master)");
        Deny(0xA0, 0xA1, "8259 PIC (slave)");
        Deny(0x40, 0x43, "8254 PIT");
        Deny(0x61, 0x61, "PIT gate / NMI status");
        Deny(0xCFC, 0xCFF, "PCI configuration data (emulated)");
    }

    /// <summary>Keeps ports <paramref name="first"/>..<paramref name="last"/> for the hypervisor; false when the list is full.</summary>
    public bool Deny(uint first, uint last, string owner)
    {
        if (Count == MaxRanges || first > last || last > 0xFFFF) return false;
        _denied[Count].First = (ushort)first;
        _denied[Count].Last = (ushort)last;
        _denied[Count].Owner = owner;
        Count++;
        return true;
    }

    public void Get(int i, out uint first, out uint last, out string owner)
    {
        first = _denied[i].First;
        last = _denied[i].Last;
        owner = _denied[i].Owner;
    }

    /// <summary>Xen's ioports_access_permitted: may <paramref name="d"/> touch every port of first..last?</summary>
    public bool Permitted(Domain d, uint first, uint last)
    {
        if (!d.IsHardwareDomain || last > 0xFFFF || first > last) return false;
        for (int i = 0; i < Count; i++)
            if (first <= _denied[i].Last && _denied[i].First <= last) return false;
        return true;
    }
}
