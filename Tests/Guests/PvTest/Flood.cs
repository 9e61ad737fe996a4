namespace Microhv.Guests.PvTest;

/// <summary>
/// <c>workload=flood [kib=N]</c>: about N KiB (1024 by default) of console output through console_io in
/// writes of 163 lines, as fast as the hypervisor takes them: a domain flooding the console must not keep
/// the others from their share of the CPU (PvGuestTests).
/// </summary>
internal static unsafe class Flood
{
    private const int Chunk = 16300;                        // 163 lines of 100 bytes: every write ends its line

    public static void Run()
    {
        int kib = 1024;
        byte* cmd = Guest.StartInfo + Xen.SI_cmd_line;
        int at = Workloads.Find(cmd, "kib=");
        if (at >= 0)
        {
            int n = 0;
            for (byte* p = cmd + at; *p >= (byte)'0' && *p <= (byte)'9' && n < 1000000; p++) n = n * 10 + (*p - '0');
            if (n > 0) kib = n;
        }
        byte* text = Guest.Page(10);                           // pages 10-13: spare
        for (int i = 0; i < Chunk; i++) text[i] = (byte)(i % 100 == 99 ? '\n' : 'f');
        long failed = 0;
        int writes = kib * 1024 / Chunk;
        for (int k = 0; k < writes; k++) if (Hypercall.ConsoleWrite(text, Chunk) != 0) failed++;
        XenConsole.Write("pvtest: workload flood done, "); XenConsole.Dec(writes); XenConsole.Write(" writes of ");
        XenConsole.Dec(Chunk); XenConsole.Write(" bytes, "); XenConsole.Dec(failed); XenConsole.Line(" refused");
        Hypercall.Shutdown(Xen.SHUTDOWN_poweroff);
    }
}
