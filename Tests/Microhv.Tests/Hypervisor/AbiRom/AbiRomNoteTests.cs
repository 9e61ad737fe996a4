using System;
using Microhv.HAL;
using Microhv.Tests.Hosted;
using Microhv.Tests.Hypervisor.DomainBuilder;
using Xunit;

namespace Microhv.Tests.Hypervisor.AbiRom;

/// <summary>The "Microhv" ELF notes a guest uses to ask for the ROM (docs/abi-rom.md section 1).</summary>
public class AbiRomNoteTests
{
    private static bool Find(XenImage x, out ulong va, out ushort major, out ushort minor)
    {
        byte[] bytes = x.Build();
        var mem = new SimulatedMemory(0x10_0000, bytes);
        Assert.Equal(Elf64Status.Ok, Elf64Image.Parse(mem, 0x10_0000, (ulong)bytes.Length, out Elf64Image image));
        return Microhv.Hypervisor.AbiRom.FindRequest(in image, out va, out major, out minor);
    }

    private static XenImage Guest() => new XenImage().Load(0x20_0000, 0xFFFF_FFFF_8020_0000, new byte[0x1000], 0x1000);

    [Fact]
    public void ReadsTheAddressAndVersion()
    {
        var x = Guest()
            .RawNote("Microhv", 1, BitConverter.GetBytes(0xFFFF_FFFF_FF80_0000UL))
            .RawNote("Microhv", 2, new byte[] { 1, 0, 0, 0 });
        Assert.True(Find(x, out ulong va, out ushort major, out ushort minor));
        Assert.Equal(0xFFFF_FFFF_FF80_0000UL, va);
        Assert.Equal((1, 0), (major, minor));
        Assert.True(Microhv.Hypervisor.AbiRom.IsCompatible(major, minor));
        Assert.False(Microhv.Hypervisor.AbiRom.IsCompatible(1, 1));   // wants a newer minor
        Assert.False(Microhv.Hypervisor.AbiRom.IsCompatible(2, 0));
    }

    [Fact]
    public void NoNoteOrAnotherOwnersNoteIsNoRequest()
    {
        Assert.False(Find(Guest(), out _, out _, out _));
        Assert.False(Find(Guest().RawNote("Xen", 1, BitConverter.GetBytes(0xFFFF_FFFF_FFC0_0000UL)), out _, out _, out _));
        Assert.False(Find(Guest().RawNote("Microhv", 1, new byte[4]), out _, out _, out _));   // wrong size
    }
}
