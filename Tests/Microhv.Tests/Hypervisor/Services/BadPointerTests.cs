using System.Collections.Generic;
using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Xunit;

namespace Microhv.Tests.Hypervisor.Services;

/// <summary>
/// Every hypercall that takes a guest pointer, given pointers a guest cannot use (unmapped, in the
/// hypervisor's hole, non-canonical; read-only for those that write back), through the dispatcher:
/// -EFAULT, as in Xen, and the hypervisor and the domain go on.
/// </summary>
public class BadPointerTests
{
    private const ulong Unmapped = ServiceGuest.Unmapped, Hole = 0xFFFF_8000_0000_1000, NonCanonical = 0x0000_8000_0000_0000;

    /// <summary>Hypercall number, arguments (P = the bad pointer) and whether it writes through the pointer.</summary>
    private static IEnumerable<(string What, ulong Nr, ulong[] Args, bool Writes)> Cases()
    {
        const ulong P = ulong.MaxValue;
        yield return ("set_trap_table", Xen.__HYPERVISOR_set_trap_table, new[] { P }, false);
        yield return ("mmu_update reqs", Xen.__HYPERVISOR_mmu_update, new[] { P, 1UL, 0UL, Xen.DOMID_SELF }, false);
        yield return ("mmuext_op ops", Xen.__HYPERVISOR_mmuext_op, new[] { P, 1UL, 0UL, Xen.DOMID_SELF }, false);
        yield return ("set_gdt frame list", Xen.__HYPERVISOR_set_gdt, new[] { P, 16UL }, false);
        yield return ("memory_op memory_map", Xen.__HYPERVISOR_memory_op, new[] { 9UL, P }, false);
        yield return ("memory_op current_reservation", Xen.__HYPERVISOR_memory_op, new[] { 3UL, P }, false);
        yield return ("memory_op machphys_mapping", Xen.__HYPERVISOR_memory_op, new[] { 12UL, P }, true);
        yield return ("multicall", Xen.__HYPERVISOR_multicall, new[] { P, 1UL }, false);
        yield return ("event_channel_op_compat", Xen.__HYPERVISOR_event_channel_op_compat, new[] { P }, false);
        yield return ("xen_version extraversion", Xen.__HYPERVISOR_xen_version, new[] { 1UL, P }, true);
        yield return ("xen_version capabilities", Xen.__HYPERVISOR_xen_version, new[] { 3UL, P }, true);
        yield return ("xen_version get_features", Xen.__HYPERVISOR_xen_version, new[] { 6UL, P }, false);
        yield return ("console_io write", Xen.__HYPERVISOR_console_io, new[] { 0UL, 16UL, P }, false);
        yield return ("grant_table_op query_size", Xen.__HYPERVISOR_grant_table_op, new[] { 6UL, P, 1UL }, false);
        yield return ("grant_table_op setup_table", Xen.__HYPERVISOR_grant_table_op, new[] { 2UL, P, 1UL }, false);
        yield return ("vcpu_op set_singleshot_timer", Xen.__HYPERVISOR_vcpu_op, new[] { 8UL, 0UL, P }, false);
        yield return ("vcpu_op set_periodic_timer", Xen.__HYPERVISOR_vcpu_op, new[] { 6UL, 0UL, P }, false);
        yield return ("vcpu_op get_runstate_info", Xen.__HYPERVISOR_vcpu_op, new[] { 4UL, 0UL, P }, true);
        yield return ("vcpu_op register_vcpu_info", Xen.__HYPERVISOR_vcpu_op, new[] { 10UL, 0UL, P }, false);
        yield return ("sched_op shutdown", Xen.__HYPERVISOR_sched_op, new[] { 2UL, P }, false);
        yield return ("sched_op poll", Xen.__HYPERVISOR_sched_op, new[] { 3UL, P }, false);
        yield return ("callback_op register", Xen.__HYPERVISOR_callback_op, new[] { 0UL, P }, false);
        yield return ("event_channel_op alloc_unbound", Xen.__HYPERVISOR_event_channel_op, new[] { 6UL, P }, false);
        yield return ("event_channel_op send", Xen.__HYPERVISOR_event_channel_op, new[] { 4UL, P }, false);
        yield return ("event_channel_op status", Xen.__HYPERVISOR_event_channel_op, new[] { 5UL, P }, false);
        yield return ("physdev_op set_iopl", Xen.__HYPERVISOR_physdev_op, new[] { 6UL, P }, false);
    }

    [Fact]
    public void Every_pointer_argument_gets_EFAULT_and_the_domain_runs_on()
    {
        var failures = new List<string>();
        foreach (var c in Cases())
        {
            var pointers = new List<ulong> { Unmapped, Hole, NonCanonical };
            if (c.Writes) pointers.Add(ServiceGuest.ReadOnlyPage);
            foreach (ulong bad in pointers)
            {
                var g = new ServiceGuest(initial: true);
                ulong[] a = new ulong[5];
                for (int i = 0; i < c.Args.Length; i++) a[i] = c.Args[i] == ulong.MaxValue ? bad : c.Args[i];
                var regs = new TrapFrame { Rax = c.Nr, Rdi = a[0], Rsi = a[1], Rdx = a[2], R10 = a[3], R8 = a[4] };
                Microhv.Hypervisor.Hypercalls.Dispatch(g.V, ref regs);
                if ((long)regs.Rax != -Errno.EFAULT) failures.Add(c.What + " at " + bad.ToString("x") + ": " + (long)regs.Rax);
                if (g.D.State != DomainState.Running) failures.Add(c.What + " at " + bad.ToString("x") + ": domain " + g.D.State);
                // The hypervisor still serves the domain.
                var ok = new TrapFrame { Rax = Xen.__HYPERVISOR_xen_version };
                Microhv.Hypervisor.Hypercalls.Dispatch(g.V, ref ok);
                if (ok.Rax != 0x0004_0011UL) failures.Add(c.What + ": xen_version afterwards gave " + ok.Rax);
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
