using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor.Io;

/// <summary>
/// A domain other than the hardware domain reached for the machine's devices: it gets -EPERM, and
/// the hypervisor's log says so once per domain and kind (Xen's gdprintk on these paths), so a
/// guest cannot flood the console by repeating the attempt.
/// </summary>
public static class DeviceRefusal
{
    public const int Ports = 0, IoMemory = 1, Pirqs = 2, Platform = 3, Pci = 4, MemoryExchange = 5, MachineMemoryMap = 6;

    public static long Refuse(Domain d, int kind, string what)
    {
        ulong bit = 1UL << kind;
        if ((d.DeviceRefusalsLogged & bit) == 0)
        {
            d.DeviceRefusalsLogged |= bit;
            new ConsoleText(d.Machine.Host).Write("hwdom: d").Dec((ulong)d.DomainId).Write(" may not ").Write(what)
                .Line(": not the hardware domain (-EPERM; logged once)");
        }
        return -Errno.EPERM;
    }
}
