//! Creating output files and directories safely.
//!
//! Profiles, summaries, event streams, baselines, exports and logs can hold
//! every process's names, paths and commands (`-a`). As `perf record` does,
//! cowprof creates them readable by their owner only (files 0600,
//! directories 0700) unless `--mode` says otherwise, and never follows a
//! symbolic link planted where an output goes: the last component of every
//! output path is opened with `O_NOFOLLOW` (a file) or checked with
//! `lstat` (a directory), and a file is written only when it is a regular
//! file with no other hard link.
//!
//! The mode is set once, at start, before any output is opened.
use std::{
    fs::{File, OpenOptions},
    io::{self, Write as _},
    os::unix::fs::{
        DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
    },
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

/// Files readable and writable by their owner only.
pub const DEFAULT_FILE_MODE: u32 = 0o600;

static FILE_MODE: AtomicU32 = AtomicU32::new(DEFAULT_FILE_MODE);

/// Sets the permission bits of every output created from now on (`--mode`).
/// Directories get the same bits plus search (`x`) wherever read is given.
pub fn set_mode(mode: u32) {
    FILE_MODE.store(mode & 0o777, Ordering::Relaxed);
}

/// The permission bits output files are created with.
#[must_use]
pub fn file_mode() -> u32 {
    FILE_MODE.load(Ordering::Relaxed)
}

/// The permission bits output directories are created with: the files'
/// bits, searchable wherever they are readable (0600 → 0700, 0644 → 0755).
#[must_use]
pub fn dir_mode() -> u32 {
    let mode = file_mode();
    mode | ((mode & 0o444) >> 2)
}

/// Parses a `--mode` value: octal permission bits such as `600` or `0640`.
///
/// # Errors
/// When it is not octal or has bits beyond 0777.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!(
            "'{text}' is not an octal file mode from 000 to 777 (for example 600 or 640)"
        )),
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn refuse(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{}: {why}; refusing to write through it", path.display()),
    )
}

/// Checks an opened output: a regular file must be one that only this
/// path names, and is given the output mode; a device, pipe or socket
/// (`/dev/null`, a terminal, `>(…)`) is written as it is. Returns whether
/// it is a regular file.
fn claim(file: &File, path: &Path) -> io::Result<bool> {
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if kind.is_dir() {
        return Err(refuse(path, "it is a directory"));
    }
    if !kind.is_file() {
        return Ok(false);
    }
    if meta.nlink() > 1 {
        return Err(refuse(path, "it has other hard links"));
    }
    file.set_permissions(std::fs::Permissions::from_mode(file_mode()))?;
    Ok(true)
}

/// Whether the symbolic link `path` may be followed: it belongs to this
/// user, in a directory no one else may write to (`/dev/stdout`,
/// `/dev/fd/N`), so no one else can have planted or swapped it.
fn trusted_link(path: &Path) -> bool {
    let Ok(link) = std::fs::symlink_metadata(path) else {
        return false;
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(dir) = std::fs::metadata(parent) else {
        return false;
    };
    link.file_type().is_symlink()
        && link.uid() == euid()
        && (dir.uid() == euid() || dir.uid() == 0)
        && dir.permissions().mode() & 0o022 == 0
}

/// Opens an output with `options`: never through a link someone else
/// could have planted.
fn open_output(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    match options.open(path) {
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) && trusted_link(path) => {
            options.custom_flags(libc::O_CLOEXEC).open(path)
        }
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => Err(refuse(
            path,
            "it is a symbolic link that another user could have planted",
        )),
        other => other,
    }
}

fn open_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .create(true)
        .mode(file_mode())
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    options
}

/// Creates or truncates the output file `path`.
///
/// # Errors
/// When it cannot be opened, or is a symbolic link someone else could have
/// planted, a directory, or a file with other hard links (never truncated
/// then).
pub fn create(path: &Path) -> io::Result<File> {
    let file = open_output(&mut open_options(), path)?;
    if claim(&file, path)? {
        file.set_len(0)?;
    }
    Ok(file)
}

/// Opens the output file `path` to append to it, creating it if needed.
///
/// # Errors
/// As [`create`].
pub fn append(path: &Path) -> io::Result<File> {
    let file = open_output(open_options().append(true), path)?;
    claim(&file, path)?;
    Ok(file)
}

/// Creates `path` new (`O_EXCL`): a temporary file before its rename. A
/// leftover one of an earlier, killed run (or anything planted there) is
/// unlinked first; unlinking never follows a link.
///
/// # Errors
/// When it cannot be made.
pub fn create_new(path: &Path) -> io::Result<File> {
    let mut options = open_options();
    options.create_new(true);
    let file = match options.open(path) {
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(path)?;
            options.open(path)?
        }
        other => other?,
    };
    // The umask may have taken bits `--mode` asked for.
    file.set_permissions(std::fs::Permissions::from_mode(file_mode()))?;
    Ok(file)
}

/// The temporary name of `path` while it is written: hidden, and ending in
/// `.tmp`, which readers ignore.
#[must_use]
pub fn temporary(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(Default::default, |n| {
        let mut name = std::ffi::OsString::from(".");
        name.push(n);
        name.push(".tmp");
        name
    });
    path.with_file_name(name)
}

/// Writes `data` to `path` through a synced temporary file and a rename,
/// so `path` is never half-written: a reader sees the old file or the new
/// one. A link at `path` is replaced, not written through.
///
/// # Errors
/// When any step fails.
pub fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = temporary(path);
    let mut file = create_new(&tmp)?;
    file.write_all(data)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Makes the output directory `dir` (and its missing parents, as
/// `mkdir -p`), or takes an existing empty one that is a real directory,
/// and gives it the output mode.
///
/// # Errors
/// When it cannot be made, is a symbolic link or not a directory, or is not
/// empty.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(dir_mode()).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(dir)?;
            if meta.file_type().is_symlink() {
                return Err(refuse(dir, "it is a symbolic link"));
            }
            if !meta.is_dir() {
                return Err(refuse(dir, "it is not a directory"));
            }
            if meta.uid() != euid() {
                return Err(refuse(dir, "it belongs to another user"));
            }
            if std::fs::read_dir(dir)?.next().is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: it exists and is not empty", dir.display()),
                ));
            }
        }
        Err(err) => return Err(err),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode()))
}

/// Makes the private directory `dir` if it does not exist, or checks that
/// the existing one is a real directory owned by this user: a place for
/// cowprof's own files (its log, `top`'s spool).
///
/// # Errors
/// When it cannot be made, or what is there is not such a directory.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(dir)?;
            if !meta.is_dir() || meta.uid() != euid() {
                return Err(refuse(dir, "it is not a directory of this user"));
            }
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn modes_parse_and_directories_are_searchable() {
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0640"), Ok(0o640));
        assert_eq!(parse_mode("0o644"), Ok(0o644));
        assert!(parse_mode("0800").is_err());
        assert!(parse_mode("1777").is_err());
        assert!(parse_mode("rw").is_err());
        assert_eq!(
            DEFAULT_FILE_MODE | ((DEFAULT_FILE_MODE & 0o444) >> 2),
            0o700
        );
        assert_eq!(0o644 | ((0o644 & 0o444) >> 2), 0o755);
    }

    #[test]
    fn outputs_are_private_and_symlinks_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep me").expect("write");

        let out = dir.path().join("summary.txt");
        std::fs::write(&out, b"old contents").expect("write");
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        drop(create(&out).expect("a regular file"));
        assert_eq!(mode_of(&out), 0o600, "an existing file is made private");
        assert_eq!(std::fs::read(&out).expect("read"), b"", "and truncated");

        // A link another user planted (the tests run as root: the link is
        // given to nobody).
        let link = dir.path().join("planted");
        std::os::unix::fs::symlink(&victim, &link).expect("symlink");
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).expect("lchown");
        let err = create(&link).expect_err("a symlink in a shared directory is refused");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        // Devices and the links to them this user owns are written as
        // they are: /dev/null, /dev/stdout.
        drop(create(Path::new("/dev/null")).expect("a device"));
        assert_eq!(mode_of(Path::new("/dev/null")), 0o666, "not chmodded");
        assert!(append(&link).is_err());
        let hard = dir.path().join("hard");
        std::fs::hard_link(&victim, &hard).expect("link");
        let err = create(&hard).expect_err("a second hard link is refused");
        assert!(err.to_string().contains("hard links"), "{err}");
        assert_eq!(std::fs::read(&victim).expect("read"), b"keep me");

        // A temporary file planted as a link is replaced, not followed.
        let tmp = dir.path().join(".x.tmp");
        std::os::unix::fs::symlink(&victim, &tmp).expect("symlink");
        drop(create_new(&tmp).expect("made new"));
        assert!(!std::fs::symlink_metadata(&tmp).expect("meta").is_symlink());
        assert_eq!(std::fs::read(&victim).expect("read"), b"keep me");

        let sub = dir.path().join("a/b/profile");
        create_dir(&sub).expect("made with parents");
        assert_eq!(mode_of(&sub), 0o700);
        let err = create_dir(&sub.join("..")).expect_err("not empty");
        assert!(err.to_string().contains("not empty"), "{err}");
        let dir_link = dir.path().join("dirlink");
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).expect("mkdir");
        std::os::unix::fs::symlink(&empty, &dir_link).expect("symlink");
        let err = create_dir(&dir_link).expect_err("a symlinked directory is refused");
        assert!(err.to_string().contains("symbolic link"), "{err}");

        private_dir(&dir.path().join("state")).expect("made");
        private_dir(&dir.path().join("state")).expect("taken again");
        assert_eq!(mode_of(&dir.path().join("state")), 0o700);
        assert!(private_dir(&dir_link).is_err(), "a link is not taken");
    }
}
