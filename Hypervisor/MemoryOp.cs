using Microhv.HAL;
using Microhv.Hypervisor.Public;

namespace Microhv.Hypervisor;

/// <summary>
/// memory_op (xen/common/memory.c do_memory_op and xen/arch/x86/mm.c arch_memory_op) for PV
/// guests. It answers the questions a booting kernel asks (its memory map, its reservation, where the
/// machine-to-phys table is), takes frames back on decrease_reservation, and grows a domain up to its
/// max_pages on increase_reservation/populate_physmap, for itself or from the control domain for
/// another (Mm/Reservation.cs, with claims and set_memory_map). Exchange is the hardware domain's
/// (Mm/MemoryExchange.cs); the HVM physmap commands are -ENOSYS.
/// </summary>
public static class MemoryOp
{
    public static long Do(Vcpu v, ulong cmd, ulong arg)
    {
        int op = (int)(cmd & XenMem.MEMOP_CMD_MASK);
        ulong startExtent = cmd >> XenMem.MEMOP_EXTENT_SHIFT;
        switch (op)
        {
            case XenMem.XENMEM_increase_reservation:
            case XenMem.XENMEM_populate_physmap:
                return Mm.Reservation.Grow(v, op, arg, startExtent);
            case XenMem.XENMEM_claim_pages: return Mm.Reservation.Claim(v, arg, startExtent);
            case XenMem.XENMEM_set_memory_map:
                if (startExtent != 0) return -Errno.ENOSYS;
                return Mm.Reservation.SetMemoryMap(v, arg);
            case XenMem.XENMEM_get_sharing_freed_pages:
            case XenMem.XENMEM_get_sharing_shared_pages:
                return 0;   // no memory sharing: nothing saved, nothing shared (Xen without CONFIG_MEM_SHARING)
            case XenMem.XENMEM_acquire_resource:
                // Not offered: libxenforeignmemory then falls back to GNTTABOP_setup_table and a foreign map.
                return -Errno.EOPNOTSUPP;
            case XenMem.XENMEM_decrease_reservation: return DecreaseReservation(v, arg, startExtent);
            case XenMem.XENMEM_maximum_ram_page:
                if (startExtent != 0) return -Errno.EINVAL;
                return (long)v.Domain.Machine.FrameTable.FrameCount;
            case XenMem.XENMEM_current_reservation:
            case XenMem.XENMEM_maximum_reservation:
            case XenMem.XENMEM_maximum_gpfn:
                if (startExtent != 0) return -Errno.EINVAL;
                return Reservation(v, op, arg);
            case XenMem.XENMEM_memory_map:
                return v.Domain.MemoryMapEntries != 0 ? Mm.Reservation.GetMemoryMap(v, arg) : MemoryMap(v, arg);
            case XenMem.XENMEM_machine_memory_map:
                if (!v.Domain.IsHardwareDomain)
                    return Io.DeviceRefusal.Refuse(v.Domain, Io.DeviceRefusal.MachineMemoryMap, "read the machine's memory map");
                return MachineMemoryMap(v, arg);
            case XenMem.XENMEM_machphys_mapping: return MachphysMapping(v, arg);
            case XenMem.XENMEM_add_to_physmap:
            case XenMem.XENMEM_add_to_physmap_batch:
                return Mm.AddToPhysmap.Do(v, op, arg, startExtent);
            case XenMem.XENMEM_exchange:
                if (startExtent != 0) return -Errno.EINVAL;
                return Mm.MemoryExchange.Do(v, arg);
            default: return -Errno.ENOSYS;
        }
    }

    /// <summary>
    /// The guest's E820: one RAM entry covering its pseudo-physical frames, which is what Xen gives a
    /// domU whose toolstack set no map of its own.
    /// </summary>
    private static long MemoryMap(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + XenMem.memory_map_nr_entries, out uint wanted)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU64(v, arg + XenMem.memory_map_buffer, out ulong buffer)) return -Errno.EFAULT;
        uint entries = wanted < 1 ? wanted : 1;
        if (entries == 1)
        {
            if (!GuestMemory.WriteU64(v, buffer + XenMem.e820entry_addr, 0)) return -Errno.EFAULT;
            if (!GuestMemory.WriteU64(v, buffer + XenMem.e820entry_size, v.Domain.NrPages << Layout.PageShift)) return -Errno.EFAULT;
            if (!GuestMemory.WriteU32(v, buffer + XenMem.e820entry_type, XenMem.E820_RAM)) return -Errno.EFAULT;
        }
        if (!GuestMemory.WriteU32(v, arg + XenMem.memory_map_nr_entries, entries)) return -Errno.EFAULT;
        return 0;
    }

    /// <summary>
    /// The host's E820, for the hardware domain (Linux dom0 lays its pseudo-physical memory around the
    /// machine's holes with it, and maps the non-RAM ranges 1:1). As in Xen, the I/O memory the domain
    /// may not map that lies in the holes between entries is reported as UNUSABLE ranges, so the
    /// guest does not place anything there; a null buffer asks only for the count, and a buffer that
    /// cannot hold the map and one spare entry is -EINVAL.
    /// </summary>
    private static long MachineMemoryMap(Vcpu v, ulong arg)
    {
        if (!GuestMemory.ReadU32(v, arg + XenMem.memory_map_nr_entries, out uint capacity)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU64(v, arg + XenMem.memory_map_buffer, out ulong buffer)) return -Errno.EFAULT;
        Machine m = v.Domain.Machine;
        Io.E820Map map = m.HostMemoryMap;
        bool store = buffer != 0;
        if (store && capacity < (uint)map.Count + 1) return -Errno.EINVAL;
        uint n = 0;
        ulong holeStart = 0;
        for (int i = 0; i <= map.Count; i++)
        {
            ulong holeEnd = i < map.Count ? map[i].Address >> Layout.PageShift : m.IoMem.MfnLimit;
            long rc = ReportDeniedInHole(v, m, holeStart, holeEnd, store, buffer, capacity, ref n);
            if (rc != 0) return rc;
            if (i == map.Count) break;
            if (store)
            {
                if (capacity <= n) return -Errno.EINVAL;
                rc = WriteE820(v, buffer, n, map[i].Address, map[i].Size, map[i].Type);
                if (rc != 0) return rc;
            }
            n++;
            holeStart = (map[i].Address + map[i].Size + Layout.PageSize - 1) >> Layout.PageShift;
        }
        if (!GuestMemory.WriteU32(v, arg + XenMem.memory_map_nr_entries, n)) return -Errno.EFAULT;
        return 0;
    }

    /// <summary>UNUSABLE entries, in address order, for the denied I/O ranges inside frames [start, end).</summary>
    private static long ReportDeniedInHole(Vcpu v, Machine m, ulong start, ulong end, bool store, ulong buffer, uint capacity, ref uint n)
    {
        ulong from = start;
        while (from < end)
        {
            // The lowest denied range that reaches into [from, end).
            ulong first = ulong.MaxValue, last = 0;
            for (int r = 0; r < m.IoMem.Count; r++)
            {
                m.IoMem.Get(r, out ulong f, out ulong l, out _, out bool readOnly);
                if (readOnly || l < from || f >= end) continue;
                if (f < from) f = from;
                if (f < first) { first = f; last = l; }
            }
            if (first == ulong.MaxValue) return 0;
            if (last >= end) last = end - 1;
            if (store)
            {
                if (capacity <= n) return -Errno.EINVAL;
                long rc = WriteE820(v, buffer, n, first << Layout.PageShift, (last - first + 1) << Layout.PageShift, Io.E820Map.E820_UNUSABLE);
                if (rc != 0) return rc;
            }
            n++;
            from = last + 1;
        }
        return 0;
    }

    private static long WriteE820(Vcpu v, ulong buffer, uint index, ulong address, ulong size, uint type)
    {
        ulong slot = buffer + index * (ulong)XenMem.e820entry_length;
        if (!GuestMemory.WriteU64(v, slot + XenMem.e820entry_addr, address)) return -Errno.EFAULT;
        if (!GuestMemory.WriteU64(v, slot + XenMem.e820entry_size, size)) return -Errno.EFAULT;
        if (!GuestMemory.WriteU32(v, slot + XenMem.e820entry_type, type)) return -Errno.EFAULT;
        return 0;
    }

    /// <summary>current/maximum reservation and maximum_gpfn take a domid_t: the caller itself (DOMID_SELF
    /// or its own id), or any domain when the caller is the initial domain.</summary>
    private static long Reservation(Vcpu v, int op, ulong arg)
    {
        if (!GuestMemory.ReadU16(v, arg, out ushort domid)) return -Errno.EFAULT;
        long rc = FindTarget(v, domid, out Domain d);
        if (rc != 0) return rc;
        if (op == XenMem.XENMEM_maximum_gpfn) return (long)MaximumGpfn(d);
        return (long)(op == XenMem.XENMEM_current_reservation ? d.NrPages : d.MaxPages);
    }

    /// <summary>Xen's PV answer is the max_pfn the guest itself published in shared_info, minus one.</summary>
    private static ulong MaximumGpfn(Domain d)
    {
        ulong maxPfn = 0;
        ulong si = d.SharedInfoMfn << Layout.PageShift;
        if (d.SharedInfoMfn != 0 && d.OwnsFrame(d.SharedInfoMfn) && d.Machine.Memory.Contains(si, Layout.PageSize))
            maxPfn = d.Machine.Memory.Read64(si + SharedInfo.arch_max_pfn);
        return (maxPfn == 0 ? 1 : maxPfn) - 1;
    }

    private static long FindTarget(Vcpu v, ushort domid, out Domain d)
    {
        d = null;
        Domain self = v.Domain;
        if (domid == Xen.DOMID_SELF || domid == self.DomainId) { d = self; return 0; }
        Domain other = self.Machine.FindDomain(domid);
        if (other == null) return -Errno.ESRCH;
        if (!self.IsInitialDomain) return -Errno.EPERM;
        d = other;
        return 0;
    }

    private static long MachphysMapping(Vcpu v, ulong arg)
    {
        ulong entries = v.Domain.Machine.M2pEntries;
        if (!GuestMemory.WriteU64(v, arg + XenMem.machphys_mapping_v_start, Xen.MACH2PHYS_VIRT_START)) return -Errno.EFAULT;
        if (!GuestMemory.WriteU64(v, arg + XenMem.machphys_mapping_v_end, Xen.MACH2PHYS_VIRT_END)) return -Errno.EFAULT;
        if (!GuestMemory.WriteU64(v, arg + XenMem.machphys_mapping_max_mfn, entries == 0 ? 0 : entries - 1)) return -Errno.EFAULT;
        return 0;
    }

    /// <summary>Reads and checks a struct xen_memory_reservation: the target must be the caller
    /// (Microhv does not let one domain resize another).</summary>
    private static long ReadReservation(Vcpu v, ulong arg, out ulong extents, out ulong count, out uint order)
    {
        extents = 0; count = 0; order = 0;
        if (!GuestMemory.ReadU64(v, arg + XenMem.reservation_extent_start, out extents)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU64(v, arg + XenMem.reservation_nr_extents, out count)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU32(v, arg + XenMem.reservation_extent_order, out order)) return -Errno.EFAULT;
        if (!GuestMemory.ReadU16(v, arg + XenMem.reservation_domid, out ushort domid)) return -Errno.EFAULT;
        if (domid != Xen.DOMID_SELF && domid != v.Domain.DomainId)
            return v.Domain.Machine.FindDomain(domid) == null ? -Errno.ESRCH : -Errno.EPERM;
        return 0;
    }

    /// <summary>
    /// decrease_reservation: the guest hands back frames it owns (for a PV guest the extent list holds
    /// machine frame numbers). A frame that is an ordinary page of the domain's p2m with no type, no type
    /// references, no pin and no references leaves the domain at once (owner none, p2m and M2P entries
    /// invalid, back in the pool). One whose only references are the hypervisor's own mappings of it (a FIFO
    /// control block or event-array page, a registered vcpu_info) is given back as Xen's guest_remove_page
    /// gives it: it leaves the guest's p2m but stays the domain's, counted in its pages and written by the
    /// hypervisor, until the last of those references goes (EVTCHNOP_reset, the domain's teardown:
    /// PageTypes.PutPage), so nothing is ever written into a frame another owner has. Any other frame stops
    /// the batch. Returns the number of extents done; only order-0 extents are accepted (a larger order
    /// stops the batch).
    /// </summary>
    private static long DecreaseReservation(Vcpu v, ulong arg, ulong startExtent)
    {
        long rc = ReadReservation(v, arg, out ulong list, out ulong count, out uint order);
        if (rc != 0) return rc;
        if (startExtent > count) return -Errno.EINVAL;
        if (order != 0) return (long)startExtent;
        Domain d = v.Domain;
        ulong i = startExtent;
        for (; i < count; i++)
        {
            if (!GuestMemory.ReadU64(v, list + i * 8, out ulong mfn)) return i == startExtent ? -Errno.EFAULT : (long)i;
            if (!Release(d, mfn)) break;
        }
        return (long)i;
    }

    private static bool Release(Domain d, ulong mfn)
    {
        if (CanGiveBack(d, mfn))
        {
            if (FindPfn(d, mfn, out ulong pfn)) d.P2m[pfn] = Domain.Invalid;
            DomainRelinquish.FreeFrame(d.Machine, mfn);
            if (d.NrPages > 0) d.NrPages--;
            return true;
        }
        if (!HeldOnlyByHypervisor(d, mfn)) return false;
        if (FindPfn(d, mfn, out ulong gfn)) d.P2m[gfn] = Domain.Invalid;
        d.Machine.FrameTable.SetReleased(mfn, true);
        return true;
    }

    /// <summary>Whether every reference on the domain's <paramref name="mfn"/> is one of the hypervisor's mappings of
    /// it (each FIFO control block or event-array page, each vcpu_info registered there: a general and a writable
    /// type reference apiece), with no pin and none of the hypervisor's own pages (shared info, console ring, grant
    /// frames).</summary>
    internal static bool HeldOnlyByHypervisor(Domain d, ulong mfn)
    {
        FrameTable ft = d.Machine.FrameTable;
        if (!d.OwnsFrame(mfn) || ft.IsPinned(mfn) || ft.TypeOf(mfn) != FrameType.Writable) return false;
        if (mfn == d.SharedInfoMfn || mfn == d.ConsoleRingMfn || GrantTable.IsGrantFrame(d, mfn)) return false;
        uint held = d.EventChannels == null ? 0u : (uint)d.EventChannels.Fifo.MappingsOf(mfn);
        for (int i = 0; i < Domain.VcpuCapacity; i++)
        {
            Vcpu v = d.Vcpus[i];
            if (v != null && v.VcpuInfoRegistered && v.VcpuInfoAddress >> Layout.PageShift == mfn) held++;
        }
        return held != 0 && ft.RefCount(mfn) == held && ft.TypeCount(mfn) == held && ft.ForeignRefs(mfn) == 0;
    }

    /// <summary>Xen's steal_page conditions: an ordinary page of the domain that nothing maps, references,
    /// pins or uses as the hypervisor's (shared info, console ring, grant frames).</summary>
    internal static bool CanGiveBack(Domain d, ulong mfn)
    {
        FrameTable ft = d.Machine.FrameTable;
        if (!d.OwnsFrame(mfn)) return false;
        if (ft.TypeCount(mfn) != 0 || ft.IsPinned(mfn) || ft.RefCount(mfn) != 0) return false;
        if (ft.TypeOf(mfn) != FrameType.None && ft.TypeOf(mfn) != FrameType.Writable) return false;
        return mfn != d.SharedInfoMfn && mfn != d.ConsoleRingMfn && !GrantTable.IsGrantFrame(d, mfn);
    }

    /// <summary>The guest frame backed by <paramref name="mfn"/>: from the M2P when it agrees with the p2m, else by search.</summary>
    internal static bool FindPfn(Domain d, ulong mfn, out ulong pfn)
    {
        pfn = 0;
        if (d.P2m == null) return false;
        Machine m = d.Machine;
        if (m.M2pTableAddress != 0 && mfn < m.M2pEntries)
        {
            ulong candidate = m.Memory.Read64(m.M2pTableAddress + mfn * 8);
            if (candidate < (ulong)d.P2m.Length && d.P2m[candidate] == mfn) { pfn = candidate; return true; }
        }
        for (ulong i = 0; i < (ulong)d.P2m.Length; i++)
            if (d.P2m[i] == mfn) { pfn = i; return true; }
        return false;
    }
}
