using System.Runtime.InteropServices;

namespace Microhv.Guests.PvOps;

/// <summary>
/// The two entries. Native (GRUB, multiboot2): the native backend, or the native shim under
/// `pvops.backend=shim`. Xen PV (any Xen loader): the ABI ROM when present and valid, else the
/// hypercall API; `pvops.backend=hypercall` forces the API, `pvops.rom_version=N` requires ROM major N.
/// </summary>
internal static unsafe class PvOpsMain
{
    [UnmanagedCallersOnly(EntryPoint = "pvops_native_main")]
    private static void NativeMain(byte* mbi, GuestLayout* layout)
    {
        StartRuntime(layout);
        CommandLine.Text = MultibootCommandLine(mbi);
        NativeCpu.IdtLoad();
        Hardware.Initialize();
        if (CommandLine.Has("pvops.backend=", "shim"))
        {
            Paravirt.Bind(VmiCall.ConsoleWrite, (delegate*<byte*, ulong, void>)&Hardware.SerialWrite, Paravirt.HowCall);
            byte* si = Shim.Start(layout, CommandLine.Text);
            NativeCpu.Sti();      // the shim's guest masks events in vcpu_info, never with cli
            XenMain(si, layout, "shim");
            return;
        }
        Guest.Layout = layout;
        NativeBackend.Bind();
        PvOps.Backend = "native";
        PvOps.IsNative = true;
        Log.Line("pvops: backend native (multiboot2 entry)");
        Patch();
        if (!CommandLine.Has("pvops.mode=", "pingpong")) Workload.Run();
        Finish();
    }

    [UnmanagedCallersOnly(EntryPoint = "pvops_xen_main")]
    private static void XenEntry(byte* startInfo, GuestLayout* layout)
    {
        StartRuntime(layout);
        XenMain(startInfo, layout, null);
    }

    private static void XenMain(byte* startInfo, GuestLayout* layout, string via)
    {
        Guest.Initialize(startInfo, layout);
        CommandLine.Text = startInfo + Xen.SI_cmd_line;
        long trapRc = Traps.Install();
        long windowRc = Guest.CreateWindow();
        long sharedRc = Guest.WindowL1 != null ? Guest.MapSharedInfo() : -1;
        XenConsole.Initialize();
        HypercallBackend.Bind();
        PvOps.KernelL4 = *(ulong**)(startInfo + Xen.SI_pt_base);
        PvOps.KernelCr3 = Guest.MfnOf(PvOps.KernelL4) << 12;
        if (trapRc != 0 || windowRc != 0 || sharedRc != 0)
        {
            Log.Write("pvops: setup failed: set_trap_table "); Log.Dec((ulong)trapRc);
            Log.Write(" window "); Log.Dec((ulong)windowRc); Log.Write(" shared_info "); Log.Dec((ulong)sharedRc); Log.Line("");
            Hypercall.Shutdown(Xen.SHUTDOWN_crash);
        }
        long eventsRc = HypercallBackend.SetUpEvents();
        if (eventsRc != 0) { Log.Write("pvops: event setup failed -"); Log.Dec((ulong)(-eventsRc)); Log.Line(""); }
        if (via != null)
        {
            PvOps.Backend = "shim";
            Log.Line("pvops: backend shim (multiboot2 entry, pvops.backend=shim: the hypercall API served in ring 0)");
        }
        else ChooseXenBackend();
        Patch();
        if (!CommandLine.Has("pvops.mode=", "pingpong")) Workload.Run();
        Finish();
    }

    private static void ChooseXenBackend()
    {
        if (CommandLine.Has("pvops.backend=", "hypercall"))
        {
            PvOps.Backend = "hypercall";
            Log.Line("pvops: backend hypercall (pvops.backend=hypercall)");
            return;
        }
        ulong major = CommandLine.Number("pvops.rom_version=", 1);
        string why = RomBackend.Probe(major, out ulong version);
        if (why == null && RomBackend.Bind() == 0)
        {
            PvOps.Backend = "rom";
            Log.Write("pvops: backend rom (ROM "); Log.Dec(version >> 16); Log.Write("."); Log.Dec(version & 0xFFFF);
            Log.Write(" at "); Log.HexShort(RomBackend.Base); Log.Write(", checksum ok, ");
            Log.Dec((ulong)(RomBackend.Calls + RomBackend.Nops + RomBackend.Natives)); Log.Write(" calls bound: ");
            Log.Dec((ulong)RomBackend.Calls); Log.Write(" call, "); Log.Dec((ulong)RomBackend.Nops); Log.Write(" nop, ");
            Log.Dec((ulong)RomBackend.Natives); Log.Line(" native)");
            return;
        }
        HypercallBackend.Bind();
        PvOps.Backend = "hypercall";
        if (RomBackend.VersionMismatch)
        {
            Log.Write("pvops: backend hypercall (ROM version "); Log.Dec(version >> 16); Log.Write("."); Log.Dec(version & 0xFFFF);
            Log.Write(" not supported, wanted "); Log.Dec(major); Log.Line(".x, falling back)");
        }
        else { Log.Write("pvops: backend hypercall ("); Log.Write(why == null ? "ROM init failed" : why); Log.Line(")"); }
    }

    /// <summary>The backend is bound: rewrite every paravirt call site for it (Patcher.cs).</summary>
    private static void Patch()
    {
        Patcher.Apply();
        Patcher.Report();
    }

    private static void Finish()
    {
        if (CommandLine.Has("pvops.mode=", "bench")) Bench.Run();
        if (CommandLine.Has("pvops.mode=", "pingpong")) PingPong();
        Log.Line("pvops: done");
        PvOps.ShutdownOp(Xen.SHUTDOWN_poweroff);
    }

    /// <summary>
    /// Domain-to-domain switch cost: two domains in this mode yield to each other N times; each
    /// yield of one is a switch to the other and back, so the time per switch is the elapsed TSC
    /// over 2N (it includes one sched_op(yield) hypercall per switch). Under a hypervisor only.
    /// </summary>
    private static void PingPong()
    {
        if (PvOps.IsNative) { Log.Line("pvops: pingpong needs a hypervisor"); return; }
        int n = CommandLine.Has("pvops.quick=", "1") ? 100 : 1000;
        Hypercall.SchedOp(Xen.SCHEDOP_yield, null);           // line the two domains up
        ulong t0 = Cpu.Rdtsc();
        for (int i = 0; i < n; i++) Hypercall.SchedOp(Xen.SCHEDOP_yield, null);
        ulong t1 = Cpu.Rdtsc();
        Log.Write("bench: domain_switch "); Log.Dec((t1 - t0) / (ulong)(2 * n)); Log.Write(" "); Log.Dec((ulong)(2 * n)); Log.Line("");
    }

    private static void StartRuntime(GuestLayout* layout)
    {
        Internal.Runtime.KernelHeap.Initialize((byte*)layout->HeapStart, (byte*)layout->HeapEnd);
        Internal.Runtime.Failure.Handler = &RuntimeFailure;
        Internal.Runtime.ModuleStartup.Initialize((void**)layout->ModulesStart, (void**)layout->ModulesEnd);
    }

    /// <summary>The multiboot2 command line tag (type 1), or null.</summary>
    private static byte* MultibootCommandLine(byte* mbi)
    {
        uint total = *(uint*)mbi;
        for (uint at = 8; at + 8 <= total && at < 65536;)
        {
            uint type = *(uint*)(mbi + at), size = *(uint*)(mbi + at + 4);
            if (type == 0 || size < 8) break;
            if (type == 1) return mbi + at + 8;
            at = (at + size + 7) & ~7U;
        }
        return null;
    }

    private static void RuntimeFailure(int code, ulong detail)
    {
        Log.Write("pvops: runtime failure ");
        Log.Dec((ulong)code);
        Log.Line("");
        PvOps.ShutdownOp(Xen.SHUTDOWN_crash);
    }
}
