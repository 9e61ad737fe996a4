using System.Runtime;
using System.Runtime.CompilerServices;

namespace System.Threading
{
    /// <summary>
    /// The atomic operations the hypervisor's code shares with the host's runtime (same names and signatures, so
    /// Hypervisor/ compiles for both): a lock-prefixed instruction each. RyuJIT expands the [Intrinsic] ones in
    /// place (as it does in the real CoreLib); their bodies are the out-of-line fallback in Boot/smp.asm.
    /// </summary>
    public static class Interlocked
    {
        [RuntimeImport("*", "atomic_cmpxchg32")] [MethodImpl(MethodImplOptions.InternalCall)]
        private static extern int Cmpxchg32(ref int location, int value, int comparand);
        [RuntimeImport("*", "atomic_cmpxchg64")] [MethodImpl(MethodImplOptions.InternalCall)]
        private static extern long Cmpxchg64(ref long location, long value, long comparand);
        [RuntimeImport("*", "atomic_xadd64")] [MethodImpl(MethodImplOptions.InternalCall)]
        private static extern long Xadd64(ref long location, long value);

        [Intrinsic] public static int CompareExchange(ref int location1, int value, int comparand) => Cmpxchg32(ref location1, value, comparand);
        [Intrinsic] public static long CompareExchange(ref long location1, long value, long comparand) => Cmpxchg64(ref location1, value, comparand);
        public static uint CompareExchange(ref uint location1, uint value, uint comparand)
            => (uint)CompareExchange(ref Unsafe.As<uint, int>(ref location1), (int)value, (int)comparand);
        [Intrinsic] internal static long ExchangeAdd(ref long location1, long value) => Xadd64(ref location1, value);
        public static long Increment(ref long location) => ExchangeAdd(ref location, 1) + 1;
        public static ulong Increment(ref ulong location) => (ulong)Increment(ref Unsafe.As<ulong, long>(ref location));
    }
}
