using System;
using System.IO;

namespace Microhv.AbiRomGen;

/// <summary>Writes the ROM as C# (default Hypervisor/AbiRomImage.g.cs relative to the current directory),
/// or with --bin also the raw image for inspection (objdump -D -b binary -m i386:x86-64).</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        string output = args.Length > 0 ? args[0] : Path.Combine("Hypervisor", "AbiRomImage.g.cs");
        byte[] rom = AbiRomBuilder.Build();
        File.WriteAllText(output, AbiRomBuilder.ToCSharp(rom));
        if (args.Length > 1 && args[1] == "--bin") File.WriteAllBytes(Path.ChangeExtension(output, ".bin"), rom);
        Console.WriteLine($"ABI ROM: {rom.Length} bytes -> {output}");
        return 0;
    }
}
