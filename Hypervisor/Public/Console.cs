namespace Microhv.Hypervisor.Public;

/// <summary>
/// xen/include/public/io/console.h struct xencons_interface: the shared page of a PV console.
/// The guest produces into out[] and the back end consumes; indices run freely and are masked.
/// </summary>
public static class XenconsInterface
{
    public const int in_ = 0;              // char in[1024]  (named "in" in C)
    public const int out_ = 1024;          // char out[2048]
    public const int in_cons = 3072;       // XENCONS_RING_IDX (uint32_t)
    public const int in_prod = 3076;
    public const int out_cons = 3080;
    public const int out_prod = 3084;

    public const uint IN_SIZE = 1024, OUT_SIZE = 2048;

    /// <summary>MASK_XENCONS_IDX(idx, ring): the ring sizes are powers of two.</summary>
    public static uint MaskOut(uint idx) => idx & (OUT_SIZE - 1);
    public static uint MaskIn(uint idx) => idx & (IN_SIZE - 1);
}
