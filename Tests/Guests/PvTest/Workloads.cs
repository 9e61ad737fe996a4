namespace Microhv.Guests.PvTest;

/// <summary>
/// Alternative runs of pvtest chosen by its command line (start_info.cmd_line), so that several
/// domains with different behaviour can share one machine: <c>workload=spin</c> (compute-bound,
/// preempted by the scheduler), <c>workload=yield</c> (sched_op yield in a loop),
/// <c>workload=block</c> (sleeps on VIRQ_TIMER with SCHEDOP_poll), <c>workload=crash</c> (faults
/// with no trap table: the hypervisor must kill this domain and nothing else), <c>workload=iret-crash</c>
/// (the same with an iret to a CS the CPU refuses: the hypervisor's own IRETQ faults), <c>workload=echo</c>
/// (reads console input, echoes each line, powers off at "quit"), <c>workload=balloon</c> (Balloon.cs), <c>workload=clock</c> (ClockWorkload.cs), <c>workload=flood</c> (Flood.cs), <c>workload=pt-stress</c> (PtStress.cs), <c>workload=segments</c> (SegmentWorkload.cs), <c>workload=devices</c> (as a domain
/// that is not the hardware domain, reaches for the machine's devices and must be refused).
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
        else if (Is(value, "iret-crash")) IretCrash();
        else if (Is(value, "grant-offer")) GrantOffer();
        else if (Is(value, "grant-map")) GrantMap();
        else if (Is(value, "echo")) Echo();
        else if (Is(value, "devices")) Devices();
        else if (Is(value, "balloon")) Balloon.Run(false);
        else if (Is(value, "balloon-crash")) Balloon.Run(true);
        else if (Is(value, "clock")) ClockWorkload.Run();
        else if (Is(value, "flood")) Flood.Run();
        else if (Is(value, "pt-stress")) PtStress.Run();
        else if (Is(value, "segments")) SegmentWorkload.Run();
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

    /// <summary>
    /// Everything a hardware domain may do, tried by a domain that is not one: a port read (all ones,
    /// as Xen answers ports it does not grant), map_pirq, setup_gsi, a PTE naming MMIO, XENMEM_exchange,
    /// the host's memory map and platform_op; then what only the control domain may do: domctl, sysctl,
    /// populate_physmap for another domain and mmu_update with another domain's frames (each -EPERM).
    /// Powers off when every refusal was right.
    /// </summary>
    private static void Devices()
    {
        int refused = 0, tried = 0;
        uint* buf = stackalloc uint[32];
        for (int i = 0; i < 32; i++) buf[i] = 0;

        buf[0] = 3;                                                         // physdev_set_iopl: ports allowed at all
        Hypercall.Call2(Xen.physdev_op, 6, (ulong)buf);
        Refused(ref tried, ref refused, "port 0x60", Cpu.InB(0x60) == 0xFF ? -Xen.EPERM : 0);

        buf[0] = Xen.DOMID_SELF; buf[1] = 1; buf[2] = 9; buf[3] = 9;          // map_pirq {DOMID_SELF, GSI, 9, 9}
        Refused(ref tried, ref refused, "map_pirq", Hypercall.Call2(Xen.physdev_op, 13, (ulong)buf));
        buf[0] = 9; buf[1] = 0x0101;                                        // setup_gsi {9, level, active low}
        Refused(ref tried, ref refused, "setup_gsi", Hypercall.Call2(Xen.physdev_op, 21, (ulong)buf));
        // A PTE naming an MMIO frame (the IO-APIC's neighbourhood, above RAM) in our own window.
        Refused(ref tried, ref refused, "map_mmio", Hypercall.UpdateVaMapping(Guest.WindowPage(Guest.WindowTest),
            (0xFEBC0UL << 12) | Xen._PAGE_PRESENT | Xen._PAGE_RW | Xen._PAGE_USER, Xen.UVMF_INVLPG));

        ulong* exch = stackalloc ulong[9];                                  // struct xen_memory_exchange, empty lists
        for (int i = 0; i < 9; i++) exch[i] = 0;
        ((ushort*)exch)[12] = Xen.DOMID_SELF; ((ushort*)exch)[28] = Xen.DOMID_SELF;
        Refused(ref tried, ref refused, "memory_exchange", Hypercall.MemoryOp(11, exch));
        ulong* map = stackalloc ulong[2];                                   // machine_memory_map {nr, buffer}
        map[0] = 0; map[1] = 0;
        Refused(ref tried, ref refused, "machine_memory_map", Hypercall.MemoryOp(10, map));
        buf[0] = 55; buf[1] = 0x03000001; buf[2] = 0;                       // platform_op get_cpuinfo
        Refused(ref tried, ref refused, "platform_op", Hypercall.Call1(Xen.platform_op, (ulong)buf));

        // The toolstack's calls, which only the control domain may make (Xen's XSM default policy).
        uint* op = stackalloc uint[36];                                     // struct xen_domctl / xen_sysctl
        for (int i = 0; i < 36; i++) op[i] = 0;
        op[0] = 3; op[1] = 0x15; op[2] = 0;                                 // domctl pausedomain of domain 0
        Refused(ref tried, ref refused, "domctl", Hypercall.Call1(36, (ulong)op));
        op[0] = 3; op[1] = 0x15; op[2] = 0;                                 // sysctl physinfo
        Refused(ref tried, ref refused, "sysctl", Hypercall.Call1(35, (ulong)op));
        ulong* list = stackalloc ulong[1];
        list[0] = 0x100;
        ulong* res = stackalloc ulong[4];                                   // populate_physmap of one frame for domain 0
        res[0] = (ulong)list; res[1] = 1; res[2] = 0; res[3] = 0;
        Refused(ref tried, ref refused, "populate_physmap for dom0", Hypercall.MemoryOp(6, res));
        ulong* req = stackalloc ulong[2];                                   // mmu_update with domain 0 as the page owner
        req[0] = 0x1000; req[1] = (0x1000UL) | Xen._PAGE_PRESENT;
        Refused(ref tried, ref refused, "foreign mmu_update", Hypercall.Call4(Xen.mmu_update, (ulong)req, 1, 0, 0));

        XenConsole.Write("pvtest: workload devices: "); XenConsole.Dec(refused); XenConsole.Write(" of ");
        XenConsole.Dec(tried); XenConsole.Line(" refused");
        Hypercall.Shutdown(refused == tried ? Xen.SHUTDOWN_poweroff : Xen.SHUTDOWN_crash);
    }

    private static void Refused(ref int tried, ref int refused, string what, long rc)
    {
        tried++;
        if (rc == -Xen.EPERM) { refused++; return; }
        XenConsole.Write("pvtest: workload devices: "); XenConsole.Write(what); XenConsole.Write(" not refused, rc ");
        XenConsole.Dec(rc); XenConsole.Line("");
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

    private static void IretCrash()
    {
        XenConsole.Line("pvtest: workload iret-crash: clearing the trap table and iret to CS 0x1003");
        Hypercall.Call1(Xen.set_trap_table, 0);
        Cpu.IretTo(0x1000, Xen.FLAT_KERNEL_SS, 0, 0, 0);
        XenConsole.Line("pvtest: workload iret-crash: still alive (the iret was not refused)");
        Hypercall.Shutdown(Xen.SHUTDOWN_crash);
    }

    /// <summary>
    /// Console input: sleeps in SCHEDOP_poll on the input's event channel (VIRQ_CONSOLE for the
    /// initial domain, the console ring's port otherwise), reads what came, and echoes every line
    /// typed (Enter is CR or LF) as "pvtest: echo: ...". The line "quit" powers the domain off.
    /// </summary>
    private static void Echo()
    {
        if (XenConsole.BindInput() != 0 || Guest.SharedInfo == null || XenConsole.InputPort == 0)
        {
            XenConsole.Line("pvtest: workload echo: no console input channel");
            Hypercall.Shutdown(Xen.SHUTDOWN_crash);
            return;
        }
        XenConsole.Line("pvtest: workload echo: type a line");
        uint* port = stackalloc uint[1];
        port[0] = XenConsole.InputPort;
        ulong* poll = stackalloc ulong[3];   // struct sched_poll { ports, nr_ports, timeout }
        byte* input = stackalloc byte[64];
        byte* line = stackalloc byte[128];
        int length = 0;
        while (true)
        {
            // Clear the port before reading: input that arrives after the read sets it again, so the
            // poll below cannot sleep on bytes already waiting.
            Cpu.TestAndClearBit(&Events.PendingWords[port[0] / 64], (int)(port[0] % 64));
            long n = XenConsole.Read(input, 64);
            if (n < 0)
            {
                XenConsole.Write("pvtest: workload echo: read failed, rc "); XenConsole.Dec(n); XenConsole.Line("");
                Hypercall.Shutdown(Xen.SHUTDOWN_crash);
                return;
            }
            if (n == 0)
            {
                poll[0] = (ulong)port; poll[1] = 1; poll[2] = 0;
                Hypercall.SchedOp(Xen.SCHEDOP_poll, poll);
                continue;
            }
            for (int i = 0; i < n; i++)
            {
                byte c = input[i];
                if (c != (byte)'\r' && c != (byte)'\n') { if (length < 127) line[length++] = c; continue; }
                if (length == 0) continue;
                XenConsole.Write("pvtest: echo: ");
                for (int k = 0; k < length; k++) XenConsole.Put(line[k]);
                XenConsole.Line("");
                bool quit = length == 4 && line[0] == (byte)'q' && line[1] == (byte)'u' && line[2] == (byte)'i' && line[3] == (byte)'t';
                length = 0;
                if (quit) Hypercall.Shutdown(Xen.SHUTDOWN_poweroff);
            }
        }
    }

    // Grant tables (xen/include/public/grant_table.h, v1). The two workloads meet by convention:
    // domain 1 offers one page to domain 0 as grant reference 8.
    private const uint OfferRef = 8;
    private const ulong Offered = 0x0A76686F7263694DUL, Reply = 0x796C706572203064UL;   // "Microhv\n", "d0 reply"

    /// <summary>Domain 1: grant one of its pages to domain 0 and wait for domain 0's reply in it.</summary>
    private static void GrantOffer()
    {
        ulong* page = (ulong*)Guest.Page(5);
        page[0] = Offered;
        page[1] = 0;
        // struct gnttab_setup_table { domid_t dom; uint32_t nr_frames; int16_t status; xen_pfn_t *frame_list; }
        byte* st = stackalloc byte[24];
        ulong* frames = stackalloc ulong[1];
        *(ushort*)st = Xen.DOMID_SELF; *(uint*)(st + 4) = 1; *(short*)(st + 8) = 0; *(ulong*)(st + 16) = (ulong)frames;
        long rc = Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_setup_table, (ulong)st, 1);
        if (rc != 0 || *(short*)(st + 8) != 0 || Guest.MapInWindow(3, frames[0], true) != 0)
        {
            XenConsole.Write("pvtest: workload grant-offer: cannot set up the grant table, rc "); XenConsole.Dec(rc); XenConsole.Line("");
            Hypercall.Shutdown(Xen.SHUTDOWN_crash);
            return;
        }
        // grant_entry_v1 { uint16_t flags; domid_t domid; uint32_t frame; }: flags last, it publishes the entry.
        byte* entry = (byte*)Guest.WindowPage(3) + OfferRef * 8;
        *(uint*)(entry + 4) = (uint)Guest.MfnOf(page);
        *(ushort*)(entry + 2) = 0;
        *(ushort*)entry = Xen.GTF_permit_access;
        XenConsole.Line("pvtest: workload grant-offer: page granted to domain 0 as ref 8");

        ulong start = Guest.SystemTime(out _);
        while (Cpu.Read64((ulong)&page[1]) != Reply && Guest.SystemTime(out _) - start < 5000000000UL)
            Hypercall.SchedOp(Xen.SCHEDOP_yield, null);
        bool replied = page[1] == Reply;
        *(ushort*)entry = 0;                                    // end the grant
        XenConsole.Write("pvtest: workload grant-offer done, ");
        XenConsole.Line(replied ? "domain 0 wrote its reply into our page" : "no reply from domain 0");
        Hypercall.Shutdown(replied ? Xen.SHUTDOWN_poweroff : Xen.SHUTDOWN_crash);
    }

    /// <summary>Domain 0: map domain 1's grant 8, read the offer, write the reply, unmap.</summary>
    private static void GrantMap()
    {
        // struct gnttab_map_grant_ref { uint64_t host_addr; uint32_t flags; grant_ref_t ref; domid_t dom;
        //                               int16_t status; grant_handle_t handle; uint64_t dev_bus_addr; }
        byte* map = stackalloc byte[32];
        ulong hostAddr = Guest.WindowPage(4);
        short status = -1;
        ulong start = Guest.SystemTime(out _);
        while (Guest.SystemTime(out _) - start < 5000000000UL)
        {
            for (int i = 0; i < 32; i++) map[i] = 0;
            *(ulong*)map = hostAddr; *(uint*)(map + 8) = Xen.GNTMAP_host_map; *(uint*)(map + 12) = OfferRef; *(ushort*)(map + 16) = 1;
            Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_map_grant_ref, (ulong)map, 1);
            status = *(short*)(map + 18);
            if (status == 0) break;
            Hypercall.SchedOp(Xen.SCHEDOP_yield, null);
        }
        if (status != 0)
        {
            XenConsole.Write("pvtest: workload grant-map: map_grant_ref status "); XenConsole.Dec(status); XenConsole.Line("");
            Hypercall.Shutdown(Xen.SHUTDOWN_crash);
            return;
        }
        ulong offered = Cpu.Read64(hostAddr);
        Cpu.Write64(hostAddr + 8, Reply);
        // struct gnttab_unmap_grant_ref { uint64_t host_addr; uint64_t dev_bus_addr; grant_handle_t handle; int16_t status; }
        byte* unmap = stackalloc byte[24];
        *(ulong*)unmap = hostAddr; *(ulong*)(unmap + 8) = 0; *(uint*)(unmap + 16) = *(uint*)(map + 20); *(short*)(unmap + 20) = -1;
        Hypercall.Call3(Xen.grant_table_op, Xen.GNTTABOP_unmap_grant_ref, (ulong)unmap, 1);
        short unmapStatus = *(short*)(unmap + 20);
        bool ok = offered == Offered && unmapStatus == 0;
        XenConsole.Write("pvtest: workload grant-map done, read ");
        XenConsole.Write(offered == Offered ? "the offer" : "something else");
        XenConsole.Write(" from domain 1's page, wrote the reply, unmap status "); XenConsole.Dec(unmapStatus); XenConsole.Line("");
        Hypercall.Shutdown(ok ? Xen.SHUTDOWN_poweroff : Xen.SHUTDOWN_crash);
    }

    internal static int Find(byte* s, string key)
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
