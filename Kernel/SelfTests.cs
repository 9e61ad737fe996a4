using System.Runtime.CompilerServices;
using Microhv.HAL;
using Microhv.Kernel.Console;
using Microhv.Kernel.Timer;

namespace Microhv.Kernel;

/// <summary>
/// Deliberate checks selected by microhv.selftest=…: each ends with "selftest: PASS" or
/// "selftest: FAIL" (and an isa-debug-exit code when asked), or, for the faults, the fatal dump.
/// </summary>
internal static unsafe class SelfTests
{
    public const ulong PageFaultAddress = 0x00000000DEADB000;

    public static void Run(SelfTest test)
    {
        switch (test)
        {
            case SelfTest.PageFault:
                Log.Write("selftest: pagefault: writing to unmapped address "); Log.Hex(PageFaultAddress); Log.Line();
                TouchUnmapped();
                Finish(false, "selftest: pagefault: the write did not fault");
                break;
            case SelfTest.Divide:
                Log.Line("selftest: divide: dividing by zero");
                DivideByZero(0);
                Finish(false, "selftest: divide: no #DE");
                break;
            case SelfTest.StackOverflow:
                Log.Line("selftest: stackoverflow: recursing until the stack's guard page is hit");
                ulong depth = Recurse(0);
                Log.Write("selftest: stackoverflow: returned from depth "); Log.Dec(depth); Log.Line();
                Finish(false, "selftest: stackoverflow: the guard page did not stop the recursion");
                break;
            case SelfTest.Timer: TimerTicks(); break;
            case SelfTest.Fpu: FpuPreserved(); break;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)] private static void TouchUnmapped() => *(ulong*)PageFaultAddress = 0x1234;

    /// <summary>Eats 1 KiB of stack per level: the write below the stack hits the unmapped guard page,
    /// the CPU cannot push the #PF frame on the same stack and raises #DF, which runs on IST1.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ulong Recurse(ulong depth)
    {
        byte* frame = stackalloc byte[1024];
        frame[0] = (byte)depth;
        if (depth > 1000000) return depth;
        return Recurse(depth + 1) + frame[0];
    }

    [MethodImpl(MethodImplOptions.NoInlining)] private static int DivideByZero(int zero) => 100 / zero;

    /// <summary>Waits for 100 ticks and compares against the TSC: proves the timer interrupt arrives.</summary>
    private static void TimerTicks()
    {
        const ulong want = 100;
        ulong start = Clock.Ticks, tsc0 = Cpu.ReadTsc();
        ulong spins = 0;
        while (Clock.Ticks - start < want && spins < 100000000) { Cpu.EnableInterruptsAndHalt(); spins++; }
        ulong ticks = Clock.Ticks - start, tsc = Cpu.ReadTsc() - tsc0;
        Log.Write("selftest: timer: "); Log.Dec(ticks); Log.Write(" ticks at "); Log.Dec(Clock.Hz); Log.Write(" Hz ("); Log.Dec(ticks * 1000 / Clock.Hz);
        Log.Write(" ms of timer time, "); Log.Dec(tsc); Log.Line(" TSC cycles)");
        Finish(ticks >= want, "selftest: timer: the timer did not tick");
    }

    /// <summary>SSE arithmetic across many timer interrupts must come out exactly as computed
    /// without interrupts: the trap path saves and restores the kernel's whole FXSAVE state
    /// when it interrupts the hypervisor's own code.</summary>
    private static void FpuPreserved()
    {
        ulong ticksBefore = Clock.Ticks;
        Clock.ClobberFpuOnTick = true;
        double expected = Series(20000, false);
        double withInterrupts = 0;
        int rounds = 0;
        while (Clock.Ticks - ticksBefore < 20 && rounds < 1000) { withInterrupts = Series(20000, true); rounds++; if (withInterrupts != expected) break; }
        Clock.ClobberFpuOnTick = false;
        ulong ticks = Clock.Ticks - ticksBefore;
        bool ok = withInterrupts == expected && ticks >= 20;
        Log.Write("selftest: fpu: SSE state preserved across "); Log.Dec(ticks); Log.Write(" timer interrupts in "); Log.Dec((ulong)rounds);
        Log.Line(ok ? " rounds" : " rounds: MISMATCH");
        Finish(ok, "selftest: fpu: results differ or the timer did not tick");
    }

    private static double Series(int n, bool interrupts)
    {
        if (!interrupts) Cpu.DisableInterrupts();
        double sum = 0, x = 1.0;
        for (int i = 1; i <= n; i++) { x = x * 1.0000001 + 0.5 / i; sum += x / (i + 1.5); }
        Cpu.EnableInterrupts();
        return sum;
    }

    private static void Finish(bool pass, string failure)
    {
        if (!pass) Log.Line(failure);
        Log.Line(pass ? "selftest: PASS" : "selftest: FAIL");
        QemuExit.Exit(pass ? QemuExit.Pass : QemuExit.Fail);
    }
}
