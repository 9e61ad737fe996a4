using System.Runtime.InteropServices;

namespace Microhv.Guests.PvTest;

/// <summary>
/// pvtest's entry: bring up the runtime and the console, then run every check of the suite in
/// order. Checks that need a piece of setup (shared_info, the window) fail on their own if it is
/// missing, so the report is complete whatever breaks.
/// </summary>
internal static unsafe class PvTestMain
{
    [UnmanagedCallersOnly(EntryPoint = "pvtest_main")]
    private static void Main(byte* startInfo, GuestLayout* layout)
    {
        Internal.Runtime.KernelHeap.Initialize((byte*)layout->HeapStart, (byte*)layout->HeapEnd);
        Internal.Runtime.Failure.Handler = &RuntimeFailure;
        Guest.Initialize(startInfo, layout);
        bool runtimeOk = Internal.Runtime.ModuleStartup.Initialize((void**)layout->ModulesStart, (void**)layout->ModulesEnd);
        long trapRc = Traps.Install();
        long windowRc = Guest.CreateWindow();
        long sharedRc = Guest.WindowL1 != null ? Guest.MapSharedInfo() : -1;
        XenConsole.Initialize();

        if (Workloads.TryRun()) return;
        XenConsole.Line("pvtest: Xen PV ABI checks");
        if (!runtimeOk) XenConsole.Line("pvtest: runtime module header not recognised");
        SetupChecks.Report(trapRc, windowRc, sharedRc);
        BasicChecks.Run();
        MemoryChecks.Run();
        TrapChecks.Run();
        EventChecks.Run();
        IretChecks.Run();
        LdtChecks.Run();
        GuestModeChecks.Run();
        GrantChecks.Run();
        GrantV2Checks.Run();
        GrantTransferChecks.Run();
        GrantCacheFlushChecks.Run();
        VcpuChecks.Run();
        FifoChecks.Run();                  // last: it switches the domain to FIFO and resets it back to 2-level
        Checks.Finish("pvtest");
    }

    private static void RuntimeFailure(int code, ulong detail)
    {
        XenConsole.Write("pvtest: runtime failure ");
        XenConsole.Dec(code);
        XenConsole.Line("");
        Hypercall.Shutdown(Xen.SHUTDOWN_crash);
    }
}

/// <summary>The setup steps main performed, each reported as a check.</summary>
internal static unsafe class SetupChecks
{
    private static long s_trapRc, s_windowRc, s_sharedRc;

    public static void Report(long trapRc, long windowRc, long sharedRc)
    {
        s_trapRc = trapRc; s_windowRc = windowRc; s_sharedRc = sharedRc;
        Checks.Run("set_trap_table", &TrapTable);
        Checks.Run("window_l1", &Window);
        Checks.Run("map_shared_info", &SharedInfo);
    }

    private static void TrapTable() => Checks.Expect("set_trap_table", s_trapRc, 0);
    private static void Window() => Checks.Expect("hook a fresh L1 into our L2 (update_va_mapping + mmu_update)", s_windowRc, 0);
    private static void SharedInfo() => Checks.Expect("update_va_mapping of shared_info", s_sharedRc, 0);

    /// <summary>For checks that need shared_info: fails the check if it is not mapped.</summary>
    public static bool NeedSharedInfo()
    {
        if (Guest.SharedInfo != null) return true;
        return Checks.Fail("needs shared_info mapped");
    }

    public static bool NeedWindow()
    {
        if (Guest.WindowL1 != null) return true;
        return Checks.Fail("needs the window L1");
    }
}
