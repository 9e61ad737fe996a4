using System.Runtime.CompilerServices;
using Microhv.HAL;

namespace Microhv.Hypervisor;

/// <summary>
/// Xen's copy_from_guest / copy_to_guest: hypercall arguments are guest virtual addresses. An address
/// that is non-canonical, in the hypervisor's hole, unmapped, not guest-accessible (no User bit: a
/// 64-bit PV kernel runs in ring 3) or read-only for a write is a fault, and the hypercall returns
/// -EFAULT. Two ways to reach them, with the same answers: through the CPU's live translation
/// (<see cref="LiveGuestMemory"/>, the kernel's fault-fixup copies) when the L4 in CR3 is the vCPU's
/// current one, which is the case for every hypercall and trap of the running vCPU; otherwise (hosted
/// tests over simulated memory, a root the CPU has not loaded yet) by walking the guest's tables in
/// software. Nothing here can touch memory the guest could not touch itself.
/// </summary>
public static class GuestMemory
{
    /// <summary>The CPU's live translation when it is the vCPU's own (CR3 holds its current root), else null.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static LiveGuestMemory LiveFor(Vcpu v)
    {
        LiveGuestMemory live = v.Domain.Machine.Live;
        if (live == null) return null;
        ulong loaded = live.LoadedRoot, root = RootOf(v);   // (CR3 first: nothing of this frame lives across its read)
        return root != 0 && loaded == root ? live : null;
    }

    /// <summary>
    /// Xen's access_ok for a 64-bit PV guest: [va, va+length) does not wrap, is canonical and lies
    /// below the hypervisor's hole or above it. Checked before any live access, so the copy routines
    /// never see a non-canonical address or the hypervisor's own mappings.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static bool AccessOk(ulong va, ulong length)
    {
        if (length == 0) return true;
        ulong last = va + length - 1;
        if (last < va) return false;
        if (last < LowerHalfEnd) return true;
        return va >= Public.Xen.HYPERVISOR_VIRT_END;
    }

    private const ulong LowerHalfEnd = 0x0000_8000_0000_0000UL;

    public static bool Translate(Vcpu v, ulong va, bool write, out ulong machineAddress)
    {
        PageTable.WalkPath path = default;
        return Translate(v, va, write, out machineAddress, ref path);
    }

    /// <summary>The current guest root: the user L4 while the guest runs in user mode and has one.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
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
    /// Create one per hypercall (default value); never keep one across hypercalls. Its reads go
    /// through the live translation when there is one (the MMU and its TLB then do this work).
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
            LiveGuestMemory live = LiveFor(v);
            if (live != null) { value = 0; return AccessOk(va, 4) && live.ReadU32(va, out value); }
            if (Translate(v, va, 4, false, out ulong ma))
            {
                value = v.Domain.Machine.Memory.Read32(ma);
                return true;
            }
            return GuestMemory.ReadU32(v, va, out value);
        }

        public bool ReadU64(Vcpu v, ulong va, out ulong value)
        {
            LiveGuestMemory live = LiveFor(v);
            if (live != null) { value = 0; return AccessOk(va, 8) && live.ReadU64(va, out value); }
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

    // The scalar accessors: the live copy inline, the software walk out of line (its walk path is a
    // large local the common case should not have to clear on every call).

    public static bool ReadU8(Vcpu v, ulong va, out byte value)
    {
        value = 0;
        LiveGuestMemory live = LiveFor(v);
        if (live != null) return AccessOk(va, 1) && live.ReadU8(va, out value);
        return ReadU8Walked(v, va, out value);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool ReadU8Walked(Vcpu v, ulong va, out byte value)
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
        LiveGuestMemory live = LiveFor(v);
        if (live != null) return AccessOk(va, 2) && live.ReadU16(va, out value);
        if (!ReadU8Walked(v, va, out byte lo) || !ReadU8Walked(v, va + 1, out byte hi)) return false;
        value = (ushort)(lo | hi << 8);
        return true;
    }

    public static bool ReadU32(Vcpu v, ulong va, out uint value)
    {
        value = 0;
        LiveGuestMemory live = LiveFor(v);
        if (live != null) return AccessOk(va, 4) && live.ReadU32(va, out value);
        return ReadU32Walked(v, va, out value);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool ReadU32Walked(Vcpu v, ulong va, out uint value)
    {
        value = 0;
        if (TranslateWithinPage(v, va, 4, false, out ulong ma))
        {
            value = v.Domain.Machine.Memory.Read32(ma);
            return true;
        }
        for (int i = 0; i < 4; i++)
        {
            if (!ReadU8Walked(v, va + (ulong)i, out byte b)) return false;
            value |= (uint)b << (8 * i);
        }
        return true;
    }

    public static bool ReadU64(Vcpu v, ulong va, out ulong value)
    {
        value = 0;
        LiveGuestMemory live = LiveFor(v);
        if (live != null) return AccessOk(va, 8) && live.ReadU64(va, out value);
        return ReadU64Walked(v, va, out value);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool ReadU64Walked(Vcpu v, ulong va, out ulong value)
    {
        value = 0;
        if (TranslateWithinPage(v, va, 8, false, out ulong ma))
        {
            value = v.Domain.Machine.Memory.Read64(ma);
            return true;
        }
        for (int i = 0; i < 8; i++)
        {
            if (!ReadU8Walked(v, va + (ulong)i, out byte b)) return false;
            value |= (ulong)b << (8 * i);
        }
        return true;
    }

    public static bool WriteU8(Vcpu v, ulong va, byte value)
    {
        LiveGuestMemory live = LiveFor(v);
        if (live != null) return AccessOk(va, 1) && live.WriteU8(va, value);
        return WriteU8Walked(v, va, value);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool WriteU8Walked(Vcpu v, ulong va, byte value)
    {
        if (!Translate(v, va, true, out ulong ma)) return false;
        v.Domain.Machine.Memory.Write8(ma, value);
        return true;
    }

    public static bool WriteU16(Vcpu v, ulong va, ushort value)
        => WriteU8(v, va, (byte)value) && WriteU8(v, va + 1, (byte)(value >> 8));

    public static bool WriteU32(Vcpu v, ulong va, uint value)
    {
        LiveGuestMemory live = LiveFor(v);
        if (live != null) return AccessOk(va, 4) && live.WriteU32(va, value);
        return WriteU32Walked(v, va, value);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool WriteU32Walked(Vcpu v, ulong va, uint value)
    {
        if (TranslateWithinPage(v, va, 4, true, out ulong ma))
        {
            v.Domain.Machine.Memory.Write32(ma, value);
            return true;
        }
        for (int i = 0; i < 4; i++) if (!WriteU8Walked(v, va + (ulong)i, (byte)(value >> (8 * i)))) return false;
        return true;
    }

    public static bool WriteU64(Vcpu v, ulong va, ulong value)
    {
        LiveGuestMemory live = LiveFor(v);
        if (live != null) return AccessOk(va, 8) && live.WriteU64(va, value);
        return WriteU64Walked(v, va, value);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool WriteU64Walked(Vcpu v, ulong va, ulong value)
    {
        if (TranslateWithinPage(v, va, 8, true, out ulong ma))
        {
            v.Domain.Machine.Memory.Write64(ma, value);
            return true;
        }
        for (int i = 0; i < 8; i++) if (!WriteU8Walked(v, va + (ulong)i, (byte)(value >> (8 * i)))) return false;
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
        LiveGuestMemory live = LiveFor(v);
        if (live != null)
        {
            if (AccessOk(va, (ulong)length) && live.Read(va, buffer, 0, length)) return length;
            // The instruction's bytes that lie before the page that faulted.
            int inPage = (int)(Layout.PageSize - (va & (Layout.PageSize - 1)));
            if (inPage >= length || !AccessOk(va, (ulong)inPage) || !live.Read(va, buffer, 0, inPage)) return 0;
            return inPage;
        }
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
        LiveGuestMemory live = LiveFor(v);
        if (live != null) return AccessOk(va, (ulong)length) && (length == 0 || live.Read(va, buffer, offset, length));
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
        LiveGuestMemory live = LiveFor(v);
        if (live != null) return AccessOk(va, (ulong)length) && (length == 0 || live.Write(va, buffer, offset, length));
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

    /// <summary><paramref name="count"/> consecutive 64-bit words at <paramref name="va"/> (an iret
    /// context) into the struct of ulong fields that starts with <paramref name="first"/>: one copy,
    /// or one walk when they lie in one page; false on the first fault.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static bool ReadU64s(Vcpu v, ulong va, ref ulong first, int count)
    {
        LiveGuestMemory live = LiveFor(v);
        if (live != null) return AccessOk(va, (ulong)count * 8) && live.ReadU64s(va, ref first, count);
        return ReadU64sWalked(v, va, ref first, count);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static bool ReadU64sWalked(Vcpu v, ulong va, ref ulong first, int count)
    {
        ulong length = (ulong)count * 8;
        if (TranslateWithinPage(v, va, length, false, out ulong ma))
        {
            PhysicalMemory mem = v.Domain.Machine.Memory;
            for (int i = 0; i < count; i++) Unsafe.Add(ref first, i) = mem.Read64(ma + (ulong)i * 8);
            return true;
        }
        for (int i = 0; i < count; i++) if (!ReadU64Walked(v, va + (ulong)i * 8, out Unsafe.Add(ref first, i))) return false;
        return true;
    }

    /// <summary><paramref name="count"/> consecutive 64-bit words to <paramref name="va"/> (a bounce
    /// frame) from the struct of ulong fields that starts with <paramref name="first"/>; false on the
    /// first fault, with the words before it written, as Xen's copy leaves them.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static bool WriteU64s(Vcpu v, ulong va, ref ulong first, int count)
    {
        LiveGuestMemory live = LiveFor(v);
        if (live != null) return AccessOk(va, (ulong)count * 8) && live.WriteU64s(va, ref first, count);
        return WriteU64sWalked(v, va, ref first, count);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static bool WriteU64sWalked(Vcpu v, ulong va, ref ulong first, int count)
    {
        ulong length = (ulong)count * 8;
        if (TranslateWithinPage(v, va, length, true, out ulong ma))
        {
            PhysicalMemory mem = v.Domain.Machine.Memory;
            for (int i = 0; i < count; i++) mem.Write64(ma + (ulong)i * 8, Unsafe.Add(ref first, i));
            return true;
        }
        for (int i = 0; i < count; i++) if (!WriteU64Walked(v, va + (ulong)i * 8, Unsafe.Add(ref first, i))) return false;
        return true;
    }
}
