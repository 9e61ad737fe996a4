using System.Text;
using Microhv.HAL;
using Xunit;

namespace Microhv.Tests.Hosted;

/// <summary>`cpus=` on a module line: numbers and ranges separated by commas, as xl.cfg writes them.</summary>
public class CpuListTests
{
    private static (bool Ok, ulong Mask) Parse(string s, int skip = 0)
    {
        byte[] b = Encoding.ASCII.GetBytes("xx" + s + "yy");              // the list sits inside a longer line
        bool ok = CpuList.TryParse(b, 2 + skip, s.Length - skip, out ulong mask);
        return (ok, mask);
    }

    [Theory]
    [InlineData("0", 0x1UL)]
    [InlineData("2", 0x4UL)]
    [InlineData("0-1", 0x3UL)]
    [InlineData("0,2-3", 0xDUL)]
    [InlineData("3,1", 0xAUL)]
    [InlineData("1-1", 0x2UL)]
    [InlineData("63", 0x8000_0000_0000_0000UL)]
    [InlineData("0-63", ulong.MaxValue)]
    public void A_list_names_its_processors(string list, ulong mask)
        => Assert.Equal((true, mask), Parse(list));

    [Theory]
    [InlineData("")]
    [InlineData("64")]
    [InlineData("1-0")]
    [InlineData("0-")]
    [InlineData("-1")]
    [InlineData("0,")]
    [InlineData(",0")]
    [InlineData("0;1")]
    [InlineData("a")]
    [InlineData("0-99999999999")]
    public void A_bad_list_is_refused(string list)
        => Assert.False(Parse(list).Ok);
}
