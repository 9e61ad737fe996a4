using Microhv.HAL;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using static Microhv.Hypervisor.Public.EventChannel;

namespace Microhv.Hypervisor.Events;

/// <summary>
/// A domain's FIFO event channels (xen/common/event_fifo.c), active from its first successful
/// EVTCHNOP_init_control until EVTCHNOP_reset or its teardown. Each port has a 32-bit event word in
/// the event array, pages the guest adds with EVTCHNOP_expand_array (1024 words each): PENDING,
/// MASKED, LINKED, BUSY and the LINK to the next port of its queue. Each vCPU has a control block in a
/// page of the guest's (READY, one bit per priority, and 16 queue heads); the hypervisor keeps each
/// queue's tail. A port that becomes pending while unmasked is linked at the tail of its vCPU's queue
/// for its priority (or becomes the head of an empty queue, which sets the READY bit and raises the
/// upcall); the guest consumes a queue from its head, clearing LINKED.
///
/// Every mapped page holds a general and a writable type reference, as Xen's map_guest_page does, until
/// <see cref="Destroy"/>. The guest's vCPUs change these words on other processors while the hypervisor
/// (serialized by its lock) writes them, so every read-modify-write of a guest word is atomic.
/// </summary>
public sealed class EvtchnFifo
{
    /// <summary>Event words in one event-array page, and the pages the 2^17 ports need.</summary>
    public const int EventWordsPerPage = (int)(Layout.PageSize / 4);
    public const int MaxEventArrayPages = EVTCHN_FIFO_NR_CHANNELS / EventWordsPerPage;
    private const uint Pending = 1u << EVTCHN_FIFO_PENDING, Masked = 1u << EVTCHN_FIFO_MASKED,
        Linked = 1u << EVTCHN_FIFO_LINKED, Busy = 1u << EVTCHN_FIFO_BUSY;
    private const ulong NoControlBlock = ~0UL;

    private readonly EventChannels _ports;
    private Domain Domain => _ports.Domain;
    private PhysicalMemory Memory => _ports.Domain.Machine.Memory;

    /// <summary>The domain uses the FIFO ABI (Xen's d->evtchn_fifo is set).</summary>
    public bool Active;
    /// <summary>Machine frames of the event-array pages; the first <see cref="NumEvtchns"/> / 1024 are mapped.</summary>
    private readonly ulong[] _arrayMfn = new ulong[MaxEventArrayPages];
    /// <summary>Ports the event array covers (Xen's num_evtchns).</summary>
    public int NumEvtchns { get; private set; }
    /// <summary>Machine address of each vCPU's control block, or NoControlBlock.</summary>
    private readonly ulong[] _controlBlock = new ulong[Domain.VcpuCapacity];
    /// <summary>Each queue's tail port (0: none), [vcpu * 16 + priority].</summary>
    private readonly uint[] _tail = new uint[Domain.VcpuCapacity * EVTCHN_FIFO_MAX_QUEUES];
    /// <summary>Per port: its priority, the queue it was last linked on (Xen's fifo_lastq) and whether it became
    /// pending while its event-array page was missing (Xen's evtchn->pending).</summary>
    private readonly byte[] _priority = new byte[EventChannels.Capacity];
    private readonly byte[] _lastVcpu = new byte[EventChannels.Capacity];
    private readonly byte[] _lastPriority = new byte[EventChannels.Capacity];
    private readonly bool[] _savedPending = new bool[EventChannels.Capacity];

    public EvtchnFifo(EventChannels ports)
    {
        _ports = ports;
        Clear();
    }

    /// <summary>A new domain's state: the 2-level ABI, nothing mapped (its frames were given back before).</summary>
    public void Clear()
    {
        Active = false;
        NumEvtchns = 0;
        Zero.Fill(_arrayMfn);
        for (int i = 0; i < _controlBlock.Length; i++) _controlBlock[i] = NoControlBlock;
        Zero.Fill(_tail);
        Zero.Fill(_lastVcpu);
        Zero.Fill(_lastPriority);
        Zero.Fill(_savedPending);
        for (int p = 0; p < _priority.Length; p++) _priority[p] = EVTCHN_FIFO_PRIORITY_DEFAULT;
    }

    /// <summary>Machine address of the vCPU's control block, or 0 when it has none.</summary>
    public ulong ControlBlockOf(int vcpu) => Active && _controlBlock[vcpu] != NoControlBlock ? _controlBlock[vcpu] : 0;
    public int PriorityOf(int port) => _priority[port];

    /// <summary>Machine address of a port's event word, or 0 when the event array does not cover it
    /// (Xen's evtchn_fifo_word_from_port).</summary>
    public ulong WordAddress(long port)
    {
        if (!Active || (ulong)port >= (ulong)NumEvtchns) return 0;
        return (_arrayMfn[port / EventWordsPerPage] << Layout.PageShift) + (ulong)(port % EventWordsPerPage) * 4;
    }

    public bool HasWord(int port) => WordAddress(port) != 0;
    /// <summary>The port's event word as the guest left it (0 without one): for the debug keys.</summary>
    public uint Word(int port)
    {
        ulong w = WordAddress(port);
        return w == 0 ? 0 : Memory.Read32(w);
    }

    // ---- Mapping the guest's pages ----

    /// <summary>Xen's map_guest_page: a general and a writable type reference on a frame the domain owns
    /// (a PV domain names it by machine frame); -EINVAL when either cannot be had.</summary>
    private long MapGuestPage(ulong gfn)
        => PageTypes.GetPageAndType(Domain.Machine, Domain, gfn, FrameType.Writable) == 0 ? 0 : -Errno.EINVAL;

    private void UnmapGuestPage(ulong mfn) => PageTypes.PutPageAndType(Domain.Machine, mfn);

    /// <summary>How many of the mappings (control blocks, event-array pages) are of frame <paramref name="mfn"/>, each
    /// holding a general and a writable type reference on it.</summary>
    public int MappingsOf(ulong mfn)
    {
        int n = 0;
        for (int i = 0; i < _controlBlock.Length; i++)
            if (_controlBlock[i] != NoControlBlock && _controlBlock[i] >> Layout.PageShift == mfn) n++;
        for (int s = 0; s < NumEvtchns / EventWordsPerPage; s++)
            if (_arrayMfn[s] == mfn) n++;
        return n;
    }

    /// <summary>
    /// evtchn_fifo_init_control once the arguments passed their checks (Fifo.InitControl): the first
    /// control block switches the domain to FIFO with an empty event array, every port at the default
    /// priority and those pending on 2-level remembered until their event-array page arrives. A vCPU
    /// that has a control block already gets -EINVAL; a frame that cannot be mapped -EINVAL (then a
    /// domain that was switching stays on 2-level).
    /// </summary>
    public long InitControl(Vcpu v, ulong gfn, uint offset)
    {
        if (Active) return MapControlBlock(v, gfn, offset);
        NumEvtchns = 0;
        Zero.Fill(_tail);
        for (int i = 0; i < _controlBlock.Length; i++) _controlBlock[i] = NoControlBlock;
        long rc = MapControlBlock(v, gfn, offset);
        if (rc < 0) return rc;
        for (int p = 1; p < EventChannels.Capacity; p++)        // setup_ports
        {
            _savedPending[p] = Evtchn2l.IsPending(Domain, p);
            _priority[p] = EVTCHN_FIFO_PRIORITY_DEFAULT;
        }
        Active = true;
        return 0;
    }

    private long MapControlBlock(Vcpu v, ulong gfn, uint offset)
    {
        if (_controlBlock[v.Id] != NoControlBlock) return -Errno.EINVAL;
        long rc = MapGuestPage(gfn);
        if (rc < 0) return rc;
        _controlBlock[v.Id] = (gfn << Layout.PageShift) + offset;
        return 0;
    }

    /// <summary>evtchn_fifo_expand_array: maps the next event-array page (-EOPNOTSUPP on 2-level, -ENOSPC
    /// past 128 pages, -EINVAL for a frame that cannot be mapped) and raises the ports it covers that became
    /// pending while it was missing.</summary>
    public long ExpandArray(ulong gfn)
    {
        if (!Active) return -Errno.EOPNOTSUPP;
        int slot = NumEvtchns / EventWordsPerPage;
        if (slot >= MaxEventArrayPages) return -Errno.ENOSPC;
        long rc = MapGuestPage(gfn);
        if (rc < 0) return rc;
        _arrayMfn[slot] = gfn;
        int port = NumEvtchns;
        NumEvtchns += EventWordsPerPage;
        for (; port < NumEvtchns && _ports.IsValidPort(port); port++)
        {
            if (!_savedPending[port]) continue;
            _savedPending[port] = false;
            _ports.SetPending(port);
        }
        return 0;
    }

    /// <summary>evtchn_fifo_destroy: every control block and event-array page loses the references its
    /// mapping held and the domain is on the 2-level ABI again.</summary>
    public void Destroy()
    {
        for (int i = 0; i < _controlBlock.Length; i++)
        {
            if (_controlBlock[i] != NoControlBlock) UnmapGuestPage(_controlBlock[i] >> Layout.PageShift);
            _controlBlock[i] = NoControlBlock;
        }
        for (int s = 0; s < NumEvtchns / EventWordsPerPage; s++) UnmapGuestPage(_arrayMfn[s]);
        Zero.Fill(_arrayMfn);
        NumEvtchns = 0;
        Zero.Fill(_tail);
        Zero.Fill(_savedPending);
        Active = false;
    }

    // ---- The port operations (evtchn_port_ops) ----

    /// <summary>evtchn_fifo_init: a newly bound port starts at the default priority.</summary>
    public void InitPort(int port) => _priority[port] = EVTCHN_FIFO_PRIORITY_DEFAULT;

    /// <summary>evtchn_fifo_set_priority: 0 (highest) to 15; the port moves queue with its next event.</summary>
    public long SetPriority(int port, uint priority)
    {
        if (priority > EVTCHN_FIFO_PRIORITY_MIN) return -Errno.EINVAL;
        _priority[port] = (byte)priority;
        return 0;
    }

    public bool IsPending(int port)
    {
        ulong w = WordAddress(port);
        return w != 0 && (Memory.Read32(w) & Pending) != 0;
    }

    public bool IsMasked(int port)
    {
        ulong w = WordAddress(port);
        return w == 0 || (Memory.Read32(w) & Masked) != 0;
    }

    /// <summary>evtchn_fifo_is_busy: the port is still on a queue, so it is not handed out again yet.</summary>
    public bool IsBusy(int port)
    {
        ulong w = WordAddress(port);
        return w != 0 && (Memory.Read32(w) & Linked) != 0;
    }

    /// <summary>evtchn_fifo_clear_pending (a port being closed): PENDING only; the guest unlinks it and skips it.</summary>
    public void ClearPending(int port)
    {
        ulong w = WordAddress(port);
        if (w != 0) Memory.Clear32(w, Pending);
    }

    /// <summary>evtchn_fifo_unmask: clears MASKED and links the port again if it is pending. Returns whether
    /// PENDING was newly set (for the pollers).</summary>
    public bool Unmask(Vcpu notify, int port)
    {
        ulong w = WordAddress(port);
        if (w == 0) return false;
        Memory.Clear32(w, Masked);
        return (Memory.Read32(w) & Pending) != 0 && SetPending(notify, port);
    }

    /// <summary>
    /// evtchn_fifo_set_pending on vCPU <paramref name="v"/>: sets PENDING and, if the port is unmasked and
    /// not linked yet, links it at the tail of v's queue for its priority. Linking to the old tail can fail
    /// (the guest consumed it meanwhile): then the port becomes the queue's head, the queue's READY bit is set
    /// and, if it was clear, the upcall is raised. Without its event-array page the event is remembered for
    /// <see cref="ExpandArray"/>; a vCPU without a control block loses it (its guest cannot have unmasked the
    /// port yet). Returns whether PENDING was newly set.
    /// </summary>
    public bool SetPending(Vcpu v, int port)
    {
        ulong word = WordAddress(port);
        if (word == 0)
        {
            if ((uint)port < (uint)_savedPending.Length) _savedPending[port] = true;
            return false;
        }
        ulong block = _controlBlock[v.Id];
        if (block == NoControlBlock) return false;
        PhysicalMemory mem = Memory;
        int priority = _priority[port];
        int q = v.Id * EVTCHN_FIFO_MAX_QUEUES + priority;
        int oldQ = _lastVcpu[port] * EVTCHN_FIFO_MAX_QUEUES + _lastPriority[port];

        bool newlyPending = (mem.Or32(word, Pending) & Pending) == 0;
        bool linked = true;
        if ((mem.Read32(word) & Masked) == 0 && (mem.Or32(word, Linked) & Linked) == 0)
        {
            // If the port was the tail of the queue it was last on, that queue is empty now: forget the tail,
            // or the next port linked there would be linked behind this one wherever it is now.
            if (_tail[oldQ] == (uint)port) _tail[oldQ] = 0;
            if (oldQ != q)
            {
                _lastVcpu[port] = (byte)v.Id;
                _lastPriority[port] = (byte)priority;
            }
            linked = false;
            if (_tail[q] != 0) linked = SetLink(mem, WordAddress(_tail[q]), (uint)port);
            if (!linked) mem.Write32(block + (ulong)evtchn_fifo_control_block_head + (ulong)priority * 4, (uint)port);
            _tail[q] = (uint)port;
        }
        if (!linked && (mem.Or32(block + evtchn_fifo_control_block_ready, 1u << priority) & (1u << priority)) == 0)
            VcpuInfo.MarkEventsPending(v);
        return newlyPending;
    }

    /// <summary>
    /// evtchn_fifo_set_link: sets the LINK of the tail's word to <paramref name="link"/> if the tail is still
    /// LINKED (the guest has not consumed it). The guest may set or clear MASKED, clear PENDING or clear LINKED
    /// meanwhile; BUSY stops it unmasking, so after BUSY is set the compare-and-exchange fails at most 4 times.
    /// </summary>
    private static bool SetLink(PhysicalMemory mem, ulong word, uint link)
    {
        if (word == 0) return false;
        uint w = mem.Read32(word);
        int rc = TrySetLink(mem, word, ref w, link);
        if (rc >= 0) return rc == 1;
        mem.Or32(word, Busy);
        w = mem.Read32(word);
        for (int attempt = 0; attempt < 4; attempt++)
        {
            rc = TrySetLink(mem, word, ref w, link);
            if (rc < 0) continue;
            if (rc == 0) mem.Clear32(word, Busy);
            return rc == 1;
        }
        mem.Clear32(word, Busy);        // Xen gives up too and counts the port as linked
        return true;
    }

    /// <summary>1: linked (BUSY cleared with it); 0: the tail is not LINKED any more; -1: the word changed, try again.</summary>
    private static int TrySetLink(PhysicalMemory mem, ulong word, ref uint w, uint link)
    {
        if ((w & Linked) == 0) return 0;
        uint old = w;
        uint updated = (old & ~(Busy | EVTCHN_FIFO_LINK_MASK)) | link;
        w = mem.CompareExchange32(word, updated, old);
        return w == old ? 1 : -1;
    }
}
