namespace Microhv.Hypervisor;

/// <summary>Why building a PV domain from a kernel image failed (Ok when it did not).</summary>
public enum DomainBuildStatus
{
    Ok = 0,
    NotElf64X86,
    NoXenNotes,
    NotForXen30,
    BadNotes,
    RequiresUnsupportedFeature,
    NoInitialDomainSupport,
    BadAddresses,
    SegmentOutsideMemory,
    OverlapsHypervisor,
    BadP2mAddress,
    BadHypercallPage,
    NotEnoughMemory,
    OutOfFrames,
    DomainTableFull,
    DomainIdInUse,
    /// <summary>The bootstrap tables did not validate: a builder bug, never the image's fault.</summary>
    ValidationFailed,
    /// <summary>The image asked for the ABI ROM at an address it cannot have.</summary>
    BadAbiRomRequest,
    /// <summary>An initrd was given but the kernel lacks XEN_ELFNOTE_MOD_START_PFN (Microhv passes it only as a PFN).</summary>
    InitrdNeedsModStartPfn,
    /// <summary>The initrd does not lie in machine memory.</summary>
    BadInitrd,
}
