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
