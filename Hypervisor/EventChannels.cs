namespace Microhv.Hypervisor;

/// <summary>A domain's event channels (2-level ABI). Filled in by the event-channel work.</summary>
public sealed class EventChannels
{
    public readonly Domain Domain;
    public EventChannels(Domain domain) { Domain = domain; }
}
