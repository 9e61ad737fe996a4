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

    /// <summary>
    /// Compares the 32-bit word at <paramref name="address"/> with <paramref name="comparand"/> and, if equal,
    /// stores <paramref name="value"/>; returns the value found. For words a guest shares with the hypervisor
    /// (FIFO event words, control blocks) that its vCPUs change on other processors at the same time: the kernel
    /// does it with LOCK CMPXCHG; the default, for single-threaded hosted memory, reads and writes.
    /// </summary>
    public virtual uint CompareExchange32(ulong address, uint value, uint comparand)
    {
        uint found = Read32(address);
        if (found == comparand) Write32(address, value);
        return found;
    }

    /// <summary>Atomically sets <paramref name="bits"/> in the 32-bit word; returns the word before (Xen's test_and_set_bit).</summary>
    public virtual uint Or32(ulong address, uint bits) => Update32(address, bits, 0);

    /// <summary>Atomically clears <paramref name="bits"/> in the 32-bit word; returns the word before (Xen's test_and_clear_bit).</summary>
    public virtual uint Clear32(ulong address, uint bits) => Update32(address, 0, bits);

    /// <summary>The 64-bit <see cref="CompareExchange32"/> (2-level event words and selectors in shared_info).</summary>
    public virtual ulong CompareExchange64(ulong address, ulong value, ulong comparand)
    {
        ulong found = Read64(address);
        if (found == comparand) Write64(address, value);
        return found;
    }

    /// <summary>Atomically sets bit <paramref name="bit"/> (0-63) of the 64-bit word; returns whether it was set
    /// before (Xen's test_and_set_bit).</summary>
    public virtual bool TestAndSetBit64(ulong address, int bit) => (Or64(address, 1UL << bit) & (1UL << bit)) != 0;

    /// <summary>Atomically sets <paramref name="bits"/> in the 64-bit word; returns the word before.</summary>
    public virtual ulong Or64(ulong address, ulong bits) => Update64(address, bits, 0);

    /// <summary>Atomically clears <paramref name="bits"/> in the 64-bit word; returns the word before.</summary>
    public virtual ulong Clear64(ulong address, ulong bits) => Update64(address, 0, bits);

    /// <summary>Sets <paramref name="set"/> and clears <paramref name="clear"/> in the word by a CompareExchange loop;
    /// returns the word before.</summary>
    private uint Update32(ulong address, uint set, uint clear)
    {
        uint old = Read32(address);
        for (;;)
        {
            uint found = CompareExchange32(address, (old | set) & ~clear, old);
            if (found == old) return old;
            old = found;
        }
    }

    private ulong Update64(ulong address, ulong set, ulong clear)
    {
        ulong old = Read64(address);
        for (;;)
        {
            ulong found = CompareExchange64(address, (old | set) & ~clear, old);
            if (found == old) return old;
            old = found;
        }
    }

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
