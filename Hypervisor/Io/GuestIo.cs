namespace Microhv.Hypervisor.Io;

/// <summary>
/// A guest kernel's port I/O, once its instruction has been decoded (Xen's guest_io_read and
/// guest_io_write in pv/emul-priv-op.c). A port the domain is permitted is accessed for real. PCI
/// configuration space goes through a per-domain copy of CONFIG_ADDRESS (0xCF8, dword accesses
/// only) that the hypervisor replays before each access of CONFIG_DATA (0xCFC-0xCFF), so a domain
/// never leaves the real CONFIG_ADDRESS in a state the hypervisor did not choose; only the hardware
/// domain reaches configuration data. The RTC index (0x70) is latched likewise, and 0x71 reaches the
/// real RTC only for a domain permitted both ports. Anything else reads as all ones and writes are
/// dropped, byte by byte (a wide access may span permitted and refused ports).
/// </summary>
public static class GuestIo
{
    public const uint PciConfigAddress = 0xCF8, PciConfigData = 0xCFC, RtcIndex = 0x70, RtcData = 0x71;
    private const uint Cf8Enable = 0x8000_0000;

    public static uint Read(Domain d, uint port, int bytes)
    {
        Machine m = d.Machine;
        if (DirectOk(d, port, bytes)) return m.Host.PortIn(port, bytes);
        uint data = 0;
        int shift = 0;
        while (bytes > 0)
        {
            int size = 1;
            uint sub = 0xFFFF_FFFF;
            if (port == PciConfigAddress && bytes == 4)
            {
                size = 4;
                sub = d.PciCf8;
            }
            else if ((port & 0xFFFC) == PciConfigData)
            {
                size = DataSize(port, bytes);
                if (d.IsHardwareDomain) sub = PciConfigRead(m, d.PciCf8, port & 3, size);
            }
            else if (port == RtcIndex)
            {
                sub = d.CmosIndex;
            }
            else if (port == RtcData)
            {
                if (m.IoPorts.Permitted(d, RtcIndex, RtcData))
                {
                    m.Host.PortOut(RtcIndex, 1, d.CmosIndex & 0x7Fu);
                    sub = m.Host.PortIn(RtcData, 1);
                }
            }
            else if (m.IoPorts.Permitted(d, port, port))
            {
                if (bytes > 1 && (port & 1) == 0 && m.IoPorts.Permitted(d, port, port + 1))
                {
                    size = 2;
                    sub = m.Host.PortIn(port, 2);
                }
                else sub = m.Host.PortIn(port, 1);
            }
            if (size == 4) return sub;
            data |= (sub & ((1u << (size * 8)) - 1)) << shift;
            shift += size * 8;
            port += (uint)size;
            bytes -= size;
        }
        return data;
    }

    public static void Write(Domain d, uint port, int bytes, uint data)
    {
        Machine m = d.Machine;
        if (DirectOk(d, port, bytes)) { m.Host.PortOut(port, bytes, data); return; }
        while (bytes > 0)
        {
            int size = 1;
            if (port == PciConfigAddress && bytes == 4)
            {
                size = 4;
                d.PciCf8 = data;
            }
            else if ((port & 0xFFFC) == PciConfigData)
            {
                size = DataSize(port, bytes);
                if (d.IsHardwareDomain) PciConfigWrite(m, d.PciCf8, port & 3, size, data);
            }
            else if (port == RtcIndex)
            {
                d.CmosIndex = (byte)data;
            }
            else if (port == RtcData)
            {
                if (m.IoPorts.Permitted(d, RtcIndex, RtcData))
                {
                    m.Host.PortOut(RtcIndex, 1, d.CmosIndex & 0x7Fu);
                    m.Host.PortOut(RtcData, 1, data & 0xFF);
                }
            }
            else if (m.IoPorts.Permitted(d, port, port))
            {
                if (bytes > 1 && (port & 1) == 0 && m.IoPorts.Permitted(d, port, port + 1)) size = 2;
                m.Host.PortOut(port, size, size == 2 ? data & 0xFFFF : data & 0xFF);
            }
            if (size == 4) return;
            port += (uint)size;
            bytes -= size;
            data >>= size * 8;
        }
    }

    /// <summary>Xen's admin_io_okay: a whole access to permitted ports, never 0xCF8 as a dword and never the RTC.</summary>
    private static bool DirectOk(Domain d, uint port, int bytes)
    {
        uint last = port + (uint)bytes - 1;
        if (port == PciConfigAddress && bytes == 4) return false;
        if (port <= RtcData && last >= RtcIndex) return false;
        return d.Machine.IoPorts.Permitted(d, port, last);
    }

    /// <summary>A CONFIG_DATA access of <paramref name="bytes"/> at <paramref name="port"/>: within the dword, and never 3 bytes.</summary>
    private static int DataSize(uint port, int bytes)
    {
        int size = 4 - (int)(port & 3);
        if (bytes < size) size = bytes;
        return size == 3 ? 2 : size;
    }

    /// <summary>pci_conf_read through the real mechanism #1, with the domain's CONFIG_ADDRESS; all ones when it is disabled.</summary>
    public static uint PciConfigRead(Machine m, uint cf8, uint offset, int size)
    {
        if ((cf8 & Cf8Enable) == 0) return 0xFFFF_FFFF;
        m.Host.PortOut(PciConfigAddress, 4, cf8 & ~3u);
        return m.Host.PortIn(PciConfigData + offset, size);
    }

    public static void PciConfigWrite(Machine m, uint cf8, uint offset, int size, uint data)
    {
        if ((cf8 & Cf8Enable) == 0) return;
        m.Host.PortOut(PciConfigAddress, 4, cf8 & ~3u);
        m.Host.PortOut(PciConfigData + offset, size, data);
    }
}
