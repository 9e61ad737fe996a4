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
    /// <summary>Bytes printed per step, Xen's kbuf (128 bytes less its terminator): the whole step is readable
    /// before any of it is printed, and a write longer than one step checks for preemption between steps.</summary>
    public const uint Chunk = 127;

    public static long Do(Vcpu v, ulong cmd, ulong count, ulong buffer)
    {
        uint command = (uint)cmd;   // unsigned int in Xen's prototype
        bool privileged = v.Domain.IsInitialDomain;
        if (command == Xen.CONSOLEIO_write) return Write(v, (uint)count, buffer);
        if (!privileged) return -Errno.EPERM;
        if (command == Xen.CONSOLEIO_read) return v.Domain.Machine.ConsoleInput.Read(v, (uint)count, buffer);
        return -Errno.ENOSYS;
    }

    /// <summary>Xen's guest_console_write: any length, <see cref="Chunk"/> bytes at a time; once a step is done and
    /// the entry's budget is used up, the rest becomes a continuation (the same call with the count and buffer
    /// advanced), so a guest asking for gigabytes keeps the hypervisor (and, on several processors, its lock) no
    /// longer than one budget per entry. A step that cannot be read ends the call with -EFAULT, what came before
    /// it printed, as in Xen.</summary>
    private static long Write(Vcpu v, uint count, ulong buffer)
    {
        Domain d = v.Domain;
        PhysicalMemory mem = d.Machine.Memory;
        bool first = true;
        while (count > 0)
        {
            if (!first && Continuation.PreemptCheck(v))
                return Continuation.Create(v, Xen.__HYPERVISOR_console_io, Xen.CONSOLEIO_write, count, buffer);
            first = false;
            uint n = count < Chunk ? count : Chunk;
            if (buffer + n < buffer) return -Errno.EFAULT;
            // A step spans at most two pages: both are checked before a byte is printed.
            ulong last = buffer + n - 1;
            if (!GuestMemory.Translate(v, buffer, false, out ulong ma) || !GuestMemory.Translate(v, last, false, out ulong lastMa))
                return -Errno.EFAULT;
            ulong inPage = Layout.PageSize - (buffer & (Layout.PageSize - 1));
            ulong head = n < inPage ? n : inPage;
            for (ulong i = 0; i < head; i++) ConsoleRing.Put(d, mem.Read8(ma + i));
            ulong tailMa = lastMa & ~(Layout.PageSize - 1);
            for (ulong i = head; i < n; i++) ConsoleRing.Put(d, mem.Read8(tailMa + (i - head)));
            buffer += n;
            count -= n;
        }
        return 0;
    }
}
