using Microhv.Hypervisor;
using Microhv.Tests.Hypervisor.Services;
using X = Microhv.Hypervisor.Public.Domctl;
using S = Microhv.Hypervisor.Public.Sysctl;

namespace Microhv.Tests.Hypervisor.Toolstack;

/// <summary>
/// Dom0 as the toolstack: a control domain (ServiceGuest id 0) on a machine with a domain pool and a
/// frame source that reuses freed frames, issuing domctl/sysctl/memory_op from buffers in its memory.
/// </summary>
public sealed class ToolstackGuest
{
    public readonly ServiceGuest G;
    public const ulong Op = ServiceGuest.Base;            // struct xen_domctl / xen_sysctl
    public const ulong Buf = ServiceGuest.Base + 0x1000;  // other arguments
    public const ulong Ctx = ServiceGuest.Base + 0x2000;  // a vcpu_guest_context (5168 bytes: two pages)

    public ToolstackGuest(int poolSize = 3, int frames = 2048)
    {
        var tm = new TestMachine(frames);
        tm.Frames.Reuse = true;
        G = new ServiceGuest(id: 0, initial: true, machine: tm);
        G.D.SharedInfoMfn = tm.NewFrame(0);
        M.Pool = DomainPool.Fill(M, poolSize);
    }

    public Machine M => G.Tm.Machine;
    public Vcpu V => G.V;

    public void Header(uint cmd, ushort domain)
    {
        for (ulong i = 0; i < (ulong)X.size; i += 8) G.W64(Op + i, 0);
        G.W32(Op + (ulong)X.cmd, cmd);
        G.W32(Op + (ulong)X.interface_version, X.XEN_DOMCTL_INTERFACE_VERSION);
        G.W16(Op + (ulong)X.domain, domain);
    }

    public long Domctl(uint cmd, ushort domain)
    {
        Header(cmd, domain);
        return Microhv.Hypervisor.Domctl.Do(V, Op);
    }

    /// <summary>createdomain as libxl asks for a PV guest: 1 vCPU, grant v1, default limits, pool 0.</summary>
    public long Create(ushort domid = 0, uint flags = 0, uint maxVcpus = 1, uint grantOpts = 1, uint cpupool = 0, uint emulation = 0)
    {
        Header(X.XEN_DOMCTL_createdomain, domid);
        G.W32(Op + (ulong)X.create_flags, flags);
        G.W32(Op + (ulong)X.create_max_vcpus, maxVcpus);
        G.W32(Op + (ulong)X.create_max_evtchn_port, 1023);
        G.W32(Op + (ulong)X.create_max_grant_frames, 0xFFFFFFFF);
        G.W32(Op + (ulong)X.create_max_maptrack_frames, 0xFFFFFFFF);
        G.W32(Op + (ulong)X.create_grant_opts, grantOpts);
        G.W32(Op + (ulong)X.create_cpupool_id, cpupool);
        G.W32(Op + (ulong)X.create_arch_emulation_flags, emulation);
        for (int i = 0; i < 16; i++) G.Write(Op + (ulong)X.create_handle + (ulong)i, new[] { (byte)(0xA0 + i) });
        return Microhv.Hypervisor.Domctl.Do(V, Op);
    }

    public ushort CreatedId => G.R16(Op + (ulong)X.domain);

    public long Sysctl(uint cmd)
    {
        G.W32(Op + (ulong)S.cmd, cmd);
        G.W32(Op + (ulong)S.interface_version, S.XEN_SYSCTL_INTERFACE_VERSION);
        return Microhv.Hypervisor.Sysctl.Do(V, Op);
    }

    /// <summary>populate_physmap of <paramref name="n"/> order-0 extents for <paramref name="domid"/>; the MFNs come back at Buf.</summary>
    public long Populate(ushort domid, int n, ulong firstGpfn = 0)
    {
        ulong r = Buf, list = Buf + 64;
        for (int i = 0; i < n; i++) G.W64(list + (ulong)i * 8, firstGpfn + (ulong)i);
        G.W64(r, list); G.W64(r + 8, (ulong)n); G.W32(r + 16, 0); G.W32(r + 20, 0); G.W16(r + 24, domid);
        Continuation.Begin(V);
        return MemoryOp.Do(V, Microhv.Hypervisor.Public.XenMem.XENMEM_populate_physmap, r);
    }

    public ulong PopulatedMfn(int i) => G.R64(Buf + 64 + (ulong)i * 8);
}
