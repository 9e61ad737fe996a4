using Microhv.HAL;
using Microhv.Kernel.Console;

namespace Microhv.Kernel.Traps;

/// <summary>The register lines of a trap report: the hypervisor's fatal dump and a guest's crash report share them.</summary>
internal static unsafe class RegisterDump
{
    public static void Write(TrapFrame* f, ulong cr2)
    {
        Log.Write("  "); Log.Field("RIP", f->Rip); Log.Write(" "); Log.Field("RSP", f->Rsp); Log.Write(" "); Log.Field("RFLAGS", f->Rflags); Log.Line();
        Log.Write("  "); Log.Field("CR2", cr2); Log.Write(" "); Log.Field("CR3", Cpu.ReadCr3());
        Log.Write(" CS="); Log.Hex(f->Cs, 4); Log.Write(" SS="); Log.Hex(f->Ss, 4); Log.Line();
        Log.Write("  "); Log.Field("RAX", f->Rax); Log.Write(" "); Log.Field("RBX", f->Rbx); Log.Write(" "); Log.Field("RCX", f->Rcx); Log.Write(" "); Log.Field("RDX", f->Rdx); Log.Line();
        Log.Write("  "); Log.Field("RSI", f->Rsi); Log.Write(" "); Log.Field("RDI", f->Rdi); Log.Write(" "); Log.Field("RBP", f->Rbp); Log.Write(" "); Log.Field("R8", f->R8); Log.Line();
        Log.Write("  "); Log.Field("R9", f->R9); Log.Write(" "); Log.Field("R10", f->R10); Log.Write(" "); Log.Field("R11", f->R11); Log.Write(" "); Log.Field("R12", f->R12); Log.Line();
        Log.Write("  "); Log.Field("R13", f->R13); Log.Write(" "); Log.Field("R14", f->R14); Log.Write(" "); Log.Field("R15", f->R15); Log.Line();
    }
}
