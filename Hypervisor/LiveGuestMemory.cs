namespace Microhv.Hypervisor;

/// <summary>
/// The CPU's own view of the running guest's address space (Xen's raw __copy_from_user /
/// __copy_to_user): while a vCPU runs its L4 is in CR3, so the hypervisor can reach a guest virtual
/// address with an ordinary load or store, and the MMU does the walk, the permission checks (CR0.WP
/// makes read-only entries fault for the hypervisor too) and the TLB lookup. The kernel implements it
/// with copy routines whose faulting instructions are listed in a fault-fixup table: a fault there
/// returns false instead of crashing the hypervisor. GuestMemory decides when it may be used (the
/// range is guest-accessible and the loaded L4 is the vCPU's current one) and falls back to the
/// software walk otherwise; hosted tests run with none, or with a double over simulated memory.
/// Every method returns false when the access faulted (the guest then gets -EFAULT).
/// </summary>
public abstract class LiveGuestMemory
{
    /// <summary>Machine address of the L4 the CPU translates through now (CR3 without its flag bits).</summary>
    public abstract ulong LoadedRoot { get; }

    public abstract bool ReadU8(ulong va, out byte value);
    public abstract bool ReadU16(ulong va, out ushort value);
    public abstract bool ReadU32(ulong va, out uint value);
    public abstract bool ReadU64(ulong va, out ulong value);
    public abstract bool WriteU8(ulong va, byte value);
    public abstract bool WriteU32(ulong va, uint value);
    public abstract bool WriteU64(ulong va, ulong value);

    /// <summary>Copies <paramref name="length"/> bytes at <paramref name="va"/> into <paramref name="buffer"/>.</summary>
    public abstract bool Read(ulong va, byte[] buffer, int offset, int length);
    public abstract bool Write(ulong va, byte[] buffer, int offset, int length);
    /// <summary><paramref name="count"/> consecutive 64-bit words (a bounce frame, an iret context: a struct
    /// of ulong fields on the caller's stack, <paramref name="first"/> its first) in one copy.</summary>
    public abstract bool ReadU64s(ulong va, ref ulong first, int count);
    public abstract bool WriteU64s(ulong va, ref ulong first, int count);
}
