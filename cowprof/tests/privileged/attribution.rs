//! Attribution of image pages to sections, symbols and writers, with a C
//! fixture library and executable built here with `cc`.
use std::{path::Path, process::Command};

use object::{Object as _, ObjectSymbol as _};
use serde_json::Value;

use crate::harness::{bpf_available, in_vm, record_summary, scratch};

const PAGE: u64 = 4096;

/// Builds the fixture library and executable into `dir` (xtask/src/vm/guest.rs
/// builds the guest's copy with the same flags).
fn build_fixture(dir: &Path) -> bool {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let lib = Command::new("cc")
        .args([
            "-shared",
            "-fPIC",
            "-O1",
            "-g",
            "-fno-omit-frame-pointer",
            "-o",
        ])
        .arg(dir.join("libhotcold.so"))
        .arg(src.join("hotcold.c"))
        .status();
    let exe = Command::new("cc")
        .args(["-O1", "-g", "-fno-omit-frame-pointer", "-o"])
        .arg(dir.join("fixture"))
        .arg(src.join("fixture.c"))
        .arg(format!("-L{}", dir.display()))
        .args(["-lhotcold", "-Wl,-rpath,$ORIGIN"])
        .status();
    matches!((lib, exe), (Ok(a), Ok(b)) if a.success() && b.success())
}

/// A scratch directory with the fixture built, or `None` (with the reason
/// printed) where live BPF or a C compiler is unavailable. The VM guest has
/// no compiler: `cargo xtask vm-test` builds the fixture on the host and
/// names it in `COWPROF_FIXTURE`.
pub fn fixture() -> Option<tempfile::TempDir> {
    if !bpf_available() {
        return None;
    }
    let dir = scratch();
    if let Some(prebuilt) = std::env::var_os("COWPROF_FIXTURE") {
        for file in ["libhotcold.so", "fixture"] {
            std::fs::copy(Path::new(&prebuilt).join(file), dir.path().join(file))
                .expect("copying the prebuilt fixture");
        }
        return Some(dir);
    }
    if in_vm() {
        eprintln!("skipping: the VM guest has no C compiler and no COWPROF_FIXTURE");
        return None;
    }
    assert!(build_fixture(dir.path()), "cc could not build the fixture");
    Some(dir)
}

fn symbol_addr(path: &Path, name: &str) -> u64 {
    let data = std::fs::read(path).expect("fixture binary");
    let file = object::File::parse(&*data).expect("ELF");
    file.symbols()
        .find(|s| s.name() == Ok(name))
        .map_or_else(|| panic!("{name} in {}", path.display()), |s| s.address())
}

fn record(dir: &Path, by: &str) -> Value {
    record_args(dir, by, &[])
}

/// `record --by BY -- fixture ARGS...`.
fn record_args(dir: &Path, by: &str, args: &[&str]) -> Value {
    let fixture = dir.join("fixture");
    let mut all = vec![
        "--by".as_ref(),
        by.as_ref(),
        "--".as_ref(),
        fixture.as_os_str(),
    ];
    all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
    record_summary(all)
}

/// The rows of view `name`.
fn view<'a>(summary: &'a Value, name: &str) -> &'a Vec<Value> {
    summary["views"][name]
        .as_array()
        .unwrap_or_else(|| panic!("no view {name}: {summary}"))
}

/// The rows of the one view asked for.
fn rows(summary: &Value) -> &Vec<Value> {
    let views = summary["views"].as_object().expect("views");
    assert_eq!(views.len(), 1, "one view asked for: {views:?}");
    views
        .values()
        .next()
        .and_then(Value::as_array)
        .expect("rows")
}

/// The row whose key contains `needle`; panics with the summary otherwise.
fn row_with<'a>(summary: &'a Value, needle: &str) -> &'a Value {
    rows(summary)
        .iter()
        .find(|r| r["key"].as_str().is_some_and(|k| k.contains(needle)))
        .unwrap_or_else(|| panic!("no row containing {needle:?}: {summary}"))
}

fn copies(row: &Value) -> u64 {
    row["counts"]["cow_copy_file"].as_u64().unwrap_or(0)
        + row["counts"]["cow_fill_file"].as_u64().unwrap_or(0)
}

#[test]
fn library_pages_are_attributed_to_sections_symbols_and_writers() {
    let Some(dir) = fixture() else {
        return;
    };
    let by_symbol = record(dir.path(), "symbol");
    let hot = row_with(&by_symbol, "libhotcold.so .data hot");
    assert_eq!(copies(hot), 32, "{hot}");
    assert_eq!(hot["processes"], 1);
    // blazesym names the function, and the line from the debug info.
    assert!(
        hot["first_writer"]
            .as_str()
            .is_some_and(|w| w.contains("libhotcold.so`write_hot+") && w.contains("hotcold.c:")),
        "{hot}"
    );
    assert!(
        !rows(&by_symbol)
            .iter()
            .any(|r| r["key"].as_str().is_some_and(|k| k.ends_with(" cold"))),
        "cold is never written"
    );
    let bss = row_with(&by_symbol, "libhotcold.so .bss lib_bss");
    assert_eq!(bss["counts"]["cow_zero"], 3, "{bss}");
    assert!(
        bss["first_writer"]
            .as_str()
            .is_some_and(|w| w.contains("libhotcold.so`write_lib_bss")),
        "{bss}"
    );
    let exe_data = row_with(&by_symbol, "fixture .data exe_data");
    assert_eq!(copies(exe_data), 4, "{exe_data}");
    assert!(exe_data["first_writer"]
        .as_str()
        .is_some_and(|w| w.contains("fixture`write_exe_data")));
}

#[test]
fn library_touch_map_has_every_other_hot_page_and_no_cold_page() {
    let Some(dir) = fixture() else {
        return;
    };
    let lib = dir.path().join("libhotcold.so");
    // Page by page: exactly every other page of hot, and none of cold, which
    // the touch map reports as written never.
    let by_page = record(dir.path(), "page");
    let hot_addr = symbol_addr(&lib, "hot");
    let cold_addr = symbol_addr(&lib, "cold");
    let written: Vec<u64> = rows(&by_page)
        .iter()
        .filter_map(|r| {
            let key = r["key"].as_str()?;
            key.contains("libhotcold.so .data ").then(|| {
                let hex = key
                    .rsplit(' ')
                    .next()
                    .expect("page")
                    .trim_start_matches("0x");
                u64::from_str_radix(hex, 16).expect("page address")
            })
        })
        .collect();
    let expected: Vec<u64> = (0..64).step_by(2).map(|i| hot_addr + i * PAGE).collect();
    let mut sorted = written.clone();
    sorted.sort_unstable();
    let hot_written: Vec<u64> = sorted
        .iter()
        .copied()
        .filter(|p| (hot_addr..hot_addr + 64 * PAGE).contains(p))
        .collect();
    assert_eq!(hot_written, expected);
    assert!(!written
        .iter()
        .any(|p| (cold_addr..cold_addr + 64 * PAGE).contains(p)));
    let waste = by_page["waste"].as_array().expect("waste");
    let lib_waste = waste
        .iter()
        .find(|w| {
            w["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("libhotcold.so"))
        })
        .expect("touch map of the library");
    let data = lib_waste["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["name"] == ".data")
        .expect(".data");
    // Every page of cold is listed as writable and never written.
    let cold = lib_waste["symbols"]
        .as_array()
        .expect("symbols")
        .iter()
        .find(|s| s["name"] == "cold")
        .expect("cold in the touch map");
    assert_eq!(cold["writable_pages"], 64, "{cold}");
    assert_eq!(cold["untouched_pages"], 64, "{cold}");
    let hot = lib_waste["symbols"]
        .as_array()
        .expect("symbols")
        .iter()
        .find(|s| s["name"] == "hot")
        .expect("hot in the touch map");
    assert_eq!(hot["touched_pages"], 32, "{hot}");
    // 128 pages of arrays plus a page of other data, which the dynamic
    // loader may write while relocating; 32 pages of hot are written.
    let touched = data["touched_pages"].as_u64().expect("n");
    assert!((32..=33).contains(&touched), "{data}");
    let untouched = data["untouched_pages"].as_u64().expect("n");
    let writable = data["writable_pages"].as_u64().expect("n");
    assert_eq!(touched + untouched, writable, "{data}");
    assert!((128..=130).contains(&writable), "{data}");
}

#[test]
fn a_process_that_exits_at_once_is_attributed_to_its_file() {
    let Some(dir) = fixture() else {
        return;
    };
    // One process writes the library's hot pages and its own .data and
    // exits within microseconds; no process maps either file any more when
    // userspace reads the events, so paths must come from the kernel.
    let summary = record_args(dir.path(), "symbol", &["solo"]);
    let hot = row_with(&summary, "libhotcold.so .data hot");
    assert_eq!(copies(hot), 32, "{hot}");
    let exe_data = row_with(&summary, "fixture .data exe_data");
    assert_eq!(copies(exe_data), 4, "{exe_data}");
    let lib = dir
        .path()
        .join("libhotcold.so")
        .canonicalize()
        .expect("path");
    assert!(
        hot["key"]
            .as_str()
            .is_some_and(|k| k.starts_with(&lib.display().to_string())),
        "{hot}"
    );
}

#[test]
fn a_library_replaced_on_disk_is_never_named_from_the_new_file() {
    let Some(dir) = fixture() else {
        return;
    };
    // The program renames another ELF file (a copy of itself) over the
    // library it has mapped, then writes the library's hot pages. The path
    // now leads to the other file: its sections and symbols must not be
    // given to the library's pages.
    let other = dir.path().join("other");
    std::fs::copy(dir.path().join("fixture"), &other).expect("copy");
    let lib = dir.path().join("libhotcold.so");
    let summary = record_args(
        dir.path(),
        "symbol,mapping",
        &[
            "replace",
            other.to_str().expect("utf-8"),
            lib.to_str().expect("utf-8"),
        ],
    );
    let of_lib = |name: &str| -> Vec<Value> {
        view(&summary, name)
            .iter()
            .filter(|r| {
                r["key"]
                    .as_str()
                    .is_some_and(|k| k.contains("libhotcold.so"))
            })
            .cloned()
            .collect()
    };
    for row in of_lib("symbol") {
        let key = row["key"].as_str().unwrap_or("");
        let writer = row["first_writer"].as_str().unwrap_or("");
        assert!(
            !key.contains("exe_data") && !writer.contains("exe_data"),
            "named from the file that replaced the library: {row}"
        );
        // The library's own symbols (crt's `completed.0` too) with their
        // own writers, named from the mapped file.
        for (symbol, function) in [(" hot", "write_hot"), (" lib_bss", "write_lib_bss")] {
            if key.ends_with(symbol) {
                assert!(writer.contains(function), "{row}");
            }
        }
    }
    // Every copy of the library's pages is still counted, under its path,
    // marked when the file there is not the one mapped.
    let mappings = of_lib("mapping");
    assert_eq!(mappings.len(), 1, "{mappings:?}");
    // hot's 32 pages, and the loader's relocation writes in the parent.
    assert!(copies(&mappings[0]) >= 32, "{}", mappings[0]);
    // The program's own image is still attributed.
    let exe_data = view(&summary, "symbol")
        .iter()
        .find(|r| {
            r["key"]
                .as_str()
                .is_some_and(|k| k.contains("fixture .data exe_data"))
        })
        .unwrap_or_else(|| panic!("exe_data: {summary}"));
    assert_eq!(copies(exe_data), 4);
}

/// The interpreter behind `python3`, resolved past any wrapper script.
fn python() -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !path.is_empty()).then_some(path)
}

#[test]
fn a_forking_python_program_is_attributed_to_python_and_its_heap() {
    if !bpf_available() {
        return;
    }
    let Some(python) = python().filter(|_| !in_vm()) else {
        eprintln!("skipping: no python3 here");
        return;
    };
    // A pre-fork server in miniature: the parent builds objects, the child
    // touches them (refcounts and a list update), as CPython workers do.
    let script = "import os\nobjs = [str(i) * 8 for i in range(200000)]\npid = os.fork()\nif pid == 0:\n    total = sum(len(o) for o in objs)\n    objs[::1000] = [None] * len(objs[::1000])\n    os._exit(0)\nos.waitpid(pid, 0)\n";
    let run = |by: &str| record_summary(["--by", by, "--", &python, "-c", script]);
    let by_section = run("section");
    let python_sections: Vec<&Value> = rows(&by_section)
        .iter()
        .filter(|r| r["key"].as_str().is_some_and(|k| k.contains("python3")))
        .filter(|r| r["copies"].as_u64().unwrap_or(0) > 0)
        .collect();
    assert!(
        python_sections.iter().any(|r| {
            let key = r["key"].as_str().unwrap_or("");
            [".data", ".bss", ".got", ".data.rel.ro"]
                .iter()
                .any(|s| key.ends_with(&format!(" {s}")))
        }),
        "copies in the python binary's or libpython's sections: {python_sections:?}"
    );
    let by_mapping = run("mapping");
    assert!(
        rows(&by_mapping).iter().any(|r| {
            r["key"]
                .as_str()
                .is_some_and(|k| k.starts_with("[heap]") || k.starts_with("[anon"))
                && r["counts"]["cow_copy_anon"].as_u64().unwrap_or(0) > 100
        }),
        "the child's copies of the object heap: {by_mapping}"
    );
}

#[test]
fn stacks_are_aggregated_and_named_after_the_process_is_gone() {
    let Some(dir) = fixture() else {
        return;
    };
    let summary = record(dir.path(), "stack");
    let hot = rows(&summary)
        .iter()
        .find(|r| {
            r["key"]
                .as_str()
                .is_some_and(|k| k.starts_with("write_hot"))
        })
        .unwrap_or_else(|| panic!("a stack through write_hot: {summary}"));
    assert_eq!(hot["copies"], 32, "{hot}");
}

type Counts = std::collections::BTreeMap<String, u64>;

/// A counts object (kind → count).
fn counts_of(counts: &Value) -> Counts {
    counts
        .as_object()
        .expect("counts")
        .iter()
        .map(|(kind, n)| (kind.clone(), n.as_u64().expect("count")))
        .collect()
}

/// Per-kind sums of `rows`' counts.
fn kind_sums<'a>(rows: impl IntoIterator<Item = &'a Value>) -> Counts {
    let mut sums = Counts::new();
    for row in rows {
        for (kind, n) in counts_of(&row["counts"]) {
            *sums.entry(kind).or_default() += n;
        }
    }
    sums
}

#[test]
fn every_view_of_one_recording_agrees_with_the_totals_and_the_kernel() {
    let Some(dir) = fixture() else {
        return;
    };
    let summary = record_args(
        dir.path(),
        "process,mapping,image,section,symbol,page,writer,stack",
        &[],
    );
    assert_eq!(summary["lost_events"], 0, "{summary}");
    let totals = counts_of(&summary["totals"]);
    let kernel = counts_of(&summary["kernel_totals"]);
    assert_eq!(
        totals, kernel,
        "every fault the kernel counted was recorded"
    );
    let processes = summary["processes"].as_array().expect("processes");
    assert_eq!(kind_sums(processes), totals, "processes");
    for name in ["mapping", "page", "writer", "stack"] {
        assert_eq!(kind_sums(view(&summary, name)), totals, "view {name}");
    }
    // The image views hold the image pages: the same faults in each.
    let images = kind_sums(view(&summary, "image"));
    assert_eq!(kind_sums(view(&summary, "section")), images, "section");
    assert_eq!(kind_sums(view(&summary, "symbol")), images, "symbol");
    for image in view(&summary, "image") {
        let path = format!("{} ", image["key"].as_str().expect("key"));
        let sections = view(&summary, "section")
            .iter()
            .filter(|r| r["key"].as_str().is_some_and(|k| k.starts_with(&path)));
        assert_eq!(
            kind_sums(sections),
            kind_sums([image]),
            "the sections of {path}"
        );
    }
    // The numbers of the single-view recordings, from the same state.
    let hot = view(&summary, "symbol")
        .iter()
        .find(|r| {
            r["key"]
                .as_str()
                .is_some_and(|k| k.ends_with("libhotcold.so .data hot"))
        })
        .unwrap_or_else(|| panic!("hot: {summary}"));
    assert_eq!(copies(hot), 32);
    assert!(
        summary["waste"].as_array().is_some_and(|w| !w.is_empty()),
        "the touch map comes with the image views"
    );
}
