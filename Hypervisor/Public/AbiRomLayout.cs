namespace Microhv.Hypervisor.Public;

/// <summary>
/// The ABI shim ROM's contract with guests (docs/abi-rom.md), as Xen's public headers are for
/// hypercalls: the ELF note, the header and call-table layout, the call numbers, the data page. Shared
/// by the hypervisor (AbiRom.MapInto), the generator (Boot/AbiRomGen, which compiles this file alone)
/// and the tests.
/// </summary>
public static class AbiRomLayout
{
    // ELF note (name "Microhv") the guest uses to ask for the ROM.
    public const string NoteName = "Microhv";
    public const uint NOTE_ABI_ROM = 1;            // u64: ROM virtual address (0 = DefaultVirtualAddress)
    public const uint NOTE_ABI_VERSION = 2;        // u16 major, u16 minor the guest was written for

    public const ushort VersionMajor = 1, VersionMinor = 0;
    /// <summary>Where the ROM goes when the note's address is 0: the last 2 MiB of the address space.</summary>
    public const ulong DefaultVirtualAddress = 0xFFFF_FFFF_FFC0_0000;
    /// <summary>The ROM and its data page must lie inside one 2 MiB-aligned window.</summary>
    public const ulong WindowSize = 0x20_0000;

    // Header at ROM offset 0 (packed, little-endian).
    public const int HdrSignature = 0;             // "MHVROM64"
    public const int HdrVersionMajor = 8;          // u16
    public const int HdrVersionMinor = 10;         // u16
    public const int HdrHeaderLength = 12;         // u16
    public const int HdrCallCount = 14;            // u16
    public const int HdrCallTableOffset = 16;      // u32
    public const int HdrRomLength = 20;            // u32, a multiple of 4096
    public const int HdrChecksum = 24;             // u32: the u32 words of the ROM sum to 0 mod 2^32
    public const int HdrFlags = 28;                // u32, 0 in version 1.0
    public const int HdrDataOffset = 32;           // u32: the data page, relative to the ROM base
    public const int HdrInitOffset = 36;           // u32: init entry point
    public const int HdrGetRelocOffset = 40;       // u32: get_reloc entry point
    public const int HdrReserved = 44;             // u32, 0
    public const int HeaderLength = 48;
    public const string Signature = "MHVROM64";

    // Call table entry (12 bytes).
    public const int EntSize = 12;
    public const int EntOffset = 0;                // u32: entry point, relative to the ROM base
    public const int EntCallNumber = 4;            // u16
    public const int EntRelocType = 6;             // u8
    public const int EntReserved = 7;              // u8, 0
    public const int EntClobbers = 8;              // u32: bit n = register n (rax 0 .. r15 15) is clobbered

    // get_reloc relocation types (VMI's).
    public const int RELOC_NONE = 0, RELOC_CALL_REL = 1, RELOC_JUMP_REL = 2, RELOC_NOP = 3;

    // Data page (per domain, read-write, at ROM base + DataOffset).
    public const int DataVcpuInfo = 0x00;          // u64: guest virtual address of this vCPU's vcpu_info
    public const int DataLazyMode = 0x08;          // u32: LAZY_* bits
    public const int DataQueueCount = 0x0C;        // u32: mmu_update requests queued
    public const int DataCr0 = 0x10;               // u64 shadows the Get/Set calls keep
    public const int DataCr3 = 0x18;
    public const int DataCr4 = 0x20;
    public const int DataGdt = 0x30;               // u64 frame list, u64 entries (last SetGDT)
    public const int DataLdt = 0x40;               // u64 linear address, u64 entries (last SetLDT)
    public const int DataIdt = 0x50;               // u64 trap table (last SetIDT)
    public const int DataQueue = 0x80;             // mmu_update {u64 ptr, u64 val}[QueueCapacity]
    public const int QueueCapacity = 128;

    public const int LAZY_NONE = 0, LAZY_CPU = 1, LAZY_MMU = 2;

    /// <summary>Shadow values init stores: CR0 = PG|AM|WP|NE|ET|MP|PE, CR4 = PAE|OSFXSR|OSXMMEXCPT.</summary>
    public const uint InitialCr0 = 0x8005_0033, InitialCr4 = 0x620;

    // Call numbers: VMI's where VMI had the call, Microhv's own from 80.
    public const int CPUID = 0, WRMSR = 1, RDMSR = 2, SetGDT = 3, SetLDT = 4, SetIDT = 5, SetTR = 6,
        GetGDT = 7, GetLDT = 8, GetIDT = 9, GetTR = 10, WriteGDTEntry = 11, WriteLDTEntry = 12, WriteIDTEntry = 13,
        UpdateKernelStack = 14, SetCR0 = 15, SetCR2 = 16, SetCR3 = 17, SetCR4 = 18, GetCR0 = 19, GetCR2 = 20,
        GetCR3 = 21, GetCR4 = 22, WBINVD = 23, SetDR = 24, GetDR = 25, RDTSC = 27, CLTS = 28,
        EnableInterrupts = 29, DisableInterrupts = 30, GetInterruptMask = 31, SetInterruptMask = 32, IRET = 33,
        Halt = 35, Reboot = 36, Shutdown = 37, SetPxE = 38, UpdatePxE = 40, MachineToPhysical = 42,
        AllocatePage = 44, ReleasePage = 45, InvalPage = 46, FlushTLB = 47, SetIOPLMask = 61, IODelay = 65,
        SetLazyMode = 73,
        SetPTE = 80, SetPDE = 81, SetPDPTE = 82, SetPML4E = 83,
        UpdatePTE = 84, UpdatePDE = 85, UpdatePDPTE = 86, UpdatePML4E = 87,
        ConsoleWrite = 96, SetTimer = 97, GetTime = 98;

    // AllocatePage/ReleasePage flags (VMI's page-table flags) and FlushTLB flags.
    public const uint PAGE_PT = 1, PAGE_PD = 2, PAGE_PDP = 4, PAGE_PML4 = 8;
    public const uint FLUSH_TLB = 1, FLUSH_GLOBAL = 2;
}
