//! Sending a file's path to userspace once per (dev, inode), read from its
//! dentry chain while the mapping is known to be alive.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{bpf_probe_read_kernel, bpf_probe_read_kernel_str},
    maps::ring_buf::RingBufEntry,
};
use cowprof_common::{
    event::{NAME_LEN, PATH_DEPTH},
    FileKey, FileRecord, Stat, VmaInfo, TAG_FILE,
};

use crate::maps::{config, count, EVENTS, SEEN_FILES};

/// A record for (`ino`, `dev`), reserved with its header written, unless
/// that key was announced already. The key is marked announced only once
/// the reservation succeeded: a full ring buffer loses this record (which is
/// counted) but not the file's path, which the next fault on it sends. Two
/// CPUs may both send one path; userspace keeps either. The caller writes
/// the names and submits the record.
#[inline(always)]
fn new_record(ino: u64, dev: u32, depth: u32) -> Option<RingBufEntry<FileRecord>> {
    let key = FileKey { ino, dev, _pad: 0 };
    // SAFETY: presence test only.
    if unsafe { SEEN_FILES.get(&key).is_some() } {
        return None;
    }
    let Some(mut entry) = EVENTS.reserve::<FileRecord>(0) else {
        count(Stat::FileRecordLost);
        return None;
    };
    let _ = SEEN_FILES.insert(&key, &1, 0);
    let record = entry.as_mut_ptr();
    // SAFETY: `record` points at the reserved entry.
    unsafe {
        (*record).tag = TAG_FILE;
        (*record).ino = ino;
        (*record).dev = dev;
        (*record)._pad = 0;
        (*record).depth = depth;
    }
    Some(entry)
}

/// Announces `file` (a `struct file *`), the mapping's file with inode
/// `ino` on `dev`, unless already announced. Returns 0.
///
/// A BPF global function, verified once per program (see
/// `cowprof_find_vma`).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cowprof_announce_file(file: u64, ino: u64, dev: u32) -> i64 {
    if file == 0 {
        return 0;
    }
    let Some(mut entry) = new_record(ino, dev, PATH_DEPTH as u32) else {
        return 0;
    };
    let record = entry.as_mut_ptr();
    let off = &config().offsets;
    // Straight-line code on purpose: no branch per component, so older
    // verifiers (v6.1) need not explore 2^n paths. The helpers zero their
    // destination on failure, and the root is its own parent, so walking
    // past it repeats "/", where userspace stops.
    let mut dentry: u64 = 0;
    // SAFETY: probe reads into locals and into the reserved entry (every
    // name slot is written: ring buffer memory is not zeroed); the helpers
    // check every kernel address.
    unsafe {
        bpf_probe_read_kernel(
            (&raw mut dentry).cast(),
            8,
            (file + u64::from(off.file_dentry)) as *const c_void,
        );
    }
    for i in 0..PATH_DEPTH {
        let mut name: u64 = 0;
        let mut parent: u64 = 0;
        // SAFETY: as above; names[i] is inside the entry.
        unsafe {
            bpf_probe_read_kernel(
                (&raw mut name).cast(),
                8,
                (dentry + u64::from(off.dentry_name)) as *const c_void,
            );
            bpf_probe_read_kernel_str(
                (*record).names[i].as_mut_ptr().cast(),
                NAME_LEN as u32,
                name as *const c_void,
            );
            bpf_probe_read_kernel(
                (&raw mut parent).cast(),
                8,
                (dentry + u64::from(off.dentry_parent)) as *const c_void,
            );
        }
        dentry = parent;
    }
    entry.submit(0);
    0
}

/// `struct anon_vma_name { struct kref kref; char name[]; }`: the name
/// follows the 4-byte refcount.
const ANON_NAME_OFFSET: u64 = 4;

/// Announces the name of a named anon mapping (`PR_SET_VMA_ANON_NAME`),
/// keyed by its `struct anon_vma_name *`, unless already announced.
#[inline(always)]
pub fn announce_anon_name(name_ptr: u64, info: &VmaInfo) {
    let Some(mut entry) = new_record(name_ptr, info.dev, 1) else {
        return;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: `record` points at the reserved entry; the one name userspace
    // reads at depth 1 is written.
    unsafe {
        bpf_probe_read_kernel_str(
            (*record).names[0].as_mut_ptr().cast(),
            NAME_LEN as u32,
            (name_ptr + ANON_NAME_OFFSET) as *const c_void,
        );
    }
    entry.submit(0);
}
