using System.Runtime.InteropServices;
using Microhv.HAL;
using Microhv.Kernel.Console;
using Microhv.Kernel.Memory;
using Microhv.Kernel.Timer;
using Microhv.Kernel.Traps;

namespace Microhv.Kernel;

/// <summary>
/// The kernel's boot, in the order the machine meets it: console, boot information, command line,
/// screen, physical memory, page tables, descriptor tables, timer. Then the self-test the command
/// line asked for, or idle.
/// </summary>
internal static unsafe class KernelMain
{
    public const string Banner = "Microhv 0.1 x86-64 hypervisor (C#, NativeAOT)";

    public static Multiboot2Info BootInfo;
    public static FrameAllocator Frames;

    [UnmanagedCallersOnly(EntryPoint = "kmain")]
    static void Main(uint multibootMagic, ulong multibootInfo, BootLayout* layout)
    {
        Internal.Runtime.KernelHeap.Initialize((byte*)layout->EarlyHeap, (byte*)layout->EarlyHeapEnd);
        SerialPort.Initialize();
        Internal.Runtime.Failure.Handler = &RuntimeFailure;
        if (!Internal.Runtime.ModuleStartup.Initialize((void**)layout->ModulesStart, (void**)layout->ModulesEnd))
            Panic("runtime: a module header is not ILCompiler's ReadyToRun header");

        Log.Line(Banner);
        CpuFeatures.Detect();

        if (Multiboot2.CheckMagic(multibootMagic) != Multiboot2Status.Ok)
            Panic("boot: not started by a multiboot2 loader (bad magic in EAX)");
        BootInfo = new Multiboot2Info();
        Multiboot2Status mb = Multiboot2.Parse(DirectMap.Instance, multibootInfo, BootInfo);
        if (mb != Multiboot2Status.Ok)
        {
            Log.Write("boot: malformed multiboot2 information: "); Log.Write(Multiboot2.StatusName(mb)); Log.Line();
            if (!BootInfo.HasMemoryMap) Panic("boot: no usable memory map");
        }

        BootOptions.Parse(BootInfo);
        StartScreen();
        if (Log.ShowInfo) LogBootInfo();

        Frames = PhysicalMemoryMap.CreateAllocator(BootInfo, ref *layout);
        if (Frames == null) Panic("memory: no usable memory");
        Symbols.Initialize(BootInfo);

        ulong directMapLimit = PhysicalMemoryMap.DirectMapLimit(BootInfo);
        if (!KernelAddressSpace.Build(ref *layout, Frames, directMapLimit)) Panic("paging: kernel page tables not built");
        if (Log.ShowInfo)
        {
            Log.Write("paging: kernel page tables active: text RX, rodata R");
            Log.Write(CpuFeatures.NoExecute ? "+NX, data/bss RW+NX" : ", data/bss RW (CPU has no NX)");
            Log.Write("; stack guard at "); Log.Hex(layout->StackGuard); Log.Write("; direct map of ");
            Log.Dec(directMapLimit >> 20); Log.Line(" MiB; CR0.WP on");
        }

        Gdt.Initialize(layout->StackTop, layout->IstStacks, KernelAddressSpace.IstStackSize);
        Smp.Processors.InitializeBootProcessor(layout->StackTop);
        Idt.Initialize();
        if (Log.ShowInfo) Log.Line("cpu: GDT with TSS (IST1 #DF, IST2 NMI, IST3 #MC, IST4 #DB); IDT with 32 exception and 224 interrupt vectors");

        PowerOff.Initialize(BootInfo);
        Platform.Initialize(BootInfo);
        Clock.Start();
        Smp.Processors.Start(BootInfo, ref *layout);
        if (Log.ShowInfo) Log.Line("fpu: x87/SSE enabled; FXSAVE state preserved across interrupts");
        Log.Line("Microhv ready");
        if (BootOptions.SelfTest != SelfTest.None)
        {
            Smp.Processors.Release();                           // no guests: the other processors stop
            Cpu.EnableInterrupts();
            SelfTests.Run(BootOptions.SelfTest);
        }
        else if (BootInfo.ModuleCount > 0 && !Pv.PvSetup.Start(BootInfo, Frames, ref *layout))
        {
            QemuExit.Exit(QemuExit.Fail);
        }
        Smp.Processors.Release();                               // with guests, they join the scheduler (PvSetup did)
        // With domains, the first timer tick switches from here to a guest and this context is never resumed.
        while (true) Cpu.EnableInterruptsAndHalt();
    }

    /// <summary>The screen half of the log, when console= includes vga (the default).</summary>
    private static void StartScreen()
    {
        if ((BootOptions.Console & ConsoleOutputs.Vga) == 0) return;
        if (BootInfo.HasFramebuffer && BootInfo.FramebufferType == 1 /* direct RGB */)
        {
            ScreenConsole.InitializeFramebuffer(DirectMap.ToVirtual(BootInfo.FramebufferAddress), BootInfo.FramebufferPitch,
                BootInfo.FramebufferWidth, BootInfo.FramebufferHeight, BootInfo.FramebufferBpp,
                BootInfo.FramebufferRedPosition, BootInfo.FramebufferRedMaskSize, BootInfo.FramebufferGreenPosition,
                BootInfo.FramebufferGreenMaskSize, BootInfo.FramebufferBluePosition, BootInfo.FramebufferBlueMaskSize);
        }
        else
        {
            ScreenConsole.InitializeVgaText(DirectMap.ToVirtual(0xB8000));
        }
        // The screen missed the banner the serial console already has.
        for (int i = 0; i < Banner.Length; i++) ScreenConsole.Write((byte)Banner[i]);
        ScreenConsole.Write((byte)'\n');
    }

    private static void LogBootInfo()
    {
        Log.Write("boot: loader \"");
        if (BootInfo.HasBootLoaderName) Log.Write(DirectMap.ToVirtual(BootInfo.BootLoaderNameAddress), (int)BootInfo.BootLoaderNameLength);
        Log.Write("\", cmdline \"");
        if (BootInfo.HasCommandLine) Log.Write(DirectMap.ToVirtual(BootInfo.CommandLineAddress), (int)BootInfo.CommandLineLength);
        Log.Write("\", "); Log.Dec((ulong)BootInfo.ModuleCount); Log.Line(" modules");
        if (ScreenConsole.Kind == ScreenConsole.None)
        {
            Log.Write("console: screen not used (console= has no vga)");
        }
        else if (ScreenConsole.Kind == ScreenConsole.Framebuffer)
        {
            Log.Write("console: framebuffer "); Log.Dec(BootInfo.FramebufferWidth); Log.Write("x"); Log.Dec(BootInfo.FramebufferHeight);
            Log.Write("x"); Log.Dec(BootInfo.FramebufferBpp); Log.Write(" at "); Log.HexShort(BootInfo.FramebufferAddress);
        }
        else Log.Write("console: VGA text");
        if (ScreenConsole.Kind != ScreenConsole.None)
        {
            Log.Write(", "); Log.Dec(ScreenConsole.Columns); Log.Write("x"); Log.Dec(ScreenConsole.Rows); Log.Write(" cells");
        }
        Log.Line(Log.ToSerial ? "; serial COM1 115200 8N1" : "; serial COM1 not used (console= has no com1)");
    }

    public static void Panic(string message)
    {
        Log.Line(message);
        Log.Line("Microhv halted.");
        QemuExit.Exit(QemuExit.Fatal);
        Cpu.Stop();
    }

    private static void RuntimeFailure(int code, ulong detail)
    {
        Log.Write("runtime: fatal failure "); Log.Dec((ulong)code);
        Log.Write(code == Internal.Runtime.Failure.OutOfMemoryCode ? " (managed heap exhausted, request " : " (detail ");
        Log.HexShort(detail); Log.Line(")");
        Panic("Microhv cannot continue.");
    }
}
