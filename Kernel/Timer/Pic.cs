namespace Microhv.Kernel.Timer;

/// <summary>The legacy 8259A pair: remapped off the exception vectors, then masked (the local APIC
/// timer drives scheduling), or left with only IRQ0 open when the PIT is the fallback timer.</summary>
internal static class Pic
{
    public const byte VectorBase = 0x20;   // IRQ0-15 -> vectors 0x20-0x2F
    private const ushort MasterCommand = 0x20, MasterData = 0x21, SlaveCommand = 0xA0, SlaveData = 0xA1;

    public static void RemapAndMask()
    {
        Cpu.OutB(MasterCommand, 0x11);          // ICW1: init, ICW4 follows
        Cpu.OutB(SlaveCommand, 0x11);
        Cpu.OutB(MasterData, VectorBase);       // ICW2: vector offsets
        Cpu.OutB(SlaveData, VectorBase + 8);
        Cpu.OutB(MasterData, 0x04);             // ICW3: slave on IRQ2
        Cpu.OutB(SlaveData, 0x02);
        Cpu.OutB(MasterData, 0x01);             // ICW4: 8086 mode
        Cpu.OutB(SlaveData, 0x01);
        Cpu.OutB(MasterData, 0xFF);             // mask everything
        Cpu.OutB(SlaveData, 0xFF);
    }

    public static void Unmask(int irq)
    {
        ushort port = irq < 8 ? MasterData : SlaveData;
        Cpu.OutB(port, (byte)(Cpu.InB(port) & ~(1 << (irq & 7))));
    }

    public static void EndOfInterrupt(int irq)
    {
        if (irq >= 8) Cpu.OutB(SlaveCommand, 0x20);
        Cpu.OutB(MasterCommand, 0x20);
    }
}
