//! Files the kernel reported: their paths (from dentry names and this
//! process's mounts) and their contents, opened only when the file found is
//! the one that was mapped.
//!
//! A path rebuilt from dentry names can lead to another file: one renamed
//! over the mapped file, one in another mount namespace (a container), an
//! overlayfs upper file. So a file's (dev, inode) is checked against the
//! kernel's after opening it; failing that, it is opened through
//! `/proc/PID/map_files/` while the process that maps it lives, which is the
//! mapped file by construction. Otherwise it stays unverified: its pages are
//! reported by file offset, never with another file's sections or symbols.
use std::{
    fs::File,
    os::{
        fd::AsRawFd as _,
        unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
    sync::Arc,
};

use cowprof_common::{FileKey, FileRecord};
use hashbrown::HashMap;

use super::{
    elf::{Image, NotAttributed},
    paths::Mounts,
};

/// Where a live process maps a file, to open it through
/// `/proc/PID/map_files/START-END` when its path does not lead to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hint {
    pub pid: u32,
    pub start: u64,
    pub end: u64,
}

/// A file's contents, once looked for.
#[derive(Clone, Debug)]
pub enum Opened {
    /// The mapped file, kept open: `source` (`/proc/self/fd/N`) names
    /// exactly it for symbolization, whatever its path leads to later;
    /// `image` when it is ELF and within the parser's bounds, else why not.
    Verified {
        file: Arc<File>,
        source: PathBuf,
        image: Result<Arc<Image>, NotAttributed>,
    },
    /// No file with the mapped identity could be opened.
    Unverified,
}

/// Paths and verified images of the files faults touched.
#[derive(Default)]
pub struct Files {
    mounts: Mounts,
    paths: HashMap<FileKey, PathBuf>,
    opened: HashMap<FileKey, Opened>,
}

/// The kernel's `dev_t` encoding (`major << 20 | minor`) of a `stat` device.
fn kernel_dev(dev: u64) -> u64 {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    (u64::from(major) << 20) | u64::from(minor)
}

/// Opens `path` if it is the file `key`; with `trusted`, whatever it is
/// (a `map_files` entry is the mapped file by construction).
fn open_if_same(path: &Path, key: &FileKey, trusted: bool) -> Option<File> {
    // O_NONBLOCK: a FIFO put where a mapped file was never blocks the open.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    let same = meta.ino() == key.ino && kernel_dev(meta.dev()) == u64::from(key.dev);
    if !(same || trusted) {
        log::info!(
            "{} is not the mapped file (dev {}, inode {}): not reading it",
            path.display(),
            key.dev,
            key.ino
        );
        return None;
    }
    Some(file)
}

/// Looks for the contents of `key`: through its path, else through `hint`'s
/// `map_files` entry.
fn look_for(paths: &HashMap<FileKey, PathBuf>, key: &FileKey, hint: Option<Hint>) -> Opened {
    let by_path = paths
        .get(key)
        .and_then(|path| open_if_same(path, key, false));
    let by_map = || {
        let hint = hint?;
        let path = PathBuf::from(format!(
            "/proc/{}/map_files/{:x}-{:x}",
            hint.pid, hint.start, hint.end
        ));
        open_if_same(&path, key, true)
    };
    match by_path.or_else(by_map) {
        Some(file) => Opened::Verified {
            image: Image::read(&file).map(Arc::new).inspect_err(|why| {
                if why.is_notable() {
                    log::warn!(
                        "{}: not attributed: {why}",
                        paths
                            .get(key)
                            .map_or_else(String::new, |p| p.display().to_string())
                    );
                }
            }),
            source: PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd())),
            file: Arc::new(file),
        },
        None => Opened::Unverified,
    }
}

impl Files {
    /// Files resolved against this process's mounts.
    #[must_use]
    pub fn new() -> Self {
        Self {
            mounts: Mounts::read(),
            ..Self::default()
        }
    }

    /// Learns a file's path from the kernel. A file that could not be
    /// verified before is looked for again.
    pub fn add(&mut self, record: &FileRecord) {
        let key = FileKey::new(record.ino, record.dev);
        self.paths.insert(key, self.mounts.path_of(record));
        if matches!(self.opened.get(&key), Some(Opened::Unverified)) {
            self.opened.remove(&key);
        }
    }

    /// The path of a file as the kernel named it, or `[dev M:N ino I]` when
    /// its path record was lost.
    #[must_use]
    pub fn path(&self, key: &FileKey) -> String {
        self.paths.get(key).map_or_else(
            || {
                format!(
                    "[dev {}:{} ino {}]",
                    key.dev >> 20,
                    key.dev & 0xf_ffff,
                    key.ino
                )
            },
            |p| p.display().to_string(),
        )
    }

    /// Whether `key` was looked for and not found with its identity.
    #[must_use]
    pub fn unverified(&self, key: &FileKey) -> bool {
        matches!(self.opened.get(key), Some(Opened::Unverified))
    }

    /// The contents of `key`, looked for on first use (then one hash
    /// lookup): through its path, else through `hint`'s `map_files` entry.
    pub fn open(&mut self, key: &FileKey, hint: Option<Hint>) -> &Opened {
        let paths = &self.paths;
        self.opened
            .entry(*key)
            .or_insert_with(|| look_for(paths, key, hint))
    }

    /// The parsed image of `key`, if it is a verified ELF file.
    pub fn image(&mut self, key: &FileKey, hint: Option<Hint>) -> Option<&Image> {
        match self.open(key, hint) {
            Opened::Verified {
                image: Ok(image), ..
            } => Some(image),
            _ => None,
        }
    }

    /// Why the verified file `key`, which looks like an image, was not
    /// parsed (too large, malformed, changed while read …).
    #[must_use]
    pub fn not_attributed(&self, key: &FileKey) -> Option<&NotAttributed> {
        match self.opened.get(key)? {
            Opened::Verified {
                image: Err(why), ..
            } if why.is_notable() => Some(why),
            _ => None,
        }
    }

    /// The image of `key` if it was already opened and is ELF: naming
    /// never opens files.
    #[must_use]
    pub fn opened_image(&self, key: &FileKey) -> Option<&Image> {
        match self.opened.get(key)? {
            Opened::Verified {
                image: Ok(image), ..
            } => Some(image),
            _ => None,
        }
    }

    /// Where the verified contents of `key` were read from, for
    /// symbolization: only an image within the parser's bounds, so the
    /// symbolizer never gets a file cowprof refused.
    pub fn source(&mut self, key: &FileKey, hint: Option<Hint>) -> Option<PathBuf> {
        match self.open(key, hint) {
            Opened::Verified {
                source,
                image: Ok(_),
                ..
            } => Some(source.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use cowprof_common::event::{NAME_LEN, PATH_DEPTH};

    use super::*;

    fn key_of(path: &Path) -> FileKey {
        let meta = std::fs::metadata(path).expect("metadata");
        FileKey::new(
            meta.ino(),
            u32::try_from(kernel_dev(meta.dev())).expect("dev"),
        )
    }

    /// A kernel record naming `path` on the root file system.
    fn record(key: FileKey, path: &Path) -> FileRecord {
        let mut record = FileRecord {
            tag: cowprof_common::TAG_FILE,
            depth: 0,
            ino: key.ino,
            dev: key.dev,
            _pad: 0,
            names: [[0; NAME_LEN]; PATH_DEPTH],
        };
        let mut parts: Vec<&str> = path
            .iter()
            .skip(1)
            .map(|p| p.to_str().expect("utf-8"))
            .collect();
        parts.reverse();
        parts.push("/");
        for (slot, name) in record.names.iter_mut().zip(&parts) {
            slot[..name.len()].copy_from_slice(name.as_bytes());
        }
        record.depth = u32::try_from(parts.len()).expect("depth");
        record
    }

    #[test]
    fn a_file_replaced_at_its_path_is_not_read_as_the_mapped_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mapped = dir.path().join("lib.so");
        let exe = std::env::current_exe().expect("test binary");
        std::fs::copy(&exe, &mapped).expect("copy");
        let key = key_of(&mapped);
        // Another file takes the mapped file's name (a rename over it, as
        // an upgrade does); the mapped inode is another one now.
        let other = dir.path().join("other");
        std::fs::write(&other, b"not the mapped file").expect("write");
        std::fs::rename(&other, &mapped).expect("rename");
        let mut files = Files::default();
        files.add(&record(key, &mapped));
        assert!(files.image(&key, None).is_none());
        assert!(files.unverified(&key), "said unverified, not guessed");
        // The file itself, at its path, verifies.
        let exe_key = key_of(&exe);
        files.add(&record(exe_key, &exe));
        assert!(files.image(&exe_key, None).is_some());
        assert!(!files.unverified(&exe_key));
    }
}
