//! Turning the kernel's dentry names into paths, with mount points.
use std::{collections::HashMap, path::PathBuf};

use cowprof_common::FileRecord;

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
                    .or_insert_with(|| (*point).to_owned());
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
