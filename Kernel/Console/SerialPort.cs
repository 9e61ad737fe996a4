namespace Microhv.Kernel.Console;

/// <summary>
/// 16550 UART on COM1 at 115200 8N1: the console tests and people read. With its 16-byte transmit
/// FIFO on, THRE set means the whole FIFO is empty, so one Line Status poll lets 16 bytes through;
/// a UART without a working FIFO (IIR bits 7:6 not both set) is polled for every byte.
/// </summary>
internal static class SerialPort
{
    public const ushort Com1 = 0x3F8;
    private const ushort Data = 0, InterruptEnable = 1, FifoControl = 2, InterruptId = 2, LineControl = 3, ModemControl = 4, LineStatus = 5;
    private const byte TransmitHoldingEmpty = 0x20, DataReady = 0x01;
    private const byte ReceivedDataInterrupt = 0x01, Out2 = 0x08;
    /// <summary>COM1's legacy interrupt line (ISA IRQ 4).</summary>
    public const int Irq = 4;
    private const byte FifosEnabled = 0xC0;
    private const int FifoDepth = 16;

    private static int _depth = 1;   // bytes one THRE lets through
    private static int _room;        // bytes that may still be written without polling

    public static void Initialize()
    {
        Cpu.OutB(Com1 + InterruptEnable, 0x00);
        Cpu.OutB(Com1 + LineControl, 0x80);   // DLAB: divisor follows
        Cpu.OutB(Com1 + Data, 0x01);          // 115200 / 1
        Cpu.OutB(Com1 + InterruptEnable, 0x00);
        Cpu.OutB(Com1 + LineControl, 0x03);   // 8 bits, no parity, one stop bit
        Cpu.OutB(Com1 + FifoControl, 0xC7);   // FIFOs on, cleared, 14-byte threshold
        Cpu.OutB(Com1 + ModemControl, 0x03);  // DTR, RTS
        _depth = (Cpu.InB(Com1 + InterruptId) & FifosEnabled) == FifosEnabled ? FifoDepth : 1;
        _room = 0;
    }

    /// <summary>Interrupts on received data (IER bit 0); OUT2 connects the UART's interrupt to the PIC on PCs.</summary>
    public static void EnableReceiveInterrupt()
    {
        Cpu.OutB(Com1 + ModemControl, 0x03 | Out2);
        Cpu.OutB(Com1 + InterruptEnable, ReceivedDataInterrupt);
    }

    /// <summary>The next received byte, if one is waiting.</summary>
    public static bool TryRead(out byte b)
    {
        if ((Cpu.InB(Com1 + LineStatus) & DataReady) == 0) { b = 0; return false; }
        b = Cpu.InB(Com1 + Data);
        return true;
    }

    public static void Write(byte b)
    {
        if (_room <= 0)
        {
            while ((Cpu.InB(Com1 + LineStatus) & TransmitHoldingEmpty) == 0) Cpu.Pause();
            _room = _depth;
        }
        _room--;
        Cpu.OutB(Com1 + Data, b);
    }
}
