//! `cowprof advise`, live and exact: a C fixture whose written data is
//! scattered over pages among cold data is recorded, advised, relinked
//! with the ordering file advise wrote (lld, which `cargo xtask test`
//! installs, and gold, from binutils), and recorded again; its copies drop
//! to exactly the pages predicted. The cold passengers and the commit charge are checked
//! against figures computed here from the ELF file, the pages written and
//! the kernel's own `/proc/PID/smaps`.
use std::{
    collections::BTreeSet,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use object::{Object as _, ObjectSymbol as _};
use serde_json::Value;

use crate::harness::{bpf_available, cowprof, forced_probe, in_vm, output, scratch};

const PAGE: u64 = 4096;

fn runnable() -> bool {
    if in_vm() {
        eprintln!("skipped: the VM guest has no C compiler or lld");
        return false;
    }
    bpf_available()
}

fn run(cmd: &mut Command) {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compiles the fixture once, with each object in a section of its own.
fn compile(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scattered.c");
    let obj = dir.join("scattered.o");
    run(Command::new("cc")
        .args([
            "-O1",
            "-g",
            "-fdata-sections",
            "-fno-common",
            "-fno-toplevel-reorder",
            "-c",
            "-o",
        ])
        .arg(&obj)
        .arg(src));
    obj
}

/// Links `obj` into `exe` with `linker` (`lld` or `gold`), with `extra`
/// flags.
fn link(linker: &str, obj: &Path, exe: &Path, extra: &[String]) {
    assert!(
        Command::new(format!("ld.{linker}"))
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "ld.{linker} is missing: run `cargo xtask setup`"
    );
    run(Command::new("cc")
        .arg(format!("-fuse-ld={linker}"))
        .args(extra)
        .arg("-o")
        .arg(exe)
        .arg(obj));
}

fn record(exe: &Path, profile: &Path) {
    run(Command::new(cowprof())
        .args(["record", "-o"])
        .arg(profile)
        .args(forced_probe().map(|p| format!("--probe={p}")))
        .arg("--")
        .arg(exe));
}

/// `advise --format json` on `profile` for `exe`: its one image's advice.
fn advise(profile: &Path, exe: &Path, extra: &[&str]) -> Value {
    let out = output(
        Command::new(cowprof())
            .arg("advise")
            .arg(profile)
            .arg("--image")
            .arg(exe)
            .args(["--format", "json"])
            .args(extra),
    );
    assert!(
        out.status.success(),
        "advise: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Value = serde_json::from_slice(&out.stdout).expect("advise's JSON");
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    all[0].clone()
}

/// The pages of `exe` the profile saw written, by `report`'s page view.
fn written_pages(profile: &Path, exe: &Path) -> BTreeSet<u64> {
    let out = output(
        Command::new(cowprof())
            .arg("report")
            .arg(profile)
            .args(["--by", "page", "--format", "json", "--image"])
            .arg(exe),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("report's JSON");
    report["views"]["page"]
        .as_array()
        .expect("a page view")
        .iter()
        .filter_map(|r| {
            let key = r["key"].as_str()?;
            u64::from_str_radix(key.rsplit(' ').next()?.trim_start_matches("0x"), 16).ok()
        })
        .collect()
}

/// The fixture's data symbols: name → (address, size).
fn symbols(exe: &Path) -> Vec<(String, u64, u64)> {
    let data = std::fs::read(exe).expect("the fixture");
    let file = object::File::parse(&*data).expect("ELF");
    file.symbols()
        .filter(|s| s.kind() == object::SymbolKind::Data && s.size() > 0)
        .filter_map(|s| Some((s.name().ok()?.to_owned(), s.address(), s.size())))
        .collect()
}

fn address(symbols: &[(String, u64, u64)], name: &str) -> u64 {
    symbols
        .iter()
        .find(|s| s.0 == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .1
}

/// The commit charge of `exe`'s mappings in a live process, from the
/// kernel: the `Size` of each of its VMAs whose `VmFlags` has `ac`, and
/// of an accountable anonymous VMA right after them (`.bss`).
fn commit_charge_in_smaps(exe: &Path) -> u64 {
    let mut child = Command::new(exe)
        .arg("wait")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the fixture");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("its first line");
    assert_eq!(line.trim(), "written");
    let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", child.id())).expect("smaps");
    drop(child.stdin.take());
    assert!(child.wait().expect("the fixture exits").success());
    let path = exe.to_str().expect("a UTF-8 path");
    let mut charge = 0;
    let mut image_end = None;
    let mut counts = false;
    let mut size_kb = 0;
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.first() {
            Some(&"Size:") => size_kb = fields.get(1).and_then(|s| s.parse().ok()).unwrap_or(0),
            Some(&"VmFlags:") if counts && fields.contains(&"ac") => charge += size_kb * 1024,
            // A VMA's header: RANGE PERMS OFFSET DEV INODE [PATH].
            Some(range) if !range.ends_with(':') => {
                let Some((start, end)) = range.split_once('-') else {
                    continue;
                };
                let (Ok(start), Ok(end)) =
                    (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
                else {
                    continue;
                };
                let name = fields.get(5).copied().unwrap_or_default();
                let ours = name == path;
                counts = ours || (name.is_empty() && image_end == Some(start));
                if ours {
                    image_end = Some(end);
                }
            }
            _ => {}
        }
    }
    charge
}

/// Links the fixture with `linker`, records and advises it, relinks it with
/// the ordering file for `--linker advise_as` and checks its copies drop
/// to exactly the pages predicted.
fn relink_copies_the_pages_predicted(linker: &str, advise_as: &str, order_flag: &str) {
    if !runnable() {
        return;
    }
    let dir = scratch();
    let obj = compile(dir.path());
    let exe = dir.path().join("scattered");
    link(linker, &obj, &exe, &[]);
    let syms = symbols(&exe);
    // The eight written arrays lie on eight pages, each behind 4 KiB of
    // cold data.
    let hot_pages: BTreeSet<u64> = (0..8)
        .map(|i| address(&syms, &format!("hot{i}")) & !(PAGE - 1))
        .collect();
    assert_eq!(hot_pages.len(), 8, "{syms:?}");

    let before = dir.path().join("before");
    record(&exe, &before);
    let written = written_pages(&before, &exe);
    assert!(
        hot_pages.is_subset(&written),
        "{hot_pages:x?} not all in {written:x?}"
    );
    let order = dir.path().join("order.txt");
    let advice = advise(
        &before,
        &exe,
        &[
            "--ordering-file",
            order.to_str().expect("UTF-8"),
            "--linker",
            advise_as,
        ],
    );
    let n = advice["pages_now"].as_u64().expect("pages_now");
    let m = advice["pages_predicted"].as_u64().expect("pages_predicted");
    assert_eq!(n, written.len() as u64, "{advice}");
    assert!(m < n, "no saving predicted: {advice}");

    // Cold passengers, by hand: each coldN's bytes on written pages.
    for (name, addr, size) in syms.iter().filter(|s| s.0.starts_with("cold")) {
        let expected: u64 = written
            .iter()
            .map(|page| {
                (addr + size)
                    .min(page + PAGE)
                    .saturating_sub((*addr).max(*page))
            })
            .sum();
        let found = advice["cold_passengers"]
            .as_array()
            .expect("cold passengers")
            .iter()
            .find(|c| c["name"] == name.as_str())
            .map_or(0, |c| c["bytes_on_written_pages"].as_u64().unwrap_or(0));
        assert_eq!(found, expected, "{name}: {advice}");
    }
    // The commit charge, from the kernel's smaps of a live process.
    assert_eq!(
        advice["commit_charge"].as_u64(),
        Some(commit_charge_in_smaps(&exe)),
        "{advice}"
    );

    // The ordering file lists written arrays only, and lld packs them.
    let listed: Vec<String> = std::fs::read_to_string(&order)
        .expect("the ordering file")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    assert!(listed.len() >= 7, "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|l| l.starts_with("hot") || l.starts_with(".data.")),
        "{listed:?}"
    );
    let relinked = dir.path().join("scattered-packed");
    link(
        linker,
        &obj,
        &relinked,
        &[format!("-Wl,{order_flag}={}", order.display())],
    );
    let after = dir.path().join("after");
    record(&relinked, &after);
    let again = advise(&after, &relinked, &["--linker", advise_as]);
    assert_eq!(
        again["pages_now"].as_u64(),
        Some(m),
        "predicted {m} pages, the relinked fixture copied {again}"
    );
    assert_eq!(written_pages(&after, &relinked).len() as u64, m);
}

#[test]
fn lld_relinked_with_the_symbol_ordering_file_copies_the_pages_predicted() {
    relink_copies_the_pages_predicted("lld", "lld", "--symbol-ordering-file");
}

#[test]
fn gold_relinked_with_the_section_ordering_file_copies_the_pages_predicted() {
    relink_copies_the_pages_predicted("gold", "gnu", "--section-ordering-file");
}
