namespace Microhv.Hypervisor.Public;

/// <summary>xen/include/public/errno.h: the values guests see, negated, as hypercall results.</summary>
public static class Errno
{
    public const long EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, ENXIO = 6, E2BIG = 7, ENOEXEC = 8,
        EBADF = 9, ECHILD = 10, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14, EBUSY = 16, EEXIST = 17,
        EXDEV = 18, ENODEV = 19, EISDIR = 21, EINVAL = 22, ENFILE = 23, EMFILE = 24, ENOSPC = 28, EROFS = 30,
        EMLINK = 31, EDOM = 33, ERANGE = 34, EDEADLK = 35, ENAMETOOLONG = 36, ENOLCK = 37, ENOSYS = 38,
        ENOTEMPTY = 39, ENODATA = 61, ETIME = 62, EBADMSG = 74, EOVERFLOW = 75, EILSEQ = 84, ERESTART = 85,
        ENOTSOCK = 88, EOPNOTSUPP = 95, EADDRINUSE = 98, EADDRNOTAVAIL = 99, ENOBUFS = 105, EISCONN = 106,
        ENOTCONN = 107, ETIMEDOUT = 110;
}
