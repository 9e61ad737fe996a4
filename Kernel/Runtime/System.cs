// The kernel's own corelib: the System types the C# compiler and ILCompiler require, and
// nothing more. There is no GC: objects are allocated by Kernel/Memory/KernelHeap and never freed.
#pragma warning disable CS0169, CS0649, CS0660, CS0661, CS8019, CS0626

namespace System
{
    public class Object
    {
        // Layout is a contract with the compiler: the first field is the MethodTable pointer.
        internal unsafe Internal.Runtime.MethodTable* m_pMethodTable;
        public Object() { }
        public virtual bool Equals(object o) => (object)this == o;
        public virtual int GetHashCode() => 0;
        public virtual string ToString() => null;
        ~Object() { }
    }

    public struct Void { }
    public struct Boolean { private bool m_value; }
    public struct Char { private char m_value; }
    public struct SByte { private sbyte m_value; }
    public struct Byte { private byte m_value; public const byte MaxValue = 0xFF; }
    public struct Int16 { private short m_value; }
    public struct UInt16 { private ushort m_value; public const ushort MaxValue = 0xFFFF; }
    public struct Int32 { private int m_value; public const int MaxValue = 0x7FFFFFFF; public const int MinValue = unchecked((int)0x80000000); }
    public struct UInt32 { private uint m_value; public const uint MaxValue = 0xFFFFFFFF; }
    public struct Int64 { private long m_value; public const long MaxValue = 0x7FFFFFFFFFFFFFFF; }
    public struct UInt64 { private ulong m_value; public const ulong MaxValue = 0xFFFFFFFFFFFFFFFF; }
    public struct IntPtr
    {
        private unsafe void* _value;
        public static readonly IntPtr Zero;
        public static unsafe explicit operator IntPtr(void* v) { IntPtr p = default; p._value = v; return p; }
        public static unsafe explicit operator void*(IntPtr p) => p._value;
        public static unsafe explicit operator long(IntPtr p) => (long)p._value;
        public static unsafe explicit operator IntPtr(long v) => (IntPtr)(void*)v;
    }
    public struct UIntPtr { private unsafe void* _value; }
    public struct Single { private float m_value; }
    public struct Double { private double m_value; }

    public abstract class ValueType { }
    public abstract class Enum : ValueType { }
    public struct Nullable<T> where T : struct { private readonly bool hasValue; private T value; }

    public sealed class String
    {
        // Layout is a contract with the compiler.
        private readonly int _stringLength;
        private char _firstChar;
        public int Length => _stringLength;
        [System.Runtime.CompilerServices.IndexerName("Chars")]
        public unsafe char this[int index]
        {
            [System.Runtime.CompilerServices.Intrinsic]
            get { fixed (char* p = &_firstChar) return p[index]; }
        }
    }

    public abstract class Array
    {
        private readonly int _numComponents;
        public int Length => _numComponents;
    }
    // ILCompiler's generic array type.
    public class Array<T> : Array { }

    public abstract class Delegate { }
    public abstract class MulticastDelegate : Delegate { }

    public struct RuntimeTypeHandle { private IntPtr _value; }
    public struct RuntimeMethodHandle { private IntPtr _value; }
    public struct RuntimeFieldHandle { private IntPtr _value; }
    public abstract class Type { public RuntimeTypeHandle TypeHandle => default; }
    internal sealed class RuntimeType : Type { }

    public class Attribute { }
    public enum AttributeTargets { All = 0x7FFF }
    public sealed class AttributeUsageAttribute : Attribute
    {
        public AttributeUsageAttribute(AttributeTargets validOn) { }
        public bool AllowMultiple { get; set; }
        public bool Inherited { get; set; }
    }
    public sealed class FlagsAttribute : Attribute { }
    public sealed class ParamArrayAttribute : Attribute { }
    public sealed class ThreadStaticAttribute : Attribute { }
    public sealed class ObsoleteAttribute : Attribute { }
    public sealed class CLSCompliantAttribute : Attribute { public CLSCompliantAttribute(bool b) { } }

    public class Exception { }
    public interface IDisposable { void Dispose(); }

    public static class Math
    {
        // The JIT binds these helpers by name for checked arithmetic; there are no exceptions,
        // so an overflow is a kernel bug and stops the machine.
        internal static long MultiplyChecked(long a, long b) => a * b;
        internal static ulong MultiplyChecked(ulong a, ulong b) => a * b;
        internal static int ConvertToInt32Checked(double v) => (int)v;
        internal static uint ConvertToUInt32Checked(double v) => (uint)v;
        internal static long ConvertToInt64Checked(double v) => (long)v;
        internal static ulong ConvertToUInt64Checked(double v) => (ulong)v;
    }

    internal static unsafe class Buffer
    {
        internal static void BulkMoveWithWriteBarrier(ref byte dest, ref byte src, nuint len)
            => SpanHelpers.Memmove(ref dest, ref src, len);
    }

    internal static unsafe class SpanHelpers
    {
        internal static void Memmove(ref byte dest, ref byte src, nuint len)
        {
            fixed (byte* d = &dest) fixed (byte* s = &src) Internal.Runtime.Memory.Move(d, s, len);
        }
        internal static void Fill(ref byte dest, nuint len, byte value)
        {
            fixed (byte* d = &dest) Internal.Runtime.Memory.Set(d, value, len);
        }
        internal static void ClearWithoutReferences(ref byte dest, nuint len)
        {
            fixed (byte* d = &dest) Internal.Runtime.Memory.Set(d, 0, len);
        }
    }
}

namespace System.Reflection
{
    public sealed class DefaultMemberAttribute : Attribute { public DefaultMemberAttribute(string memberName) { } }
}
