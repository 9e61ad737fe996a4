using Microhv.HAL;

namespace Microhv.Hypervisor;

/// <summary>
/// Xen's copy_from_guest / copy_to_guest: hypercall arguments are guest virtual addresses, reached
/// by walking the vCPU's current guest page tables in software. An address that is unmapped, not
/// guest-accessible (no User bit: a 64-bit PV kernel runs in ring 3), read-only for a write, or in
/// the hypervisor's hole is a fault, and the hypercall returns -EFAULT. Nothing here can touch
/// memory the guest could not touch itself.
/// </summary>
public static class GuestMemory
{
    public static bool Translate(Vcpu v, ulong va, bool write, out ulong machineAddress)
    {
        PageTable.WalkPath path = default;
        return Translate(v, va, write, out machineAddress, ref path);
    }

    /// <summary>The current guest root: the user L4 while the guest runs in user mode and has one.</summary>
    public static ulong RootOf(Vcpu v) => v.KernelMode || v.GuestTableUser == 0 ? v.GuestTable : v.GuestTableUser;

    private static bool Translate(Vcpu v, ulong va, bool write, out ulong machineAddress, ref PageTable.WalkPath path)
    {
        machineAddress = 0;
        path.Count = 0;
        if (Layout.InHypervisorHole(va) || !PageTableEntry.IsCanonical(va)) return false;
        ulong root = RootOf(v);
        if (root == 0) return false;
        Machine m = v.Domain.Machine;
        if (!PageTable.Translate(m.Memory, root, va, out ulong pa, out ulong flags, out PageSize _, ref path)) return false;
        if ((flags & PageTableEntry.User) == 0) return false;
        if (write && (flags & PageTableEntry.Writable) == 0) return false;
        if (!v.Domain.OwnsFrame(pa >> Layout.PageShift) && !IsSharedWithGuest(v.Domain, pa >> Layout.PageShift)) return false;
        machineAddress = pa;
        return true;
    }

    /// <summary>
    /// One guest page's translation, kept for the rest of one hypercall so a request array is not
    /// walked again for every field. It is no cache that can go stale: every use re-reads the entries
    /// the walk read (and compares the root and the frame's owner), and walks again if anything
    /// changed, so a request that rewrites the mapping of its own array is seen by the next one.
    /// Create one per hypercall (default value); never keep one across hypercalls.
    /// </summary>
    public struct Cursor
    {
        private ulong _page;          // guest page address + 1 while valid (0: empty)
        private ulong _frame;         // machine address of that page
        private bool _writable;
        private PageTable.WalkPath _path;

        /// <summary>Machine address of [va, va+length), which must lie within one page; false when it
        /// crosses a page (the caller then goes field by field) or does not translate.</summary>
        public bool Translate(Vcpu v, ulong va, ulong length, bool write, out ulong machineAddress)
        {
            machineAddress = 0;
            ulong offset = va & (Layout.PageSize - 1);
            if (length == 0 || offset + length > Layout.PageSize) return false;
            ulong page = va - offset;
            if (_page == page + 1 && (_writable || !write)
                && PageTable.StillTranslates(v.Domain.Machine.Memory, RootOf(v), ref _path)
                && (v.Domain.OwnsFrame(_frame >> Layout.PageShift) || IsSharedWithGuest(v.Domain, _frame >> Layout.PageShift)))
            {
                machineAddress = _frame + offset;
                return true;
            }
            _page = 0;
            if (!GuestMemory.Translate(v, page, write, out ulong frame, ref _path)) return false;
            _page = page + 1;
            _frame = frame;
            _writable = write;
            machineAddress = frame + offset;
            return true;
        }

        public bool ReadU32(Vcpu v, ulong va, out uint value)
        {
            if (Translate(v, va, 4, false, out ulong ma))
            {
                value = v.Domain.Machine.Memory.Read32(ma);
                return true;
            }
            return GuestMemory.ReadU32(v, va, out value);
        }

        public bool ReadU64(Vcpu v, ulong va, out ulong value)
        {
            if (Translate(v, va, 8, false, out ulong ma))
            {
                value = v.Domain.Machine.Memory.Read64(ma);
                return true;
            }
            return GuestMemory.ReadU64(v, va, out value);
        }
    }

    /// <summary>Translates a range that lies within one page with one walk; false if it crosses a
    /// page boundary (the caller then goes word by word) or does not translate.</summary>
    public static bool TranslateWithinPage(Vcpu v, ulong va, ulong length, bool write, out ulong machineAddress)
    {
        machineAddress = 0;
        if (length == 0 || (va & (Layout.PageSize - 1)) + length > Layout.PageSize) return false;
        return Translate(v, va, write, out machineAddress);
    }

    /// <summary>Frames a guest may reach that it does not own: another domain's frames it maps through a
    /// grant (its maptrack holds them; the walk already checked the PTE allows the access).</summary>
    private static bool IsSharedWithGuest(Domain d, ulong mfn) => GrantTable.MapsGrantedFrame(d, mfn);

    public static bool ReadU8(Vcpu v, ulong va, out byte value)
    {
        value = 0;
        if (!Translate(v, va, false, out ulong ma)) return false;
        value = v.Domain.Machine.Memory.Read8(ma);
        return true;
    }

    /// <summary>A domid_t or other 16-bit field.</summary>
    public static bool ReadU16(Vcpu v, ulong va, out ushort value)
    {
        value = 0;
        if (!ReadU8(v, va, out byte lo) || !ReadU8(v, va + 1, out byte hi)) return false;
        value = (ushort)(lo | hi << 8);
        return true;
    }

    public static bool ReadU32(Vcpu v, ulong va, out uint value)
    {
        value = 0;
        if (TranslateWithinPage(v, va, 4, false, out ulong ma))
        {
            value = v.Domain.Machine.Memory.Read32(ma);
            return true;
        }
        for (int i = 0; i < 4; i++)
        {
            if (!ReadU8(v, va + (ulong)i, out byte b)) return false;
            value |= (uint)b << (8 * i);
        }
        return true;
    }

    public static bool ReadU64(Vcpu v, ulong va, out ulong value)
    {
        value = 0;
        if (TranslateWithinPage(v, va, 8, false, out ulong ma))
        {
            value = v.Domain.Machine.Memory.Read64(ma);
            return true;
        }
        for (int i = 0; i < 8; i++)
        {
            if (!ReadU8(v, va + (ulong)i, out byte b)) return false;
            value |= (ulong)b << (8 * i);
        }
        return true;
    }

    public static bool WriteU8(Vcpu v, ulong va, byte value)
    {
        if (!Translate(v, va, true, out ulong ma)) return false;
        v.Domain.Machine.Memory.Write8(ma, value);
        return true;
    }

    public static bool WriteU32(Vcpu v, ulong va, uint value)
    {
        if (TranslateWithinPage(v, va, 4, true, out ulong ma))
        {
            v.Domain.Machine.Memory.Write32(ma, value);
            return true;
        }
        for (int i = 0; i < 4; i++) if (!WriteU8(v, va + (ulong)i, (byte)(value >> (8 * i)))) return false;
        return true;
    }

    public static bool WriteU64(Vcpu v, ulong va, ulong value)
    {
        if (TranslateWithinPage(v, va, 8, true, out ulong ma))
        {
            v.Domain.Machine.Memory.Write64(ma, value);
            return true;
        }
        for (int i = 0; i < 8; i++) if (!WriteU8(v, va + (ulong)i, (byte)(value >> (8 * i)))) return false;
        return true;
    }

    /// <summary>
    /// Instruction fetch for emulation: up to <paramref name="length"/> bytes at <paramref name="va"/>,
    /// one walk and one copy per page (an instruction crosses at most one page boundary). Returns how
    /// many bytes could be read: fewer when the next page does not translate.
    /// </summary>
    public static int Fetch(Vcpu v, ulong va, byte[] buffer, int length)
    {
        if (length > buffer.Length) length = buffer.Length;
        int done = 0;
        PhysicalMemory mem = v.Domain.Machine.Memory;
        while (done < length)
        {
            ulong cur = va + (ulong)done;
            if (!Translate(v, cur, false, out ulong ma)) break;
            int inPage = (int)(Layout.PageSize - (cur & (Layout.PageSize - 1)));
            int n = length - done < inPage ? length - done : inPage;
            mem.Read(ma, buffer, done, n);
            done += n;
        }
        return done;
    }

    /// <summary>Copies <paramref name="length"/> guest bytes into <paramref name="buffer"/>; false on the first fault.</summary>
    public static bool CopyFromGuest(Vcpu v, ulong va, byte[] buffer, int offset, int length)
    {
        int done = 0;
        while (done < length)
        {
            ulong cur = va + (ulong)done;
            if (!Translate(v, cur, false, out ulong ma)) return false;
            int inPage = (int)(Layout.PageSize - (cur & (Layout.PageSize - 1)));
            int n = length - done < inPage ? length - done : inPage;
            v.Domain.Machine.Memory.Read(ma, buffer, offset + done, n);
            done += n;
        }
        return true;
    }

    public static bool CopyToGuest(Vcpu v, ulong va, byte[] buffer, int offset, int length)
    {
        int done = 0;
        while (done < length)
        {
            ulong cur = va + (ulong)done;
            if (!Translate(v, cur, true, out ulong ma)) return false;
            int inPage = (int)(Layout.PageSize - (cur & (Layout.PageSize - 1)));
            int n = length - done < inPage ? length - done : inPage;
            PhysicalMemory mem = v.Domain.Machine.Memory;
            for (int i = 0; i < n; i++) mem.Write8(ma + (ulong)i, buffer[offset + done + i]);
            done += n;
        }
        return true;
    }
}
