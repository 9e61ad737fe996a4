namespace Microhv.Guests.PvTest;

/// <summary>
/// <c>workload=clock [seconds=N]</c>: prints Xen's system time (vcpu_time_info) each time another second
/// of it has passed, N times (60 by default), then powers off. The host timestamps the lines as they
/// arrive, so the ratio of guest time to real time is measured in one run (ClockTests).
/// </summary>
internal static unsafe class ClockWorkload
{
    public static void Run()
    {
        if (Guest.SharedInfo == null) { XenConsole.Line("pvtest: workload clock: no shared_info"); Hypercall.Shutdown(Xen.SHUTDOWN_crash); }
        int seconds = 60;
        byte* cmd = Guest.StartInfo + Xen.SI_cmd_line;
        int at = Workloads.Find(cmd, "seconds=");
        if (at >= 0)
        {
            int n = 0;
            for (byte* p = cmd + at; *p >= (byte)'0' && *p <= (byte)'9' && n < 100000; p++) n = n * 10 + (*p - '0');
            if (n > 0) seconds = n;
        }
        ulong start = Guest.SystemTime(out uint _);
        for (int s = 0; s <= seconds; s++)
        {
            ulong target = start + (ulong)s * 1_000_000_000UL, now;
            while ((now = Guest.SystemTime(out uint _)) < target) Cpu.Pause();
            XenConsole.Write("pvtest: clock "); XenConsole.Dec(s); XenConsole.Write(" s, system time ");
            XenConsole.Udec(now); XenConsole.Line(" ns");
        }
        Hypercall.Shutdown(Xen.SHUTDOWN_poweroff);
    }
}
