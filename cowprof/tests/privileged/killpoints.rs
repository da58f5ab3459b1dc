//! Kill points: `record -o`, `top`, `gate --update` and `serve` stopped at
//! 50 moments (from startup, while the probes load, to the middle of the
//! recording) with SIGINT, SIGTERM and SIGKILL mixed. After every stop no
//! eBPF program, map or link of cowprof's stays in the kernel (bpftool
//! says), and every output keeps its promise: a complete profile after
//! SIGINT or SIGTERM and readable closed parts after SIGKILL, the terminal
//! restored by `top`, a gate baseline that is the old file or the new one,
//! never half of one.
use std::{
    collections::BTreeSet,
    os::unix::process::ExitStatusExt as _,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    harness::{
        bpf_available, cowprof, forced_probe, in_vm, output, python, scratch, wait, workload,
        workload_args, Files,
    },
    serve::loopback,
    top::Tmux,
};

const ROUNDS: usize = 50;
const SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGKILL];

/// The names of cowprof's own programs and maps, from its eBPF objects,
/// as the kernel keeps them (`BPF_OBJ_NAME_LEN`: at most 15 bytes).
fn own_names() -> BTreeSet<String> {
    use object::{Object as _, ObjectSymbol as _};
    let mut names = BTreeSet::new();
    for object in [
        aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/cowprof")),
        aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/cowprof-legacy")),
    ] {
        let file =
            object::File::parse(object).unwrap_or_else(|e| panic!("cowprof's eBPF object: {e}"));
        for symbol in file.symbols() {
            if let Ok(name) = symbol.name() {
                if !name.is_empty() && !name.starts_with('.') {
                    names.insert(name.chars().take(15).collect());
                }
            }
        }
    }
    names
}

/// The ids of cowprof's BPF programs and maps in the kernel, and of every
/// link (links have no names), by bpftool.
fn bpf_objects() -> BTreeSet<String> {
    thread_local! {
        static OWN: BTreeSet<String> = own_names();
    }
    let mut ids = BTreeSet::new();
    for kind in ["prog", "map", "link"] {
        let out = output(Command::new("bpftool").args(["-j", kind, "show"]));
        assert!(
            out.status.success(),
            "bpftool {kind} show (cargo xtask test installs bpftool): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        for object in listed.as_array().into_iter().flatten() {
            let name = object["name"].as_str().unwrap_or("");
            if kind == "link" || OWN.with(|own| own.contains(name)) {
                ids.insert(format!("{kind} {} {name}", object["id"]));
            }
        }
    }
    ids
}

/// Waits (bounded: the kernel frees programs after their last descriptor
/// closes, through RCU) until nothing but `before` is in the kernel.
fn assert_nothing_left(before: &BTreeSet<String>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: Vec<String> = bpf_objects().difference(before).cloned().collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: left in the kernel: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn probe() -> Vec<String> {
    forced_probe()
        .map(|p| vec![format!("--probe={p}")])
        .unwrap_or_default()
}

/// The workload every verb traces: forks at a pace, so a stop lands in the
/// middle of its faults.
fn traced(files: &Files) -> Vec<String> {
    let mut command = vec![workload().display().to_string()];
    command.extend(workload_args(files, "fork-paced", &["--pages", "4096"]));
    command
}

fn kill(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a process this test started.
    unsafe { libc::kill(i32::try_from(pid).expect("pid"), signal) };
}

fn spawn(args: &[String]) -> Child {
    Command::new(cowprof())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cowprof")
}

/// Whether `pid` catches `signal` now (its bit in `SigCgt`).
fn catches(pid: u32, signal: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
}

/// Stops `child` with `signal` after `delay`. Returns its exit and
/// whether it caught the signal when it was sent.
fn stopped(mut child: Child, signal: i32, delay: Duration, what: &str) -> (ExitStatus, bool) {
    std::thread::sleep(delay);
    let caught = catches(child.id(), signal);
    kill(child.id(), signal);
    let status = wait(&mut child, what);
    if signal != libc::SIGKILL {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        assert!(
            !stderr.contains("panicked"),
            "{what}: cowprof panicked: {stderr}"
        );
        // A signal it was catching must not kill it.
        assert!(
            !caught || status.signal().is_none(),
            "{what}: died of a signal its handler catches ({status}): {stderr}"
        );
    }
    (status, caught)
}

/// `record -o`: a complete profile after SIGINT or SIGTERM (read by
/// `report` and pyarrow), and after SIGKILL a profile `report` reads,
/// saying it is partial, whenever its manifest was written.
fn record(dir: &Path, signal: i32, delay: Duration, what: &str, python: Option<&Path>) {
    let files = Files::new();
    let profile = dir.join("profile");
    let mut args = vec!["record".to_owned(), "--summary".into(), "/dev/null".into()];
    args.extend(["-o".to_owned(), profile.display().to_string()]);
    args.extend(probe());
    args.push("--".into());
    args.extend(traced(&files));
    let (status, _) = stopped(spawn(&args), signal, delay, what);
    // A SIGKILL after the command ended and cowprof with it finds nothing
    // to kill: that recording is whole.
    let killed = status.signal() == Some(libc::SIGKILL);
    if killed && !profile.join("profile.json").exists() {
        return;
    }
    // A signal in the first milliseconds, before cowprof installed its
    // handler, ends it as the signal does by default: then it has written
    // nothing at all.
    if status.signal() == Some(signal) && signal != libc::SIGKILL {
        assert!(
            !profile.exists(),
            "{what}: died of the signal after making {}",
            profile.display()
        );
        return;
    }
    let out = output(Command::new(cowprof()).arg("report").arg(&profile));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what}: report: {stderr}");
    if killed {
        assert!(stderr.contains("is partial"), "{what}: {stderr}");
        return;
    }
    assert!(status.success(), "{what}: {status}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(profile.join("profile.json")).expect("manifest"))
            .expect("manifest JSON");
    assert_eq!(manifest["complete"], true, "{what}");
    if let Some(python) = python {
        let read = output(
            Command::new(python)
                .args(["-c", "import sys, pathlib, pyarrow.parquet as pq\nfor f in pathlib.Path(sys.argv[1]).rglob('*.parquet'): pq.read_table(f)"])
                .arg(&profile),
        );
        assert!(
            read.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&read.stderr)
        );
    }
}

/// `top`: exits 0 and restores the terminal after SIGINT or SIGTERM (a
/// SIGKILL cannot be handled: the shell sees 137).
fn top(dir: &Path, signal: i32, delay: Duration, what: &str) {
    let files = Files::new();
    let mut args = probe();
    args.push("--no-export".into());
    args.push("--".into());
    args.extend(traced(&files));
    let tmux = Tmux::start(dir, &args);
    let pid = tmux.wait_for_top();
    std::thread::sleep(delay);
    let caught = catches(pid, signal);
    kill(pid, signal);
    if signal == libc::SIGKILL {
        tmux.wait_for(what, |s| s.contains("top-exit=137"));
    } else {
        // `exited` checks the terminal is as it was; 128 + signal is a
        // signal before top's handler (and its raw mode) was in place.
        let code = tmux.exited();
        assert!(
            code == 0 || (!caught && code == 128 + signal),
            "{what}: top exited {code} (catching the signal: {caught})"
        );
    }
}

/// `gate --update --baseline BASELINE -- workload`.
fn gate_update(baseline: &Path, files: &Files) -> Vec<String> {
    let mut args = vec!["gate".to_owned(), "--update".into(), "--baseline".into()];
    args.push(baseline.display().to_string());
    args.extend(probe());
    args.push("--".into());
    args.extend(traced(files));
    args
}

/// `gate --update`: the baseline is the old file or a whole new one.
fn gate(baseline: &Path, signal: i32, delay: Duration, what: &str) {
    let files = Files::new();
    // Whatever its exit (2 when interrupted, or the signal's), the baseline
    // must be whole.
    stopped(spawn(&gate_update(baseline, &files)), signal, delay, what);
    let text = std::fs::read_to_string(baseline).expect("the baseline is still there");
    let parsed: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{what}: the baseline is half-written ({e}): {text}"));
    assert!(parsed["schema_version"].is_u64(), "{what}: {text}");
}

/// `serve`: exits 0 after SIGINT or SIGTERM.
fn serve(signal: i32, delay: Duration, what: &str) {
    let files = Files::new();
    let mut args = vec!["serve".to_owned(), "--listen".into()];
    args.push(loopback().to_string());
    args.extend(probe());
    args.push("--".into());
    args.extend(traced(&files));
    let (status, caught) = stopped(spawn(&args), signal, delay, what);
    if signal != libc::SIGKILL {
        // Handled: a clean exit; dead of the signal only before its
        // handler was in place.
        assert!(
            status.success() || (!caught && status.signal() == Some(signal)),
            "{what}: {status}"
        );
    }
}

#[test]
fn every_verb_stopped_at_fifty_moments_leaves_nothing_attached_and_keeps_its_outputs() {
    if !bpf_available() || in_vm() {
        return;
    }
    let python = python();
    let dir = scratch();
    let before = bpf_objects();
    // A baseline to overwrite, made by a run that is not stopped.
    let baseline = dir.path().join("baseline.json");
    {
        let files = Files::new();
        let out = output(Command::new(cowprof()).args(gate_update(&baseline, &files)));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A small linear congruential generator: reproducible "random" moments,
    // from the very start (probes loading) to well into the recording.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..ROUNDS {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_millis((seed >> 33) % 2_000);
        let signal = SIGNALS[(round / 4) % SIGNALS.len()];
        let verb = ["record", "top", "gate", "serve"][round % 4];
        let what = format!("round {round}: {verb} stopped by signal {signal} after {delay:?}");
        let here = dir.path().join(format!("r{round}"));
        std::fs::create_dir(&here).expect("round dir");
        match verb {
            "record" => record(&here, signal, delay, &what, python.as_deref()),
            "top" => top(&here, signal, delay, &what),
            "gate" => gate(&baseline, signal, delay, &what),
            _ => serve(signal, delay, &what),
        }
        assert_nothing_left(&before, &what);
    }
}
