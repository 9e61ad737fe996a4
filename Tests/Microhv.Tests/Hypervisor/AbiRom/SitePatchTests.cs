using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using Iced.Intel;
using Microhv.Guests.PvOps;
using Xunit;

namespace Microhv.Tests.Hypervisor.AbiRom;

/// <summary>
/// The pvops guest's call-site patching (docs/abi-rom.md §9; Tests/Guests/PvOps/SitePatch.cs, compiled in
/// here): every byte sequence a site can become, decoded with Iced. A patched site must be exactly the
/// intended instructions: the native sequence of each operation in paravirt.inc (no extra instruction: the
/// padding is prefixes), a direct call or jmp to the bound entry, or NOPs.
/// </summary>
public unsafe class SitePatchTests
{
    private const ulong Site = 0xFFFFFFFF80201000, Rom = 0xFFFFFFFFFFC00040;

    private static List<Instruction> Decode(byte[] code, ulong ip)
    {
        var decoder = Decoder.Create(64, code, ip);
        var list = new List<Instruction>();
        while (decoder.IP < ip + (ulong)code.Length)
        {
            Instruction i = decoder.Decode();
            Assert.False(i.IsInvalid, $"invalid instruction at +{i.IP - ip}: {Convert.ToHexString(code)}");
            list.Add(i);
        }
        return list;
    }

    private static string Text(IEnumerable<Instruction> list)
    {
        var formatter = new IntelFormatter();
        return string.Join("; ", list.Select(i => { var o = new StringOutput(); formatter.Format(i, o); return o.ToStringAndReset(); }));
    }

    private delegate bool Patch(byte* code);
    private static byte[] Run(int length, Patch patch, bool expect = true)
    {
        var bytes = new byte[length];
        fixed (byte* p = bytes) Assert.Equal(expect, patch(p));
        return bytes;
    }

    /// <summary>paravirt.inc's operations: name, call number, native bytes (empty: none).</summary>
    public static IEnumerable<object[]> Operations()
    {
        string dir = AppContext.BaseDirectory;
        while (dir != null && !File.Exists(Path.Combine(dir, "Microhv.sln"))) dir = Path.GetDirectoryName(dir);
        Assert.NotNull(dir);
        foreach (string raw in File.ReadAllLines(Path.Combine(dir, "Tests", "Guests", "PvOps", "paravirt.inc")))
        {
            string line = raw.Split(';')[0].Trim();
            if (!line.StartsWith("PVOP ")) continue;
            string[] f = line.Substring(5).Split(',').Select(x => x.Trim()).ToArray();
            byte[] native = f.Skip(2).Select(x => byte.Parse(x.Substring(2), NumberStyles.HexNumber)).ToArray();
            yield return new object[] { f[0], int.Parse(f[1]), native };
        }
    }

    [Fact]
    public void ParavirtIncListsTheRomsCalls()
    {
        var ops = Operations().Select(o => ((string)o[0], (int)o[1])).ToList();
        Assert.Equal(17, ops.Count);
        Assert.Contains(("irq_disable", 30), ops);
        Assert.Contains(("irq_enable", 29), ops);
        Assert.Contains(("write_cr3", 17), ops);
        Assert.Equal(ops.Count, ops.Select(o => o.Item2).Distinct().Count());
    }

    /// <summary>Natively a call site is the native sequence and nothing else: the same instructions as the
    /// native bytes alone, the spare bytes as DS prefixes on the first (ignored in 64-bit mode).</summary>
    [Theory]
    [MemberData(nameof(Operations))]
    public void NativeCallSiteIsExactlyTheNativeInstructions(string name, int call, byte[] native)
    {
        if (native.Length == 0) { Run(5, p => { fixed (byte* n = native) return SitePatch.Native(p, 5, false, n, 0); }, expect: false); return; }
        byte[] site = Run(5, p => { fixed (byte* n = native) return SitePatch.Native(p, 5, false, n, native.Length); });
        List<Instruction> patched = Decode(site, Site), alone = Decode(native, Site);
        Assert.Equal(alone.Count, patched.Count);
        Assert.Equal(alone.Select(i => i.Mnemonic), patched.Select(i => i.Mnemonic));
        Assert.Equal(Text(alone), Text(patched));
        Assert.Equal(Site + 5, patched[^1].NextIP);
        if (native.Length < 5) Assert.Equal(Register.DS, patched[0].SegmentPrefix);
        Assert.DoesNotContain(patched, i => i.Mnemonic == Mnemonic.Nop);
        _ = name; _ = call;
    }

    /// <summary>A tail site (the compiler's `jmp stub`) becomes the native sequence and `ret`, when it fits.</summary>
    [Theory]
    [MemberData(nameof(Operations))]
    public void NativeTailSiteReturns(string name, int call, byte[] native)
    {
        bool fits = native.Length > 0 && native.Length + 1 <= 5;
        byte[] site = Run(5, p => { fixed (byte* n = native) return SitePatch.Native(p, 5, true, n, native.Length); }, fits);
        if (!fits) return;
        List<Instruction> patched = Decode(site, Site);
        Assert.Equal(Decode(native, Site).Select(i => i.Mnemonic).Append(Mnemonic.Ret), patched.Select(i => i.Mnemonic));
        _ = name; _ = call;
    }

    [Fact]
    public void CliAndStiSitesAreOneInstructionEach()
    {
        byte[] cli = Run(5, p => { byte b = 0xFA; return SitePatch.Native(p, 5, false, &b, 1); });
        byte[] sti = Run(5, p => { byte b = 0xFB; return SitePatch.Native(p, 5, false, &b, 1); });
        Assert.Equal("3E3E3E3EFA", Convert.ToHexString(cli));
        Assert.Equal(new[] { Mnemonic.Cli }, Decode(cli, Site).Select(i => i.Mnemonic));
        Assert.Equal(new[] { Mnemonic.Sti }, Decode(sti, Site).Select(i => i.Mnemonic));
    }

    [Fact]
    public void CallSiteCallsTheRomEntryDirectly()
    {
        byte[] site = Run(5, p => SitePatch.Branch(p, 5, false, Site, Rom));
        Instruction i = Assert.Single(Decode(site, Site));
        Assert.Equal(Mnemonic.Call, i.Mnemonic);
        Assert.Equal(OpKind.NearBranch64, i.Op0Kind);
        Assert.Equal(Rom, i.NearBranch64);
        fixed (byte* p = site) Assert.True(SitePatch.IsBranchTo(p, 5, false, Site, Rom));
    }

    [Fact]
    public void TailSiteJumpsToTheEntry()
    {
        byte[] site = Run(5, p => SitePatch.Branch(p, 5, true, Site, Rom));
        Instruction i = Assert.Single(Decode(site, Site));
        Assert.Equal(Mnemonic.Jmp, i.Mnemonic);
        Assert.Equal(Rom, i.NearBranch64);
        fixed (byte* p = site) Assert.False(SitePatch.IsBranchTo(p, 5, false, Site, Rom));   // a jmp is not a call site
    }

    [Fact]
    public void LongerSiteIsPaddedWithOneNop()
    {
        byte[] site = Run(9, p => SitePatch.Branch(p, 9, false, Site, Rom));
        Assert.Equal(new[] { Mnemonic.Call, Mnemonic.Nop }, Decode(site, Site).Select(i => i.Mnemonic));
    }

    [Fact]
    public void BranchOutOfRel32ReachIsRefused()
    {
        Run(5, p => SitePatch.Branch(p, 5, false, 0xFFFFFFFF80201000, 0xFFFF880000000000), expect: false);
        Run(5, p => SitePatch.Branch(p, 5, false, Site, 0), expect: false);
        // The ROM's default base is in reach of an image linked at 0xFFFFFFFF80000000 (2 GiB below 2^64).
        Run(5, p => SitePatch.Branch(p, 5, false, 0xFFFFFFFF80000000, 0xFFFFFFFFFFC00000 + 0x3000));
    }

    [Fact]
    public void NopSiteIsOneNop()
    {
        byte[] site = Run(5, p => { SitePatch.Nop(p, 5, false); return true; });
        Instruction i = Assert.Single(Decode(site, Site));
        Assert.Equal(Mnemonic.Nop, i.Mnemonic);
        byte[] tail = Run(5, p => { SitePatch.Nop(p, 5, true); return true; });
        Assert.Equal(new[] { Mnemonic.Ret, Mnemonic.Nop }, Decode(tail, Site).Select(x => x.Mnemonic));
    }

    [Theory]
    [InlineData(1)] [InlineData(2)] [InlineData(3)] [InlineData(4)] [InlineData(5)] [InlineData(6)]
    [InlineData(7)] [InlineData(8)] [InlineData(9)] [InlineData(10)] [InlineData(17)] [InlineData(18)]
    public void NopsAreAsFewInstructionsAsPossible(int length)
    {
        byte[] code = Run(length, p => { SitePatch.Nops(p, length); return true; });
        List<Instruction> list = Decode(code, Site);
        Assert.All(list, i => Assert.Equal(Mnemonic.Nop, i.Mnemonic));
        Assert.Equal((length + 8) / 9, list.Count);
    }

    [Fact]
    public void IsBranchToChecksOpcodeAndTarget()
    {
        byte[] site = Run(5, p => SitePatch.Branch(p, 5, false, Site, Site + 0x40));
        fixed (byte* p = site)
        {
            Assert.True(SitePatch.IsBranchTo(p, 5, false, Site, Site + 0x40));
            Assert.False(SitePatch.IsBranchTo(p, 5, false, Site, Site + 0x48));
            Assert.False(SitePatch.IsBranchTo(p, 5, false, Site + 1, Site + 0x40));
            Assert.False(SitePatch.IsBranchTo(p, 6, false, Site, Site + 0x40));
        }
    }
}
