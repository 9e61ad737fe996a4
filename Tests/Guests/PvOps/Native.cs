using System.Runtime;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Microhv.Guests.PvOps;

/// <summary>Instructions from native.asm (ring 0 only).</summary>
public static unsafe class NativeCpu
{
    [RuntimeImport("*", "native_cli")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void Cli();
    [RuntimeImport("*", "native_sti")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void Sti();
    [RuntimeImport("*", "native_save_fl")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong SaveFl();
    [RuntimeImport("*", "native_safe_halt")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void SafeHalt();
    [RuntimeImport("*", "native_hlt")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void Hlt();
    [RuntimeImport("*", "native_read_cr3")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong ReadCr3();
    [RuntimeImport("*", "native_write_cr3")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void WriteCr3(ulong v);
    [RuntimeImport("*", "native_invlpg")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void Invlpg(ulong va);
    [RuntimeImport("*", "native_outb")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void Outb(uint port, uint value);
    [RuntimeImport("*", "native_inb")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern uint Inb(uint port);
    [RuntimeImport("*", "native_int3")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void Int3();
    [RuntimeImport("*", "native_bare_irq_pair")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong BareIrqPair();
    [RuntimeImport("*", "native_int_event")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void IntEvent();
    [RuntimeImport("*", "native_idt_load")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void IdtLoad();
    [RuntimeImport("*", "native_boot_m2p")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern ulong BootM2p();
    [RuntimeImport("*", "native_set_bounce")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void SetBounce(ulong target, ulong hasError);
    [RuntimeImport("*", "shim_set_vcpu_info")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void SetShimVcpuInfo(ulong va);
    [RuntimeImport("*", "shim_fill_hypercall_page")] [MethodImpl(MethodImplOptions.InternalCall)] public static extern void FillHypercallPage();

    public const ulong VirtBase = 0xFFFFFFFF80000000;
    public static ulong* Direct(ulong pa) => (ulong*)(VirtBase + pa);
}

/// <summary>The bare-metal devices: COM1, the 8259 PICs, the PIT (one-shot, IRQ 0), the TSC rate.</summary>
public static unsafe class Hardware
{
    private const uint Com1 = 0x3F8;
    public static ulong TscPerMs;
    public static ulong Ticks;
    public static ulong LastTickTsc;

    public static void Initialize()
    {
        NativeCpu.Outb(Com1 + 1, 0); NativeCpu.Outb(Com1 + 3, 0x80); NativeCpu.Outb(Com1, 1);
        NativeCpu.Outb(Com1 + 1, 0); NativeCpu.Outb(Com1 + 3, 3); NativeCpu.Outb(Com1 + 2, 0xC7);
        // 8259s: master at vector 32, slave at 40, only IRQ 0 unmasked.
        NativeCpu.Outb(0x20, 0x11); NativeCpu.Outb(0xA0, 0x11);
        NativeCpu.Outb(0x21, 32); NativeCpu.Outb(0xA1, 40);
        NativeCpu.Outb(0x21, 4); NativeCpu.Outb(0xA1, 2);
        NativeCpu.Outb(0x21, 1); NativeCpu.Outb(0xA1, 1);
        NativeCpu.Outb(0x21, 0xFE); NativeCpu.Outb(0xA1, 0xFF);
        TscPerMs = CalibrateTsc();
    }

    public static void SerialWrite(byte* text, ulong count)
    {
        for (ulong i = 0; i < count; i++)
        {
            for (int spin = 0; spin < 100000 && (NativeCpu.Inb(Com1 + 5) & 0x20) == 0; spin++) { }
            NativeCpu.Outb(Com1, text[i]);
        }
    }

    /// <summary>PIT channel 2 gated for 10 ms (11932 counts at 1.193182 MHz) against the TSC.</summary>
    private static ulong CalibrateTsc()
    {
        NativeCpu.Outb(0x61, (NativeCpu.Inb(0x61) & 0xFD) | 1);
        NativeCpu.Outb(0x43, 0xB0);
        NativeCpu.Outb(0x42, 11932 & 0xFF); NativeCpu.Outb(0x42, 11932 >> 8);
        ulong start = Cpu.Rdtsc();
        for (ulong spin = 0; spin < 100000000 && (NativeCpu.Inb(0x61) & 0x20) == 0; spin++) { }
        ulong perMs = (Cpu.Rdtsc() - start) / 10;
        return perMs == 0 ? 1 : perMs;
    }

    public static ulong TimeNs()
    {
        ulong tsc = Cpu.Rdtsc();
        return tsc / TscPerMs * 1000000 + tsc % TscPerMs * 1000000 / TscPerMs;
    }

    /// <summary>One-shot PIT (mode 0) at the deadline, rounded up so it never fires early (as Xen's timers
    /// never do); at most 54 ms ahead, at least one count.</summary>
    public static long SetTimer(ulong deadline)
    {
        if (deadline == 0) return 0;
        ulong now = TimeNs();
        ulong counts = deadline <= now ? 1 : ((deadline - now) * 1193182 + 999999999) / 1000000000;
        if (counts == 0) counts = 1;
        if (counts > 65535) counts = 65535;
        NativeCpu.Outb(0x43, 0x30);
        NativeCpu.Outb(0x40, (uint)(counts & 0xFF));
        NativeCpu.Outb(0x40, (uint)(counts >> 8));
        return 0;
    }

    public static void EndOfInterrupt() => NativeCpu.Outb(0x20, 0x20);

    public static void Exit(uint code)
    {
        if (CommandLine.Has("pvops.exit=", "isa-debug-exit")) NativeCpu.Outb(0xF4, code);
        while (true) { NativeCpu.Cli(); NativeCpu.Hlt(); }
    }
}

/// <summary>
/// Backend 1: ring 0 on bare metal, the real instructions. Operations with native bytes
/// (paravirt.inc) are patched inline; the functions here serve their stubs before patching. The others
/// are direct calls to these functions.
/// </summary>
public static unsafe class NativeBackend
{
    public static void Bind()
    {
        // Managed wrappers, not &NativeCpu.Cli: NativeAOT's address of a RuntimeImport extern is not
        // a callable entry point (calling it jumped into the bytes before native_cli).
        Paravirt.Bind(VmiCall.DisableInterrupts, (delegate*<void>)&Cli, Paravirt.HowNative);
        Paravirt.Bind(VmiCall.EnableInterrupts, (delegate*<void>)&Sti, Paravirt.HowNative);
        Paravirt.Bind(VmiCall.GetInterruptMask, (delegate*<ulong>)&SaveFl, Paravirt.HowNative);
        Paravirt.Bind(VmiCall.Halt, (delegate*<void>)&SafeHalt, Paravirt.HowNative);
        Paravirt.Bind(VmiCall.AllocatePage, (delegate*<ulong, ulong, long>)&AllocPt, Paravirt.HowNative);
        Paravirt.Bind(VmiCall.ReleasePage, (delegate*<ulong, ulong, long>)&AllocPt, Paravirt.HowNative);
        Paravirt.Bind(VmiCall.SetPTE, (delegate*<ulong, ulong, long>)&SetEntry, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.SetPDE, (delegate*<ulong, ulong, long>)&SetEntry, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.SetPDPTE, (delegate*<ulong, ulong, long>)&SetEntry, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.SetPML4E, (delegate*<ulong, ulong, long>)&SetEntry, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.SetCR3, (delegate*<ulong, long>)&WriteCr3, Paravirt.HowNative);
        Paravirt.Bind(VmiCall.InvalPage, (delegate*<ulong, long>)&FlushTlbOne, Paravirt.HowNative);
        Paravirt.Bind(VmiCall.FlushTLB, (delegate*<ulong, long>)&FlushTlb, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.SetLazyMode, (delegate*<ulong, long>)&LazyMmu, Paravirt.HowNative);
        Paravirt.Bind(VmiCall.GetTime, (delegate*<ulong>)&Hardware.TimeNs, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.SetTimer, (delegate*<ulong, long>)&Hardware.SetTimer, Paravirt.HowCall);
        Paravirt.Bind(VmiCall.ConsoleWrite, (delegate*<byte*, ulong, void>)&Hardware.SerialWrite, Paravirt.HowCall);
        PvOps.UpdateVaOp = &UpdateVa;
        PvOps.NullCallOp = &NullCall;
        PvOps.ShutdownOp = &Hardware.Exit;
        PvOps.VirtToMachineOp = &VirtToMachine;
        PvOps.DirectMapped = true;
        PvOps.TimerTicksOp = &TimerTicks;
        PvOps.KernelCr3 = NativeCpu.ReadCr3();
        PvOps.KernelL4 = NativeCpu.Direct(PvOps.KernelCr3);
        PvOps.TscPerMs = Hardware.TscPerMs;
    }

    private static void Cli() => NativeCpu.Cli();
    private static void Sti() => NativeCpu.Sti();
    private static void SafeHalt() => NativeCpu.SafeHalt();
    private static ulong SaveFl() => NativeCpu.SaveFl();
    private static long AllocPt(ulong level, ulong va) => 0;   // hardware needs no notice of a new table
    private static long LazyMmu(ulong mode) => 0;              // stores are already as cheap as queueing them
    private static long SetEntry(ulong maddr, ulong v) { *NativeCpu.Direct(maddr) = v; return 0; }
    private static long WriteCr3(ulong maddr) { NativeCpu.WriteCr3(maddr); return 0; }
    private static long FlushTlbOne(ulong va) { NativeCpu.Invlpg(va); return 0; }
    private static long FlushTlb(ulong flags) { NativeCpu.WriteCr3(NativeCpu.ReadCr3()); return 0; }
    public static ulong VirtToMachine(ulong va) => va - NativeCpu.VirtBase;
    private static ulong TimerTicks() => Hardware.Ticks;

    /// <summary>Natively the shim's null call is a plain function call into its dispatcher (xen_version).</summary>
    private static long NullCall() => Shim.Dispatch(Xen.xen_version, 0, 0, 0, 0, 0);

    public static long UpdateVa(ulong va, ulong pte)
    {
        ulong* e = Shim.WalkToPte(va);
        if (e == null) return -Xen.EINVAL;
        *e = pte;
        NativeCpu.Invlpg(va);
        return 0;
    }
}

/// <summary>Native interrupt and exception entry (native.asm's frame is Common's TrapFrame).</summary>
public static unsafe class NativeTraps
{
    public static bool ShimMode;
    public static ulong Breakpoints;

    [UnmanagedCallersOnly(EntryPoint = "pvops_native_trap")]
    private static void Handle(TrapFrame* f)
    {
        if (f->Vector == 32)
        {
            Hardware.Ticks++;
            Hardware.LastTickTsc = Cpu.Rdtsc();
            Hardware.EndOfInterrupt();
            if (ShimMode) Shim.RaiseTimerEvent(f);
            return;
        }
        if (f->Vector == 39) return;                 // spurious IRQ 7
        if (ShimMode && Shim.DeliverTrap(f)) return;
        if (f->Vector == 3) { Breakpoints++; return; }
        Log.Write("pvops: native exception ");
        Log.Dec(f->Vector);
        Log.Write(" error ");
        Log.HexShort(f->ErrorCode);
        Log.Write(" at ");
        Log.HexShort(f->Rip);
        Log.Line("");
        Hardware.Exit(3);
    }
}
