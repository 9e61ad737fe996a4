using System;
using System.Collections;
using System.Linq;
using System.Reflection;
using Microhv.HAL;
using Microhv.Hypervisor;
using Microhv.Hypervisor.Mm;
using Microhv.Hypervisor.Public;
using Microhv.Tests.Hypervisor.Services;
using Xunit;
using X = Microhv.Hypervisor.Public.Domctl;
using C = Microhv.Hypervisor.Public.VcpuGuestContext;
using S = Microhv.Hypervisor.Public.Sysctl;

namespace Microhv.Tests.Hypervisor.Toolstack;

/// <summary>The toolstack's domain lifecycle: createdomain's checks and ids, building through memory_op and
/// setvcpucontext, pause/unpause, destroy giving every frame back (kept ones after their last foreign
/// mapping), and the pooled domain objects reused as new.</summary>
public class DomainLifecycleTests
{
    [Fact]
    public void Createdomain_refuses_what_xen_refuses_for_a_pv_only_hypervisor()
    {
        var t = new ToolstackGuest();
        Assert.Equal(-Errno.EINVAL, t.Create(flags: 1u << 9));                          // unknown flag
        Assert.Equal(-Errno.EINVAL, t.Create(flags: X.XEN_DOMCTL_CDF_hvm | X.XEN_DOMCTL_CDF_hap)); // no HVM
        Assert.Equal(-Errno.EINVAL, t.Create(flags: X.XEN_DOMCTL_CDF_hap));              // HAP without HVM
        Assert.Equal(-Errno.EINVAL, t.Create(flags: X.XEN_DOMCTL_CDF_iommu));            // no IOMMU
        Assert.Equal(-Errno.EINVAL, t.Create(maxVcpus: 0));
        Assert.Equal(-Errno.EINVAL, t.Create(maxVcpus: Domain.VcpuCapacity + 1));        // past Microhv's vCPUs per domain
        Assert.Equal(-Errno.EINVAL, t.Create(grantOpts: 0x10));                           // unknown grant option
        Assert.Equal(-Errno.EINVAL, t.Create(grantOpts: 0));                              // grant version 0
        Assert.Equal(-Errno.EINVAL, t.Create(grantOpts: 3));                              // past Xen's grant version 2
        Assert.Equal(-Errno.ESRCH, t.Create(cpupool: 1));
        Assert.Equal(-Errno.EOPNOTSUPP, t.Create(emulation: 1));
        Assert.Equal(1, t.M.DomainCount);
        Assert.Equal(3, t.M.Pool.FreeCount);
    }

    [Fact]
    public void Createdomain_grant_version_is_the_domains_maximum_for_set_version()
    {
        var t = new ToolstackGuest();
        Assert.Equal(0, t.Create(grantOpts: 1));
        Assert.Equal(1u, GrantTable.Of(t.M.FindDomain(t.CreatedId)).MaxVersion);
        Assert.Equal(-Errno.ENOSYS, GrantVersion.Switch(GrantTable.Of(t.M.FindDomain(t.CreatedId)), 2));
        Assert.Equal(0, t.Create(grantOpts: 2));
        Assert.Equal(2u, GrantTable.Of(t.M.FindDomain(t.CreatedId)).MaxVersion);
        Assert.Equal(0, GrantVersion.Switch(GrantTable.Of(t.M.FindDomain(t.CreatedId)), 2));
    }

    [Fact]
    public void Createdomain_gives_rover_ids_an_empty_paused_domain_and_refuses_when_the_pool_is_empty()
    {
        var t = new ToolstackGuest(poolSize: 2);
        Assert.Equal(0, t.Create());
        Assert.Equal(1, t.CreatedId);
        Assert.Equal(0, t.Create());
        Assert.Equal(2, t.CreatedId);
        Assert.Equal(-Errno.EEXIST, t.Create(domid: 2));
        Assert.Equal(-Errno.ENOMEM, t.Create());
        Assert.Contains("createdomain refused: no domain object left", t.G.ConsoleText);
        Domain d = t.M.FindDomain(1);
        Assert.True(d.CreatedByToolstack);
        Assert.True(d.Paused);
        Assert.False(d.Vcpu.Online);
        Assert.Equal(0UL, d.NrPages);
        Assert.NotEqual(0UL, d.SharedInfoMfn);
        Assert.Equal(1, GrantTable.Of(d).NrFrames);
        Assert.Equal(Enumerable.Range(0xA0, 16).Select(i => (byte)i), d.Handle);

        // getdomaininfo: paused, no vCPU online, the handle, the max set by max_mem.
        t.G.W64(ToolstackGuest.Op + (ulong)X.max_mem_max_memkb, 0);
        t.Header(X.XEN_DOMCTL_max_mem, 1);
        t.G.W64(ToolstackGuest.Op + (ulong)X.max_mem_max_memkb, 8192);
        Assert.Equal(0, Microhv.Hypervisor.Domctl.Do(t.V, ToolstackGuest.Op));
        Assert.Equal(2048UL, d.MaxPages);
        Assert.Equal(0, t.Domctl(X.XEN_DOMCTL_getdomaininfo, 1));
        ulong info = ToolstackGuest.Op + (ulong)X.u;
        uint flags = t.G.R32(info + (ulong)X.info_flags);
        Assert.Equal(X.XEN_DOMINF_paused, flags & 0xFFFF);
        Assert.Equal(0u, t.G.R32(info + (ulong)X.info_nr_online_vcpus));
        Assert.Equal(2048UL, t.G.R64(info + (ulong)X.info_max_pages));
        Assert.Equal(0xA0, t.G.R8(info + (ulong)X.info_handle));

        // max_vcpus must repeat createdomain's count; pause nests, unpause of an unpaused domain is -EINVAL.
        t.Header(X.XEN_DOMCTL_max_vcpus, 1);
        t.G.W32(ToolstackGuest.Op + (ulong)X.max_vcpus_max, 1);
        Assert.Equal(0, Microhv.Hypervisor.Domctl.Do(t.V, ToolstackGuest.Op));
        t.G.W32(ToolstackGuest.Op + (ulong)X.max_vcpus_max, 2);
        Assert.Equal(-Errno.EINVAL, Microhv.Hypervisor.Domctl.Do(t.V, ToolstackGuest.Op));
        Assert.Equal(0, t.Domctl(X.XEN_DOMCTL_pausedomain, 1));
        Assert.Equal(2, d.PauseCount);
        Assert.Equal(0, t.Domctl(X.XEN_DOMCTL_unpausedomain, 1));
        Assert.Equal(0, t.Domctl(X.XEN_DOMCTL_unpausedomain, 1));
        Assert.Equal(-Errno.EINVAL, t.Domctl(X.XEN_DOMCTL_unpausedomain, 1));
        Assert.Equal(-Errno.EINVAL, t.Domctl(X.XEN_DOMCTL_pausedomain, 0));      // not oneself
        Assert.Equal(-Errno.EINVAL, t.Domctl(X.XEN_DOMCTL_destroydomain, 0));    // nor the initial domain
    }

    [Fact]
    public void An_unprivileged_domain_gets_EPERM_for_domctl_sysctl_and_foreign_memory()
    {
        var t = new ToolstackGuest();
        Assert.Equal(0, t.Create());
        var u = new ServiceGuest(id: 5, machine: t.G.Tm);
        ulong op = ServiceGuest.Base;
        u.W32(op + (ulong)X.cmd, X.XEN_DOMCTL_pausedomain);
        u.W32(op + (ulong)X.interface_version, X.XEN_DOMCTL_INTERFACE_VERSION);
        u.W16(op + (ulong)X.domain, 1);
        Assert.Equal(-Errno.EPERM, Microhv.Hypervisor.Domctl.Do(u.V, op));
        u.W32(op + (ulong)S.cmd, S.XEN_SYSCTL_physinfo);
        u.W32(op + (ulong)S.interface_version, S.XEN_SYSCTL_INTERFACE_VERSION);
        Assert.Equal(-Errno.EPERM, Microhv.Hypervisor.Sysctl.Do(u.V, op));
        ulong r = ServiceGuest.Base + 0x100;
        u.W64(r, r + 64); u.W64(r + 8, 1); u.W32(r + 16, 0); u.W32(r + 20, 0); u.W16(r + 24, 1);
        Assert.Equal(-Errno.EPERM, MemoryOp.Do(u.V, XenMem.XENMEM_populate_physmap, r));
        // A foreign page owner in mmu_update.
        u.W64(r, (u.Mfns[0] << 12)); u.W64(r + 8, 0);
        Assert.Equal(-Errno.EPERM, MmuUpdate.Do(u.V, r, 1, 0, 1));
        Assert.Equal(0UL, t.M.FindDomain(1).NrPages);
    }

    [Fact]
    public void A_domain_is_built_run_and_destroyed_and_every_frame_comes_back()
    {
        var t = new ToolstackGuest();
        ulong freeBefore = t.M.Frames.FreeFrameCount;
        Assert.Equal(0, t.Create());
        Domain d = t.M.FindDomain(1);
        d.MaxPages = 16;
        Assert.Equal(16, t.Populate(1, 20, firstGpfn: 0x100));           // max_pages stops it at 16
        Assert.Equal(16UL, d.NrPages);
        ulong l4 = t.PopulatedMfn(0);
        Assert.Equal((ushort)1, t.M.FrameTable.OwnerOf(l4));

        // The toolstack pins the (empty) L4 for the domain and gives the vCPU its context.
        Assert.Equal(0, MmuExtOpPin(t, l4, 1));
        WriteContext(t, l4, rip: 0xFFFF_FFFF_8100_0000, online: true);
        t.Header(X.XEN_DOMCTL_setvcpucontext, 1);
        t.G.W32(ToolstackGuest.Op + (ulong)X.vcpucontext_vcpu, 0);
        t.G.W64(ToolstackGuest.Op + (ulong)X.vcpucontext_ctxt, ToolstackGuest.Ctx);
        Assert.Equal(0, Microhv.Hypervisor.Domctl.Do(t.V, ToolstackGuest.Op));
        Assert.True(d.Vcpu.Online);
        Assert.Equal(0xFFFF_FFFF_8100_0000UL, d.Vcpu.Regs.Rip);
        Assert.Equal(l4 << 12, d.Vcpu.GuestTable);
        Assert.Equal(2u, t.M.FrameTable.TypeCount(l4));                   // pin + CR3
        Assert.False(Scheduler.IsRunnable(d.Vcpu));                         // still paused
        Assert.Equal(0, t.Domctl(X.XEN_DOMCTL_unpausedomain, 1));
        Assert.True(Scheduler.IsRunnable(d.Vcpu));

        // Dom0 maps one of the domain's frames in its own (validated) L1: a foreign mapping.
        ulong dom0L1 = t.G.Tm.NewFrame(0);
        Assert.Equal(0, PageTypes.GetPageAndType(t.M, t.G.D, dom0L1, FrameType.L1PageTable));
        ulong target = t.PopulatedMfn(5);
        Assert.Equal(0, PageTableValidator.ModEntry(t.M, t.G.D, d, dom0L1, 3, 1, (target << 12) | 1, false));
        Assert.Equal(1u, t.M.FrameTable.ForeignRefs(target));

        // A bound VIRQ_DOM_EXC hears the destroy.
        int port = (int)t.G.D.EventChannels.BindVirq(Xen.VIRQ_DOM_EXC, 0);
        Assert.True(port > 0);
        Assert.Equal(0, t.Domctl(X.XEN_DOMCTL_destroydomain, 1));
        Assert.True(t.G.D.EventChannels.IsPending(port));
        Assert.Contains("destroyed domain 1 (frames still mapped by other domains: 1)", t.G.ConsoleText);
        Assert.Same(d, t.M.FindDomain(1));                                  // dying, kept for its last frame
        Assert.Equal(0, t.Domctl(X.XEN_DOMCTL_getdomaininfo, 1));
        Assert.NotEqual(0u, t.G.R32(ToolstackGuest.Op + (ulong)X.u + (ulong)X.info_flags) & X.XEN_DOMINF_dying);
        Assert.Equal(freeBefore - 1, t.M.Frames.FreeFrameCount);

        // Dom0 unmaps it: the frame and the domain go, the object returns to the pool.
        Assert.Equal(0, PageTableValidator.ModEntry(t.M, t.G.D, t.G.D, dom0L1, 3, 1, 0, false));
        Assert.Null(t.M.FindDomain(1));
        Assert.Equal(freeBefore, t.M.Frames.FreeFrameCount);
        Assert.Equal(3, t.M.Pool.FreeCount);
        Assert.Contains("domain 1: destroyed, every frame given back", t.G.ConsoleText);
        Assert.Equal(FrameTable.OwnerNone, t.M.FrameTable.OwnerOf(target));
    }

    [Fact]
    public void Three_create_destroy_cycles_leave_the_free_frames_where_they_started()
    {
        var t = new ToolstackGuest(poolSize: 1);
        ulong freeBefore = t.M.Frames.FreeFrameCount;
        for (int cycle = 0; cycle < 3; cycle++)
        {
            Assert.Equal(0, t.Create());
            ushort id = t.CreatedId;
            Assert.Equal(cycle + 1, id);                                     // ids move on; the object is reused
            Domain d = t.M.FindDomain(id);
            d.MaxPages = 32;
            Assert.Equal(32, t.Populate(id, 32));
            Assert.Equal(0, t.Domctl(X.XEN_DOMCTL_destroydomain, id));
            Assert.Null(t.M.FindDomain(id));
            Assert.Equal(freeBefore, t.M.Frames.FreeFrameCount);
        }
    }

    [Fact]
    public void A_reused_domain_object_is_exactly_a_new_domain()
    {
        var t = new ToolstackGuest(poolSize: 1);
        Assert.Equal(0, t.Create());
        Domain d = t.M.FindDomain(1);
        // Dirty every kind of state a domain collects.
        d.Name = new byte[] { 1, 2 };
        d.VmAssist = 7; d.PciCf8 = 9; d.HypercallCounts[3] = 5; d.CommandLine[0] = 1; d.CommandLineLength = 1;
        d.Vcpu.TrapTable[3].Address = 0x1234; d.Vcpu.GdtFrames[1] = 9; d.Vcpu.KernelSp = 77; d.Vcpu.Blocked = true;
        d.Vcpu.HardAffinity = 1; d.CpuidMask[2] = 4; d.MemoryMap[0] = 5; d.MemoryMapEntries = 1; d.TimeOffsetSeconds = 3;
        d.EventChannels.AllocUnbound(0);
        d.Pirqs.EoiMapMfn = 5;
        Assert.Equal(0, t.Domctl(X.XEN_DOMCTL_destroydomain, 1));
        Assert.Equal(1, t.M.Pool.FreeCount);

        Domain reused = t.M.Pool.Take(9);
        var fresh = new Domain(t.M, 9);
        GrantTable.Reserve(fresh);
        AssertSameState(fresh, reused, "Domain");

        // Every field a future change adds is covered too: dirty all of them, reinitialize, compare again.
        Dirty(reused);
        reused.Reinitialize(9);
        AssertSameState(fresh, reused, "Domain");
    }

    /// <summary>Sets every value field (and every array element) of the domain and its parts to a non-default value.</summary>
    private static void Dirty(object o)
    {
        for (Type t = o.GetType(); t != null && t != typeof(object); t = t.BaseType)
        {
            foreach (FieldInfo f in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            {
                if (f.FieldType == typeof(Machine) || f.FieldType == typeof(Domain) || f.Name.Contains("FpuArea")) continue;
                if (f.FieldType == typeof(EventChannels) && t == typeof(Microhv.Hypervisor.Events.EvtchnFifo)) continue;   // back reference
                object v = f.GetValue(o);
                if (f.FieldType == typeof(Vcpu[]))
                {
                    foreach (Vcpu vcpu in (Vcpu[])v) Dirty(vcpu);          // each vCPU's own state
                }
                else if (f.FieldType.IsArray)
                {
                    if (v is not Array a) continue;
                    for (int i = 0; i < a.Length && i < 4; i++) a.SetValue(NonDefault(a.GetType().GetElementType()), i);
                }
                else if (f.FieldType == typeof(Vcpu) || f.FieldType == typeof(EventChannels) || f.FieldType == typeof(Microhv.Hypervisor.Irq.Pirqs)
                         || f.FieldType == typeof(Microhv.Hypervisor.Events.EvtchnFifo)
                         || f.FieldType == typeof(GrantTable))
                    Dirty(v);
                else if (!f.IsInitOnly && (f.FieldType.IsValueType || f.FieldType == typeof(string)))
                    f.SetValue(o, NonDefault(f.FieldType));
                else if (f.Name.Contains("k__BackingField") && f.FieldType.IsValueType)
                    f.SetValue(o, NonDefault(f.FieldType));
            }
        }
    }

    private static object NonDefault(Type t)
    {
        if (t == typeof(bool)) return true;
        if (t == typeof(string)) return "dirty";
        if (t.IsEnum) return Enum.ToObject(t, 1);
        if (t.IsPrimitive) return Convert.ChangeType(3, t);
        object s = Activator.CreateInstance(t);
        foreach (FieldInfo f in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
            if (f.FieldType.IsPrimitive || f.FieldType == typeof(bool)) f.SetValue(s, NonDefault(f.FieldType));
        return s;
    }

    /// <summary>Every instance field of the two objects (recursing into the domain's own parts) holds the same value.</summary>
    private static void AssertSameState(object expected, object actual, string path)
    {
        Type type = expected.GetType();
        for (Type t = type; t != null && t != typeof(object); t = t.BaseType)
        {
            foreach (FieldInfo f in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            {
                string name = path + "." + f.Name;
                object e = f.GetValue(expected), a = f.GetValue(actual);
                if (f.FieldType == typeof(Machine) || f.FieldType == typeof(Domain)) continue;   // back references
                if (f.FieldType == typeof(EventChannels) && t == typeof(Microhv.Hypervisor.Events.EvtchnFifo)) continue;   // back reference
                if (name.EndsWith(".FpuArea")) continue;                                       // the kernel's, reset by it
                if (name.EndsWith(".LdtSlot")) continue;                                       // the object's own part of the LDT area
                if (e == null || a == null) { Assert.True(e == null && a == null, name + " differs (null)"); continue; }
                if (f.FieldType == typeof(Vcpu[]))
                {
                    var ev = (Vcpu[])e; var av = (Vcpu[])a;
                    Assert.True(ev.Length == av.Length, name + " length");
                    for (int i = 0; i < ev.Length; i++) AssertSameState(ev[i], av[i], $"{name}[{i}]");
                }
                else if (f.FieldType.IsArray)
                {
                    var ea = (IList)e; var aa = (IList)a;
                    Assert.True(ea.Count == aa.Count, name + " length");
                    for (int i = 0; i < ea.Count; i++) Assert.True(Equals(ea[i], aa[i]), $"{name}[{i}]: {ea[i]} != {aa[i]}");
                }
                else if (f.FieldType == typeof(Vcpu) || f.FieldType == typeof(EventChannels) || f.FieldType == typeof(Microhv.Hypervisor.Irq.Pirqs)
                         || f.FieldType == typeof(Microhv.Hypervisor.Events.EvtchnFifo)
                         || f.FieldType == typeof(GrantTable))
                    AssertSameState(e, a, name);
                else Assert.True(Equals(e, a), $"{name}: {e} != {a}");
            }
        }
    }

    private static long MmuExtOpPin(ToolstackGuest t, ulong mfn, ushort domid)
    {
        ulong op = ToolstackGuest.Buf + 0x800;
        t.G.W32(op, Xen.MMUEXT_PIN_L4_TABLE);
        t.G.W64(op + 8, mfn);
        t.G.W64(op + 16, 0);
        Continuation.Begin(t.V);
        return MmuExtOp.Do(t.V, op, 1, 0, domid);
    }

    private static void WriteContext(ToolstackGuest t, ulong l4, ulong rip, bool online)
    {
        ulong c = ToolstackGuest.Ctx;
        for (ulong i = 0; i < (ulong)C.size; i += 8) t.G.W64(c + i, 0);
        t.G.W64(c + (ulong)C.flags, ArchX86.VGCF_in_kernel | (online ? ArchX86.VGCF_online : 0));
        t.G.W64(c + (ulong)C.user_regs + (ulong)C.rip, rip);
        t.G.W64(c + (ulong)C.user_regs + (ulong)C.rsp, 0xFFFF_FFFF_8200_0000);
        t.G.W64(c + (ulong)C.user_regs + (ulong)C.rsi, 0xFFFF_FFFF_8300_0000);
        t.G.W16(c + (ulong)C.user_regs + (ulong)C.cs, Xen.FLAT_KERNEL_CS64);
        t.G.W16(c + (ulong)C.user_regs + (ulong)C.ss, Xen.FLAT_KERNEL_SS64);
        t.G.W64(c + (ulong)C.user_regs + (ulong)C.rflags, 0x200);
        t.G.W64(c + (ulong)C.kernel_ss, Xen.FLAT_KERNEL_SS64);
        t.G.W64(c + (ulong)C.ctrlreg + 24, l4 << 12);
    }
}
