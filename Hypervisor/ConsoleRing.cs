using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// The hypervisor's end of a domain's PV console (xencons_interface, io/console.h): what xenconsoled
/// does for Xen. Bytes the guest produced into out[] go to the hypervisor console, then out_cons is
/// advanced and the guest notified so a guest spinning on a full ring can go on. Also home of the
/// per-domain line state that prefixes every guest line with "(dN) ", shared with console_io.
/// </summary>
public static class ConsoleRing
{
    /// <summary>Drains the console ring of <paramref name="d"/> (at d.ConsoleRingMfn, if any). The kernel
    /// calls it on every tick and when the guest kicks its console port. Never loops past one ring.</summary>
    public static void Drain(Domain d)
    {
        if (d == null || d.ConsoleRingMfn == 0 || !d.OwnsFrame(d.ConsoleRingMfn)) return;
        PhysicalMemory mem = d.Machine.Memory;
        ulong ring = d.ConsoleRingMfn << Layout.PageShift;
        if (!mem.Contains(ring, Layout.PageSize)) return;

        uint cons = mem.Read32(ring + XenconsInterface.out_cons);
        uint prod = mem.Read32(ring + XenconsInterface.out_prod);
        if (cons == prod) return;
        // More than a ring's worth outstanding means the guest scribbled on the indices: print the
        // newest ring-full and resync rather than trusting the distance.
        if (prod - cons > XenconsInterface.OUT_SIZE) cons = prod - XenconsInterface.OUT_SIZE;
        for (uint i = cons; i != prod; i++)
            Put(d, mem.Read8(ring + XenconsInterface.out_ + XenconsInterface.MaskOut(i)));
        mem.Write32(ring + XenconsInterface.out_cons, prod);

        Notify(d);
    }

    /// <summary>Tells the guest the ring has room again (its console event channel), when it has one.</summary>
    private static void Notify(Domain d)
    {
        if (d.ConsoleEvtchn < 0 || d.EventChannels == null) return;
        d.EventChannels.SetPending(d.ConsoleEvtchn);
    }

    /// <summary>One guest byte to the hypervisor console, with "(dN) " before the first byte of each line;
    /// the hardware domain's console is the machine's, so its bytes go out as they are (Xen's
    /// guest_console_write writes dom0's directly, "as it could be interactive"). A line another domain
    /// left open is ended first (its rest gets a prefix of its own), so one domain's unterminated output
    /// never swallows another's line, as Xen's per-domain line buffer ensures.</summary>
    internal static void Put(Domain d, byte b)
    {
        Machine m = d.Machine;
        HypervisorHost host = m.Host;
        Domain open = m.ConsoleLineOpenBy;
        if (open != null && open != d && open.ConsoleMidLine)
        {
            host.ConsoleWrite((byte)'\n');
            open.ConsoleMidLine = false;
        }
        if (!d.ConsoleMidLine && !d.IsHardwareDomain) WritePrefix(host, d.DomainId);
        host.ConsoleWrite(b);
        d.ConsoleMidLine = b != (byte)'\n';
        m.ConsoleLineOpenBy = d.ConsoleMidLine ? d : null;
    }

    /// <summary>Before the hypervisor's own lines (a crash report, the summary): a guest line left open
    /// is ended, so they start on a line of their own.</summary>
    public static void EndOpenLine(Machine m)
    {
        Domain open = m.ConsoleLineOpenBy;
        if (open == null || !open.ConsoleMidLine) return;
        m.Host.ConsoleWrite((byte)'\n');
        open.ConsoleMidLine = false;
        m.ConsoleLineOpenBy = null;
    }

    private static void WritePrefix(HypervisorHost host, ushort id)
        => new ConsoleText(host).Write("(d").Dec(id).Write(") ");
}
