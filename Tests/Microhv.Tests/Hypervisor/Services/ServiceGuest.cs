using System.Text;
using Microhv.HAL;
using Microhv.Hypervisor;
using Xunit;

namespace Microhv.Tests.Hypervisor.Services;

/// <summary>
/// A TestMachine with one guest whose page tables map <see cref="Pages"/> writable user pages at
/// <see cref="Base"/> (its pseudo-physical frames 0..Pages-1), plus one read-only page after them, so
/// hypercall arguments can be placed in guest memory and read back.
/// </summary>
public sealed class ServiceGuest
{
    public const ulong Base = 0x40_0000;
    public const int Pages = 8;
    public const ulong ReadOnlyPage = Base + Pages * 4096UL;
    public const ulong Unmapped = 0x7000_0000;

    public readonly TestMachine Tm;
    public readonly Domain D;
    public readonly ulong[] Mfns = new ulong[Pages];

    private sealed class OwnedFrames : FrameSource
    {
        private readonly TestMachine _tm; private readonly ushort _owner;
        public OwnedFrames(TestMachine tm, ushort owner) { _tm = tm; _owner = owner; }
        public override bool TryAllocateFrame(out ulong pa) { pa = _tm.NewFrame(_owner) * 4096; return true; }
    }

    /// <summary><paramref name="machine"/>: another guest's machine, for two domains side by side.</summary>
    public ServiceGuest(ushort id = 1, bool initial = false, TestMachine machine = null)
    {
        Tm = machine ?? new TestMachine();
        D = Tm.AddDomain(id, initial);
        var frames = new OwnedFrames(Tm, id);
        Assert.Equal(MapStatus.Ok, PageTable.Create(Tm.Memory, frames, out PageTable pt));
        ulong rw = PageTableEntry.Writable | PageTableEntry.User;
        D.P2m = new ulong[Pages];
        for (int i = 0; i < Pages; i++)
        {
            Mfns[i] = Tm.NewFrame(id);
            D.P2m[i] = Mfns[i];
            Assert.Equal(MapStatus.Ok, pt.Map(Base + (ulong)i * 4096, Mfns[i] * 4096, rw, PageSize.Size4K));
        }
        Assert.Equal(MapStatus.Ok, pt.Map(ReadOnlyPage, Tm.NewFrame(id) * 4096, PageTableEntry.User, PageSize.Size4K));
        D.NrPages = Pages;
        D.MaxPages = Pages;
        D.Vcpu.GuestTable = pt.Root;
    }

    public Vcpu V => D.Vcpu;
    public string ConsoleText => Encoding.ASCII.GetString(Tm.Host.Console.ToArray());

    private ulong Pa(ulong va)
    {
        Assert.True(PageTable.Translate(Tm.Memory, D.Vcpu.GuestTable, va, out ulong pa, out _, out _));
        return pa;
    }

    public void Write(ulong va, byte[] bytes) { for (int i = 0; i < bytes.Length; i++) Tm.Memory.Write8(Pa(va + (ulong)i), bytes[i]); }
    public void Write(ulong va, string ascii) => Write(va, Encoding.ASCII.GetBytes(ascii));
    public void W16(ulong va, ushort x) { Write(va, new[] { (byte)x, (byte)(x >> 8) }); }
    public void W32(ulong va, uint x) { for (int i = 0; i < 4; i++) Tm.Memory.Write8(Pa(va + (ulong)i), (byte)(x >> (8 * i))); }
    public void W64(ulong va, ulong x) { for (int i = 0; i < 8; i++) Tm.Memory.Write8(Pa(va + (ulong)i), (byte)(x >> (8 * i))); }
    public byte R8(ulong va) => Tm.Memory.Read8(Pa(va));
    public ushort R16(ulong va) => (ushort)(R8(va) | R8(va + 1) << 8);
    public uint R32(ulong va) { uint x = 0; for (int i = 0; i < 4; i++) x |= (uint)R8(va + (ulong)i) << (8 * i); return x; }
    public ulong R64(ulong va) { ulong x = 0; for (int i = 0; i < 8; i++) x |= (ulong)R8(va + (ulong)i) << (8 * i); return x; }
    public string RString(ulong va, int max)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < max; i++) { byte b = R8(va + (ulong)i); if (b == 0) break; sb.Append((char)b); }
        return sb.ToString();
    }
}
