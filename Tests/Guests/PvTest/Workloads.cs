namespace Microhv.Guests.PvTest;

/// <summary>
/// Alternative runs of pvtest chosen by its command line (start_info.cmd_line), so that several
/// domains with different behaviour can share one machine: <c>workload=spin</c> (compute-bound,
/// preempted by the scheduler), <c>workload=yield</c> (sched_op yield in a loop),
/// <c>workload=block</c> (sleeps on VIRQ_TIMER with SCHEDOP_poll), <c>workload=crash</c> (faults
/// with no trap table: the hypervisor must kill this domain and nothing else).
/// Each prints its result and shuts down with SHUTDOWN_poweroff (crash excepted).
/// </summary>
internal static unsafe class Workloads
{
    public static bool TryRun()
    {
        byte* cmd = Guest.StartInfo + Xen.SI_cmd_line;
        int at = Find(cmd, "workload=");
        if (at < 0) return false;
        byte* value = cmd + at;
        if (Is(value, "spin")) Spin();
        else if (Is(value, "yield")) Yield();
        else if (Is(value, "block")) Block();
        else if (Is(value, "crash")) Crash();
        else { XenConsole.Line("pvtest: unknown workload"); Hypercall.Shutdown(Xen.SHUTDOWN_crash); }
        return true;
    }

    private static void Spin()
    {
        ulong x = 0x9E3779B97F4A7C15UL, sum = 0;
        for (int round = 1; round <= 3; round++)
        {
            for (int i = 0; i < 3000000; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; sum += x; }
            XenConsole.Write("pvtest: workload spin: round "); XenConsole.Dec(round); XenConsole.Line("");
        }
        XenConsole.Write("pvtest: workload spin done, checksum "); XenConsole.Hex(sum); XenConsole.Line("");
        Hypercall.Shutdown(Xen.SHUTDOWN_poweroff);
    }

    private static void Yield()
    {
        int ok = 0;
        for (int i = 0; i < 300; i++) if (Hypercall.SchedOp(Xen.SCHEDOP_yield, null) == 0) ok++;
        XenConsole.Write("pvtest: workload yield done, "); XenConsole.Dec(ok); XenConsole.Line(" yields");
        Hypercall.Shutdown(ok == 300 ? Xen.SHUTDOWN_poweroff : Xen.SHUTDOWN_crash);
    }

    /// <summary>20 one-shot timers of 10 ms, each awaited with SCHEDOP_poll on the VIRQ_TIMER port.</summary>
    private static void Block()
    {
        uint* bind = stackalloc uint[3];
        bind[0] = Xen.VIRQ_TIMER; bind[1] = 0; bind[2] = 0;
        if (Hypercall.EventChannelOp(Xen.EVTCHNOP_bind_virq, bind) != 0 || Guest.SharedInfo == null)
        {
            XenConsole.Line("pvtest: workload block: cannot bind VIRQ_TIMER or map shared_info");
            Hypercall.Shutdown(Xen.SHUTDOWN_crash);
            return;
        }
        uint* port = stackalloc uint[1];
        port[0] = bind[2];
        // struct sched_poll { evtchn_port_t *ports; unsigned int nr_ports; uint64_t timeout; }
        ulong* poll = stackalloc ulong[3];
        int events = 0;
        for (int i = 0; i < 20; i++)
        {
            ulong now = Guest.SystemTime(out _);
            Hypercall.Call1(Xen.set_timer_op, now + 10000000);
            poll[0] = (ulong)port; poll[1] = 1; poll[2] = now + 2000000000UL;
            Hypercall.SchedOp(Xen.SCHEDOP_poll, poll);
            if (Cpu.TestAndClearBit(&Events.PendingWords[port[0] / 64], (int)(port[0] % 64)) != 0) events++;
        }
        XenConsole.Write("pvtest: workload block done, "); XenConsole.Dec(events); XenConsole.Line(" timer events");
        Hypercall.Shutdown(events == 20 ? Xen.SHUTDOWN_poweroff : Xen.SHUTDOWN_crash);
    }

    private static void Crash()
    {
        XenConsole.Line("pvtest: workload crash: clearing the trap table and writing to address 0x10");
        Hypercall.Call1(Xen.set_trap_table, 0);
        Cpu.Write64(0x10, 1);
        XenConsole.Line("pvtest: workload crash: still alive (the fault was not delivered)");
        Hypercall.Shutdown(Xen.SHUTDOWN_crash);
    }

    private static int Find(byte* s, string key)
    {
        for (int i = 0; i + key.Length <= 1024 && s[i] != 0; i++)
        {
            if (i > 0 && s[i - 1] != (byte)' ') continue;
            int k = 0;
            while (k < key.Length && s[i + k] == (byte)key[k]) k++;
            if (k == key.Length) return i + k;
        }
        return -1;
    }

    private static bool Is(byte* v, string word)
    {
        for (int k = 0; k < word.Length; k++) if (v[k] != (byte)word[k]) return false;
        return v[word.Length] == 0 || v[word.Length] == (byte)' ';
    }
}
