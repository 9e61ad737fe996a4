namespace Microhv.Guests.PvOps;

/// <summary>
/// The workload, written only against PvOps: (a) four address spaces built, switched between and
/// torn down, (b) 50 timer ticks of 10 ms, (c) 100000 interrupt disable/enable pairs, then one
/// result line that must not depend on the backend, and per-phase op counts and TSC ticks that do.
/// </summary>
public static unsafe class Workload
{
    public const int Spaces = 4, DataPages = 16, Switches = 200, Ticks = 50, IrqPairs = 100000;
    private const ulong UserVa = 0x0000008000000000;                 // L4 slot 1
    private const ulong TableFlags = 0x27, DataFlags = 0x67;         // P|RW|U|A(|D)
    private static bool s_failed;

    // Pool pages: 0 is Common's window L1 (Guest.CreateWindow), 1..16 the tables, 17..80 the data,
    // 100.. the bench's, 158 and 159 the shim's start_info and shared_info.
    private const int FirstPage = 1;
    private static ulong* Page(int i) => (ulong*)(Guest.Layout->PagesStart + (ulong)(FirstPage + i) * 4096);
    private static ulong* Table(int space, int level) => Page(space * 4 + 4 - level);   // L4, L3, L2, L1
    private static ulong* Data(int space, int j) => Page(16 + space * DataPages + j);

    public static void Run()
    {
        ulong checksum = AddressSpaces();
        ulong ticks = Timer();
        ulong pairs = Irq();
        Log.Write("pvops: result address_spaces="); Log.Dec(Spaces);
        Log.Write(" switches="); Log.Dec(Switches);
        Log.Write(" pages="); Log.Dec(Spaces * DataPages);
        Log.Write(" timer_ticks="); Log.Dec(ticks);
        Log.Write(" irq_pairs="); Log.Dec(pairs);
        Log.Write(" checksum="); Log.Hex(checksum);
        Log.Line(s_failed ? " (errors)" : "");
    }

    private static void Check(string what, long rc)
    {
        if (rc == 0) return;
        s_failed = true;
        Log.Write("pvops: "); Log.Write(what); Log.Write(" failed: "); Log.Write(rc < 0 ? "-" : ""); Log.Dec((ulong)(rc < 0 ? -rc : rc)); Log.Line("");
    }

    public static void Phase(string name, ulong ops, ulong tsc)
    {
        Log.Write("pvops: phase "); Log.Write(name); Log.Write(": "); Log.Dec(ops); Log.Write(" ops, "); Log.Dec(tsc); Log.Line(" tsc");
    }

    public static ulong AddressSpaces()
    {
        ulong ops0 = PvOps.Ops, t0 = Cpu.Rdtsc();
        ulong kernelPgd = PvOps.KernelL4[511];
        for (int s = 0; s < Spaces; s++)
        {
            for (int level = 1; level <= 4; level++) Check("alloc_pt", PvOps.AllocPt(level, Table(s, level)));
            for (int j = 0; j < DataPages; j++)
                Check("set_pte", PvOps.SetPte(Table(s, 1) + j, PvOps.VirtToMachine(Data(s, j)) | DataFlags));
            Check("set_pmd", PvOps.SetPmd(Table(s, 2), PvOps.VirtToMachine(Table(s, 1)) | TableFlags));
            Check("set_pud", PvOps.SetPud(Table(s, 3), PvOps.VirtToMachine(Table(s, 2)) | TableFlags));
            Check("set_pgd", PvOps.SetPgd(Table(s, 4) + 1, PvOps.VirtToMachine(Table(s, 3)) | TableFlags));
            Check("set_pgd kernel", PvOps.SetPgd(Table(s, 4) + 511, kernelPgd));
        }
        for (int i = 0; i < Switches; i++)
        {
            int s = i % Spaces;
            Check("write_cr3", PvOps.WriteCr3(PvOps.VirtToMachine(Table(s, 4))));
            int j = i / Spaces % DataPages;
            ulong* p = (ulong*)(UserVa + (ulong)j * 4096);
            p[i % 512] += (ulong)(i + 1) * 0x9E3779B97F4A7C15UL ^ (ulong)s;
            p[(i * 7 + 3) % 512] ^= p[0] + (ulong)j;
            if (i % 8 == 7) Check("invlpg", PvOps.FlushTlbOne(UserVa + (ulong)j * 4096));
            if (i % 50 == 49) Check("flush_tlb", PvOps.FlushTlbUser());
        }
        Check("write_cr3 back", PvOps.WriteCr3(PvOps.KernelCr3));
        for (int s = 0; s < Spaces; s++)
            for (int level = 4; level >= 1; level--) Check("release_pt", PvOps.ReleasePt(level, Table(s, level)));
        ulong h = 0xCBF29CE484222325UL;
        for (int s = 0; s < Spaces; s++)
            for (int j = 0; j < DataPages; j++)
                for (int w = 0; w < 512; w++) h = (h ^ Data(s, j)[w]) * 0x100000001B3UL;
        Phase("address_spaces", PvOps.Ops - ops0, Cpu.Rdtsc() - t0);
        return h;
    }

    public static ulong Timer()
    {
        ulong ops0 = PvOps.Ops, t0 = Cpu.Rdtsc();
        ulong start = PvOps.TimerTicks(), seen = 0;
        for (int t = 0; t < Ticks; t++)
        {
            PvOps.IrqDisable();
            ulong before = PvOps.TimerTicks();
            Check("set_timer", PvOps.SetTimer(PvOps.TimeNs() + 10000000));
            for (int spins = 0; PvOps.TimerTicks() == before && spins < 1000; spins++)
            {
                PvOps.SafeHalt();
                PvOps.IrqDisable();
            }
            PvOps.IrqEnable();
        }
        seen = PvOps.TimerTicks() - start;
        Phase("timer", PvOps.Ops - ops0, Cpu.Rdtsc() - t0);
        return seen;
    }

    public static ulong Irq()
    {
        ulong ops0 = PvOps.Ops, t0 = Cpu.Rdtsc();
        ulong pairs = 0;
        for (int i = 0; i < IrqPairs; i++)
        {
            PvOps.IrqDisable();
            PvOps.IrqEnable();
            pairs++;
        }
        Phase("irq", PvOps.Ops - ops0, Cpu.Rdtsc() - t0);
        return pairs;
    }
}
