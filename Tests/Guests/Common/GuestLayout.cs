namespace Microhv.Guests;

/// <summary>Addresses the guest's boot stub publishes (its `*_layout` table): keep the order of the asm.</summary>
public struct GuestLayout
{
    public ulong VirtBase;
    public ulong ImageStart, ImageEnd;
    public ulong ModulesStart, ModulesEnd;
    public ulong HeapStart, HeapEnd;
    public ulong PagesStart, PagesEnd;
    public ulong StackBottom, StackTop;
    public ulong HypercallPage;
}
