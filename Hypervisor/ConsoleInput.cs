using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// Serial input, Xen's way (xen/drivers/char/console.c serial_rx, switch_serial_input, do_console_io):
/// the characters typed on COM1 go to one place at a time. The initial domain reads them from a
/// 128-byte buffer with CONSOLEIO_read after VIRQ_CONSOLE; another domain finds them in the input
/// half of its console ring (in[], in_prod), notified on its console event channel, as xenconsoled
/// would deliver them; Microhv itself treats them as debug keys. Ctrl-A typed three times moves the
/// input on: initial domain, the other domains by id, Microhv, and round again.
/// A full buffer drops what does not fit and says so once, until the reader catches up: nothing a
/// user types can block or crash the hypervisor.
/// </summary>
public sealed class ConsoleInput
{
    public const int RxSize = 128;                    // SERIAL_RX_SIZE
    public const byte SwitchCode = 0x01;              // Ctrl-A (opt_conswitch "a")
    public const int FocusMicrohv = Xen.DOMID_XEN;

    private readonly Machine _machine;
    private readonly byte[] _rx = new byte[RxSize];
    private uint _rxCons, _rxProd;
    private int _switchCount;
    private bool _dropReported;

    /// <summary>The domain id the input goes to, or <see cref="FocusMicrohv"/>.</summary>
    public int Focus = FocusMicrohv;
    /// <summary>Bytes dropped because the reader's buffer was full (for the debug keys).</summary>
    public ulong Dropped;

    public ConsoleInput(Machine machine) { _machine = machine; }

    /// <summary>Bytes waiting for CONSOLEIO_read.</summary>
    public uint Buffered => _rxProd - _rxCons;

    /// <summary>Xen's serial_rx: one character from the serial line.</summary>
    public void Receive(byte c)
    {
        if (c == SwitchCode)
        {
            if (++_switchCount == 3)
            {
                SwitchFocus();
                _switchCount = 0;
            }
            return;
        }
        // One or two Ctrl-A's that were not a switch are input like any other byte.
        for (; _switchCount != 0; _switchCount--) Deliver(SwitchCode);
        Deliver(c);
    }

    /// <summary>Gives the input to the initial domain, as Xen does at the end of boot.</summary>
    public void FocusInitialDomain()
    {
        Focus = FocusMicrohv;
        SwitchFocus();
    }

    /// <summary>The next domain by id that can take input, after the current focus; Microhv after the last.</summary>
    public void SwitchFocus()
    {
        int next = NextFocus(Focus);
        Focus = next;
        var text = new ConsoleText(_machine.Host);
        text.Write("*** Serial input to ");
        if (next == FocusMicrohv) text.Write("Microhv"); else text.Write("DOM").Dec((ulong)next);
        text.Line(" (type 'CTRL-a' three times to switch input)");
        if (next == FocusMicrohv) text.Line("*** Microhv keys: type 'h' for help");
    }

    private int NextFocus(int current)
    {
        int best = FocusMicrohv;
        for (int i = 0; i < _machine.DomainCount; i++)
        {
            Domain d = _machine.Domains[i];
            if (!TakesInput(d)) continue;
            bool after = current == FocusMicrohv || d.DomainId > current;
            if (after && (best == FocusMicrohv || d.DomainId < best)) best = d.DomainId;
        }
        return best;
    }

    /// <summary>A running domain with somewhere to put input: the initial domain's buffer or a console ring.</summary>
    private static bool TakesInput(Domain d)
        => d.State == DomainState.Running && (d.IsInitialDomain || d.ConsoleRingMfn != 0);

    private void Deliver(byte c)
    {
        if (Focus == FocusMicrohv)
        {
            DebugKeys.Handle(_machine, c);
            return;
        }
        Domain d = _machine.FindDomain((ushort)Focus);
        if (d == null || !TakesInput(d))
        {
            // The domain went away while it had the input: the input comes back to Microhv.
            Focus = FocusMicrohv;
            SwitchFocusMessage();
            DebugKeys.Handle(_machine, c);
            return;
        }
        if (d.IsInitialDomain) DeliverToBuffer(d, c);
        else DeliverToRing(d, c);
    }

    private void SwitchFocusMessage()
        => new ConsoleText(_machine.Host).Line("*** Serial input to Microhv (the domain that had it ended)");

    /// <summary>Into the 128-byte buffer, unless full; VIRQ_CONSOLE either way, so the reader is never stuck.</summary>
    private void DeliverToBuffer(Domain d, byte c)
    {
        if (_rxProd - _rxCons != RxSize)
        {
            _rx[_rxProd++ % RxSize] = c;
        }
        else
        {
            Dropped++;
            ReportDropOnce(d);
        }
        if (d.EventChannels != null) d.EventChannels.SendVirq(Xen.VIRQ_CONSOLE);
    }

    /// <summary>Into in[] of the domain's console ring at in_prod, unless the ring is full; then notify.</summary>
    private void DeliverToRing(Domain d, byte c)
    {
        PhysicalMemory mem = _machine.Memory;
        ulong ring = d.ConsoleRingMfn << Layout.PageShift;
        if (!d.OwnsFrame(d.ConsoleRingMfn) || !mem.Contains(ring, Layout.PageSize)) return;
        uint cons = mem.Read32(ring + XenconsInterface.in_cons);
        uint prod = mem.Read32(ring + XenconsInterface.in_prod);
        // The guest owns in_cons: a distance beyond the ring size means it scribbled on it; that
        // domain's input stops (as a full ring), nobody else's.
        if (prod - cons >= XenconsInterface.IN_SIZE)
        {
            Dropped++;
            ReportDropOnce(d);
        }
        else
        {
            mem.Write8(ring + XenconsInterface.in_ + XenconsInterface.MaskIn(prod), c);
            mem.Write32(ring + XenconsInterface.in_prod, prod + 1);   // x86 keeps the stores in order
            _dropReported = false;
        }
        if (d.ConsoleEvtchn >= 0 && d.EventChannels != null) d.EventChannels.SetPending(d.ConsoleEvtchn);
    }

    private void ReportDropOnce(Domain d)
    {
        if (_dropReported) return;
        _dropReported = true;
        new ConsoleText(_machine.Host).Write("*** Serial input to DOM").Dec(d.DomainId)
            .Line(" dropped: its input buffer is full (reported once until it reads)");
    }

    /// <summary>
    /// CONSOLEIO_read: up to <paramref name="count"/> buffered bytes to the guest at
    /// <paramref name="buffer"/>; returns how many, or -EFAULT (the bytes already copied stay consumed,
    /// as in Xen). Only the initial domain gets here.
    /// </summary>
    public long Read(Vcpu v, uint count, ulong buffer)
    {
        long done = 0;
        while (_rxCons != _rxProd && done < count)
        {
            if (!GuestMemory.WriteU8(v, buffer + (ulong)done, _rx[_rxCons % RxSize])) return -Errno.EFAULT;
            _rxCons++;
            done++;
        }
        if (_rxCons == _rxProd) _dropReported = false;
        return done;
    }
}
