//! Turning the kernel's dentry names into paths, with mount points.
use std::{collections::HashMap, path::PathBuf};

use cowprof_common::FileRecord;

/// A mountinfo field with the kernel's escapes undone: `show_mountinfo()`
/// (`fs/proc_namespace.c`) writes space, tab, newline and backslash in
/// paths as `\040`, `\011`, `\012` and `\134` (`mangle()`, octal).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|d| d.iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0')));
        if let Some(byte) = octal.and_then(|n| u8::try_from(n).ok()) {
            out.push(byte);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points by device, from `/proc/self/mountinfo` (kernel `dev_t`
/// encoding: `major << 20 | minor`).
#[derive(Default)]
pub struct Mounts(HashMap<u32, String>);

impl Mounts {
    /// Reads this process's mount table.
    #[must_use]
    pub fn read() -> Self {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Self::parse(&text)
    }

    /// Parses mountinfo text: `id parent major:minor root mountpoint ...`.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut mounts = HashMap::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(devno), Some(root), Some(point)) =
                (fields.get(2), fields.get(3), fields.get(4))
            else {
                continue;
            };
            let Some((major, minor)) = devno.split_once(':') else {
                continue;
            };
            let (Ok(major), Ok(minor)) = (major.parse::<u32>(), minor.parse::<u32>()) else {
                continue;
            };
            // Only mounts of a file system's root give a clean prefix.
            if *root == "/" {
                mounts
                    .entry((major << 20) | minor)
                    .or_insert_with(|| unescape(point));
            }
        }
        Self(mounts)
    }

    /// The path of a file record: its names from the file system root,
    /// under the mount point of its device.
    #[must_use]
    pub fn path_of(&self, record: &FileRecord) -> PathBuf {
        if record.dev == cowprof_common::event::ANON_NAME_DEV {
            return PathBuf::from(format!(
                "[anon:{}]",
                cowprof_model::keys::comm_str(&record.names[0])
            ));
        }
        // Names run from the file up; the root's name is "/", and the kernel
        // repeats it past the root. No root within the names: truncated.
        let depth = ((record.depth & 0x7fff_ffff) as usize).min(record.names.len());
        let names: Vec<String> = record.names[..depth]
            .iter()
            .map(|name| cowprof_model::keys::comm_str(name))
            .collect();
        let root = names.iter().position(|n| n == "/" || n.is_empty());
        let mut parts: Vec<&String> = names[..root.unwrap_or(depth)].iter().collect();
        parts.reverse();
        let mut path = match root {
            Some(_) => PathBuf::from(self.0.get(&record.dev).map_or("/", String::as_str)),
            None => PathBuf::from("..."),
        };
        for part in parts {
            path.push(part);
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use cowprof_common::event::{NAME_LEN, PATH_DEPTH};

    use super::*;

    fn record(dev: u32, names: &[&str], truncated: bool) -> FileRecord {
        let mut record = FileRecord {
            tag: cowprof_common::TAG_FILE,
            depth: u32::try_from(names.len()).expect("depth")
                | if truncated { 0x8000_0000 } else { 0 },
            ino: 1,
            dev,
            _pad: 0,
            names: [[0; NAME_LEN]; PATH_DEPTH],
        };
        for (slot, name) in record.names.iter_mut().zip(names) {
            slot[..name.len()].copy_from_slice(name.as_bytes());
        }
        record
    }

    #[test]
    fn mount_points_with_spaces_and_backslashes_are_unescaped() {
        let mounts = Mounts::parse(
            "40 22 0:40 / /mnt/my\\040disk rw - ext4 x rw\n41 22 0:41 / /mnt/a\\134b\\011c rw - ext4 y rw\n",
        );
        assert_eq!(
            mounts.path_of(&record(40, &["f", "/"], false)),
            PathBuf::from("/mnt/my disk/f")
        );
        assert_eq!(
            mounts.path_of(&record(41, &["f", "/"], false)),
            PathBuf::from("/mnt/a\\b\tc/f")
        );
        assert_eq!(unescape("plain\\9"), "plain\\9", "not an escape");
    }

    #[test]
    fn paths_join_names_under_their_mount_point() {
        let mounts = Mounts::parse(
            "22 1 254:0 / / rw - ext4 /dev/vda rw\n30 22 0:25 / /data rw - ext4 /dev/vdb rw\n31 22 0:26 /sub /bind rw - ext4 x rw\n",
        );
        let root_dev = 254 << 20;
        assert_eq!(
            mounts.path_of(&record(root_dev, &["libc.so.6", "lib", "usr", "/"], false)),
            PathBuf::from("/usr/lib/libc.so.6")
        );
        assert_eq!(
            mounts.path_of(&record(25, &["f", "x", "/"], false)),
            PathBuf::from("/data/x/f")
        );
        assert_eq!(
            mounts.path_of(&record(root_dev, &["deep", "a"], true)),
            PathBuf::from(".../a/deep")
        );
        // Unknown devices fall back to the names alone.
        assert_eq!(
            mounts.path_of(&record(99, &["f", "/"], false)),
            PathBuf::from("/f")
        );
    }
}
