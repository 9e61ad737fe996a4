// Runtime helpers that ILCompiler-generated code calls by symbol name. Without a GC the
// write barriers are plain stores and allocation is a bump allocator (KernelHeap).
#pragma warning disable CS0169, CS0649
using System;
using System.Runtime;
using System.Runtime.CompilerServices;

namespace Internal.Runtime
{
    // The part of ILCompiler's MethodTable layout the runtime reads.
    internal unsafe struct MethodTable
    {
        internal uint Flags;        // low 16 bits: component size of arrays and strings
        internal uint BaseSize;     // object size including the header word
        internal MethodTable* RelatedType;
        internal ushort NumVtableSlots;
        internal ushort NumInterfaces;
        internal uint HashCode;
        internal ushort ComponentSize => (ushort)Flags;
    }

    public static unsafe class Memory
    {
        public static void Move(byte* dest, byte* src, nuint len)
        {
            // Whole aligned words when both ends allow it (FXSAVE images, trap frames, page copies).
            if ((((nuint)dest | (nuint)src | len) & 7) == 0 && (dest + len <= src || src + len <= dest))
            {
                ulong* d = (ulong*)dest, s = (ulong*)src;
                for (nuint i = 0; i < len / 8; i++) d[i] = s[i];
                return;
            }
            if (dest < src) { for (nuint i = 0; i < len; i++) dest[i] = src[i]; }
            else { for (nuint i = len; i > 0; i--) dest[i - 1] = src[i - 1]; }
        }
        public static void Set(byte* dest, byte value, nuint len)
        {
            if (value == 0 && (((nuint)dest | len) & 7) == 0)
            {
                for (nuint i = 0; i < len / 8; i++) ((ulong*)dest)[i] = 0;
                return;
            }
            for (nuint i = 0; i < len; i++) dest[i] = value;
        }
    }

    /// <summary>
    /// The managed heap: a bump allocator over one region handed over at boot. Nothing is freed;
    /// boot-time structures live forever and the hypercall and trap paths never allocate.
    /// </summary>
    public static unsafe class KernelHeap
    {
        private static byte* s_next;
        private static byte* s_end;
        public static ulong Allocated;

        public static void Initialize(byte* start, byte* end) { s_next = start; s_end = end; }
        public static ulong Remaining => (ulong)(s_end - s_next);

        /// <summary>Boot-time allocation of raw, zeroed memory with the given power-of-two alignment.</summary>
        public static byte* AllocateAligned(ulong size, ulong alignment)
        {
            ulong pad = ((ulong)s_next + alignment - 1 & ~(alignment - 1)) - (ulong)s_next;
            if (pad != 0) Allocate((nuint)pad);
            return Allocate((nuint)size);
        }

        internal static byte* Allocate(nuint size)
        {
            size = (size + 15) & ~(nuint)15;
            if (s_next == null || (nuint)(s_end - s_next) < size) Failure.OutOfMemory(size);
            byte* p = s_next;
            s_next += size;
            Allocated += size;
            Memory.Set(p, 0, size);
            return p;
        }
    }

    /// <summary>Fatal runtime failures: the kernel registers the function that reports and halts.</summary>
    public static unsafe class Failure
    {
        public static delegate*<int, ulong, void> Handler;
        public const int OutOfMemoryCode = 1, FailFastCode = 2, ThrowCode = 3, UnsupportedCode = 4;
        internal static void OutOfMemory(nuint size) => Stop(OutOfMemoryCode, size);
        public static void Stop(int code, ulong detail)
        {
            if (Handler != null) Handler(code, detail);
            while (true) { }
        }
    }

    internal static unsafe class AllocationExports
    {
        [RuntimeExport("RhpNewFast")]
        static object RhpNewFast(MethodTable* pMT)
        {
            byte* p = KernelHeap.Allocate(pMT->BaseSize);
            *(MethodTable**)p = pMT;
            return Unsafe.AsRef<object>(&p);
        }

        [RuntimeExport("RhpNewFinalizable")]
        static object RhpNewFinalizable(MethodTable* pMT) => RhpNewFast(pMT);

        [RuntimeExport("RhpNewArrayFast")]
        static object RhpNewArrayFast(MethodTable* pMT, int length)
        {
            if (length < 0) Failure.Stop(Failure.UnsupportedCode, (ulong)length);
            nuint size = pMT->BaseSize + (nuint)length * pMT->ComponentSize;
            byte* p = KernelHeap.Allocate(size);
            *(MethodTable**)p = pMT;
            *(int*)(p + 8) = length;
            return Unsafe.AsRef<object>(&p);
        }

        [RuntimeExport("RhpNewPtrArrayFast")]
        static object RhpNewPtrArrayFast(MethodTable* pMT, int length) => RhpNewArrayFast(pMT, length);

        [RuntimeExport("RhpNewArray")]
        static object RhpNewArray(MethodTable* pMT, int length) => RhpNewArrayFast(pMT, length);

        [RuntimeExport("RhpAssignRef")]
        static void RhpAssignRef(void** dst, void* r) => *dst = r;

        [RuntimeExport("RhpCheckedAssignRef")]
        static void RhpCheckedAssignRef(void** dst, void* r) => *dst = r;

        [RuntimeExport("RhpReversePInvoke")] static void RhpReversePInvoke(IntPtr frame) { }
        [RuntimeExport("RhpReversePInvokeReturn")] static void RhpReversePInvokeReturn(IntPtr frame) { }
        [RuntimeExport("RhpPInvoke")] static void RhpPInvoke(IntPtr frame) { }
        [RuntimeExport("RhpPInvokeReturn")] static void RhpPInvokeReturn(IntPtr frame) { }
        [RuntimeExport("RhpFallbackFailFast")] static void RhpFallbackFailFast() => Failure.Stop(Failure.FailFastCode, 0);
        [RuntimeExport("RhpThrowEx")] static void RhpThrowEx(object ex) => Failure.Stop(Failure.ThrowCode, 0);
        [RuntimeExport("RhpGcPoll")] static void RhpGcPoll() { }

        [RuntimeExport("memset")]
        static byte* memset(byte* dest, int value, nuint len) { Memory.Set(dest, (byte)value, len); return dest; }
        [RuntimeExport("memcpy")]
        static byte* memcpy(byte* dest, byte* src, nuint len) { Memory.Move(dest, src, len); return dest; }
        [RuntimeExport("memmove")]
        static byte* memmove(byte* dest, byte* src, nuint len) { Memory.Move(dest, src, len); return dest; }
    }
}

namespace Internal.Runtime.CompilerHelpers
{
    using Internal.Runtime;

    // Helpers the compiler binds by name. Casts that need type hierarchy walks are supported for
    // classes; anything beyond (interfaces, variance) is a kernel bug and stops the machine.
    internal static unsafe class ThrowHelpers
    {
        static void Stop() => Failure.Stop(Failure.ThrowCode, 0);
        public static void ThrowFeatureBodyRemoved() => Stop();
        public static void ThrowIndexOutOfRangeException() => Stop();
        public static void ThrowNullReferenceException() => Stop();
        public static void ThrowOverflowException() => Stop();
        public static void ThrowDivideByZeroException() => Stop();
        public static void ThrowArrayTypeMismatchException() => Stop();
        public static void ThrowPlatformNotSupportedException() => Stop();
        public static void ThrowNotImplementedException() => Stop();
        public static void ThrowTypeLoadException(Internal.TypeSystem.ExceptionStringID id, string a, string b) => Stop();
        public static void ThrowTypeLoadExceptionWithArgument(Internal.TypeSystem.ExceptionStringID id, string a, string b, string c) => Stop();
        public static void ThrowMissingMethodException(Internal.TypeSystem.ExceptionStringID id, string a) => Stop();
        public static void ThrowMissingFieldException(Internal.TypeSystem.ExceptionStringID id, string a) => Stop();
        public static void ThrowFileNotFoundException(Internal.TypeSystem.ExceptionStringID id, string a) => Stop();
        public static void ThrowInvalidProgramException(Internal.TypeSystem.ExceptionStringID id) => Stop();
        public static void ThrowInvalidProgramExceptionWithArgument(Internal.TypeSystem.ExceptionStringID id, string a) => Stop();
        public static void ThrowMarshalDirectiveException(Internal.TypeSystem.ExceptionStringID id) => Stop();
        public static void ThrowAmbiguousMatchException(Internal.TypeSystem.ExceptionStringID id) => Stop();
        public static void ThrowBadImageFormatException(Internal.TypeSystem.ExceptionStringID id) => Stop();
    }

    internal static class LdTokenHelpers
    {
        private static RuntimeTypeHandle GetRuntimeTypeHandle(IntPtr pEEType) => default;
        private static RuntimeMethodHandle GetRuntimeMethodHandle(IntPtr pHandleSignature) => default;
        private static RuntimeFieldHandle GetRuntimeFieldHandle(IntPtr pHandleSignature) => default;
        private static Type GetRuntimeType(IntPtr pEEType) => null;
    }

    // The runtime's startup hook class must exist even though our startup is our own.
    internal static class StartupCodeHelpers { }

}

namespace Internal.TypeSystem
{
    internal enum ExceptionStringID { Dummy }
}

namespace System.Runtime
{
    using Internal.Runtime;
    internal static unsafe class TypeCast
    {
        static bool IsDerived(MethodTable* t, MethodTable* target)
        {
            for (; t != null; t = t->RelatedType) if (t == target) return true;
            return false;
        }
        public static object IsInstanceOfClass(MethodTable* pTargetType, object obj)
            => obj == null || IsDerived(obj.m_pMethodTable, pTargetType) ? obj : null;
        public static object IsInstanceOfAny(MethodTable* pTargetType, object obj) => IsInstanceOfClass(pTargetType, obj);
        public static bool IsInstanceOfException(MethodTable* pTargetType, object obj) => obj != null && IsDerived(obj.m_pMethodTable, pTargetType);
        public static object IsInstanceOfInterface(MethodTable* pTargetType, object obj) { Failure.Stop(Failure.UnsupportedCode, 0); return null; }
        public static object CheckCastClass(MethodTable* pTargetType, object obj)
        {
            if (obj == null || IsDerived(obj.m_pMethodTable, pTargetType)) return obj;
            Failure.Stop(Failure.ThrowCode, 0); return null;
        }
        public static object CheckCastClassSpecial(MethodTable* pTargetType, object obj) => CheckCastClass(pTargetType, obj);
        public static object CheckCastAny(MethodTable* pTargetType, object obj) => CheckCastClass(pTargetType, obj);
        public static object CheckCastInterface(MethodTable* pTargetType, object obj) { Failure.Stop(Failure.UnsupportedCode, 0); return null; }
        // Arrays of references: 16 bytes of header (MethodTable, length) precede the elements.
        public static void StelemRef(object[] array, nint index, object obj)
        {
            byte* a = *(byte**)Unsafe.AsPointer(ref array);
            Unsafe.AsRef<object>(a + 16 + index * 8) = obj;
        }
        public static ref object LdelemaRef(object[] array, nint index, MethodTable* elementType)
        {
            byte* a = *(byte**)Unsafe.AsPointer(ref array);
            return ref Unsafe.AsRef<object>(a + 16 + index * 8);
        }
    }


    internal static unsafe class RuntimeExports
    {
        public static object RhBox(MethodTable* pEEType, ref byte data) { Failure.Stop(Failure.UnsupportedCode, 1); return null; }
        public static ref byte RhUnbox2(MethodTable* pUnboxToEEType, object obj) { Failure.Stop(Failure.UnsupportedCode, 2); return ref *(byte*)null; }
        public static void RhUnboxNullable(ref byte data, MethodTable* pUnboxToEEType, object obj) => Failure.Stop(Failure.UnsupportedCode, 3);
        public static void RhUnboxTypeTest(MethodTable* pType, MethodTable* pBoxType) => Failure.Stop(Failure.UnsupportedCode, 4);
    }
}

namespace System.Runtime.InteropServices
{
    public unsafe interface IDynamicInterfaceCastable
    {
        internal static IntPtr GetDynamicInterfaceImplementation(IDynamicInterfaceCastable instance, Internal.Runtime.MethodTable* interfaceType, ushort slot)
        { Internal.Runtime.Failure.Stop(Internal.Runtime.Failure.UnsupportedCode, 5); return default; }
    }
}
