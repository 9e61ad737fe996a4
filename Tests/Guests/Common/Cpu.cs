using System.Runtime;
using System.Runtime.CompilerServices;

namespace Microhv.Guests;

/// <summary>Instructions and probes from Common/guest.asm.</summary>
public static unsafe class Cpu
{
    [RuntimeImport("*", "guest_ud2")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void Ud2();
    [RuntimeImport("*", "guest_int82_hypercall")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern long Int82Hypercall(ulong nr, ulong a1);
    [RuntimeImport("*", "guest_int3")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void Int3();
    [RuntimeImport("*", "guest_read64")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong Read64(ulong va);
    [RuntimeImport("*", "guest_write64")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void Write64(ulong va, ulong value);
    [RuntimeImport("*", "guest_xen_cpuid")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void XenCpuid(uint leaf, uint subleaf, uint* out4);
    [RuntimeImport("*", "guest_rdmsr")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong Rdmsr(uint msr);
    [RuntimeImport("*", "guest_wrmsr")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void Wrmsr(uint msr, ulong value);
    [RuntimeImport("*", "guest_xchg64")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong Xchg64(ulong* p, ulong value);
    [RuntimeImport("*", "guest_xchg32")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern uint Xchg32(uint* p, uint value);
    [RuntimeImport("*", "guest_cmpxchg32")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern uint CompareExchange32(uint* p, uint value, uint comparand);
    [RuntimeImport("*", "guest_test_and_clear_bit")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern int TestAndClearBit(ulong* p, int bit);
    [RuntimeImport("*", "guest_load8")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern byte Load8(void* p);
    [RuntimeImport("*", "guest_load32")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern uint Load32(void* p);
    [RuntimeImport("*", "guest_store8")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void Store8(void* p, byte value);
    [RuntimeImport("*", "guest_store32")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void Store32(void* p, uint value);
    public static ulong Load64(void* p) => Read64((ulong)p);
    [RuntimeImport("*", "guest_multicall_iret")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern long MulticallIret(ulong list, ulong nr, ulong ifFlag, ulong* out2);
    [RuntimeImport("*", "guest_iret_to")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern long IretTo(ulong cs, ulong ss, ulong rip, ulong ifFlag, ulong flags);
    [RuntimeImport("*", "guest_far_call_ldt")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void FarCallLdt();
    [RuntimeImport("*", "guest_load_fs")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void LoadFs(ushort selector);
    [RuntimeImport("*", "guest_load_ds")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void LoadDs(ushort selector);
    [RuntimeImport("*", "guest_fs_read64")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong FsRead64(ulong offset);
    [RuntimeImport("*", "guest_load_selectors")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void LoadSelectors(ushort* four);
    [RuntimeImport("*", "guest_read_selectors")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void ReadSelectors(ushort* four);
    [RuntimeImport("*", "guest_read_cr4")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong ReadCr4();
    [RuntimeImport("*", "guest_write_cr4")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void WriteCr4(ulong value);
    [RuntimeImport("*", "guest_single_step")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong SingleStep();
    [RuntimeImport("*", "guest_movss_hypercall")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern long MovSsHypercall(ushort* ss, ulong nr, ulong a1, ulong a2);
    [RuntimeImport("*", "guest_rdfsbase")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong RdFsBase();
    [RuntimeImport("*", "guest_wrfsbase")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void WrFsBase(ulong value);
    [RuntimeImport("*", "guest_rdgsbase")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong RdGsBase();
    [RuntimeImport("*", "guest_wrgsbase")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void WrGsBase(ulong value);
    [RuntimeImport("*", "guest_user_call")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong UserCall(ushort fs, ushort gs, ulong gsBase, ulong what, ulong userStack);
    [RuntimeImport("*", "guest_inb")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern byte InB(uint port);
    [RuntimeImport("*", "guest_atomic_add64")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong AtomicAdd64(ulong* p, ulong value);
    [RuntimeImport("*", "guest_pause")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void Pause();
    [RuntimeImport("*", "guest_rdtsc")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong Rdtsc();
    [RuntimeImport("*", "guest_check_run")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern int CheckRun(delegate*<void> check);
    [RuntimeImport("*", "guest_symbol")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong Symbol(int which);

    // guest_symbol indices
    public const int SymCheckAbort = 0, SymUd2 = 1, SymInt3 = 2, SymRead64 = 3, SymWrite64 = 4;
    public const int SymEventCallback = 5, SymFailsafeCallback = 6, SymTrapBase = 7, SymIretLanding = 27, SymVcpu1Loop = 28, SymUserSyscallEntry = 29;
}
