using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Public;
using Microhv.Tests.Qemu;
using Xunit;

namespace Microhv.Tests.Hypervisor.Services;

/// <summary>The one hypercall table: its rows against Xen's numbers, the dispatcher and docs/hypercalls.md.</summary>
public unsafe class HypercallTableTests
{
    [Fact]
    public void Every_row_is_at_its_number_and_Xen_names_are_unique()
    {
        var rows = HypercallTable.Entries.Where(e => e.Name != null).ToList();
        Assert.Equal(42, rows.Count);                         // Xen 4.17: 0..42 except the unused 11
        foreach (var e in rows) Assert.Same(e.Name, HypercallTable.Entries[e.Number].Name);
        Assert.Equal(rows.Count, rows.Select(e => e.Name).Distinct().Count());
        Assert.Equal("xen_version", HypercallTable.NameOf(Xen.__HYPERVISOR_xen_version));
        Assert.Equal("hypfs_op", HypercallTable.NameOf(Xen.__HYPERVISOR_hypfs_op));
        Assert.Null(HypercallTable.NameOf(11));
        Assert.Null(HypercallTable.NameOf(63));
        Assert.Null(HypercallTable.NameOf(1000));
    }

    [Fact]
    public void Docs_list_every_row_with_its_number()
    {
        string root = KernelImages.RepoRoot;
        string[] lines = File.ReadAllLines(Path.Combine(root, "docs", "hypercalls.md"));
        var listed = new System.Collections.Generic.Dictionary<string, int>();
        foreach (string line in lines)
        {
            Match m = Regex.Match(line, @"^\| ([0-9, ]+) \| ([a-z0-9_, ]+) \|");
            if (!m.Success) continue;
            string[] numbers = m.Groups[1].Value.Split(',').Select(x => x.Trim()).ToArray();
            string[] names = m.Groups[2].Value.Split(',').Select(x => x.Trim()).ToArray();
            Assert.True(numbers.Length == names.Length, "row lists as many numbers as names: " + line);
            for (int i = 0; i < names.Length; i++) listed[names[i]] = int.Parse(numbers[i]);
        }
        foreach (var e in HypercallTable.Entries.Where(e => e.Name != null))
        {
            Assert.True(listed.ContainsKey(e.Name), "docs/hypercalls.md does not list " + e.Name);
            Assert.Equal(e.Number, listed[e.Name]);
        }
        Assert.Equal(HypercallTable.Entries.Count(e => e.Name != null), listed.Count);
    }

    [Fact]
    public void Dispatch_counts_by_number_and_unknown_numbers_get_ENOSYS()
    {
        var g = new ServiceGuest();
        var regs = new TrapFrame { Rax = Xen.__HYPERVISOR_xen_version, Rdi = 0 };
        Hypercalls.Dispatch(g.V, ref regs);
        Assert.Equal(0x0004_0011UL, regs.Rax);
        Assert.Equal(1UL, g.D.HypercallCounts[Xen.__HYPERVISOR_xen_version]);

        regs.Rax = Xen.__HYPERVISOR_xenoprof_op;              // known to Xen, not implemented here
        Hypercalls.Dispatch(g.V, ref regs);
        Assert.Equal(-Errno.ENOSYS, (long)regs.Rax);
        Assert.Equal(1UL, g.D.HypercallCounts[Xen.__HYPERVISOR_xenoprof_op]);

        foreach (ulong nr in new ulong[] { 11, 43, 63, 64, ulong.MaxValue })
        {
            regs.Rax = nr;
            Hypercalls.Dispatch(g.V, ref regs);
            Assert.Equal(-Errno.ENOSYS, (long)regs.Rax);
        }
        Assert.Equal(5UL, g.D.UnknownHypercalls);
        Assert.Equal(0UL, g.D.HypercallCounts[11]);
    }

    [Fact]
    public void Only_multicall_is_refused_inside_a_multicall()
    {
        var refused = HypercallTable.Entries.Where(e => e.Name != null && !e.InMulticall).Select(e => e.Name).OrderBy(x => x);
        Assert.Equal(new[] { "multicall" }, refused);
    }
}
