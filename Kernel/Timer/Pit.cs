namespace Microhv.Kernel.Timer;

/// <summary>The 8254 programmable interval timer (1.193182 MHz): a reference clock to calibrate the
/// local APIC timer against, and the fallback periodic timer when there is no local APIC.</summary>
internal static class Pit
{
    public const uint Frequency = 1193182;
    private const ushort Channel0 = 0x40, Channel2 = 0x42, Command = 0x43, Port61 = 0x61;

    /// <summary>Channel 0, mode 2 (rate generator) at the given rate: IRQ0 ticks.</summary>
    public static void StartPeriodic(uint hz)
    {
        uint divisor = Frequency / hz;
        Cpu.OutB(Command, 0x34);
        Cpu.OutB(Channel0, (byte)divisor);
        Cpu.OutB(Channel0, (byte)(divisor >> 8));
    }

    /// <summary>Starts a one-shot countdown of <paramref name="microseconds"/> on channel 2 (gate via port 0x61).</summary>
    public static void StartOneShot(uint microseconds)
    {
        uint count = (uint)((ulong)Frequency * microseconds / 1000000);
        byte p61 = Cpu.InB(Port61);
        Cpu.OutB(Port61, (byte)((p61 & 0xFC) | 0x01));   // gate on, speaker off
        Cpu.OutB(Command, 0xB0);                         // channel 2, lobyte/hibyte, mode 0
        Cpu.OutB(Channel2, (byte)count);
        Cpu.OutB(Channel2, (byte)(count >> 8));
        // Restart the count by toggling the gate.
        p61 = Cpu.InB(Port61);
        Cpu.OutB(Port61, (byte)(p61 & 0xFE));
        Cpu.OutB(Port61, (byte)(p61 | 0x01));
    }

    /// <summary>Channel 2 counting down from 65535 (mode 0, gate on, speaker off), to be read with <see cref="ReadChannel2"/>;
    /// not from 65536 (count 0), whose first reads are 0 like the terminal count's.</summary>
    public static void StartFreeRunning()
    {
        byte p61 = Cpu.InB(Port61);
        Cpu.OutB(Port61, (byte)(p61 & 0xFC));            // gate off, speaker off
        Cpu.OutB(Command, 0xB0);                         // channel 2, lobyte/hibyte, mode 0
        Cpu.OutB(Channel2, 0xFF);
        Cpu.OutB(Channel2, 0xFF);
        Cpu.OutB(Port61, (byte)((p61 & 0xFC) | 0x01));   // gate on: counting starts
    }

    /// <summary>Channel 2's current count, latched so that both bytes belong to the same moment.</summary>
    public static uint ReadChannel2()
    {
        Cpu.OutB(Command, 0x80);                         // counter latch, channel 2
        uint low = Cpu.InB(Channel2);
        return low | (uint)Cpu.InB(Channel2) << 8;
    }

    /// <summary>True once the channel 2 one-shot has reached zero (OUT2 high).</summary>
    public static bool OneShotExpired => (Cpu.InB(Port61) & 0x20) != 0;
}
