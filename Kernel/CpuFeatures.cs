namespace Microhv.Kernel;

/// <summary>The CPUID bits the kernel depends on, read once at boot.</summary>
internal static unsafe class CpuFeatures
{
    public static bool NoExecute, Apic, Fxsr, Sse2, OneGigPages;

    public static void Detect()
    {
        uint* r = stackalloc uint[4];
        Cpu.CpuId(1, 0, r);
        Apic = (r[3] & (1u << 9)) != 0;
        Fxsr = (r[3] & (1u << 24)) != 0;
        Sse2 = (r[3] & (1u << 26)) != 0;
        Cpu.CpuId(0x80000001, 0, r);
        NoExecute = (r[3] & (1u << 20)) != 0;
        OneGigPages = (r[3] & (1u << 26)) != 0;
    }
}
