namespace Microhv.Kernel.Traps;

/// <summary>Exception vectors (Intel SDM Vol. 3A, Table 6-1) and their names for the fatal dump.</summary>
internal static class Vectors
{
    public const int DivideError = 0, Debug = 1, Nmi = 2, Breakpoint = 3, Overflow = 4, BoundRange = 5,
        InvalidOpcode = 6, DeviceNotAvailable = 7, DoubleFault = 8, InvalidTss = 10, SegmentNotPresent = 11,
        StackFault = 12, GeneralProtection = 13, PageFault = 14, X87Floating = 16, AlignmentCheck = 17,
        MachineCheck = 18, SimdFloating = 19, Virtualization = 20, ControlProtection = 21;

    public static string Name(ulong v)
    {
        switch (v)
        {
            case 0: return "divide error (#DE";
            case 1: return "debug (#DB";
            case 2: return "non-maskable interrupt (NMI";
            case 3: return "breakpoint (#BP";
            case 4: return "overflow (#OF";
            case 5: return "bound range exceeded (#BR";
            case 6: return "invalid opcode (#UD";
            case 7: return "device not available (#NM";
            case 8: return "double fault (#DF";
            case 10: return "invalid TSS (#TS";
            case 11: return "segment not present (#NP";
            case 12: return "stack fault (#SS";
            case 13: return "general protection (#GP";
            case 14: return "page fault (#PF";
            case 16: return "x87 floating-point error (#MF";
            case 17: return "alignment check (#AC";
            case 18: return "machine check (#MC";
            case 19: return "SIMD floating-point (#XM";
            case 20: return "virtualization exception (#VE";
            case 21: return "control protection (#CP";
            default: return "reserved exception (";
        }
    }
}
