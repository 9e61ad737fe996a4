namespace Microhv.Hypervisor;

/// <summary>Zeroes arrays in place (the kernel's corelib has no Array.Clear); used when pooled objects are reused.</summary>
public static class Zero
{
    public static void Fill(ulong[] a) { for (int i = 0; i < a.Length; i++) a[i] = 0; }
    public static void Fill(uint[] a) { for (int i = 0; i < a.Length; i++) a[i] = 0; }
    public static void Fill(int[] a) { for (int i = 0; i < a.Length; i++) a[i] = 0; }
    public static void Fill(ushort[] a) { for (int i = 0; i < a.Length; i++) a[i] = 0; }
    public static void Fill(byte[] a) { for (int i = 0; i < a.Length; i++) a[i] = 0; }
    public static void Fill(bool[] a) { for (int i = 0; i < a.Length; i++) a[i] = false; }
    public static void Fill(TrapInfo[] a) { for (int i = 0; i < a.Length; i++) a[i] = default; }
    public static void Fill(ChannelState[] a) { for (int i = 0; i < a.Length; i++) a[i] = ChannelState.Free; }
}
