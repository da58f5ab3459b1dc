//! Workloads whose exact COW answer is known, for cowprof's live tests and
//! benchmarks.
//!
//! Each mode writes a JSON line to `--report FILE` naming the pids involved
//! and the address range under test, so a test can count only the events in
//! that range and ignore the dynamic loader's and libc's own faults.
//!
//! ```text
//! cow-workload MODE --pages N [--read R] [--extra E] [--file PATH] [--report FILE] [--wait]
//! ```
//! Modes:
//! - `fork-anon`: first-touch N anon pages, fork, the child writes all N
//!   (N `cow_copy_anon`), the parent waits and rewrites all N (N `cow_reuse`).
//!   It runs on one CPU: see `pin_to_one_cpu`.
//!   With `--extra E`, the parent also first-touches E pages of a second
//!   mapping, and the child writes them first, in `write_extra_pages`
//!   (E more `cow_copy_anon`, by a function of their own).
//! - `fork-read`: like `fork-anon`, but the child's writes are the
//!   kernel's: it `read(2)`s one byte from /dev/zero into each page (N
//!   `cow_copy_anon`, from kernel-mode faults), and the parent does not
//!   rewrite.
//! - `syscalls-between`: like `fork-anon`, but after each of its rewrites
//!   the parent makes a syscall that allocates a page without a fault of
//!   its own: alternately a `pread(2)` of an uncached page of `--file` (a
//!   page-cache page) into a buffer that takes no fault, and a one-page
//!   `mmap(MAP_POPULATE)` plus a `read(2)` from /dev/zero into a fresh
//!   page (a kernel-mode first touch). Still N `cow_reuse`: the
//!   allocations are not the rewrites' copies.
//! - `file-private`: map a file of N pages `MAP_PRIVATE` (`--keep`: as it
//!   is), read the first R, write all N (R `cow_copy_file`, N-R fills).
//! - `file-shared`: map a file of N pages `MAP_SHARED`, read all, write all
//!   (N `write_notify`).
//! - `fresh-anon`: write N fresh anon pages (no COW at all).
//! - `zero`: read N fresh anon pages (mapping the zero page), then write
//!   them (N `cow_zero`).
//! - `fork-storm`: fork, the child writes N pages, repeated `--read` times;
//!   prints the mean wall time per fork and child as `ns_per_fork=<ns>`
//!   (used by benchmarks).
//! - `fork-time`: like `fork-anon` without the parent's rewrite; the child
//!   times its N writes and the parent prints `ns_per_fault=<ns>` (used by
//!   benchmarks).
//! - `fork-paced`: like `fork-time`, but the child writes its N pages in
//!   batches of 64, 20 ms apart, so a recording can be watched mid-run.
//! - `storm-files`: the child of a fork writes N anon pages (N
//!   `cow_copy_anon`) and, spread over the second half of them, page 0 of
//!   each of 64 two-page files `--file PATH.K` mapped `MAP_PRIVATE`; after
//!   300 ms it writes page 1 of each, 10 ms apart (128 `cow_fill_file` in
//!   all). With a small ring buffer the files' path records meet a full one.
//! - `many-comms`: first-touch N anon pages, then `--read C` times fork a
//!   child that names itself `cwNNNNNN` (its index) and writes all N (C
//!   short-lived processes with distinct comms, N `cow_copy_anon` each).
//!   A child's faults before it names itself (its stack, made its own
//!   first, and libc's data) are its parent's comm's: under its own comm
//!   it has exactly N copies.
//!
//! With `--wait` the workload reports its pid and then blocks until a line
//! arrives on stdin, so a profiler can attach with `-p` first.
//!
//! With `--stop`, the `fork-anon` child reports itself and stops (SIGSTOP)
//! before and after its writes, so a test can read its smaps in between;
//! after its writes it adds the line `{"written":CHILD}` to the report.
use std::{
    fs::{File, OpenOptions},
    io::{BufRead as _, Write as _},
    os::fd::AsRawFd as _,
    path::PathBuf,
    ptr,
};

const PAGE: usize = 4096;

struct Args {
    mode: String,
    pages: usize,
    read: usize,
    file: Option<PathBuf>,
    report: Option<PathBuf>,
    wait: bool,
    stop: bool,
    /// `fork-anon`: pages the child also writes, in a function of their
    /// own (a regression for the gate to catch and name).
    extra: usize,
    /// `--keep`: map `--file` as it is (a hostile file a test made).
    keep: bool,
}

fn parse() -> Args {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| usage("missing MODE"));
    let mut parsed = Args {
        mode,
        pages: 1024,
        read: 0,
        file: None,
        report: None,
        wait: false,
        stop: false,
        extra: 0,
        keep: false,
    };
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--pages" => parsed.pages = value().parse().unwrap_or_else(|_| usage("bad --pages")),
            "--read" => parsed.read = value().parse().unwrap_or_else(|_| usage("bad --read")),
            "--file" => parsed.file = Some(value().into()),
            "--report" => parsed.report = Some(value().into()),
            "--wait" => parsed.wait = true,
            "--stop" => parsed.stop = true,
            "--keep" => parsed.keep = true,
            "--extra" => parsed.extra = value().parse().unwrap_or_else(|_| usage("bad --extra")),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    parsed
}

fn usage(problem: &str) -> ! {
    eprintln!("cow-workload: {problem}; see the module docs for usage");
    std::process::exit(2);
}

fn check(rc: libc::c_int, what: &str) {
    if rc != 0 {
        eprintln!(
            "cow-workload: {what} failed: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }
}

/// Maps `pages` pages; `fd` < 0 for anon memory.
fn map(pages: usize, flags: libc::c_int, fd: libc::c_int) -> *mut u8 {
    // SAFETY: a fresh mapping with no fixed address.
    let addr = unsafe {
        libc::mmap(
            ptr::null_mut(),
            pages * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd,
            0,
        )
    };
    check(if addr == libc::MAP_FAILED { -1 } else { 0 }, "mmap");
    addr.cast()
}

/// Keeps every page a 4 KiB page, so each write is one fault and a THP or
/// the huge zero page cannot change the count.
fn no_huge(base: *mut u8, pages: usize) {
    // SAFETY: the range is our own mapping.
    check(
        unsafe { libc::madvise(base.cast(), pages * PAGE, libc::MADV_NOHUGEPAGE) },
        "madvise",
    );
}

fn write_pages(base: *mut u8, range: std::ops::Range<usize>, value: u8) {
    for page in range {
        // SAFETY: inside our mapping; volatile so every write happens.
        unsafe { ptr::write_volatile(base.add(page * PAGE), value) };
    }
}

fn read_pages(base: *mut u8, range: std::ops::Range<usize>) -> u64 {
    let mut sum = 0u64;
    for page in range {
        // SAFETY: inside our mapping; volatile so every read happens.
        sum += u64::from(unsafe { ptr::read_volatile(base.add(page * PAGE)) });
    }
    sum
}

fn report(args: &Args, base: *mut u8, child: Option<i32>) {
    let line = format!(
        "{{\"pid\":{},\"child\":{},\"start\":{},\"end\":{}}}\n",
        std::process::id(),
        child.unwrap_or(0),
        base as usize,
        base as usize + args.pages * PAGE
    );
    report_line(args, &line);
}

fn report_line(args: &Args, line: &str) {
    if let Some(path) = &args.report {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| usage(&format!("cannot open --report: {e}")));
        file.write_all(line.as_bytes()).expect("writing the report");
    }
}

fn wait_for_go(args: &Args) {
    if args.wait {
        report(args, ptr::null_mut(), None);
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    }
}

/// Keeps this process (and its children) on the CPU it runs on.
///
/// A fresh anon page waits in its CPU's LRU batch, holding a reference,
/// until that batch drains. A write fault drains only its own CPU's batch
/// (`wp_can_reuse_anon_folio()` in mm/memory.c), so a parent that moved to
/// another CPU since it touched its pages finds some of them with a spare
/// reference and gets a copy where `cow_reuse` is due: the kernel really
/// copies them. On one CPU every reuse is a reuse.
fn pin_to_one_cpu() {
    // SAFETY: cpu_set_t is plain data; the calls get valid pointers.
    unsafe {
        let cpu = libc::sched_getcpu();
        if cpu < 0 {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(usize::try_from(cpu).unwrap_or(0), &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const set);
    }
}

fn fork_child(work: impl FnOnce()) -> i32 {
    // SAFETY: the child runs `work` and exits without returning.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        check(-1, "fork");
    }
    if pid == 0 {
        work();
        // SAFETY: leave without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: pid is our child.
    unsafe { libc::waitpid(pid, &raw mut status, 0) };
    pid
}

/// `storm-files`: see the module docs.
fn storm_files(args: &Args) {
    const FILES: usize = 64;
    let n = args.pages.max(2 * FILES);
    let path = args
        .file
        .clone()
        .unwrap_or_else(|| usage("this mode needs --file"));
    let files: Vec<*mut u8> = (0..FILES)
        .map(|k| {
            let mut name = path.clone().into_os_string();
            name.push(format!(".{k}"));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&name)
                .unwrap_or_else(|e| {
                    usage(&format!(
                        "cannot create {}: {e}",
                        std::path::Path::new(&name).display()
                    ))
                });
            file.write_all_at_start(2);
            map(2, libc::MAP_PRIVATE, file.as_raw_fd())
        })
        .collect();
    let base = map(n, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1);
    no_huge(base, n);
    write_pages(base, 0..n, 1);
    let step = n / 2 / FILES;
    let child = fork_child(|| {
        for page in 0..n {
            write_pages(base, page..page + 1, 2);
            if page >= n / 2 && (page - n / 2).is_multiple_of(step) {
                if let Some(file) = files.get((page - n / 2) / step) {
                    write_pages(*file, 0..1, 3);
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        // Paced, so the one-page buffer can take each write's records.
        for file in &files {
            write_pages(*file, 1..2, 3);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    });
    report(args, base, Some(child));
}

fn file_of(args: &Args) -> File {
    let path = args
        .file
        .clone()
        .unwrap_or_else(|| usage("this mode needs --file"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(!args.keep)
        .truncate(!args.keep)
        .open(&path)
        .unwrap_or_else(|e| usage(&format!("cannot open {}: {e}", path.display())));
    if !args.keep {
        file.write_all_at_start(args.pages);
    }
    file
}

trait Fill {
    fn write_all_at_start(&self, pages: usize);
}

impl Fill for File {
    fn write_all_at_start(&self, pages: usize) {
        let mut f = self;
        f.write_all(&vec![b'c'; pages * PAGE])
            .expect("filling the file");
        f.sync_all().expect("syncing the file");
    }
}

/// N anon pages, each written once, in a process pinned to one CPU (see
/// `pin_to_one_cpu`): the setup of the fork modes with exact counts.
fn touched_anon_on_one_cpu(n: usize) -> *mut u8 {
    pin_to_one_cpu();
    let base = map(n, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1);
    no_huge(base, n);
    write_pages(base, 0..n, 1);
    base
}

/// Writes the next 16 KiB of stack below the caller's frame. Where ASLR
/// puts the stack, a later call may reach a page the parent wrote before
/// the fork: its copy then lands under whatever comm the child has then.
#[inline(never)]
fn own_stack() {
    let mut pad = [0u8; 16 * 1024];
    for page in (0..pad.len()).step_by(PAGE) {
        // SAFETY: inside the array; volatile, so every page is written.
        unsafe { ptr::write_volatile(pad.as_mut_ptr().add(page), 1) };
    }
    std::hint::black_box(&pad);
}

/// `many-comms`: see the module docs.
fn many_comms(args: &Args) {
    let n = args.pages;
    let base = touched_anon_on_one_cpu(n);
    report(args, base, None);
    for i in 0..args.read.max(1) {
        fork_child(|| {
            // The stack pages the rest of the child uses become its own
            // before the rename, and the name is built on the stack:
            // freeing a heap buffer after the rename would write (and
            // copy) a heap page under it.
            own_stack();
            let mut comm = *b"cw000000\0";
            let mut rest = i;
            for digit in comm[2..8].iter_mut().rev() {
                *digit = b'0' + u8::try_from(rest % 10).unwrap_or(0);
                rest /= 10;
            }
            // SAFETY: a NUL-terminated name; the kernel copies it.
            unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr()) };
            write_pages(base, 0..n, 2);
        });
    }
}

/// `fork-anon`: see the module docs.
/// The extra pages of `fork-anon --extra`: written by a function of its
/// own, which the gate's report should name.
#[inline(never)]
fn write_extra_pages(base: *mut u8, n: usize) {
    for page in 0..n {
        // SAFETY: inside our mapping. A plain store, so that this function
        // (not a helper it calls) holds the writing instruction.
        unsafe { *base.add(page * PAGE) = 4 };
    }
    std::hint::black_box(base);
}

fn fork_anon(args: &Args) {
    let n = args.pages;
    let base = touched_anon_on_one_cpu(n);
    let extra = (args.extra > 0).then(|| {
        let extra = map(args.extra, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1);
        no_huge(extra, args.extra);
        write_pages(extra, 0..args.extra, 1);
        extra
    });
    let child = fork_child(|| {
        if let Some(extra) = extra {
            write_extra_pages(extra, args.extra);
        }
        if args.stop {
            // SAFETY: getppid and raise have no preconditions.
            let parent = unsafe { libc::getppid() };
            report_line(
                args,
                &format!(
                    "{{\"pid\":{parent},\"child\":{},\"start\":{},\"end\":{}}}\n",
                    std::process::id(),
                    base as usize,
                    base as usize + n * PAGE
                ),
            );
            unsafe { libc::raise(libc::SIGSTOP) };
        }
        write_pages(base, 0..n, 2);
        if args.stop {
            // Its writes are done: a test waits for this line, then for
            // the stop.
            report_line(args, &format!("{{\"written\":{}}}\n", std::process::id()));
            // SAFETY: as above.
            unsafe { libc::raise(libc::SIGSTOP) };
        }
    });
    report(args, base, Some(child));
    write_pages(base, 0..n, 3);
}

/// `fork-read`: see the module docs.
fn fork_read(args: &Args) {
    let n = args.pages;
    let base = touched_anon_on_one_cpu(n);
    let child = fork_child(|| {
        // The kernel writes the pages (read(2) from /dev/zero): the
        // faults are kernel-mode faults on user memory.
        let Ok(zero) = File::open("/dev/zero") else {
            usage("cannot open /dev/zero");
        };
        for page in 0..n {
            // SAFETY: one byte inside our mapping.
            let got = unsafe { libc::read(zero.as_raw_fd(), base.add(page * PAGE).cast(), 1) };
            check(if got == 1 { 0 } else { -1 }, "read /dev/zero");
        }
    });
    report(args, base, Some(child));
}

/// `syscalls-between`: see the module docs.
fn syscalls_between(args: &Args) {
    let n = args.pages;
    let file = file_of(args);
    // Written pages are dirty: sync them so the page cache can be dropped,
    // and read without readahead, so each pread(2) allocates its one page.
    // SAFETY: a valid descriptor.
    check(unsafe { libc::fdatasync(file.as_raw_fd()) }, "fdatasync");
    // SAFETY: advice on our own file.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM);
    }
    let base = touched_anon_on_one_cpu(n);
    let child = fork_child(|| write_pages(base, 0..n, 2));
    report(args, base, Some(child));
    let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let buffer = map(1, anon, -1);
    write_pages(buffer, 0..1, 1);
    let Ok(zero) = File::open("/dev/zero") else {
        usage("cannot open /dev/zero");
    };
    for page in 0..n {
        write_pages(base, page..page + 1, 3);
        if page % 2 == 0 {
            // A page-cache page allocated by the syscall itself, before
            // it copies into a buffer that takes no fault.
            #[expect(clippy::cast_possible_wrap, reason = "small offsets")]
            let offset = (page * PAGE) as libc::off_t;
            // SAFETY: one page into our own buffer.
            let got = unsafe { libc::pread(file.as_raw_fd(), buffer.cast(), PAGE, offset) };
            check(if got > 0 { 0 } else { -1 }, "pread");
        } else {
            let populated = map(1, anon | libc::MAP_POPULATE, -1);
            let fresh = map(1, anon, -1);
            // SAFETY: one byte inside the fresh mapping.
            let got = unsafe { libc::read(zero.as_raw_fd(), fresh.cast(), 1) };
            check(if got == 1 { 0 } else { -1 }, "read /dev/zero");
            // SAFETY: the one-page mappings made above.
            unsafe {
                check(libc::munmap(populated.cast(), PAGE), "munmap");
                check(libc::munmap(fresh.cast(), PAGE), "munmap");
            }
        }
    }
}

/// `fork-time`: see the module docs.
fn fork_time(args: &Args) {
    let n = args.pages;
    let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let base = map(n, anon, -1);
    no_huge(base, n);
    write_pages(base, 0..n, 1);
    let mut fds = [0; 2];
    // SAFETY: fds is a valid two-element array.
    check(unsafe { libc::pipe(fds.as_mut_ptr()) }, "pipe");
    fork_child(|| {
        let start = std::time::Instant::now();
        write_pages(base, 0..n, 2);
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // SAFETY: valid fd and buffer.
        unsafe { libc::write(fds[1], (&raw const ns).cast(), 8) };
    });
    let mut ns = 0u64;
    // SAFETY: valid fd and buffer; the child has written and exited.
    unsafe { libc::read(fds[0], (&raw mut ns).cast(), 8) };
    report(args, base, None);
    #[expect(clippy::cast_precision_loss, reason = "a mean for display")]
    let mean = ns as f64 / n as f64;
    println!("ns_per_fault={mean:.1}");
}

fn main() {
    let args = parse();
    wait_for_go(&args);
    let n = args.pages;
    let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    match args.mode.as_str() {
        "fork-anon" => fork_anon(&args),
        "fork-read" => fork_read(&args),
        "syscalls-between" => syscalls_between(&args),
        "file-private" => {
            let file = file_of(&args);
            // Fault-around maps already-cached pages read-only, but only
            // inside the aligned window (fault_around_bytes, 64 KiB by
            // default) around each read fault. Reading a prefix whose length
            // is a multiple of that window leaves the rest unmapped, and
            // MADV_RANDOM stops readahead from caching more than is read.
            let base = map(n, libc::MAP_PRIVATE, file.as_raw_fd());
            // SAFETY: our mapping.
            check(
                unsafe { libc::madvise(base.cast(), n * PAGE, libc::MADV_RANDOM) },
                "madvise",
            );
            // SAFETY: drop the file's page cache so only what is read is cached.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            let _ = read_pages(base, 0..args.read.min(n));
            write_pages(base, 0..n, 7);
            report(&args, base, None);
        }
        "file-shared" => {
            let file = file_of(&args);
            let base = map(n, libc::MAP_SHARED, file.as_raw_fd());
            let _ = read_pages(base, 0..n);
            write_pages(base, 0..n, 9);
            report(&args, base, None);
        }
        "fresh-anon" => {
            let base = map(n, anon, -1);
            no_huge(base, n);
            write_pages(base, 0..n, 4);
            report(&args, base, None);
        }
        "zero" => {
            let base = map(n, anon, -1);
            no_huge(base, n);
            let _ = read_pages(base, 0..n);
            write_pages(base, 0..n, 5);
            report(&args, base, None);
        }
        "fork-storm" => {
            let base = map(n, anon, -1);
            no_huge(base, n);
            write_pages(base, 0..n, 1);
            report(&args, base, None);
            let forks = args.read.max(1);
            let start = std::time::Instant::now();
            for _ in 0..forks {
                fork_child(|| write_pages(base, 0..n, 2));
            }
            #[expect(clippy::cast_precision_loss, reason = "a mean for display")]
            let mean = start.elapsed().as_nanos() as f64 / forks as f64;
            println!("ns_per_fork={mean:.1}");
        }
        "fork-time" => fork_time(&args),
        "many-comms" => many_comms(&args),
        "fork-paced" => {
            let base = map(n, anon, -1);
            no_huge(base, n);
            write_pages(base, 0..n, 1);
            let child = fork_child(|| {
                for start in (0..n).step_by(64) {
                    write_pages(base, start..(start + 64).min(n), 2);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            });
            report(&args, base, Some(child));
        }
        "storm-files" => storm_files(&args),
        other => usage(&format!("unknown mode {other}")),
    }
}
