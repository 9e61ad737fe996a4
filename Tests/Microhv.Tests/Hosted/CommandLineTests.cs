using System.Collections.Generic;
using System.Text;
using Microhv.HAL;
using Xunit;

namespace Microhv.Tests.Hosted;

public class CommandLineTests
{
    private static CommandLine Line(string s)
    {
        byte[] b = Encoding.ASCII.GetBytes(s);
        return new CommandLine(b, b.Length);
    }

    private static string Slice(CommandLine c, int start, int length) => Encoding.ASCII.GetString(c.Bytes, start, length);

    private static List<string> Words(CommandLine c)
    {
        var words = new List<string>();
        int pos = 0;
        while (c.NextWord(ref pos, out int s, out int l)) words.Add(Slice(c, s, l));
        return words;
    }

    [Fact]
    public void SplitsOnRunsOfWhitespace()
    {
        Assert.Equal(new[] { "a=1", "flag", "b=", "c=x=y" }, Words(Line("  a=1 \t flag   b= c=x=y  ")));
        Assert.Empty(Words(Line("")));
        Assert.Empty(Words(Line("   \t ")));
    }

    [Fact]
    public void LengthAndNulBoundTheLine()
    {
        byte[] b = Encoding.ASCII.GetBytes("a=1 b=2\0c=3");
        Assert.Equal(new[] { "a=1", "b=2" }, Words(new CommandLine(b, b.Length)));
        Assert.Equal(new[] { "a=1", "b" }, Words(new CommandLine(b, 5)));
        Assert.Empty(Words(new CommandLine(b, -3)));
        Assert.Equal(new[] { "a=1", "b=2" }, Words(new CommandLine(b, 1000)));
    }

    [Fact]
    public void TryGetValueFindsTheLastKeyValue()
    {
        var c = Line("microhv.log=info console=ttyS0 microhv.log=debug microhv.logx=1 microhv.lo=2 empty=");
        Assert.True(c.TryGetValue("microhv.log", out int s, out int l));
        Assert.Equal("debug", Slice(c, s, l));
        Assert.True(c.TryGetValue("console", out s, out l));
        Assert.Equal("ttyS0", Slice(c, s, l));
        Assert.True(c.TryGetValue("empty", out s, out l));
        Assert.Equal(0, l);
        Assert.False(c.TryGetValue("microhv", out _, out _));
        Assert.False(c.TryGetValue("missing", out _, out _));
        Assert.True(c.ValueIs("microhv.logx", "1"));
        Assert.False(c.ValueIs("microhv.log", "info"));
    }

    [Fact]
    public void FlagsAreBareWords()
    {
        var c = Line("nosmp debug=1 quiet");
        Assert.True(c.HasFlag("nosmp"));
        Assert.True(c.HasFlag("quiet"));
        Assert.False(c.HasFlag("debug"));
        Assert.False(c.HasFlag("nosm"));
        Assert.False(c.TryGetValue("nosmp", out _, out _));
    }

    [Fact]
    public void CopyFromPhysicalMemory()
    {
        var mem = new SimulatedMemory(0x8000, 64);
        byte[] text = Encoding.ASCII.GetBytes("microhv.selftest=divide\0garbage");
        text.CopyTo(mem.Bytes, 8);
        var buffer = new byte[128];
        int n = CommandLine.CopyFrom(mem, 0x8008, (ulong)text.Length, buffer, out bool truncated);
        Assert.Equal(23, n);
        Assert.False(truncated);
        Assert.Equal("microhv.selftest=divide", Encoding.ASCII.GetString(buffer, 0, n));

        var small = new byte[8];
        n = CommandLine.CopyFrom(mem, 0x8008, (ulong)text.Length, small, out truncated);
        Assert.Equal(8, n);
        Assert.True(truncated);
        Assert.Equal(0, CommandLine.CopyFrom(mem, 0x8030, 0x100, buffer, out _)); // outside memory: nothing read
        Assert.Empty(mem.Faults);
    }

    [Theory]
    [InlineData("", LogLevel.Info, SelfTest.None)]
    [InlineData("microhv.log=quiet", LogLevel.Quiet, SelfTest.None)]
    [InlineData("microhv.log=info", LogLevel.Info, SelfTest.None)]
    [InlineData("microhv.log=debug microhv.selftest=pagefault", LogLevel.Debug, SelfTest.PageFault)]
    [InlineData("microhv.selftest=divide", LogLevel.Info, SelfTest.Divide)]
    [InlineData("microhv.selftest=timer microhv.log=quiet", LogLevel.Quiet, SelfTest.Timer)]
    [InlineData("microhv.selftest=timer microhv.selftest=none", LogLevel.Info, SelfTest.None)]
    [InlineData("microhv.selftest=fpu", LogLevel.Info, SelfTest.Fpu)]
    public void KnownOptions(string line, LogLevel log, SelfTest selfTest)
    {
        Assert.Equal(0, KernelOptions.Parse(Line(line), out KernelOptions o));
        Assert.Equal(log, o.Log);
        Assert.Equal(selfTest, o.SelfTest);
        Assert.Equal(ExitDevice.None, o.Exit);
    }

    [Fact]
    public void ExitDeviceOption()
    {
        Assert.Equal(0, KernelOptions.Parse(Line("microhv.exit=isa-debug-exit"), out KernelOptions o));
        Assert.Equal(ExitDevice.IsaDebugExit, o.Exit);
        Assert.Equal(0, KernelOptions.Parse(Line("microhv.exit=isa-debug-exit microhv.exit=none"), out o));
        Assert.Equal(ExitDevice.None, o.Exit);
        Assert.Equal(1, KernelOptions.Parse(Line("microhv.exit=port80"), out o));
        Assert.Equal(ExitDevice.None, o.Exit);
    }

    [Theory]
    [InlineData("", ConsoleOutputs.Com1 | ConsoleOutputs.Vga)]
    [InlineData("console=com1,vga", ConsoleOutputs.Com1 | ConsoleOutputs.Vga)]
    [InlineData("console=vga,com1", ConsoleOutputs.Com1 | ConsoleOutputs.Vga)]
    [InlineData("console=com1", ConsoleOutputs.Com1)]
    [InlineData("console=vga", ConsoleOutputs.Vga)]
    [InlineData("console=vga console=com1", ConsoleOutputs.Com1)]
    public void ConsoleOption(string line, ConsoleOutputs expected)
    {
        Assert.Equal(0, KernelOptions.Parse(Line(line), out KernelOptions o));
        Assert.Equal(expected, o.Console);
    }

    [Theory]
    [InlineData("console=")]
    [InlineData("console")]
    [InlineData("console=com2")]
    [InlineData("console=com1,")]
    [InlineData("console=,vga")]
    [InlineData("console=com1,,vga")]
    [InlineData("console=VGA")]
    [InlineData("console=com1,hvc0")]
    public void BadConsoleValuesAreReportedAndLeaveTheDefault(string word)
    {
        var c = Line("console=com1 " + word);
        Assert.Equal(1, KernelOptions.Parse(c, out KernelOptions o));
        Assert.Equal(ConsoleOutputs.Com1, o.Console);
        int pos = 0;
        Assert.True(KernelOptions.NextProblem(c, ref pos, out int s, out int l, out OptionStatus st));
        Assert.Equal((word, OptionStatus.BadValue), (Slice(c, s, l), st));
    }

    [Fact]
    public void MaxCpusOption()
    {
        Assert.Equal(0, KernelOptions.Parse(Line(""), out KernelOptions o));
        Assert.Equal(0, o.MaxCpus);
        Assert.Equal(0, KernelOptions.Parse(Line("microhv.maxcpus=2"), out o));
        Assert.Equal(2, o.MaxCpus);
        Assert.Equal(0, KernelOptions.Parse(Line("microhv.maxcpus=4096 microhv.maxcpus=1"), out o));
        Assert.Equal(1, o.MaxCpus);
        foreach (var bad in new[] { "microhv.maxcpus=0", "microhv.maxcpus=-1", "microhv.maxcpus=4097", "microhv.maxcpus=two",
                                    "microhv.maxcpus=", "microhv.maxcpus", "microhv.maxcpus=1234567890", "microhv.maxcpus=2x" })
        {
            Assert.Equal(1, KernelOptions.Parse(Line("microhv.maxcpus=3 " + bad), out o));
            Assert.Equal(3, o.MaxCpus);
        }
    }

    [Fact]
    public void UnknownWordsAndBadValuesAreReported()
    {
        var c = Line("microhv.log=debug foo microhv.selftest=explode bar=1 microhv.log microhv.LOG=quiet microhv.selftest=timer");
        Assert.Equal(5, KernelOptions.Parse(c, out KernelOptions o));
        // Good words still apply; bad ones leave the value alone.
        Assert.Equal(LogLevel.Debug, o.Log);
        Assert.Equal(SelfTest.Timer, o.SelfTest);

        var problems = new List<(string, OptionStatus)>();
        int pos = 0;
        while (KernelOptions.NextProblem(c, ref pos, out int s, out int l, out OptionStatus st)) problems.Add((Slice(c, s, l), st));
        Assert.Equal(("foo", OptionStatus.UnknownOption), problems[0]);
        Assert.Equal(("microhv.selftest=explode", OptionStatus.BadValue), problems[1]);
        Assert.Equal(("bar=1", OptionStatus.UnknownOption), problems[2]);
        Assert.Equal(("microhv.log", OptionStatus.BadValue), problems[3]);
        Assert.Equal(("microhv.LOG=quiet", OptionStatus.UnknownOption), problems[4]);
        Assert.Equal(5, problems.Count);
    }

    [Fact]
    public void ApplyOnSingleWords()
    {
        var c = Line("microhv.log=DEBUG microhv.log=debugx microhv.log=");
        KernelOptions o = KernelOptions.Defaults;
        int pos = 0;
        while (c.NextWord(ref pos, out int s, out int l)) Assert.Equal(OptionStatus.BadValue, o.Apply(c, s, l));
        Assert.Equal(LogLevel.Info, o.Log);
    }
}
