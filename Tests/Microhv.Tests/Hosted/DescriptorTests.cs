using System;
using System.Runtime.InteropServices;
using Microhv.HAL;
using Xunit;

namespace Microhv.Tests.Hosted;

/// <summary>Expected encodings from Intel SDM Vol. 3A 3.4.5 (Figure 3-8), 8.2.3 (Figure 8-4), 8.7 (Figure 8-11), 6.14.1 (Figure 6-8).</summary>
public class DescriptorTests
{
    [Fact]
    public void FlatSegmentsMatchKnownGoodValues()
    {
        Assert.Equal(0x00AF_9A00_0000_FFFFUL, SegmentDescriptor.KernelCode64);
        Assert.Equal(0x00CF_9200_0000_FFFFUL, SegmentDescriptor.KernelData);
        Assert.Equal(0x00AF_FA00_0000_FFFFUL, SegmentDescriptor.UserCode64);
        Assert.Equal(0x00CF_F200_0000_FFFFUL, SegmentDescriptor.UserData);
        Assert.Equal(0UL, SegmentDescriptor.Null);
    }

    [Fact]
    public void EncodePlacesEveryField()
    {
        // base 0x12345678, limit 0xABCDE, type 0xB, S, DPL 2, P, AVL, L=0, D/B, G
        ulong d = SegmentDescriptor.Encode(0x1234_5678, 0xA_BCDE, 0xB, true, 2, true, true, false, true, true);
        // bytes: limit lo BCDE, base lo 345678, access P|DPL2|S|type B = 1 10 1 1011 = 0xDB, flags G D 0 AVL = 1101 = 0xD, limit hi A, base hi 12
        Assert.Equal(0x12DA_DB34_5678_BCDEUL, d);
        Assert.Equal(0x1234_5678u, SegmentDescriptor.Base(d));
        Assert.Equal(0xA_BCDEu, SegmentDescriptor.Limit(d));
        Assert.Equal(0xBu, SegmentDescriptor.Type(d));
        Assert.True(SegmentDescriptor.S(d));
        Assert.Equal(2, SegmentDescriptor.Dpl(d));
        Assert.True(SegmentDescriptor.Present(d));
        Assert.True(SegmentDescriptor.Available(d));
        Assert.False(SegmentDescriptor.LongMode(d));
        Assert.True(SegmentDescriptor.DefaultBig(d));
        Assert.True(SegmentDescriptor.Granularity(d));

        ulong code = SegmentDescriptor.KernelCode64;
        Assert.True(SegmentDescriptor.LongMode(code));
        Assert.False(SegmentDescriptor.DefaultBig(code));
        Assert.Equal(0, SegmentDescriptor.Dpl(code));
        Assert.Equal(3, SegmentDescriptor.Dpl(SegmentDescriptor.UserData));
    }

    [Fact]
    public void Selectors()
    {
        Assert.Equal((ushort)0x08, SegmentDescriptor.Selector(1, false, 0));
        Assert.Equal((ushort)0x23, SegmentDescriptor.Selector(4, false, 3));
        Assert.Equal((ushort)0x2C, SegmentDescriptor.Selector(5, true, 0));
    }

    [Fact]
    public void TssDescriptorSplitsA64BitBase()
    {
        SystemSegmentDescriptor.Tss(0xFFFF_8000_1234_5678, 104, out ulong low, out ulong high);
        // limit 0x67, base 23:0 345678, access P=1 DPL0 S=0 type 9 = 0x89, flags/limit hi 0, base 31:24 0x12
        Assert.Equal(0x1200_8934_5678_0067UL, low);
        Assert.Equal(0x0000_0000_FFFF_8000UL, high);
        Assert.Equal(0xFFFF_8000_1234_5678UL, SystemSegmentDescriptor.Base(low, high));
        Assert.Equal(103u, SystemSegmentDescriptor.Limit(low));
        Assert.Equal(SystemSegmentDescriptor.TypeTssAvailable, SystemSegmentDescriptor.Type(low));
        Assert.False(SystemSegmentDescriptor.S(low));
        Assert.True(SystemSegmentDescriptor.Present(low));
        Assert.Equal(0xBu, SystemSegmentDescriptor.TypeTssBusy);

        SystemSegmentDescriptor.Encode(0, 0xF_FFFF, SystemSegmentDescriptor.TypeLdt, 3, false, false, true, out low, out high);
        Assert.Equal(0x008F_6200_0000_FFFFUL, low);
        Assert.Equal(0UL, high);
        Assert.Equal(3, SystemSegmentDescriptor.Dpl(low));
        Assert.True(SystemSegmentDescriptor.Granularity(low));
    }

    [Fact]
    public void InterruptGateByteLayout()
    {
        InterruptGate.Interrupt(0x1234_5678_9ABC_DEF0, 0x08, 1, out ulong low, out ulong high);
        byte[] bytes = new byte[16];
        BitConverter.TryWriteBytes(bytes.AsSpan(0, 8), low);
        BitConverter.TryWriteBytes(bytes.AsSpan(8, 8), high);
        Assert.Equal(new byte[]
        {
            0xF0, 0xDE,             // offset 15:0
            0x08, 0x00,             // selector
            0x01,                   // IST=1, bits 7:3 zero
            0x8E,                   // P=1, DPL=0, 0, type 1110b
            0xBC, 0x9A,             // offset 31:16
            0x78, 0x56, 0x34, 0x12, // offset 63:32
            0x00, 0x00, 0x00, 0x00, // reserved
        }, bytes);

        Assert.Equal(0x1234_5678_9ABC_DEF0UL, InterruptGate.Offset(low, high));
        Assert.Equal((ushort)8, InterruptGate.Selector(low));
        Assert.Equal(1, InterruptGate.Ist(low));
        Assert.Equal(0xEu, InterruptGate.Type(low));
        Assert.Equal(0, InterruptGate.Dpl(low));
        Assert.True(InterruptGate.Present(low));
    }

    [Fact]
    public void TrapGateWithDpl3()
    {
        InterruptGate.Trap(0xFFFF_FFFF_8010_0000, 0x08, 0, 3, out ulong low, out ulong high);
        Assert.Equal(0x8010_EF00_0008_0000UL, low); // P=1 DPL=3 type F => 0xEF
        Assert.Equal(0xFFFF_FFFFUL, high);
        Assert.Equal(3, InterruptGate.Dpl(low));
        Assert.Equal(InterruptGate.TypeTrap, InterruptGate.Type(low));
        InterruptGate.Encode(0x1000, 0x10, 7, InterruptGate.TypeInterrupt, 0, false, out low, out _);
        Assert.False(InterruptGate.Present(low));
        Assert.Equal(7, InterruptGate.Ist(low));
    }

    [Fact]
    public void TssLayoutMatchesTheSdm()
    {
        Assert.Equal(104, Marshal.SizeOf<TaskStateSegment>());
        unsafe { Assert.Equal(104, sizeof(TaskStateSegment)); }
        Assert.Equal(4, (int)Marshal.OffsetOf<TaskStateSegment>(nameof(TaskStateSegment.Rsp0)));
        Assert.Equal(12, (int)Marshal.OffsetOf<TaskStateSegment>(nameof(TaskStateSegment.Rsp1)));
        Assert.Equal(20, (int)Marshal.OffsetOf<TaskStateSegment>(nameof(TaskStateSegment.Rsp2)));
        Assert.Equal(36, (int)Marshal.OffsetOf<TaskStateSegment>(nameof(TaskStateSegment.Ist1)));
        Assert.Equal(84, (int)Marshal.OffsetOf<TaskStateSegment>(nameof(TaskStateSegment.Ist7)));
        Assert.Equal(102, (int)Marshal.OffsetOf<TaskStateSegment>(nameof(TaskStateSegment.IoMapBase)));
        Assert.Equal(36, TaskStateSegment.IstOffset(1));
        Assert.Equal(84, TaskStateSegment.IstOffset(7));
        Assert.Equal(20, TaskStateSegment.RspOffset(2));
    }

    [Fact]
    public unsafe void TssWriteToProducesTheSameBytesAsTheStruct()
    {
        var tss = new TaskStateSegment { Rsp0 = 0x1111_2222_3333_4444, Rsp2 = 0x5555, IoMapBase = 104 };
        Assert.True(tss.SetIst(1, 0xAAAA_0000_0000_0001));
        Assert.True(tss.SetIst(7, 0xBBBB_0000_0000_0007));
        Assert.False(tss.SetIst(0, 1));
        Assert.False(tss.SetIst(8, 1));

        var mem = new SimulatedMemory(0x9000, 256);
        mem.Fill(0x9000, 0xEE, 256);
        tss.WriteTo(mem, 0x9010);
        byte[] expected = new byte[104];
        // Hand-placed per Figure 8-11.
        BitConverter.TryWriteBytes(expected.AsSpan(4), 0x1111_2222_3333_4444UL);
        BitConverter.TryWriteBytes(expected.AsSpan(20), 0x5555UL);
        BitConverter.TryWriteBytes(expected.AsSpan(36), 0xAAAA_0000_0000_0001UL);
        BitConverter.TryWriteBytes(expected.AsSpan(84), 0xBBBB_0000_0000_0007UL);
        BitConverter.TryWriteBytes(expected.AsSpan(102), (ushort)104);
        Assert.Equal(expected, mem.Bytes.AsSpan(0x10, 104).ToArray());
        Assert.Equal(0xEE, mem.Bytes[0x10 + 104]); // nothing written past the TSS
        Assert.Equal(0xEE, mem.Bytes[0x0F]);

        // The struct's own in-memory image is the same.
        byte[] raw = new byte[104];
        fixed (byte* p = raw) *(TaskStateSegment*)p = tss;
        Assert.Equal(expected, raw);

        TaskStateSegment back = TaskStateSegment.ReadFrom(mem, 0x9010);
        Assert.Equal(tss.Rsp0, back.Rsp0);
        Assert.Equal(tss.GetIst(7), back.GetIst(7));
        Assert.Equal((ushort)104, back.IoMapBase);
    }
}
