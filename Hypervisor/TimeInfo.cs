using Microhv.HAL;
using Microhv.Hypervisor.Events;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// The guest's clock (xen/arch/x86/time.c): vcpu_time_info pairs a TSC reading with the system time
/// at that moment and the TSC-to-ns scale, so the guest computes the time without a hypercall; the
/// shared_info wallclock is the time of day at system time 0. Both use Xen's version protocol:
/// odd while being written, so a guest that reads an odd or changed version retries.
/// </summary>
public static class TimeInfo
{
    /// <summary>Called by the kernel when it schedules <paramref name="v"/> and on every tick.</summary>
    public static void Update(Vcpu v)
    {
        Machine m = v.Domain.Machine;
        HypervisorHost host = m.Host;
        PhysicalMemory mem = m.Memory;
        ulong info = VcpuInfo.Address(v);
        if (info == 0) return;
        ulong t = info + SharedInfo.time;

        uint version = mem.Read32(t + SharedInfo.time_version);
        version = (version + 1) | 1;                        // odd: update in progress (Xen's version_update_begin)
        mem.Write32(t + SharedInfo.time_version, version);
        ulong tsc = host.ReadTsc();
        ulong system = host.SystemTimeNs();
        mem.Write64(t + SharedInfo.time_tsc_timestamp, tsc);
        mem.Write64(t + SharedInfo.time_system_time, system);
        mem.Write32(t + SharedInfo.time_tsc_to_system_mul, host.TscToSystemMul);
        mem.Write8(t + SharedInfo.time_tsc_shift, (byte)host.TscShift);
        mem.Write8(t + SharedInfo.time_flags, 0);           // no XEN_PVCLOCK_TSC_STABLE_BIT: guests keep their monotonic guard
        mem.Write32(t + SharedInfo.time_version, version + 1);

        UpdateWallclock(v.Domain);
    }

    /// <summary>wc_sec/wc_nsec (and wc_sec_hi on x86-64): the wall time at system time 0.</summary>
    public static void UpdateWallclock(Domain d)
    {
        if (d.SharedInfoMfn == 0) return;
        PhysicalMemory mem = d.Machine.Memory;
        ulong si = d.SharedInfoMfn << Layout.PageShift;
        ulong sec = d.Machine.WallclockAtBootNs / 1_000_000_000UL + (ulong)d.TimeOffsetSeconds;
        uint nsec = (uint)(d.Machine.WallclockAtBootNs % 1_000_000_000UL);
        uint version = (mem.Read32(si + SharedInfo.wc_version) + 1) | 1;
        mem.Write32(si + SharedInfo.wc_version, version);
        mem.Write32(si + SharedInfo.wc_sec, (uint)sec);
        mem.Write32(si + SharedInfo.wc_nsec, nsec);
        mem.Write32(si + SharedInfo.wc_sec_hi, (uint)(sec >> 32));
        mem.Write32(si + SharedInfo.wc_version, version + 1);
    }
}
