using Microhv.HAL;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using Microhv.Hypervisor.Traps;

namespace Microhv.Hypervisor;

/// <summary>One row of the hypercall table: what Xen's hypercall-defs.c says about a hypercall.</summary>
public unsafe struct HypercallDef
{
    public int Number;
    /// <summary>Xen's name (without __HYPERVISOR_), as the summary and docs/hypercalls.md spell it.</summary>
    public string Name;
    /// <summary>How many of RDI, RSI, RDX, R10, R8 the hypercall takes (Xen's prototype).</summary>
    public int Args;
    /// <summary>Null: Xen knows the number, Microhv does not implement it (-ENOSYS).</summary>
    public delegate*<Vcpu, ref TrapFrame, ulong, ulong, ulong, ulong, ulong, long> Handler;
    /// <summary>False for the call a multicall entry may not make (multicall itself).</summary>
    public bool InMulticall;
}

/// <summary>
/// Every hypercall number Xen 4.17 defines, in one table (Xen's hypercall-defs.c): the dispatcher,
/// multicall, the per-domain counters, the summary and the docs check all read it. A number with no
/// row is unknown to Xen too and is counted as such.
/// </summary>
public static unsafe class HypercallTable
{
    public static readonly HypercallDef[] Entries = Build();

    /// <summary>Whether a multicall entry may make hypercall <paramref name="nr"/> (unknown numbers may:
    /// they get -ENOSYS like any other call). Rows are read in place: copying one would copy its string
    /// reference through a write barrier the image does not have.</summary>
    public static bool AllowedInMulticall(ulong nr) => nr >= (ulong)Entries.Length || Entries[nr].Name == null || Entries[nr].InMulticall;

    /// <summary>Xen's name of hypercall <paramref name="nr"/>, or null.</summary>
    public static string NameOf(ulong nr) => nr < (ulong)Entries.Length ? Entries[nr].Name : null;

    private static HypercallDef[] Build()
    {
        var t = new HypercallDef[Xen.NR_hypercalls];
        Row(t, Xen.__HYPERVISOR_set_trap_table, "set_trap_table", 1, &set_trap_table);
        Row(t, Xen.__HYPERVISOR_mmu_update, "mmu_update", 4, &mmu_update);
        Row(t, Xen.__HYPERVISOR_set_gdt, "set_gdt", 2, &set_gdt);
        Row(t, Xen.__HYPERVISOR_stack_switch, "stack_switch", 2, &stack_switch);
        Row(t, Xen.__HYPERVISOR_set_callbacks, "set_callbacks", 3, &set_callbacks);
        Row(t, Xen.__HYPERVISOR_fpu_taskswitch, "fpu_taskswitch", 1, &fpu_taskswitch);
        Row(t, Xen.__HYPERVISOR_sched_op_compat, "sched_op_compat", 2, &sched_op_compat);
        Row(t, Xen.__HYPERVISOR_platform_op, "platform_op", 1, &platform_op);
        Row(t, Xen.__HYPERVISOR_set_debugreg, "set_debugreg", 2, &set_debugreg);
        Row(t, Xen.__HYPERVISOR_get_debugreg, "get_debugreg", 1, &get_debugreg);
        Row(t, Xen.__HYPERVISOR_update_descriptor, "update_descriptor", 2, &update_descriptor);
        Row(t, Xen.__HYPERVISOR_memory_op, "memory_op", 2, &memory_op);
        Row(t, Xen.__HYPERVISOR_multicall, "multicall", 2, &multicall);
        Row(t, Xen.__HYPERVISOR_update_va_mapping, "update_va_mapping", 3, &update_va_mapping);
        Row(t, Xen.__HYPERVISOR_set_timer_op, "set_timer_op", 1, &set_timer_op);
        Row(t, Xen.__HYPERVISOR_event_channel_op_compat, "event_channel_op_compat", 1, &event_channel_op_compat);
        Row(t, Xen.__HYPERVISOR_xen_version, "xen_version", 2, &xen_version);
        Row(t, Xen.__HYPERVISOR_console_io, "console_io", 3, &console_io);
        Row(t, Xen.__HYPERVISOR_physdev_op_compat, "physdev_op_compat", 1, null);
        Row(t, Xen.__HYPERVISOR_grant_table_op, "grant_table_op", 3, &grant_table_op);
        Row(t, Xen.__HYPERVISOR_vm_assist, "vm_assist", 2, &vm_assist);
        Row(t, Xen.__HYPERVISOR_update_va_mapping_otherdomain, "update_va_mapping_otherdomain", 4, &update_va_mapping_otherdomain);
        Row(t, Xen.__HYPERVISOR_iret, "iret", 0, &iret);
        Row(t, Xen.__HYPERVISOR_vcpu_op, "vcpu_op", 3, &vcpu_op);
        Row(t, Xen.__HYPERVISOR_set_segment_base, "set_segment_base", 2, &set_segment_base);
        Row(t, Xen.__HYPERVISOR_mmuext_op, "mmuext_op", 4, &mmuext_op);
        Row(t, Xen.__HYPERVISOR_xsm_op, "xsm_op", 1, null);
        Row(t, Xen.__HYPERVISOR_nmi_op, "nmi_op", 2, null);
        Row(t, Xen.__HYPERVISOR_sched_op, "sched_op", 2, &sched_op);
        Row(t, Xen.__HYPERVISOR_callback_op, "callback_op", 2, &callback_op);
        Row(t, Xen.__HYPERVISOR_xenoprof_op, "xenoprof_op", 2, null);
        Row(t, Xen.__HYPERVISOR_event_channel_op, "event_channel_op", 2, &event_channel_op);
        Row(t, Xen.__HYPERVISOR_physdev_op, "physdev_op", 2, &physdev_op);
        Row(t, Xen.__HYPERVISOR_hvm_op, "hvm_op", 2, null);
        Row(t, Xen.__HYPERVISOR_sysctl, "sysctl", 1, &sysctl);
        Row(t, Xen.__HYPERVISOR_domctl, "domctl", 1, &domctl);
        Row(t, Xen.__HYPERVISOR_kexec_op, "kexec_op", 2, null);
        Row(t, Xen.__HYPERVISOR_tmem_op, "tmem_op", 1, null);
        Row(t, Xen.__HYPERVISOR_argo_op, "argo_op", 5, null);
        Row(t, Xen.__HYPERVISOR_xenpmu_op, "xenpmu_op", 2, null);
        Row(t, Xen.__HYPERVISOR_dm_op, "dm_op", 3, null);
        Row(t, Xen.__HYPERVISOR_hypfs_op, "hypfs_op", 5, null);
        t[Xen.__HYPERVISOR_multicall].InMulticall = false;
        return t;
    }

    private static void Row(HypercallDef[] t, int nr, string name, int args,
        delegate*<Vcpu, ref TrapFrame, ulong, ulong, ulong, ulong, ulong, long> handler)
    {
        t[nr].Number = nr;
        t[nr].Name = name;
        t[nr].Args = args;
        t[nr].Handler = handler;
        t[nr].InMulticall = true;
    }

    // The handlers in the table's one signature: each passes on the arguments its hypercall takes.
    private static long set_trap_table(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => SetTrapTable.Do(v, a1);
    private static long mmu_update(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => MmuUpdate.Do(v, a1, a2, a3, a4);
    private static long set_gdt(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => SetGdt.Do(v, a1, a2);
    private static long stack_switch(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => StackSwitch.Do(v, a1, a2);
    private static long set_callbacks(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => CallbackOp.SetCallbacks(v, a1, a2, a3);
    private static long fpu_taskswitch(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => FpuTaskswitch.Do(v, a1);
    private static long sched_op_compat(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => SchedOp.Compat(v, a1, a2);
    private static long platform_op(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => PlatformOp.Do(v, a1);
    private static long set_debugreg(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => DebugRegisters.Set(v, (uint)a1, a2);
    private static long get_debugreg(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => DebugRegisters.GetHypercall(v, a1);
    private static long update_descriptor(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => UpdateDescriptor.Do(v, a1, a2);
    private static long memory_op(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => MemoryOp.Do(v, a1, a2);
    private static long multicall(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => Multicall.Do(v, ref r, a1, a2);
    private static long update_va_mapping(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => UpdateVaMapping.Do(v, a1, a2, a3);
    private static long set_timer_op(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => Timers.SetTimerOp(v, a1);
    private static long event_channel_op_compat(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => EventChannelOp.Compat(v, a1);
    private static long xen_version(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => XenVersion.Do(v, a1, a2);
    private static long console_io(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => ConsoleIo.Do(v, a1, a2, a3);
    private static long grant_table_op(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => GrantTableOp.Do(v, a1, a2, a3);
    private static long vm_assist(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => VmAssist.Do(v, a1, a2);
    private static long update_va_mapping_otherdomain(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => UpdateVaMapping.OtherDomain(v, a1, a2, a3, a4);
    private static long vcpu_op(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => VcpuOp.Do(v, a1, a2, a3);
    private static long set_segment_base(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => SetSegmentBase.Do(v, a1, a2);
    private static long mmuext_op(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => MmuExtOp.Do(v, a1, a2, a3, a4);
    private static long sched_op(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => SchedOp.Do(v, a1, a2);
    private static long callback_op(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => CallbackOp.Do(v, a1, a2);
    private static long event_channel_op(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => EventChannelOp.Do(v, a1, a2);
    private static long physdev_op(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => PhysdevOp.Do(v, a1, a2);
    private static long sysctl(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => Sysctl.Do(v, a1);
    private static long domctl(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => Domctl.Do(v, a1);

    /// <summary>iret replaces the whole frame; like Xen's do_iret it returns the restored RAX, which
    /// the dispatcher writes back. The dispatcher calls <see cref="Iret"/> directly; the row keeps the
    /// table complete.</summary>
    private static long iret(Vcpu v, ref TrapFrame r, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5) => Iret(v, ref r);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    [System.Runtime.CompilerServices.SkipLocalsInit]
    internal static long Iret(Vcpu v, ref TrapFrame r)
    {
        Traps.Iret.Do(v, ref r);
        return (long)r.Rax;
    }
}
