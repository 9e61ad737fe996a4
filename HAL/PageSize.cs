namespace Microhv.HAL;

/// <summary>
/// The three page sizes of x86-64 4-level paging (Intel SDM Vol. 3A, 4.5): a 4 KiB page mapped by a
/// PTE, a 2 MiB page mapped by a PDE with PS=1, a 1 GiB page mapped by a PDPTE with PS=1.
/// </summary>
public enum PageSize
{
    Size4K = 0,
    Size2M = 1,
    Size1G = 2,
}
