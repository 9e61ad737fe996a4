using Microhv.HAL;
using Microhv.Hypervisor.Events;

namespace Microhv.Hypervisor;

/// <summary>
/// Keys typed while Microhv has the serial input (Ctrl-A three times), in the spirit of Xen's debug
/// keys (xen/common/keyhandler.c): each prints a snapshot of the hypervisor's state and changes
/// nothing. Unknown keys say so; Enter and other control characters are ignored.
/// </summary>
public static class DebugKeys
{
    public static void Handle(Machine m, byte key)
    {
        var t = new ConsoleText(m.Host);
        switch (key)
        {
            case (byte)'h': Help(t); break;
            case (byte)'q': Domains(m, t); break;
            case (byte)'r': RunQueue(m, t); break;
            case (byte)'e': EventChannelsOf(m, t); break;
            case (byte)'m': Memory(m, t); break;
            default:
                if (key < 0x20 || key == 0x7F) break;
                t.Write("'").Put(key).Line("' pressed -> no such key (type 'h' for help)");
                break;
        }
    }

    private static void Help(ConsoleText t)
    {
        t.Line("'h' pressed -> showing installed handlers");
        t.Line(" key 'e' (ascii '65') => dump evtchn info");
        t.Line(" key 'h' (ascii '68') => show this message");
        t.Line(" key 'm' (ascii '6d') => memory info");
        t.Line(" key 'q' (ascii '71') => dump domain (and guest debug) info");
        t.Line(" key 'r' (ascii '72') => dump run queues");
        t.Line(" CTRL-a three times => switch serial input to the next domain");
    }

    private static void Domains(Machine m, ConsoleText t)
    {
        t.Line("'q' pressed -> dumping domain info");
        for (int i = 0; i < m.DomainCount; i++)
        {
            Domain d = m.Domains[i];
            t.Write("General information for domain ").Dec(d.DomainId);
            if (d.Name.Length > 0) t.Write(" (").Write(d.Name, d.Name.Length).Write(")");
            t.Write(": ").Write(StateName(d)).Write(d.IsInitialDomain ? ", initial" : "").Line();
            t.Write("    nr_pages=").Dec(d.NrPages).Write(" (").Dec(d.NrPages * Layout.PageSize >> 20).Write(" MiB)")
             .Write(" shared_info mfn=").Hex(d.SharedInfoMfn);
            if (d.ConsoleRingMfn != 0) t.Write(" console ring mfn=").Hex(d.ConsoleRingMfn).Write(" port ").Dec(d.ConsoleEvtchn);
            t.Line();
            for (int n = 0; n < d.MaxVcpus; n++)
            {
                Vcpu v = d.Vcpus[n];
                t.Write("    VCPU").Dec((ulong)n).Write(": ").Write(VcpuState(m, v));
                if (d.State == DomainState.Running || d.State == DomainState.Building)
                    t.Write(" upcall_pend=").Dec(VcpuInfo.UpcallPending(v)).Write(" upcall_mask=").Dec(VcpuInfo.UpcallMask(v));
                t.Write(" rip=").Hex(v.Regs.Rip).Write(v.KernelMode ? " (kernel)" : " (user)").Line();
            }
            if (d.State == DomainState.Crashed && d.CrashReason != null) t.Write("    crashed: ").Line(d.CrashReason);
        }
    }

    private static void RunQueue(Machine m, ConsoleText t)
    {
        Scheduler s = m.Scheduler;
        t.Line("'r' pressed -> dumping run queues");
        ulong cpus = s.Cpus;
        for (int c = 0; cpus != 0; c++, cpus >>= 1)
        {
            if ((cpus & 1) == 0) continue;
            Vcpu r = s.RunningOn(c);
            t.Write("CPU[").Write(c < 10 ? "0" : "").Dec((ulong)c).Write("] running=");
            if (r == null) t.Write("idle"); else t.Write("d").Dec(r.Domain.DomainId).Write("v").Dec((ulong)r.Id);
            if (c == 0) t.Write(" switches=").Dec(s.Switches);
            t.Line();
        }
        for (int i = 0; i < m.DomainCount; i++)
            for (int n = 0; n < m.Domains[i].MaxVcpus; n++)
            {
                Vcpu v = m.Domains[i].Vcpus[n];
                if (Scheduler.IsRunning(v) || !Scheduler.IsRunnable(v)) continue;
                t.Write("  runnable: d").Dec(v.Domain.DomainId).Write("v").Dec((ulong)n).Line();
            }
        for (int i = 0; i < m.DomainCount; i++)
            for (int n = 0; n < m.Domains[i].MaxVcpus; n++)
            {
                Vcpu v = m.Domains[i].Vcpus[n];
                if (v.Domain.State == DomainState.Running && v.Online && v.Blocked) t.Write("  blocked: d").Dec(v.Domain.DomainId).Write("v").Dec((ulong)n).Line();
            }
    }

    private static void EventChannelsOf(Machine m, ConsoleText t)
    {
        t.Line("'e' pressed -> dumping event-channel info");
        for (int i = 0; i < m.DomainCount; i++)
        {
            Domain d = m.Domains[i];
            EventChannels ec = d.EventChannels;
            if (ec == null) continue;
            t.Write("Event channel information for domain ").Dec(d.DomainId).Line(":");
            if (ec.Fifo.Active) t.Write("  FIFO ABI: ").Dec((ulong)ec.Fifo.NumEvtchns).Line(" event words");
            for (int p = 1; p < EventChannels.Capacity; p++)
            {
                ChannelState st = ec.StateOf(p);
                if (st == ChannelState.Free) continue;
                t.Write("    ").Dec((ulong)p).Write(" [").Dec(ec.IsPending(p) ? 1UL : 0).Write("/").Dec(ec.IsMasked(p) ? 1UL : 0).Write("]: ");
                switch (st)
                {
                    case ChannelState.Unbound: t.Write("unbound, remote d").Dec(ec.RemoteDomainOf(p)); break;
                    case ChannelState.Interdomain: t.Write("interdomain d").Dec(ec.RemoteDomainOf(p)).Write(":").Dec((ulong)ec.RemotePortOf(p)); break;
                    case ChannelState.Virq: t.Write("virq ").Dec((ulong)ec.RemotePortOf(p)); break;
                    case ChannelState.Ipi: t.Write("ipi"); break;
                    case ChannelState.Hypervisor: t.Write("console (Microhv)"); break;
                    default: t.Write("reserved"); break;
                }
                if (ec.Fifo.Active) FifoStateOf(ec.Fifo, p, t);
                t.Line();
            }
        }
    }

    /// <summary>Xen's evtchn_fifo_print_state: the port's priority, BUSY, and its LINK while it is on a queue.</summary>
    private static void FifoStateOf(Events.EvtchnFifo fifo, int port, ConsoleText t)
    {
        t.Write(", prio ").Dec((ulong)fifo.PriorityOf(port));
        if (!fifo.HasWord(port)) { t.Write(", no event word"); return; }
        uint w = fifo.Word(port);
        if ((w & (1u << Public.EventChannel.EVTCHN_FIFO_BUSY)) != 0) t.Write(", busy");
        if ((w & (1u << Public.EventChannel.EVTCHN_FIFO_LINKED)) != 0) t.Write(", linked -> ").Dec(w & Public.EventChannel.EVTCHN_FIFO_LINK_MASK);
    }

    private static void Memory(Machine m, ConsoleText t)
    {
        t.Line("'m' pressed -> dumping memory info");
        if (m.Frames is FrameAllocator frames)
            t.Write("Physical memory: ").Dec(frames.FrameCount).Write(" frames, ").Dec(frames.FreeFrames).Line(" free");
        for (int i = 0; i < m.DomainCount; i++)
        {
            Domain d = m.Domains[i];
            t.Write("    domain ").Dec(d.DomainId).Write(": ").Dec(d.NrPages).Line(" pages");
        }
        t.Write("Serial input: ").Dec(m.ConsoleInput.Buffered).Write(" bytes buffered for the initial domain, ")
         .Dec(m.ConsoleInput.Dropped).Line(" dropped");
    }

    private static string StateName(Domain d)
    {
        switch (d.State)
        {
            case DomainState.Building: return "building";
            case DomainState.Running: return "running";
            case DomainState.Shutdown: return "shut down";
            default: return "crashed";
        }
    }

    private static string VcpuState(Machine m, Vcpu v)
    {
        if (v.Domain.State != DomainState.Running || !v.Online) return "offline";
        if (Scheduler.IsRunning(v)) return "running";
        if (v.Blocked) return v.Polling ? "polling" : "blocked";
        return "runnable";
    }
}
