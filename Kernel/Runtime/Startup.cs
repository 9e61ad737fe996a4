// Module startup: what the NativeAOT runtime's StartupCodeHelpers does, for our image.
// ILCompiler 10 stores 32-bit relative pointers in both tables read here.
using System;

namespace Internal.Runtime
{
    public static unsafe class ModuleStartup
    {
        private struct ReadyToRunHeader
        {
            public uint Signature;           // 'RTR\0'
            public ushort MajorVersion, MinorVersion;
            public uint Flags;
            public ushort NumberOfSections;
            public byte EntrySize, EntryType;
        }

        private struct ModuleInfoRow
        {
            public int SectionId, Flags;
            public byte* Start, End;
        }

        private const uint ReadyToRunSignature = 0x00525452;
        private const int GCStaticRegion = 201, EagerCctor = 205;
        private const nint Uninitialized = 1, HasPreInitializedData = 2, FlagMask = 3;

        /// <summary>Allocates static bases and runs eager class constructors for every module.
        /// Returns false if a module header is not ILCompiler's.</summary>
        public static bool Initialize(void** modulesStart, void** modulesEnd)
        {
            for (void** m = modulesStart; m < modulesEnd; m++)
            {
                var header = (ReadyToRunHeader*)*m;
                if (header == null) continue;
                if (header->Signature != ReadyToRunSignature) return false;
                var rows = (ModuleInfoRow*)(header + 1);
                for (int i = 0; i < header->NumberOfSections; i++)
                    if (rows[i].SectionId == GCStaticRegion) InitializeStatics(rows[i].Start, rows[i].End);
                for (int i = 0; i < header->NumberOfSections; i++)
                    if (rows[i].SectionId == EagerCctor) RunEagerConstructors(rows[i].Start, rows[i].End);
            }
            return true;
        }

        private static byte* ReadRelPtr32(void* address) => (byte*)address + *(int*)address;

        private static void InitializeStatics(byte* start, byte* end)
        {
            for (byte* block = start; block < end; block += sizeof(int))
            {
                nint* pBlock = (nint*)ReadRelPtr32(block);
                nint blockAddress = (nint)ReadRelPtr32(pBlock);
                if ((blockAddress & Uninitialized) == 0) continue;

                var mt = (MethodTable*)(blockAddress & ~FlagMask);
                byte* obj = KernelHeap.Allocate(mt->BaseSize);
                *(MethodTable**)obj = mt;
                if ((blockAddress & HasPreInitializedData) != 0)
                {
                    byte* data = ReadRelPtr32((int*)pBlock + 1);
                    Memory.Move(obj + sizeof(nint), data, mt->BaseSize - (uint)(2 * sizeof(nint)));
                }
                *pBlock = (nint)obj;
            }
        }

        private static void RunEagerConstructors(byte* start, byte* end)
        {
            for (byte* p = start; p < end; p += sizeof(int))
                ((delegate*<void>)ReadRelPtr32(p))();
        }
    }
}
