//! Each kind of docs/kernel.md §2, counted exactly in the range under test.
use crate::harness::{bpf_available, record_workload, Files};

const N: u64 = 4096;

#[test]
fn fork_child_copies_and_parent_reuses() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    let rec = record_workload(&files, "fork-anon", &["--pages", &N.to_string()]);
    rec.assert_child_copied_parent_reused(N);
    let others: u64 = rec.in_range().values().sum::<u64>() - 2 * N;
    assert_eq!(others, 0, "unexpected kinds in range: {:?}", rec.in_range());
    // Nothing was lost, and the kernel's own per-kind totals agree.
    assert_eq!(rec.summary["lost_events"], 0);
    assert_eq!(rec.summary["totals"], rec.summary["kernel_totals"]);
}

/// Pages allocated by a syscall between two faults (a `pread(2)` of an
/// uncached file page, `MAP_POPULATE`, a `read(2)` into fresh memory) are
/// not the first fault's: each rewrite stays a reuse, on every strategy.
/// Under lazy completion the first fault's record is still open during the
/// syscall.
#[test]
fn allocations_by_syscalls_between_faults_are_not_copies() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    let rec = record_workload(&files, "syscalls-between", &["--pages", "512"]);
    rec.assert_child_copied_parent_reused(512);
    assert_eq!(
        rec.in_range().values().sum::<u64>(),
        1024,
        "no zero-page or anon copies in range: {:?}",
        rec.in_range()
    );
}

#[test]
fn kernel_writes_to_user_memory_are_cow_faults_too() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    let rec = record_workload(&files, "fork-read", &["--pages", "512"]);
    let range = rec.range();
    assert_eq!(
        rec.count(range.child, "cow_copy_anon"),
        512,
        "{:?}",
        rec.in_range()
    );
    assert_eq!(rec.in_range().values().sum::<u64>(), 512);
    // The writer is the kernel, not an instruction of the process.
    // The writer is the kernel, not an instruction of the process: every
    // one of the child's faults in the range, exactly.
    let by_kernel = rec
        .events
        .iter()
        .filter(|e| {
            e["pid"] == range.child
                && e["addr"]
                    .as_u64()
                    .is_some_and(|a| (range.start..range.end).contains(&a))
                && e["ip"]
                    .as_u64()
                    .is_some_and(cowprof_common::event::is_kernel_address)
        })
        .count();
    assert_eq!(by_kernel, 512, "kernel-mode faults in the range");
}

#[test]
fn private_file_copies_read_pages_and_fills_the_rest() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    // The split at 512 pages is a multiple of the 16-page fault-around
    // window, so no unread page is mapped read-only ahead of its write.
    let rec = record_workload(
        &files,
        "file-private",
        &["--pages", "1024", "--read", "512"],
    );
    let pid = rec.range().pid;
    assert_eq!(rec.count(pid, "cow_copy_file"), 512, "{:?}", rec.in_range());
    assert_eq!(rec.count(pid, "cow_fill_file"), 512, "{:?}", rec.in_range());
    assert_eq!(rec.in_range().values().sum::<u64>(), 1024);
}

#[test]
fn shared_file_write_is_write_notify_never_cow() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    let rec = record_workload(&files, "file-shared", &["--pages", "256"]);
    let pid = rec.range().pid;
    assert_eq!(rec.count(pid, "write_notify"), 256, "{:?}", rec.in_range());
    assert_eq!(
        rec.in_range().values().sum::<u64>(),
        256,
        "{:?}",
        rec.in_range()
    );
}

#[test]
fn fresh_anon_memory_has_no_cow() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    let rec = record_workload(&files, "fresh-anon", &["--pages", "2048"]);
    assert!(rec.in_range().is_empty(), "{:?}", rec.in_range());
}

#[test]
fn write_after_read_of_untouched_anon_is_cow_zero() {
    if !bpf_available() {
        return;
    }
    let files = Files::new();
    let rec = record_workload(&files, "zero", &["--pages", "1000"]);
    let pid = rec.range().pid;
    assert_eq!(rec.count(pid, "cow_zero"), 1000, "{:?}", rec.in_range());
    assert_eq!(rec.in_range().values().sum::<u64>(), 1000);
}
