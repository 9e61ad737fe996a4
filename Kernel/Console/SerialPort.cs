namespace Microhv.Kernel.Console;

/// <summary>16550 UART on COM1 at 115200 8N1: the console tests and people read.</summary>
internal static class SerialPort
{
    public const ushort Com1 = 0x3F8;
    private const ushort Data = 0, InterruptEnable = 1, FifoControl = 2, LineControl = 3, ModemControl = 4, LineStatus = 5;
    private const byte TransmitHoldingEmpty = 0x20;

    public static void Initialize()
    {
        Cpu.OutB(Com1 + InterruptEnable, 0x00);
        Cpu.OutB(Com1 + LineControl, 0x80);   // DLAB: divisor follows
        Cpu.OutB(Com1 + Data, 0x01);          // 115200 / 1
        Cpu.OutB(Com1 + InterruptEnable, 0x00);
        Cpu.OutB(Com1 + LineControl, 0x03);   // 8 bits, no parity, one stop bit
        Cpu.OutB(Com1 + FifoControl, 0xC7);   // FIFOs on, cleared, 14-byte threshold
        Cpu.OutB(Com1 + ModemControl, 0x03);  // DTR, RTS
    }

    public static void Write(byte b)
    {
        while ((Cpu.InB(Com1 + LineStatus) & TransmitHoldingEmpty) == 0) Cpu.Pause();
        Cpu.OutB(Com1 + Data, b);
    }
}
