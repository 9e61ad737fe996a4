namespace Microhv.Hypervisor;

/// <summary>
/// Domain objects made ready at boot for the toolstack's createdomain, because a hypercall allocates
/// nothing: each with its vCPU, event-channel table, pirq table, an empty grant-table object, and an
/// FPU area the kernel attaches. A toolstack-built PV domain keeps its own p2m (the guest's list, as in
/// Xen); the hypervisor knows its frames by owner and the M2P, so no p2m array is kept for it. A destroyed domain's object comes back here once it holds no frame any more
/// (<see cref="Return"/>) and is reused, reinitialized, for a later domain.
/// </summary>
public sealed class DomainPool
{
    /// <summary>Toolstack domains alive at once; the boot loader's domains are not counted.</summary>
    public const int DefaultSize = 6;

    private readonly Domain[] _free;
    private int _count;
    public int Capacity => _free.Length;
    public int FreeCount => _count;

    public DomainPool(int size) { _free = new Domain[size]; }

    /// <summary>Adds a domain object made at boot (Fill); false when the pool is full.</summary>
    public bool Add(Domain d)
    {
        if (_count == _free.Length) return false;
        _free[_count++] = d;
        return true;
    }

    /// <summary>Makes <paramref name="size"/> pooled domains (boot time only: this allocates).</summary>
    public static DomainPool Fill(Machine m, int size)
    {
        var pool = new DomainPool(size);
        for (int i = 0; i < size; i++)
        {
            var d = new Domain(m, FrameTable.OwnerNone);
            GrantTable.Reserve(d);
            pool.Add(d);
        }
        return pool;
    }

    /// <summary>The <paramref name="i"/>-th free object (the kernel attaches FPU areas at boot).</summary>
    public Domain Peek(int i) => i < _count ? _free[i] : null;

    /// <summary>A free domain object reinitialized as domain <paramref name="id"/>, or null when none is left.</summary>
    public Domain Take(ushort id)
    {
        if (_count == 0) return null;
        Domain d = _free[--_count];
        _free[_count] = null;
        d.Reinitialize(id);
        return d;
    }

    /// <summary>A domain that holds nothing any more goes back for reuse.</summary>
    public void Return(Domain d)
    {
        if (_count < _free.Length) _free[_count++] = d;
    }
}
