using System.Runtime;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microhv.HAL;
using Microhv.Kernel.Console;
using Microhv.Kernel.Timer;
using Microhv.Kernel.Traps;

namespace Microhv.Kernel.Smp;

/// <summary>
/// Starts the application processors the MADT lists (INIT-SIPI-SIPI through the local APIC, the SDM's
/// MP initialization protocol), one at a time through the trampoline below 1 MiB. Each gets its own
/// GDT, TSS and stacks, loads the shared IDT, enables its local APIC, and waits with interrupts off
/// until the domains exist (<see cref="Release"/>); then it sets up its own SYSCALL entry and timer,
/// joins the scheduler's processors under the hypervisor's lock, and idles until it is given a vCPU.
/// </summary>
internal static unsafe class Processors
{
    public const int MaxCpus = 64;
    private const ulong StackSize = 32 * 1024, IstStackSize = 16 * 1024, IdleStackSize = 16 * 1024;
    private const ulong PerCpuHeap = Gdt.Entries * 8 + StackSize + 4 * IstStackSize + IdleStackSize + 4096;

    public static readonly PerCpu[] Cpus = new PerCpu[MaxCpus];
    /// <summary>Processors online, CPU 0 (the boot processor) included.</summary>
    public static int Count = 1;

    private static readonly uint[] s_targets = new uint[MaxCpus - 1];
    private static readonly uint[] s_failed = new uint[MaxCpus - 1];
    // Written by the starting processor once it runs C#: its index. Only one starts at a time.
    private static int s_arrived;
    // Set by the boot processor once guests can run: the waiting processors join.
    private static int s_go;
    /// <summary>Application processors that joined the scheduler.</summary>
    public static int Joined;

    /// <summary>The boot processor's entries, and its block as its GS base: called once its GDT is loaded,
    /// before any trap can come back through the exit path (which reads the block).</summary>
    public static void InitializeBootProcessor(ulong stackTop)
    {
        Cpus[0].Online = true;
        Cpus[0].StackTop = stackTop;
        Cpus[0].Gdt = Gdt.Table;
        Cpus[0].Tss = Gdt.Tss;
        Cpus[0].Block = (CpuBlock*)Cpu0BlockAddress();
        LoadBlock(0);
    }

    public static void Start(Multiboot2Info info, ref BootLayout layout)
    {
        Cpus[0].ApicId = CpuFeatures.Apic ? LocalApic.ApicId : 0;
        if (!Platform.HasMadt || !CpuFeatures.Apic) return;      // Platform reported it: one CPU

        int targets = ApStartup.SelectTargets(Platform.Madt, Cpus[0].ApicId, BootOptions.MaxCpus, s_targets, out int leftOff, out int unreachable);
        int failed = 0;
        if (targets > 0)
        {
            if (!ApStartup.FindTrampolinePage(info, out ulong page))
            {
                Log.Line("smp: no available page below 640 KiB for the start-up trampoline: 1 CPU");
                return;
            }
            ApTrampoline.Install(page, layout.BootPml4Physical);
            for (int i = 0; i < targets; i++)
            {
                if (!StartOne(s_targets[i])) s_failed[failed++] = s_targets[i];
            }
        }
        Report(failed, leftOff, unreachable);
    }

    private static bool StartOne(uint apicId)
    {
        int cpu = Count;
        if (Internal.Runtime.KernelHeap.Remaining < PerCpuHeap + (1 << 20)) return false;
        ulong stack = (ulong)Internal.Runtime.KernelHeap.AllocateAligned(StackSize, 4096) + StackSize;
        ulong ist = (ulong)Internal.Runtime.KernelHeap.AllocateAligned(4 * IstStackSize, 4096);
        Gdt.Create(stack, ist + IstStackSize, ist + 2 * IstStackSize, ist + 3 * IstStackSize, ist + 4 * IstStackSize, out Cpus[cpu].Gdt, out Cpus[cpu].Tss);
        Cpus[cpu].ApicId = apicId;
        Cpus[cpu].StackTop = stack;
        CpuBlock* block = (CpuBlock*)Internal.Runtime.KernelHeap.AllocateAligned((ulong)sizeof(CpuBlock), 64);
        block->StackTop = stack;
        block->Index = (ulong)cpu;
        block->IdleStackTop = (ulong)Internal.Runtime.KernelHeap.AllocateAligned(IdleStackSize, 4096) + IdleStackSize;
        Cpus[cpu].Block = block;
        ApTrampoline.Prepare((ulong)cpu, stack);
        Volatile(ref s_arrived, 0);

        // INIT, 10 ms, STARTUP, 200 us, STARTUP again if it has not arrived (a STARTUP to a running CPU is ignored).
        if (!LocalApic.SendInit(apicId)) return false;
        Wait(10000);
        if (!LocalApic.SendStartup(apicId, (uint)(ApTrampoline.Page >> 12))) return false;
        Wait(200);
        if (Read(ref s_arrived) == 0 && !LocalApic.SendStartup(apicId, (uint)(ApTrampoline.Page >> 12))) return false;
        // Under TCG on a busy host a new virtual CPU can take a while: allow a second.
        for (int i = 0; i < 1000 && Read(ref s_arrived) == 0; i++) Wait(1000);
        if (Read(ref s_arrived) != cpu) return false;
        Cpus[cpu].Online = true;
        Count++;
        return true;
    }

    [UnmanagedCallersOnly(EntryPoint = "ap_main")]
    private static void ApMain(ulong cpu)
    {
        Gdt.Load(Cpus[cpu].Gdt);
        LoadBlock((int)cpu);
        Idt.Load();
        LocalApic.EnableThisCpu();
        Volatile(ref s_arrived, (int)cpu);
        // Halted until the domains exist: the boot processor's kick (Release) ends the wait, and the kick's
        // interrupt does nothing on a processor that has not joined (TrapDispatch).
        while (Read(ref s_go) == 0) Cpu.EnableInterruptsAndHalt();
        Cpu.DisableInterrupts();
        if (!Pv.PvCpu.Active) Cpu.Stop();                      // no guests: nothing to do, for good
        Pv.SyscallMsrs.Enable();
        Pv.PvCpu.Join((int)cpu);
        while (true) Cpu.EnableInterruptsAndHalt();            // the first interrupt or kick gives it a vCPU
    }

    /// <summary>The domains exist: every waiting application processor joins (or stops for good when no
    /// guest runs).</summary>
    public static void Release()
    {
        if (Read(ref s_go) != 0) return;
        if (Count > 1 && !Pv.PvCpu.Active) Log.Line("smp: no domain to run: the application processors halt");
        Volatile(ref s_go, 1);
        for (int c = 1; c < Count; c++) LocalApic.SendFixed(Cpus[c].ApicId, Ipi.KickVector);
        if (!Pv.PvCpu.Active) return;
        // As Xen brings every processor up before dom0 runs: the guests start once each one has joined
        // (a second at most; under an emulator on a busy host a virtual processor can take a while).
        for (int i = 0; i < 1000 && Read(ref Joined) < Count - 1; i++) Wait(1000);
        int joined = Read(ref Joined);
        if (joined < Count - 1) { Log.Write("smp: only "); Log.Dec((ulong)(joined + 1)); Log.Write(" of "); Log.Dec((ulong)Count); Log.Line(" CPUs joined within a second; the others join when they can"); }
    }

    [RuntimeImport("*", "cpu0_block_address")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern ulong Cpu0BlockAddress();
    [RuntimeImport("*", "cpu_index")] [MethodImpl(MethodImplOptions.InternalCall)]
    private static extern int CpuIndex();

    /// <summary>The calling processor's index (0 = the boot processor), read from its block through GS.</summary>
    public static int Current => CpuIndex();

    /// <summary>Makes this processor's block its GS base (after Gdt.Load, which clears GS).</summary>
    private static void LoadBlock(int cpu) => Cpu.WriteMsr(CpuBlock.GsBaseMsr, (ulong)Cpus[cpu].Block);

    private static void Report(int failed, int leftOff, int unreachable)
    {
        Log.Write("smp: "); Log.Dec((ulong)Count); Log.Write(Count == 1 ? " CPU: APIC " : " CPUs: APIC ");
        Log.Dec(Cpus[0].ApicId); Log.Write(" (BSP)");
        for (int i = 1; i < Count; i++) { Log.Write(", "); Log.Dec(Cpus[i].ApicId); }
        if (Count > 1) Log.Write(" started");
        if (failed > 0)
        {
            Log.Write("; APIC");
            for (int i = 0; i < failed; i++) { Log.Write(i == 0 ? " " : ", "); Log.Dec(s_failed[i]); }
            Log.Write(" did not start");
        }
        if (leftOff > 0)
        {
            Log.Write("; "); Log.Dec((ulong)leftOff); Log.Write(" more left off by ");
            if (BootOptions.MaxCpus != 0) { Log.Write("microhv.maxcpus="); Log.Dec((ulong)BootOptions.MaxCpus); }
            else { Log.Write("the limit of "); Log.Dec((ulong)MaxCpus); }
        }
        if (unreachable > 0) { Log.Write("; "); Log.Dec((ulong)unreachable); Log.Write(" with APIC ids past 254 (x2APIC only) not started"); }
        Log.Line();

    }

    private static void Wait(ulong microseconds)
    {
        ulong start = Cpu.ReadTsc(), ticks = Clock.TscHz / 1000000 * microseconds;
        while (Cpu.ReadTsc() - start < ticks) Cpu.Pause();
    }

    // Real memory accesses the compiler cannot cache in a register: the flag is written by another CPU.
    [MethodImpl(MethodImplOptions.NoInlining)] private static int Read(ref int location) => location;
    [MethodImpl(MethodImplOptions.NoInlining)] private static void Volatile(ref int location, int value) => location = value;
}
