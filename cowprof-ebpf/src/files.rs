//! Sending a file's path to userspace once per (dev, inode), read from its
//! dentry chain while the mapping is known to be alive.
use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use cowprof_common::{
    event::{NAME_LEN, PATH_DEPTH},
    FileKey, FileRecord, Stat, VmaInfo, TAG_FILE,
};

use crate::{
    maps::{config, count, EVENTS, SEEN_FILES},
    vma::read_at,
};

/// Announces the file of a mapping just read, unless already announced.
#[inline(always)]
pub fn announce(file: *const c_void, info: &VmaInfo) {
    if file.is_null() {
        return;
    }
    let key = FileKey {
        ino: info.ino,
        dev: info.dev,
        _pad: 0,
    };
    // SAFETY: presence test only.
    if unsafe { SEEN_FILES.get(&key).is_some() } {
        return;
    }
    let _ = SEEN_FILES.insert(&key, &1, 0);
    let Some(mut entry) = EVENTS.reserve::<FileRecord>(0) else {
        count(Stat::FileRecordLost);
        return;
    };
    let record = entry.as_mut_ptr();
    let off = config().offsets;
    // SAFETY: `record` points at the reserved entry. Ring buffer memory is
    // not zeroed, so every field and every name slot is written below.
    unsafe {
        (*record).tag = TAG_FILE;
        (*record).ino = info.ino;
        (*record).dev = info.dev;
        (*record)._pad = 0;
        (*record).depth = 0;
    }
    let mut dentry: *const c_void = read_at(file, off.file_dentry).unwrap_or(core::ptr::null());
    let mut depth = 0u32;
    for i in 0..PATH_DEPTH {
        // SAFETY: names[i] is inside the reserved entry.
        let slot = unsafe { (*record).names[i].as_mut_ptr() };
        if dentry.is_null() {
            // SAFETY: one byte inside the slot.
            unsafe { *slot = 0 };
            continue;
        }
        let name: *const c_void = read_at(dentry, off.dentry_name).unwrap_or(core::ptr::null());
        // SAFETY: the helper writes at most NAME_LEN bytes, NUL-terminated.
        let n = unsafe { bpf_probe_read_kernel_str(slot.cast(), NAME_LEN as u32, name) };
        if n <= 0 {
            // SAFETY: as above.
            unsafe { *slot = 0 };
        }
        depth += 1;
        let parent: *const c_void = read_at(dentry, off.dentry_parent).unwrap_or(core::ptr::null());
        // The root is its own parent.
        dentry = if parent == dentry {
            core::ptr::null()
        } else {
            parent
        };
    }
    // SAFETY: inside the entry.
    unsafe {
        (*record).depth = if dentry.is_null() {
            depth
        } else {
            depth | 0x8000_0000
        }
    };
    entry.submit(0);
}

/// `struct anon_vma_name { struct kref kref; char name[]; }`: the name
/// follows the 4-byte refcount.
const ANON_NAME_OFFSET: u64 = 4;

/// Announces the name of a named anon mapping (`PR_SET_VMA_ANON_NAME`),
/// keyed by its `struct anon_vma_name *`, unless already announced.
#[inline(always)]
pub fn announce_anon_name(name_ptr: u64, info: &VmaInfo) {
    let key = FileKey {
        ino: name_ptr,
        dev: info.dev,
        _pad: 0,
    };
    // SAFETY: presence test only.
    if unsafe { SEEN_FILES.get(&key).is_some() } {
        return;
    }
    let _ = SEEN_FILES.insert(&key, &1, 0);
    let Some(mut entry) = EVENTS.reserve::<FileRecord>(0) else {
        count(Stat::FileRecordLost);
        return;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: `record` points at the reserved entry; every field read by
    // userspace (depth 1: names[0]) is written.
    unsafe {
        (*record).tag = TAG_FILE;
        (*record).ino = name_ptr;
        (*record).dev = info.dev;
        (*record)._pad = 0;
        (*record).depth = 1;
        let slot = (*record).names[0].as_mut_ptr();
        let n = bpf_probe_read_kernel_str(
            slot.cast(),
            NAME_LEN as u32,
            (name_ptr + ANON_NAME_OFFSET) as *const c_void,
        );
        if n <= 0 {
            *slot = 0;
        }
    }
    entry.submit(0);
}
