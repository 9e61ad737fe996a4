namespace Microhv.HAL;

/// <summary>
/// Byte-addressed access to physical memory. The kernel implements it over its direct map;
/// hosted tests implement it over a byte array. Everything in the HAL and the hypervisor that
/// reads or writes guest or page-table memory goes through this, so it runs in both places.
/// </summary>
public abstract class PhysicalMemory
{
    public abstract byte Read8(ulong address);
    public abstract ushort Read16(ulong address);
    public abstract uint Read32(ulong address);
    public abstract ulong Read64(ulong address);
    public abstract void Write8(ulong address, byte value);
    public abstract void Write16(ulong address, ushort value);
    public abstract void Write32(ulong address, uint value);
    public abstract void Write64(ulong address, ulong value);

    /// <summary>True when [address, address+length) lies in memory this object can reach.</summary>
    public abstract bool Contains(ulong address, ulong length);

    public virtual void Fill(ulong address, byte value, ulong length)
    {
        for (ulong i = 0; i < length; i++) Write8(address + i, value);
    }

    /// <summary>Copies <paramref name="length"/> bytes at <paramref name="address"/> into <paramref name="buffer"/>.</summary>
    public virtual void Read(ulong address, byte[] buffer, int offset, int length)
    {
        for (int i = 0; i < length; i++) buffer[offset + i] = Read8(address + (ulong)i);
    }

    public virtual void Copy(ulong destination, ulong source, ulong length)
    {
        for (ulong i = 0; i < length; i++) Write8(destination + i, Read8(source + i));
    }
}
