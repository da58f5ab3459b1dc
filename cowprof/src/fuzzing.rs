//! Entry points for the fuzz targets (`cowprof/fuzz`): every parser of
//! input from outside cowprof, one function per target, each taking
//! arbitrary bytes. They must never panic, hang or grow without bound.
//! The committed corpus is replayed through the same functions by a unit
//! test on every `cargo xtask test`; `cargo xtask fuzz` runs the fuzzers.
use std::path::Path;

use crate::resolve::{elf::Image, Mounts, Resolver};

/// The fuzz targets, by name (the corpus directories' names).
pub const TARGETS: &[&str] = &[
    "elf",
    "proc_text",
    "ringbuf",
    "manifest",
    "baseline",
    "profile",
];

/// ELF files: a traced program controls which files cowprof parses as
/// root. Every lookup used by attribution runs on what was parsed.
pub fn elf(data: &[u8]) {
    let Ok(image) = Image::parse(data) else {
        return;
    };
    for offset in [0, 0x1000, 0x3fff, u64::MAX] {
        if let Some(vaddr) = image.vaddr_of_offset(offset) {
            let _ = image.section_index_at(vaddr);
            let _ = image.symbol_index_at(vaddr);
        }
        let _ = image.vaddr_of_memory_offset(offset);
    }
    // Bounded by the parser (writable segments of at most 4 GiB).
    let _ = image.writable_pages().take(1 << 16).count();
}

/// `/proc` text: mountinfo, kallsyms, status and a process's stat (whose
/// comm the process chooses, parentheses and spaces included).
pub fn proc_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = Mounts::parse(&text);
    let _ = crate::probe::facts::kallsyms_has_text(&text, "exc_page_fault");
    let _ = crate::probe::facts::kallsyms_text_range(&text, "exc_page_fault");
    let _ = crate::kernel::procstat::status(data);
    let _ = crate::kernel::procstat::parse(data);
}

/// Ring-buffer records, decoded and resolved (paths joined under the
/// mounts, offsets mapped) as the collector does, without the kernel. The
/// input is a sequence of records, each behind its length (16 bits,
/// little-endian), as the ring buffer hands them over.
pub fn ringbuf(data: &[u8]) {
    let mut resolver = Resolver::default();
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_le_bytes(*len)).min(tail.len());
        let (record, tail) = tail.split_at(len);
        rest = tail;
        match crate::decode::decode(record) {
            Ok(crate::decode::Decoded::Fault(event)) => {
                let _ = resolver.resolve(&event);
            }
            Ok(crate::decode::Decoded::File(file)) => resolver.add_file(&file),
            Err(_) => {}
        }
    }
}

/// A profile's manifest (`profile.json`).
#[cfg(feature = "parquet")]
pub fn manifest(data: &[u8]) {
    let _ = crate::profile::manifest::Manifest::from_json(data, "profile.json".into());
}

/// A gate baseline file.
#[cfg(feature = "parquet")]
pub fn baseline(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::gate::baseline::Baseline::from_json(&text, Path::new("baseline.json"));
}

/// A profile directory: the seed profile at `seed` with one of its files
/// (chosen by the first byte, in name order) replaced by the rest of the
/// bytes, then read by `report` (every view) and by the gate's measure.
#[cfg(feature = "parquet")]
pub fn profile(seed: &Path, data: &[u8]) {
    use clap::Parser as _;

    let Some((&pick, contents)) = data.split_first() else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let files = seed_files(seed);
    for name in files {
        let to = dir.path().join(name);
        if let Some(parent) = to.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::copy(seed.join(name), &to);
    }
    if let Some(name) = files.get(usize::from(pick) % files.len().max(1)) {
        let _ = std::fs::write(dir.path().join(name), contents);
    }
    let dir_arg = dir.path().display().to_string();
    let Ok(cli) = crate::cli::Cli::try_parse_from([
        "cowprof",
        "report",
        "--by",
        "process,mapping,image,section,symbol,page,writer,stack",
        &dir_arg,
    ]) else {
        return;
    };
    if let crate::cli::Command::Report(args) = cli.command {
        let _ = crate::profile::verb::run(&args.options(), &mut std::io::sink());
    }
    if let Ok(profile) = crate::profile::read::Profile::open(dir.path()) {
        let _ = crate::gate::measure::measure(
            &profile,
            &crate::gate::measure::MeasureOptions::default(),
        );
    }
}

/// The seed profile's files, relative to it, in name order (read once).
#[cfg(feature = "parquet")]
fn seed_files(seed: &Path) -> &'static [std::path::PathBuf] {
    static FILES: std::sync::OnceLock<Vec<std::path::PathBuf>> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        let mut files = Vec::new();
        collect_files(seed, Path::new(""), &mut files);
        files.sort();
        files
    })
}

#[cfg(feature = "parquet")]
fn collect_files(root: &Path, sub: &Path, into: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root.join(sub)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = sub.join(entry.file_name());
        if entry.path().is_dir() {
            collect_files(root, &name, into);
        } else {
            into.push(name);
        }
    }
}

/// Runs target `name` on `data`, with the seed profile at `seed`.
pub fn run(name: &str, seed: &Path, data: &[u8]) {
    let _ = seed;
    match name {
        "elf" => elf(data),
        "proc_text" => proc_text(data),
        "ringbuf" => ringbuf(data),
        #[cfg(feature = "parquet")]
        "manifest" => manifest(data),
        #[cfg(feature = "parquet")]
        "baseline" => baseline(data),
        #[cfg(feature = "parquet")]
        "profile" => profile(seed, data),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use cowprof_common::{FaultEvent, FileRecord, TAG_FAULT, TAG_FILE};

    fn bytes_of<T>(value: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a plain repr(C) value.
        unsafe { std::slice::from_raw_parts(std::ptr::from_ref(value).cast(), size_of::<T>()) }
            .to_vec()
    }

    /// Writes the generated seeds (crafted ELF files, ring-buffer records)
    /// into the corpus: `cargo test -p cowprof --lib fuzzing -- --ignored`.
    #[test]
    #[ignore = "writes the seed corpus into the source tree"]
    fn write_generated_seeds() {
        use crate::resolve::craft;
        let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let write = |target: &str, name: &str, data: &[u8]| {
            let dir = corpus.join(target);
            std::fs::create_dir_all(&dir).expect("corpus dir");
            std::fs::write(dir.join(name), data).expect("seed");
        };
        for (name, elf) in [
            ("image", craft::image(8)),
            ("headers-past-the-end", craft::headers_past_the_end()),
            ("looping-links", craft::looping_links()),
            ("lying-section-count", craft::lying_section_count()),
            ("overflowing-segment", craft::overflowing_segment()),
            ("huge-bss", craft::huge_bss()),
        ] {
            write("elf", name, &elf.bytes());
        }
        let fault = FaultEvent {
            tag: TAG_FAULT,
            kind: cowprof_common::Kind::CowCopyFile as u8,
            pid: 7,
            addr: 0x7f00_0000_1000,
            ip: 0x5555_0000_1234,
            vma: cowprof_common::VmaInfo {
                vm_start: 0x7f00_0000_0000,
                vm_end: 0x7f00_0001_0000,
                file_backed: 1,
                ino: 42,
                dev: 8 << 20 | 1,
                ..cowprof_common::VmaInfo::default()
            },
            ..FaultEvent::default()
        };
        let mut file = FileRecord {
            tag: TAG_FILE,
            depth: 3,
            ino: 42,
            dev: 8 << 20 | 1,
            _pad: 0,
            names: [[0; cowprof_common::event::NAME_LEN]; cowprof_common::event::PATH_DEPTH],
        };
        for (slot, name) in file.names.iter_mut().zip(["libc.so.6", "lib", "/"]) {
            slot[..name.len()].copy_from_slice(name.as_bytes());
        }
        let framed = |records: &[Vec<u8>]| -> Vec<u8> {
            let mut out = Vec::new();
            for record in records {
                let len = u16::try_from(record.len()).expect("a record fits");
                out.extend(len.to_le_bytes());
                out.extend(record);
            }
            out
        };
        write(
            "ringbuf",
            "file-then-fault",
            &framed(&[bytes_of(&file), bytes_of(&fault)]),
        );
        write("ringbuf", "fault", &framed(&[bytes_of(&fault)]));
    }

    /// Every committed corpus file of every target, through its function:
    /// what the fuzzers found and kept stays fixed.
    #[test]
    fn the_fuzz_corpus_replays_without_a_panic() {
        let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let seed = fuzz.join("seed").join("profile");
        let mut replayed = 0;
        for target in super::TARGETS {
            let dir = fuzz.join("corpus").join(target);
            let entries =
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let mut count = 0;
            for entry in entries {
                let path = entry.expect("corpus entry").path();
                let data = std::fs::read(&path).expect("corpus file");
                super::run(target, &seed, &data);
                count += 1;
            }
            assert!(count > 0, "the {target} corpus is empty");
            replayed += count;
        }
        assert!(replayed >= super::TARGETS.len());
    }
}
