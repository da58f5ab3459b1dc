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

/// Whether tracefs has event `event` (`"kmem/mm_page_alloc"`).
#[must_use]
pub fn has_event(event: &str) -> bool {
    Path::new(TRACEFS)
        .join("events")
        .join(event)
        .join("format")
        .is_file()
}

/// The offset of `field` in the records of `event`, from its tracefs
/// `format` file.
#[must_use]
pub fn field_offset(event: &str, field: &str) -> Option<u32> {
    let path = Path::new(TRACEFS).join("events").join(event).join("format");
    offset_in_format(&std::fs::read_to_string(path).ok()?, field)
}

/// The offset of `field` in a tracefs `format` file's text, whose lines read
/// `\tfield:unsigned int order;\toffset:16;\tsize:4;\tsigned:0;`.
#[must_use]
pub fn offset_in_format(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let mut parts = line.trim().split(';').map(str::trim);
        let declaration = parts.next()?.strip_prefix("field:")?;
        // The name is the declaration's last word, before any `[N]`.
        let name = declaration
            .rsplit(|c: char| c.is_whitespace() || c == '*')
            .next()?
            .split('[')
            .next()?;
        if name != field {
            return None;
        }
        parts
            .find_map(|part| part.strip_prefix("offset:"))?
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::offset_in_format;

    /// `events/kmem/mm_page_alloc/format` of v6.18.
    const PAGE_ALLOC: &str = "name: mm_page_alloc
ID: 433
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:unsigned long pfn;\toffset:8;\tsize:8;\tsigned:0;
\tfield:unsigned int order;\toffset:16;\tsize:4;\tsigned:0;
\tfield:unsigned long gfp_flags;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int migratetype;\toffset:32;\tsize:4;\tsigned:1;
";

    #[test]
    fn fields_are_found_by_name() {
        assert_eq!(offset_in_format(PAGE_ALLOC, "order"), Some(16));
        assert_eq!(offset_in_format(PAGE_ALLOC, "gfp_flags"), Some(24));
        assert_eq!(offset_in_format(PAGE_ALLOC, "pfn"), Some(8));
        assert_eq!(offset_in_format(PAGE_ALLOC, "flags"), None);
        let fork = "\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;
\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;
\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;
\tfield:struct mm_struct * mm;\toffset:8;\tsize:8;\tsigned:0;";
        assert_eq!(offset_in_format(fork, "child_pid"), Some(44));
        assert_eq!(offset_in_format(fork, "child_comm"), Some(28));
        assert_eq!(offset_in_format(fork, "parent_comm"), Some(8));
        assert_eq!(offset_in_format(fork, "mm"), Some(8));
    }
}
