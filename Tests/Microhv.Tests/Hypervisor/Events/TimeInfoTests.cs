using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Xunit;

namespace Microhv.Tests.Hypervisor.Events;

public sealed class TimeInfoTests
{
    private readonly TestMachine _t = new();
    private readonly EventsGuest _a;

    public TimeInfoTests() { _a = new EventsGuest(_t, 1); }

    private ulong Time => _a.VcpuInfoMa + SharedInfo.time;
    private ulong Si => _a.SharedInfoMfn * 4096;

    [Fact]
    public void VcpuTimeInfoMatchesTheHostWithAnEvenVersion()
    {
        _t.Host.NowNs = 123_456_789;
        TimeInfo.Update(_a.V);
        uint v1 = _t.Memory.Read32(Time + SharedInfo.time_version);
        Assert.True(v1 != 0 && v1 % 2 == 0);
        Assert.Equal(123_456_789UL, _t.Memory.Read64(Time + SharedInfo.time_tsc_timestamp));   // the fake TSC is the clock
        Assert.Equal(123_456_789UL, _t.Memory.Read64(Time + SharedInfo.time_system_time));
        Assert.Equal(_t.Host.TscToSystemMul, _t.Memory.Read32(Time + SharedInfo.time_tsc_to_system_mul));
        Assert.Equal((byte)_t.Host.TscShift, _t.Memory.Read8(Time + SharedInfo.time_tsc_shift));

        _t.Host.NowNs = 200_000_000;
        TimeInfo.Update(_a.V);
        uint v2 = _t.Memory.Read32(Time + SharedInfo.time_version);
        Assert.Equal(v1 + 2, v2);
        Assert.Equal(200_000_000UL, _t.Memory.Read64(Time + SharedInfo.time_system_time));
    }

    [Fact]
    public void GuestComputedTimeAgreesWithTheHost()
    {
        // The pvclock formula a guest applies: ((tsc - tsc_timestamp) << shift) * mul >> 32, plus system_time.
        _t.Host.NowNs = 5_000_000;
        TimeInfo.Update(_a.V);
        ulong tsc = 5_000_000 + 777;
        ulong delta = tsc - _t.Memory.Read64(Time + SharedInfo.time_tsc_timestamp);
        sbyte shift = (sbyte)_t.Memory.Read8(Time + SharedInfo.time_tsc_shift);
        delta = shift >= 0 ? delta << shift : delta >> -shift;
        ulong ns = (ulong)(((System.UInt128)delta * _t.Memory.Read32(Time + SharedInfo.time_tsc_to_system_mul)) >> 32);
        Assert.Equal(5_000_777UL, _t.Memory.Read64(Time + SharedInfo.time_system_time) + ns);
    }

    [Fact]
    public void OddVersionLeftByTheGuestStillEndsEven()
    {
        _t.Memory.Write32(Time + SharedInfo.time_version, 7);
        TimeInfo.Update(_a.V);
        Assert.Equal(0u, _t.Memory.Read32(Time + SharedInfo.time_version) % 2);
    }

    [Fact]
    public void WallclockIsTheTimeOfDayAtBoot()
    {
        TimeInfo.Update(_a.V);
        uint version = _t.Memory.Read32(Si + SharedInfo.wc_version);
        Assert.True(version != 0 && version % 2 == 0);
        ulong sec = _t.Memory.Read32(Si + SharedInfo.wc_sec) | ((ulong)_t.Memory.Read32(Si + SharedInfo.wc_sec_hi) << 32);
        Assert.Equal(_t.Host.WallclockSecondsAtBoot, sec);
        Assert.Equal(0u, _t.Memory.Read32(Si + SharedInfo.wc_nsec));
    }

    [Fact]
    public void DomainWithoutSharedInfoIsLeftAlone()
    {
        var d = _t.AddDomain(9);
        TimeInfo.Update(d.Vcpu);                                  // nothing to write, nothing touched
        Assert.Empty(_t.Memory.Faults);
    }
}
