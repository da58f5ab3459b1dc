//! Making sure tracefs is mounted, as perf and bpftrace expect it to be.
use std::{ffi::CString, io, path::Path};

/// The canonical tracefs mount point.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Whether tracefs is mounted at [`TRACEFS`].
#[must_use]
pub fn is_mounted() -> bool {
    Path::new(TRACEFS).join("events").is_dir()
}

/// Mounts tracefs at [`TRACEFS`] when it is absent. Returns whether it is
/// mounted afterwards.
///
/// # Errors
/// When the mount fails (for instance without `CAP_SYS_ADMIN`).
pub fn ensure_mounted() -> io::Result<()> {
    if is_mounted() {
        return Ok(());
    }
    let source = c"nodev";
    let target = CString::new(TRACEFS)?;
    let fstype = c"tracefs";
    // SAFETY: all pointers are valid NUL-terminated strings; data is NULL.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
