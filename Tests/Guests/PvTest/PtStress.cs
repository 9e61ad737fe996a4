using System.Runtime.InteropServices;

namespace Microhv.Guests.PvTest;

/// <summary>
/// <c>workload=pt-stress [rounds=N]</c>: issue 13's concurrency stress. Every vCPU of the domain (vcpus=N on
/// Microhv's module line; on Xen, dom0's one per CPU) hammers the same frames at once: four contested frames
/// that each vCPU maps writable into the shared window L1 (mmu_update or update_va_mapping), writes through,
/// unmaps without a flush (a stale TLB entry stays) and tries to pin as an L1 table, while the others do the
/// same; two data frames every vCPU maps writable (update_va_mapping with UVMF_INVLPG|UVMF_ALL) and read-only
/// (mmu_update, then an unmap that flushes a vCPU mask) to write and read back its own word; TLB_FLUSH_MULTI
/// with every vCPU's bit. A pin or a writable map refused because another vCPU holds the frame in the other
/// role is expected (-EINVAL, -EBUSY); anything else is a failure. While a vCPU holds its pin it checks that
/// the table can be mapped read-only but not writable, that an entry it writes with mmu_update reads back,
/// and that the table holds nothing else; it hooks the table into the L2 above the window, reads through it and
/// unhooks it without a flush, and once the table is unpinned and mapped writable (a type change) that read must
/// fault. The stale writable translation of a frame that has since become
/// a page table must be gone: after its own pin, or when another vCPU's pin of that frame began after its
/// unmap (a per-frame pin count each pinner raises while it holds the pin), the vCPU writes through its
/// unmapped address and the write must fault (Traps.Filter counts the #PF at Cpu.Write64 and skips it).
/// Two more frames take random moves from every vCPU (ChaosStep), left as they are at the end for the teardown.
/// vCPU 0 prints one result line with every vCPU's counts summed, or each vCPU's first failure, and powers off;
/// with <c>stop-after=K</c> it powers the domain off after K rounds of its own while the others are still at work.
/// </summary>
internal static unsafe partial class PtStress
{
    private const int Contested = 4, DataFrames = 2, Chaos = 2, MaxVcpus = 8, StackPages = 4, FirstStackPage = 20;
    private const int DefaultRounds = 2000;
    /// <summary>Window slots of vCPU v: SlotBase + 8v + {writable contested, read-only contested, data writable, data read-only, chaos writable}.</summary>
    private const int SlotBase = 64;

    // The block every vCPU shares (Guest.Page(9)), in words: the pin count of each contested frame, their and
    // the data frames' MFNs, the start signal, and per vCPU its counts and first failure.
    private const int Gen = 0, ContestedMfn = 4, DataMfn = 8, Go = 10, ChaosMfn = 12, L2Mfn = 14, PerVcpu = 16, VcpuWords = 16;
    private const int Done = 0, Rounds = 1, PinsOk = 2, PinsRefused = 3, MapsOk = 4, MapsRefused = 5,
        StaleOwn = 6, StaleOther = 7, DataChecks = 8, FailWhat = 9, FailRc = 10, FailRound = 11, Faults = 12, Flushes = 13, ChaosOk = 14,
        StaleReads = 15;

    private static ulong* Block => (ulong*)Guest.Page(9);
    private static ulong* Stats(int v) => Block + PerVcpu + v * VcpuWords;
    private static byte* Context => Guest.Page(7);            // pages 7 and 8
    private static int s_rounds, s_vcpus;

    public static void Run()
    {
        s_rounds = Number("rounds=", DefaultRounds);
        if (Guest.WindowL1 == null || Guest.SharedInfo == null) Abort("no window or no shared_info");
        s_vcpus = 1;
        while (s_vcpus < MaxVcpus && Hypercall.Call3(Xen.vcpu_op, VcpuChecks.VCPUOP_is_up, (ulong)s_vcpus, 0) >= 0) s_vcpus++;

        ulong* b = Block;
        for (int i = 0; i < 512; i++) b[i] = 0;
        for (int j = 0; j < Contested; j++)
        {
            byte* page = Guest.Page(1 + j);
            if (Guest.MakeReadOnly(page) != 0) Abort("cannot make a contested frame read-only");
            b[ContestedMfn + j] = Guest.MfnOf(page);
        }
        for (int k = 0; k < DataFrames; k++) b[DataMfn + k] = Guest.MfnOf(Guest.Page(5 + k));
        for (int q = 0; q < Chaos; q++)
        {
            byte* page = Guest.Page(10 + q);
            if (Guest.MakeReadOnly(page) != 0) Abort("cannot make a chaos frame read-only");
            b[ChaosMfn + q] = Guest.MfnOf(page);
        }
        b[L2Mfn] = Guest.TableMachineAddress(Guest.WindowVa, 2) >> 12;
        Traps.Filter = &OnTrap;
        for (int v = 1; v < s_vcpus; v++) BringUp(v);
        Cpu.Write64((ulong)&b[Go], 1);

        int stopAfter = Number("stop-after=", 0);
        if (stopAfter > 0 && stopAfter < s_rounds)
        {
            // The domain ends under the others' feet: its teardown must release what they hold mid-flight.
            Work(0, stopAfter);
            XenConsole.Write("pvtest: workload pt-stress: vCPU 0 powers off after "); XenConsole.Dec(stopAfter);
            XenConsole.Write(" rounds, "); XenConsole.Dec(s_vcpus - 1); XenConsole.Line(" vCPUs still at work");
            Hypercall.Shutdown(Xen.SHUTDOWN_poweroff);
        }
        Work(0, s_rounds);
        ulong deadline = Guest.SystemTime(out _) + 1200_000_000_000UL;
        for (int v = 1; v < s_vcpus; v++)
            while (Cpu.Load64(&Stats(v)[Done]) == 0)
            {
                if (Guest.SystemTime(out _) > deadline) { Stats(v)[FailWhat] = 99; break; }
                Hypercall.SchedOp(Xen.SCHEDOP_yield, null);
            }
        Report();
    }

    /// <summary>A secondary vCPU's program: its own trap table, then the same work as vCPU 0; then it goes down.</summary>
    [UnmanagedCallersOnly(EntryPoint = "pvtest_pt_stress_vcpu")]
    private static void Secondary(ulong v)
    {
        if (Traps.Install() != 0) Stats((int)v)[FailWhat] = 1;
        while (Cpu.Load64(&Block[Go]) == 0) Hypercall.SchedOp(Xen.SCHEDOP_yield, null);
        Work((int)v, s_rounds);
        Hypercall.Call3(Xen.vcpu_op, VcpuChecks.VCPUOP_down, v, 0);
        while (true) Hypercall.SchedOp(Xen.SCHEDOP_yield, null);
    }

    private static void BringUp(int v)
    {
        Cpu.Store8(Guest.SharedInfo + 64 * v + Xen.VI_upcall_mask, 1);     // no upcalls: it never unmasks
        byte* c = Context;
        for (int i = 0; i < VcpuChecks.CtxSize; i++) c[i] = 0;
        *(ulong*)(c + VcpuChecks.CtxFlags) = VcpuChecks.VGCF_in_kernel;
        byte* r = c + VcpuChecks.CtxUserRegs;
        delegate* unmanaged<ulong, void> entry = &Secondary;
        ulong stackTop = (ulong)Guest.Page(FirstStackPage + StackPages * v) - 8;   // as if called: rsp + 8 aligned
        *(ulong*)(r + VcpuChecks.RegRip) = (ulong)entry;
        *(ulong*)(r + VcpuChecks.RegRsp) = stackTop;
        *(ulong*)(r + VcpuChecks.RegRdi) = (ulong)v;
        *(ushort*)(r + VcpuChecks.RegCs) = Xen.FLAT_KERNEL_CS;
        *(ushort*)(r + VcpuChecks.RegSs) = Xen.FLAT_KERNEL_SS;
        *(ulong*)(r + VcpuChecks.RegRflags) = 0x200;
        *(ulong*)(c + VcpuChecks.CtxKernelSs) = Xen.FLAT_KERNEL_SS;
        *(ulong*)(c + VcpuChecks.CtxKernelSp) = stackTop;
        *(ulong*)(c + VcpuChecks.CtxCr3) = Guest.TableMachineAddress(0, 4);
        long rc = Hypercall.Call3(Xen.vcpu_op, VcpuChecks.VCPUOP_initialise, (ulong)v, (ulong)c);
        if (rc == 0) rc = Hypercall.Call3(Xen.vcpu_op, VcpuChecks.VCPUOP_up, (ulong)v, 0);
        if (rc != 0) Abort("cannot bring a vCPU up");
    }

    /// <summary>The vCPU whose stack <paramref name="rsp"/> is on: the secondaries' are pages 20-51, vCPU 0 has the boot stack.</summary>
    private static int VcpuOfStack(ulong rsp)
    {
        ulong first = (ulong)Guest.Page(FirstStackPage), size = StackPages * 4096UL;
        return rsp > first && rsp <= first + (MaxVcpus - 1) * size ? 1 + (int)((rsp - first - 1) / size) : 0;
    }

    /// <summary>A #PF at Cpu.Write64 or Cpu.Read64 is an access through a translation that must be gone: counted, skipped.
    /// Anything else ends the domain.</summary>
    private static bool OnTrap(TrapFrame* f)
    {
        int v = VcpuOfStack(f->Rsp);
        if (f->Vector == 14 && (f->Rip == Cpu.Symbol(Cpu.SymWrite64) || f->Rip == Cpu.Symbol(Cpu.SymRead64)))
        {
            Stats(v)[Faults]++;
            f->Rip += 3;
            return true;
        }
        XenConsole.Write("pvtest: workload pt-stress: vCPU "); XenConsole.Dec(v); XenConsole.Write(" unexpected trap ");
        XenConsole.Dec((long)f->Vector); XenConsole.Write(" at "); XenConsole.Hex(f->Rip); XenConsole.Line("");
        Hypercall.Shutdown(Xen.SHUTDOWN_crash);
        return true;
    }

    private static ulong SlotVa(int slot) => Guest.WindowPage(slot);

    /// <summary>One entry of the window L1 (shared by every vCPU) written with mmu_update.</summary>
    private static long SetSlot(int slot, ulong pte)
    {
        ulong* req = stackalloc ulong[2];
        req[0] = ((Guest.MfnOf(Guest.WindowL1) << 12) + (ulong)slot * 8) | Xen.MMU_NORMAL_PT_UPDATE;
        req[1] = pte;
        uint done = 0;
        return Hypercall.MmuUpdate(req, 1, &done);
    }

    private static long SetEntry(ulong tableMfn, int index, ulong pte)
    {
        ulong* req = stackalloc ulong[2];
        req[0] = ((tableMfn << 12) + (ulong)index * 8) | Xen.MMU_NORMAL_PT_UPDATE;
        req[1] = pte;
        uint done = 0;
        return Hypercall.MmuUpdate(req, 1, &done);
    }

    /// <summary>Writes 0 through <paramref name="va"/>; true when the write faulted.</summary>
    private static bool WriteFaults(int v, ulong va)
    {
        ulong before = Cpu.Load64(&Stats(v)[Faults]);
        Cpu.Write64(va, 0);
        return Cpu.Load64(&Stats(v)[Faults]) != before;
    }

    /// <summary>Reads through <paramref name="va"/>; true when the read faulted.</summary>
    private static bool ReadFaults(int v, ulong va)
    {
        ulong before = Cpu.Load64(&Stats(v)[Faults]);
        Cpu.Read64(va);
        return Cpu.Load64(&Stats(v)[Faults]) != before;
    }

    /// <summary>Where the page that entry 1+v of a contested table maps appears while this vCPU hooks the table
    /// into the L2 above the window (at the entry after the window's own plus v).</summary>
    private static ulong HookedVa(int v) => Guest.WindowVa + (ulong)(1 + v) * 0x200000 + (ulong)(1 + v) * 4096;

    private static void Work(int v, int rounds)
    {
        ulong* s = Stats(v);
        ulong* b = Block;
        ulong x = 0x9E3779B97F4A7C15UL * (ulong)(v + 1);
        int w = SlotBase + 8 * v, ro = w + 1, dw = w + 2, dr = w + 3;
        ulong* allVcpus = stackalloc ulong[1];
        allVcpus[0] = (1UL << s_vcpus) - 1;
        for (int round = 1; round <= rounds; round++)
        {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            int j = (int)(x % Contested);
            ulong p = b[ContestedMfn + j];

            // A writable mapping of a contested frame, written through, then unmapped without a flush.
            long rc = (round & 1) != 0
                ? Hypercall.UpdateVaMapping(SlotVa(w), Guest.KernelPte(p, true), Xen.UVMF_INVLPG)
                : SetSlot(w, Guest.KernelPte(p, true));
            if ((round & 1) == 0 && rc == 0) rc = Hypercall.MmuextOp(Xen.MMUEXT_INVLPG_LOCAL, SlotVa(w), 0);
            bool stale = false;
            ulong pinsBefore = 0;
            if (rc == 0)
            {
                s[MapsOk]++;
                if (WriteFaults(v, SlotVa(w))) { Fail(v, 2, 0, round); return; }
                rc = (round & 2) != 0 ? SetSlot(w, 0) : Hypercall.UpdateVaMapping(SlotVa(w), 0, Xen.UVMF_NONE);
                if (rc != 0) { Fail(v, 3, rc, round); return; }
                stale = true;
                pinsBefore = Cpu.Load64(&b[Gen + j]);
            }
            else if (rc == -Xen.EBUSY) s[MapsRefused]++;
            else { Fail(v, 4, rc, round); return; }

            // Pin it as an L1 table: refused while another vCPU maps it writable or holds it pinned.
            rc = Hypercall.MmuextOp(Xen.MMUEXT_PIN_L1_TABLE, p, 0);
            if (rc == 0)
            {
                s[PinsOk]++;
                Cpu.AtomicAdd64(&b[Gen + j], 1);
                if (stale)
                {
                    if (!WriteFaults(v, SlotVa(w))) { Fail(v, 5, 0, round); return; }
                    s[StaleOwn]++;
                }
                if (!Pinned(v, p, w, ro, round)) return;
                rc = Hypercall.MmuextOp(Xen.MMUEXT_UNPIN_TABLE, p, 0);
                if (rc != 0) { Fail(v, 6, rc, round); return; }
                // The table was hooked and read through, then unhooked without a flush: once it is writable
                // (a type change), no translation through it may be left.
                rc = Hypercall.UpdateVaMapping(SlotVa(w), Guest.KernelPte(p, true), Xen.UVMF_INVLPG);
                if (rc == 0)
                {
                    if (!ReadFaults(v, HookedVa(v))) { Fail(v, 20, 0, round); return; }
                    s[StaleReads]++;
                    rc = Hypercall.UpdateVaMapping(SlotVa(w), 0, Xen.UVMF_INVLPG);
                    if (rc != 0) { Fail(v, 3, rc, round); return; }
                }
                else if (rc != -Xen.EBUSY) { Fail(v, 4, rc, round); return; }
            }
            else if (rc == -Xen.EINVAL)
            {
                s[PinsRefused]++;
                if (stale && Cpu.Load64(&b[Gen + j]) != pinsBefore)
                {
                    if (!WriteFaults(v, SlotVa(w))) { Fail(v, 7, 0, round); return; }
                    s[StaleOther]++;
                }
            }
            else { Fail(v, 8, rc, round); return; }

            // A data frame every vCPU shares: its own word, written writable, read back read-only.
            ulong d = b[DataMfn + (int)((x >> 8) % DataFrames)];
            rc = Hypercall.UpdateVaMapping(SlotVa(dw), Guest.KernelPte(d, true), Xen.UVMF_INVLPG | Xen.UVMF_ALL);
            if (rc != 0) { Fail(v, 9, rc, round); return; }
            ulong word = ((ulong)v << 56) | (ulong)round;
            Cpu.Write64(SlotVa(dw) + 8 * (ulong)(8 + v), word);
            rc = SetSlot(dr, Guest.KernelPte(d, false));
            if (rc != 0) { Fail(v, 10, rc, round); return; }
            if (Cpu.Read64(SlotVa(dr) + 8 * (ulong)(8 + v)) != word) { Fail(v, 11, 0, round); return; }
            rc = Hypercall.UpdateVaMapping(SlotVa(dr), 0, Xen.UVMF_INVLPG | (ulong)allVcpus);
            if (rc == 0) rc = Hypercall.UpdateVaMapping(SlotVa(dw), 0, Xen.UVMF_NONE);
            if (rc != 0) { Fail(v, 12, rc, round); return; }
            s[DataChecks]++;

            if (!ChaosStep(v, x >> 16, w + 4, round)) return;

            if ((round & 15) == 0)
            {
                rc = Hypercall.MmuextOp(VcpuChecks.MMUEXT_TLB_FLUSH_MULTI, 0, (ulong)allVcpus);
                if (rc != 0) { Fail(v, 13, rc, round); return; }
                s[Flushes]++;
            }
            s[Rounds] = (ulong)round;
        }
        Cpu.Write64((ulong)&s[Done], 1);
    }

    /// <summary>
    /// One move on the chaos frames, which no vCPU owns: map one writable (and unmap it), pin it as an L1 or
    /// an L2 table, unpin it (whoever pinned it), hook it as an L1 into the L2 above the window at this vCPU's
    /// own entry or unhook it. Each may be refused by what another vCPU did (-EBUSY for a writable mapping of a
    /// table, -EINVAL for a pin or hook of a frame of another type or already pinned, or an unpin of a frame not
    /// pinned); anything else is a failure. What is left pinned or hooked at the end the domain's teardown releases,
    /// and the frame table's self-check then sees whether every count came back.
    /// </summary>
    private static bool ChaosStep(int v, ulong r, int slot, int round)
    {
        ulong q = Block[ChaosMfn + (int)(r % Chaos)];
        long rc;
        switch ((r >> 4) % 6)
        {
            case 0:
                rc = Hypercall.UpdateVaMapping(SlotVa(slot), Guest.KernelPte(q, true), Xen.UVMF_INVLPG);
                if (rc == 0) rc = Hypercall.UpdateVaMapping(SlotVa(slot), 0, Xen.UVMF_INVLPG);
                else if (rc == -Xen.EBUSY) rc = 1;
                break;
            case 1: rc = Hypercall.MmuextOp(Xen.MMUEXT_PIN_L1_TABLE, q, 0); break;
            case 2: rc = Hypercall.MmuextOp(Xen.MMUEXT_PIN_L2_TABLE, q, 0); break;
            case 3: rc = Hypercall.MmuextOp(Xen.MMUEXT_UNPIN_TABLE, q, 0); break;
            case 4: rc = SetEntry(Block[L2Mfn], HookIndex(MaxVcpus + v), (q << 12) | Xen._PAGE_PRESENT | Xen._PAGE_RW | Xen._PAGE_USER | Xen._PAGE_ACCESSED); break;
            default: rc = SetEntry(Block[L2Mfn], HookIndex(MaxVcpus + v), 0); break;
        }
        if (rc == 0) Stats(v)[ChaosOk]++;
        else if (rc != 1 && rc != -Xen.EINVAL) { Fail(v, 19, rc, round); return false; }
        return true;
    }

    /// <summary>Entries of the L2 above the window after the window's own: 0-7 each vCPU's hook of its pinned
    /// contested table, 8-15 each vCPU's chaos hook.</summary>
    private static int HookIndex(int v) => (int)((Guest.WindowVa >> 21) & 511) + 1 + v;

    /// <summary>While this vCPU holds <paramref name="p"/> pinned: no writable mapping of it, a read-only one
    /// shows an entry written with mmu_update and nothing else. False (a failure recorded) when not.</summary>
    private static bool Pinned(int v, ulong p, int w, int ro, int round)
    {
        long rc = SetSlot(w, Guest.KernelPte(p, true));
        if (rc != -Xen.EBUSY) { Fail(v, 14, rc, round); return false; }
        rc = Hypercall.UpdateVaMapping(SlotVa(ro), Guest.KernelPte(p, false), Xen.UVMF_INVLPG);
        if (rc != 0) { Fail(v, 15, rc, round); return false; }
        ulong d = Block[DataMfn + (v & 1)], pte = Guest.KernelPte(d, false);
        rc = SetEntry(p, 1 + v, pte);
        if (rc != 0) { Fail(v, 16, rc, round); return false; }
        ulong* table = (ulong*)SlotVa(ro);
        ulong seen = Cpu.Read64((ulong)&table[1 + v]);
        if ((seen & (Xen.PTE_MFN_MASK | Xen._PAGE_PRESENT | Xen._PAGE_RW)) != (pte & (Xen.PTE_MFN_MASK | Xen._PAGE_PRESENT | Xen._PAGE_RW)))
        { Fail(v, 17, (long)seen, round); return false; }
        // Hooked into the live L2 as an L1 (it is one), the entry maps the data frame: read through it, then unhook.
        rc = SetEntry(Block[L2Mfn], HookIndex(v), (p << 12) | Xen._PAGE_PRESENT | Xen._PAGE_RW | Xen._PAGE_USER | Xen._PAGE_ACCESSED);
        if (rc != 0) { Fail(v, 21, rc, round); return false; }
        if (ReadFaults(v, HookedVa(v))) { Fail(v, 22, 0, round); return false; }
        rc = SetEntry(Block[L2Mfn], HookIndex(v), 0);
        if (rc != 0) { Fail(v, 21, rc, round); return false; }
        rc = SetEntry(p, 1 + v, 0);
        if (rc != 0) { Fail(v, 16, rc, round); return false; }
        for (int i = 0; i < 512; i++)
            if (Cpu.Read64((ulong)&table[i]) != 0) { Fail(v, 18, i, round); return false; }
        rc = Hypercall.UpdateVaMapping(SlotVa(ro), 0, Xen.UVMF_INVLPG);
        if (rc != 0) { Fail(v, 15, rc, round); return false; }
        return true;
    }

    private static void Fail(int v, int what, long rc, int round)
    {
        ulong* s = Stats(v);
        s[FailRc] = (ulong)rc;
        s[FailRound] = (ulong)round;
        s[FailWhat] = (ulong)what;
        Cpu.Write64((ulong)&s[Done], 1);
    }

    private static void Abort(string why)
    {
        XenConsole.Write("pvtest: workload pt-stress: "); XenConsole.Line(why);
        Hypercall.Shutdown(Xen.SHUTDOWN_crash);
    }

    private static int Number(string key, int fallback)
    {
        byte* cmd = Guest.StartInfo + Xen.SI_cmd_line;
        int at = Workloads.Find(cmd, key);
        if (at < 0) return fallback;
        int n = 0;
        for (byte* p = cmd + at; *p >= (byte)'0' && *p <= (byte)'9' && n < 100000000; p++) n = n * 10 + (*p - '0');
        return n > 0 ? n : fallback;
    }
}
