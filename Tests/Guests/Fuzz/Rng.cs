namespace Microhv.Guests.Fuzz;

/// <summary>
/// The fuzzer's random numbers: splitmix64, restarted for every call from (seed, call number), so
/// call N of a seed is the same request whatever the calls before it returned. That is what makes
/// a failure reproducible from its seed and call number alone.
/// </summary>
internal static class Rng
{
    private static ulong s_state;

    public static void Start(ulong seed, ulong call) => s_state = seed * 0x9E3779B97F4A7C15UL ^ (call + 1) * 0xD1B54A32D192ED03UL;

    public static ulong Next()
    {
        ulong z = s_state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, n); n &gt; 0.</summary>
    public static ulong Below(ulong n) => Next() % n;

    public static int Int(int n) => (int)(Next() % (ulong)n);

    /// <summary>True once in <paramref name="n"/>.</summary>
    public static bool OneIn(int n) => Next() % (ulong)n == 0;
}
