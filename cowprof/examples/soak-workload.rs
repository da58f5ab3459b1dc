//! The soak's workload (`cargo xtask soak`): COW faults at a high rate, for
//! a given time, through every kind of process life cowprof must follow.
//!
//! ```text
//! soak-workload SECONDS [--threads T] [--pages N] [--file PATH] [--wait]
//! ```
//! - one long-lived process with T threads (default 8); each thread, in a
//!   loop, maps N anon pages (default 2048), touches them, forks a
//!   short-lived child that writes every page (N `cow_copy_anon`) and
//!   exits, rewrites them itself, and unmaps them (`mmap`/`munmap` churn);
//! - thread 0 also `exec`s `/bin/true` in a child every 64 rounds (the
//!   loader's relocations: file copies and fills);
//! - thread 1 also maps `--file` privately and writes it every 16 rounds
//!   (`cow_fill_file`);
//! - one long-lived child keeps forking writers of its own pages.
//!
//! With `--wait` it starts only after a line on stdin. At the end it prints
//! `rounds=R children=C execs=E` on stdout.
use std::{
    io::BufRead as _,
    os::fd::AsRawFd as _,
    ptr,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

const PAGE: usize = 4096;

static ROUNDS: AtomicU64 = AtomicU64::new(0);
static CHILDREN: AtomicU64 = AtomicU64::new(0);
static EXECS: AtomicU64 = AtomicU64::new(0);

struct Args {
    seconds: u64,
    threads: usize,
    pages: usize,
    file: Option<std::path::PathBuf>,
    wait: bool,
}

fn usage(why: &str) -> ! {
    eprintln!("soak-workload: {why}\nusage: soak-workload SECONDS [--threads T] [--pages N] [--file PATH] [--wait]");
    std::process::exit(2)
}

fn parse() -> Args {
    let mut args = std::env::args().skip(1);
    let seconds = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| usage("missing SECONDS"));
    let mut parsed = Args {
        seconds,
        threads: 8,
        pages: 2048,
        file: None,
        wait: false,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage("a flag needs a value"));
        match flag.as_str() {
            "--threads" => {
                parsed.threads = value().parse().unwrap_or_else(|_| usage("bad --threads"));
            }
            "--pages" => parsed.pages = value().parse().unwrap_or_else(|_| usage("bad --pages")),
            "--file" => parsed.file = Some(value().into()),
            "--wait" => parsed.wait = true,
            other => usage(&format!("unknown flag {other}")),
        }
    }
    parsed
}

fn check(ret: i64, what: &str) {
    if ret < 0 {
        eprintln!("soak-workload: {what}: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
}

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
    if addr == libc::MAP_FAILED {
        check(-1, "mmap");
    }
    addr.cast()
}

fn unmap(base: *mut u8, pages: usize) {
    // SAFETY: a whole mapping of ours.
    check(
        i64::from(unsafe { libc::munmap(base.cast(), pages * PAGE) }),
        "munmap",
    );
}

fn write_pages(base: *mut u8, pages: usize, value: u8) {
    for page in 0..pages {
        // SAFETY: inside our mapping; volatile so every write happens.
        unsafe { ptr::write_volatile(base.add(page * PAGE), value) };
    }
}

/// Forks a child that runs `work` and exits at once (no allocation, no
/// locks: the parent has other threads), and waits for it.
fn fork_and_wait(work: impl FnOnce()) {
    // SAFETY: the child only writes memory and exits.
    let pid = unsafe { libc::fork() };
    check(i64::from(pid), "fork");
    if pid == 0 {
        work();
        // SAFETY: leaving the child without running the parent's exit code.
        unsafe { libc::_exit(0) };
    }
    CHILDREN.fetch_add(1, Ordering::Relaxed);
    let mut status = 0;
    // SAFETY: our own child.
    unsafe { libc::waitpid(pid, &raw mut status, 0) };
}

/// `/bin/true` in a child: the loader writes its own and libc's pages.
fn exec_true() {
    let prog = c"/bin/true";
    let argv = [prog.as_ptr(), ptr::null()];
    // SAFETY: fork then execv with a NUL-terminated argv; the child only
    // calls async-signal-safe functions.
    let pid = unsafe { libc::fork() };
    check(i64::from(pid), "fork");
    if pid == 0 {
        // SAFETY: as above.
        unsafe {
            libc::execv(prog.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
    }
    EXECS.fetch_add(1, Ordering::Relaxed);
    let mut status = 0;
    // SAFETY: our own child.
    unsafe { libc::waitpid(pid, &raw mut status, 0) };
}

/// One thread's loop until `until`.
fn churn(index: usize, pages: usize, file: Option<&std::fs::File>, until: Instant) {
    let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let mut round = 0u64;
    while Instant::now() < until {
        let base = map(pages, anon, -1);
        write_pages(base, pages, 1);
        let addr = base as usize;
        fork_and_wait(move || write_pages(addr as *mut u8, pages, 2));
        write_pages(base, pages, 3);
        unmap(base, pages);
        if index == 0 && round.is_multiple_of(64) {
            exec_true();
        }
        if let (1, Some(file)) = (index, file) {
            if round.is_multiple_of(16) {
                let base = map(64, libc::MAP_PRIVATE, file.as_raw_fd());
                write_pages(base, 64, 4);
                unmap(base, 64);
            }
        }
        round += 1;
        ROUNDS.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() {
    let args = parse();
    if args.wait {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    }
    let file = args.file.as_ref().map(|path| {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap_or_else(|e| usage(&format!("cannot open {}: {e}", path.display())));
        if let Err(e) = file.set_len(64 * PAGE as u64) {
            usage(&format!("cannot size {}: {e}", path.display()));
        }
        file
    });
    let until = Instant::now() + Duration::from_secs(args.seconds);
    // The long-lived child: forks writers of its own pages until the end.
    let pages = args.pages;
    // SAFETY: no other thread exists yet.
    let long_lived = unsafe { libc::fork() };
    check(i64::from(long_lived), "fork");
    if long_lived == 0 {
        churn(usize::MAX, pages, None, until);
        // SAFETY: leaving the child.
        unsafe { libc::_exit(0) };
    }
    std::thread::scope(|scope| {
        for index in 0..args.threads {
            let file = file.as_ref();
            scope.spawn(move || churn(index, pages, file, until));
        }
    });
    let mut status = 0;
    // SAFETY: our own child.
    unsafe { libc::waitpid(long_lived, &raw mut status, 0) };
    println!(
        "rounds={} children={} execs={}",
        ROUNDS.load(Ordering::Relaxed),
        CHILDREN.load(Ordering::Relaxed),
        EXECS.load(Ordering::Relaxed)
    );
}
