//! Classification of a write fault into the kinds of docs/kernel.md §2.
//!
//! The function is pure: it sees only facts the probes gathered, so the same
//! code runs inside the eBPF programs of every strategy and in host unit tests.

/// x86 page-fault error code bit: the fault hit a present page (protection).
pub const PF_PROT: u32 = 1 << 0;
/// x86 page-fault error code bit: the access was a write.
pub const PF_WRITE: u32 = 1 << 1;
/// x86 page-fault error code bit: the access came from user mode.
pub const PF_USER: u32 = 1 << 2;

/// `VM_WRITE` from include/linux/mm.h.
pub const VM_WRITE: u64 = 0x0000_0002;
/// `VM_SHARED` from include/linux/mm.h.
pub const VM_SHARED: u64 = 0x0000_0008;
/// `VM_MAYSHARE` from include/linux/mm.h.
pub const VM_MAYSHARE: u64 = 0x0000_0080;

/// The kind of a write fault, one taxonomy for every probe strategy.
///
/// The discriminants are stored in [`crate::FaultEvent::kind`]; 0 means "not a
/// fault cowprof reports" and is never a valid `Kind`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `wp_page_copy` of an anon page shared after fork.
    CowCopyAnon = 1,
    /// `wp_page_copy` of a page-cache page in a private file mapping.
    CowCopyFile = 2,
    /// `do_cow_fault`: a write to a not-present page of a private file mapping.
    CowFillFile = 3,
    /// `wp_page_copy` from the zero page: a zeroed page, no copy.
    CowZero = 4,
    /// Write-protect fault in a private mapping resolved without a copy.
    CowReuse = 5,
    /// Write-protect fault in a shared mapping (write-notify, dirty tracking).
    WriteNotify = 6,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 6] = [
        Kind::CowCopyAnon,
        Kind::CowCopyFile,
        Kind::CowFillFile,
        Kind::CowZero,
        Kind::CowReuse,
        Kind::WriteNotify,
    ];

    /// The kind stored as `raw` in an event, if it is one.
    #[must_use]
    pub const fn from_u8(raw: u8) -> Option<Kind> {
        match raw {
            1 => Some(Kind::CowCopyAnon),
            2 => Some(Kind::CowCopyFile),
            3 => Some(Kind::CowFillFile),
            4 => Some(Kind::CowZero),
            5 => Some(Kind::CowReuse),
            6 => Some(Kind::WriteNotify),
            _ => None,
        }
    }

    /// The stable name used in every output format.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Kind::CowCopyAnon => "cow_copy_anon",
            Kind::CowCopyFile => "cow_copy_file",
            Kind::CowFillFile => "cow_fill_file",
            Kind::CowZero => "cow_zero",
            Kind::CowReuse => "cow_reuse",
            Kind::WriteNotify => "write_notify",
        }
    }

    /// The kind named `name` (see [`Kind::name`]).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the kernel allocated a new page for this fault.
    #[must_use]
    pub const fn is_copy(self) -> bool {
        matches!(
            self,
            Kind::CowCopyAnon | Kind::CowCopyFile | Kind::CowFillFile | Kind::CowZero
        )
    }
}

/// What the probes learned about one write fault.
///
/// Flags are `u32` rather than `bool` so the struct can live in BPF maps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultFacts {
    /// The architecture's page-fault error code (x86 layout, see `PF_*`).
    pub error_code: u32,
    /// `vma->vm_flags`.
    pub vm_flags: u64,
    /// Non-zero when the mapping is backed by a file (`vma->vm_file`).
    pub file_backed: u32,
    /// Non-zero when the mapping was found; without it nothing is classified.
    pub vma_found: u32,
    /// Order-0 movable page allocations seen inside the fault.
    pub allocs: u32,
    /// Non-zero when one of them asked for a zeroed page (`__GFP_ZERO`).
    pub alloc_zeroed: u32,
    /// Non-zero when the fault moved a page from the file counters to anon
    /// (`kmem:rss_stat` on `MM_FILEPAGES`/`MM_SHMEMPAGES`): the old page was a
    /// page-cache page.
    pub file_to_anon: u32,
}

/// Classify one completed user fault. `None` means it is not a fault cowprof
/// reports: a read, a first touch of anon memory, a write the mapping does
/// not allow (the kernel's `access_error()` sends SIGSEGV before any page is
/// touched), or a fault whose mapping is unknown.
///
/// The decision follows `do_wp_page` and `do_cow_fault` in mm/memory.c:
/// - a write to a present page (PROT) of a shared mapping is write-notify;
/// - a write to a present page of a private mapping copies when a page was
///   allocated (zeroed from the zero page, from page cache, or from an anon
///   page shared after fork) and is reused otherwise;
/// - a write to a not-present page of a private file mapping that allocated a
///   page is filled from the page cache (`do_cow_fault`);
/// - a write to a not-present page anywhere else is a first touch.
#[must_use]
pub const fn classify(facts: &FaultFacts) -> Option<Kind> {
    if facts.error_code & PF_WRITE == 0 || facts.vma_found == 0 || facts.vm_flags & VM_WRITE == 0 {
        return None;
    }
    let shared = facts.vm_flags & (VM_SHARED | VM_MAYSHARE) != 0;
    let present = facts.error_code & PF_PROT != 0;
    match (present, shared) {
        (true, true) => Some(Kind::WriteNotify),
        (true, false) if facts.allocs == 0 => Some(Kind::CowReuse),
        (true, false) if facts.alloc_zeroed != 0 => Some(Kind::CowZero),
        (true, false) if facts.file_to_anon != 0 => Some(Kind::CowCopyFile),
        (true, false) => Some(Kind::CowCopyAnon),
        // do_cow_fault always allocates the anon copy; a not-present write
        // that allocated nothing found its PTE already fixed (spurious).
        (false, false) if facts.file_backed != 0 && facts.allocs != 0 => Some(Kind::CowFillFile),
        (false, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE: u64 = 0x73; // VM_READ|VM_WRITE|VM_MAYREAD|VM_MAYWRITE|VM_MAYEXEC
    const SHARED: u64 = PRIVATE | VM_SHARED | VM_MAYSHARE;

    fn facts(error_code: u32, vm_flags: u64) -> FaultFacts {
        FaultFacts {
            error_code: error_code | PF_USER,
            vm_flags,
            vma_found: 1,
            ..FaultFacts::default()
        }
    }

    #[test]
    fn read_faults_are_ignored() {
        assert_eq!(classify(&facts(PF_PROT, PRIVATE)), None);
        assert_eq!(classify(&facts(0, PRIVATE)), None);
    }

    #[test]
    fn unknown_mapping_is_not_classified() {
        let mut f = facts(PF_PROT | PF_WRITE, PRIVATE);
        f.vma_found = 0;
        f.allocs = 1;
        assert_eq!(classify(&f), None);
    }

    #[test]
    fn present_write_in_shared_mapping_is_write_notify() {
        assert_eq!(
            classify(&facts(PF_PROT | PF_WRITE, SHARED)),
            Some(Kind::WriteNotify)
        );
        // MAP_SHARED|PROT_READ only opened read-write later keeps VM_MAYSHARE.
        let only_mayshare = facts(PF_PROT | PF_WRITE, PRIVATE | VM_MAYSHARE);
        assert_eq!(classify(&only_mayshare), Some(Kind::WriteNotify));
    }

    #[test]
    fn present_write_without_allocation_is_reuse() {
        assert_eq!(
            classify(&facts(PF_PROT | PF_WRITE, PRIVATE)),
            Some(Kind::CowReuse)
        );
    }

    #[test]
    fn present_write_with_zeroed_allocation_is_zero() {
        let mut f = facts(PF_PROT | PF_WRITE, PRIVATE);
        f.allocs = 1;
        f.alloc_zeroed = 1;
        assert_eq!(classify(&f), Some(Kind::CowZero));
    }

    #[test]
    fn present_write_moving_a_file_page_to_anon_is_file_copy() {
        let mut f = facts(PF_PROT | PF_WRITE, PRIVATE);
        f.file_backed = 1;
        f.allocs = 1;
        f.file_to_anon = 1;
        assert_eq!(classify(&f), Some(Kind::CowCopyFile));
    }

    #[test]
    fn present_write_with_allocation_is_anon_copy() {
        let mut f = facts(PF_PROT | PF_WRITE, PRIVATE);
        f.allocs = 1;
        assert_eq!(classify(&f), Some(Kind::CowCopyAnon));
        // An anon page inside a file mapping (already copied once, then
        // shared by fork) is an anon copy, not a file copy.
        f.file_backed = 1;
        assert_eq!(classify(&f), Some(Kind::CowCopyAnon));
    }

    #[test]
    fn absent_write_in_private_file_mapping_is_fill() {
        let mut f = facts(PF_WRITE, PRIVATE);
        f.file_backed = 1;
        f.allocs = 1;
        assert_eq!(classify(&f), Some(Kind::CowFillFile));
    }

    #[test]
    fn absent_write_without_allocation_is_spurious() {
        let mut f = facts(PF_WRITE, PRIVATE);
        f.file_backed = 1;
        assert_eq!(classify(&f), None);
    }

    #[test]
    fn absent_write_elsewhere_is_first_touch() {
        let mut anon = facts(PF_WRITE, PRIVATE);
        anon.allocs = 1;
        assert_eq!(classify(&anon), None);
        let mut shared_file = facts(PF_WRITE, SHARED);
        shared_file.file_backed = 1;
        assert_eq!(classify(&shared_file), None);
    }

    #[test]
    fn write_to_a_mapping_without_vm_write_is_not_classified() {
        // A write to a read-only private page dies with SIGSEGV in
        // access_error(); with lazy completion its record still completes.
        let read_only = PRIVATE & !VM_WRITE;
        assert_eq!(classify(&facts(PF_PROT | PF_WRITE, read_only)), None);
        let mut copy = facts(PF_PROT | PF_WRITE, read_only);
        copy.allocs = 1;
        assert_eq!(classify(&copy), None);
    }

    #[test]
    fn kinds_round_trip_through_u8() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_u8(kind as u8), Some(kind));
        }
        assert_eq!(Kind::from_u8(0), None);
        assert_eq!(Kind::from_u8(7), None);
        assert!(Kind::CowZero.is_copy());
        assert!(!Kind::CowReuse.is_copy());
        assert!(!Kind::WriteNotify.is_copy());
    }
}
