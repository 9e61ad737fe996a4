using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// console_io (xen/drivers/char/console.c do_console_io). CONSOLEIO_write prints guest bytes on the
/// hypervisor console; every domain's lines carry a "(dN) " prefix, the initial domain's too, because
/// several domains and the hypervisor share one console here (Xen leaves dom0's output bare).
/// Every domain may write, as in a Xen debug build (CONFIG_VERBOSE_DEBUG); a release Xen gives a
/// domU -EPERM and it falls back to its console ring. Reading and other commands stay privileged,
/// as XSM's default policy has it: CONSOLEIO_read hands over the serial input typed while the initial
/// domain has the input focus (ConsoleInput.cs).
/// </summary>
public static class ConsoleIo
{
    /// <summary>Xen writes any length through continuations; without them one call is bounded so a
    /// guest cannot keep the hypervisor printing for minutes. Longer writes fail whole with -EINVAL.</summary>
    public const uint MaxWrite = 64 * 1024;

    public static long Do(Vcpu v, ulong cmd, ulong count, ulong buffer)
    {
        uint command = (uint)cmd;   // unsigned int in Xen's prototype
        bool privileged = v.Domain.IsInitialDomain;
        if (command == Xen.CONSOLEIO_write) return Write(v, (uint)count, buffer);
        if (!privileged) return -Errno.EPERM;
        if (command == Xen.CONSOLEIO_read) return v.Domain.Machine.ConsoleInput.Read(v, (uint)count, buffer);
        return -Errno.ENOSYS;
    }

    private static long Write(Vcpu v, uint count, ulong buffer)
    {
        if (count == 0) return 0;
        if (count > MaxWrite) return -Errno.EINVAL;
        if (buffer + count < buffer) return -Errno.EFAULT;
        // Check every page first, so a bad pointer prints nothing and returns -EFAULT.
        ulong end = buffer + count;
        for (ulong page = buffer & ~(Layout.PageSize - 1); page < end; page += Layout.PageSize)
        {
            ulong probe = page < buffer ? buffer : page;
            if (!GuestMemory.Translate(v, probe, false, out ulong _)) return -Errno.EFAULT;
        }

        Domain d = v.Domain;
        PhysicalMemory mem = d.Machine.Memory;
        ulong va = buffer;
        while (va < end)
        {
            if (!GuestMemory.Translate(v, va, false, out ulong ma)) return -Errno.EFAULT;
            ulong inPage = Layout.PageSize - (va & (Layout.PageSize - 1));
            ulong n = end - va < inPage ? end - va : inPage;
            for (ulong i = 0; i < n; i++) ConsoleRing.Put(d, mem.Read8(ma + i));
            va += n;
        }
        return 0;
    }
}
