namespace Microhv.Hypervisor;

/// <summary>A domain's event channels (2-level ABI). Filled in by the event-channel work.</summary>
public sealed class EventChannels
{
    public readonly Domain Domain;
    public EventChannels(Domain domain) { Domain = domain; }

    /// <summary>Allocates the port of the domain's console ring, bound to the hypervisor (which
    /// drains the ring when the guest notifies it). Returns the port, or a negative errno.</summary>
    public int BindConsolePort() => -(int)Public.Errno.ENOSYS;
}
