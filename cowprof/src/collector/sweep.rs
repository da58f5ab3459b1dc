//! Finding the processes that exited, so the state retires them
//! ([`State::exited`]) and the resolver forgets them.
//!
//! A process found gone at one pass is retired at the next, and only once
//! the ring buffer was drained empty in between: every record it sent
//! (its last faults are completed at its exit, before it can be reaped)
//! has been applied by then. A pid found alive again at the second pass
//! was reused by a new process, which keeps the entry; it is found gone
//! later.
//!
//! Pids in events are the kernel's global ones, so the sweep runs only in
//! the initial pid namespace, where `kill(pid, 0)` names the same
//! processes. Elsewhere the state keeps every process, as before.
use std::time::{Duration, Instant};

use cowprof_model::state::State;

use crate::resolve::Resolver;

/// How often the sweep looks for exited processes.
const INTERVAL: Duration = Duration::from_secs(2);

/// The inode of the initial pid namespace (`PROC_PID_INIT_INO` in
/// `include/linux/proc_ns.h`).
const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;

pub(super) struct Sweep {
    enabled: bool,
    due: Instant,
    /// Found gone at the last pass.
    gone: Vec<u32>,
    /// The ring buffer was drained empty since the last pass.
    caught_up: bool,
}

impl Sweep {
    /// A sweep, enabled when the state is kept and pids are global.
    pub(super) fn new(stateless: bool) -> Self {
        Self {
            enabled: !stateless && initial_pid_namespace(),
            due: Instant::now() + INTERVAL,
            gone: Vec::new(),
            caught_up: false,
        }
    }

    /// Notes a drain that took `n` records of at most `limit`.
    pub(super) fn drained(&mut self, n: usize, limit: usize) {
        if n < limit {
            self.caught_up = true;
        }
    }

    /// Retires the processes found gone at the last pass, and looks for
    /// more, when due. Returns the pids retired, in order.
    pub(super) fn run(&mut self, state: &mut State, resolver: &mut Resolver) -> Vec<u32> {
        let mut retired = Vec::new();
        if !self.enabled || Instant::now() < self.due {
            return retired;
        }
        self.due = Instant::now() + INTERVAL;
        if !self.gone.is_empty() {
            if !self.caught_up {
                return retired;
            }
            for pid in self.gone.drain(..) {
                if !alive(pid) {
                    state.exited(pid);
                    resolver.forget_process(pid);
                    retired.push(pid);
                }
            }
        }
        self.gone = state.live_pids().filter(|pid| !alive(*pid)).collect();
        self.caught_up = false;
        retired
    }
}

/// Whether a process `pid` exists (a zombie does: it is not reaped yet).
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 sends nothing; it only checks that `pid` exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

fn initial_pid_namespace() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self/ns/pid").is_ok_and(|m| m.ino() == PROC_PID_INIT_INO)
}
