//! Which processes behind the label values are still alive.
//!
//! A process is tracked from its first tally, by its start time in
//! `/proc/PID/stat` (so a reused pid is a new process), until that file is
//! gone, names another start time or command, or shows a zombie. Each
//! tracked process holds the label values it faulted under; when it ends,
//! they lose it ([`Dimension::detach`]) and may expire after the grace
//! period. A process that had ended before its first tally arrived is never
//! tracked: its values are idle from that tally on.
use std::{sync::Arc, time::Instant};

use hashbrown::HashMap;

use super::labels::Dimension;

/// The label dimensions, as indices into the exporter's dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    Comm = 0,
    Image = 1,
    Section = 2,
    Symbol = 3,
}

impl Dim {
    pub const ALL: [Dim; 4] = [Dim::Comm, Dim::Image, Dim::Section, Dim::Symbol];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Dim::Comm => "comm",
            Dim::Image => "image",
            Dim::Section => "section",
            Dim::Symbol => "symbol",
        }
    }
}

/// What identifies a live process: its start time and command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub start: u64,
    pub comm: String,
}

/// Reads a process's identity; `None` once it has ended (or is a zombie).
pub type Probe = fn(u32) -> Option<Identity>;

/// The identity of `pid` from procfs.
#[must_use]
pub fn procfs_identity(pid: u32) -> Option<Identity> {
    let stat = crate::kernel::procstat::read(Some(pid))?;
    (stat.state != 'Z' && stat.state != 'X').then_some(Identity {
        start: stat.starttime,
        comm: stat.comm,
    })
}

#[derive(Debug)]
struct Tracked {
    identity: Identity,
    values: Vec<(Dim, Arc<str>)>,
}

/// The live processes and the label values each holds.
#[derive(Debug)]
pub struct Processes {
    probe: Probe,
    live: HashMap<u32, Tracked>,
}

impl Processes {
    #[must_use]
    pub fn new(probe: Probe) -> Self {
        Self {
            probe,
            live: HashMap::new(),
        }
    }

    /// Notes that `pid`, running `comm`, faulted under `values` (already
    /// added to `dims`).
    pub fn saw(
        &mut self,
        pid: u32,
        comm: &str,
        values: &[(Dim, &Arc<str>)],
        dims: &mut [Dimension; 4],
        now: Instant,
    ) {
        let stale = self
            .live
            .get(&pid)
            .is_some_and(|t| !comm_matches(&t.identity.comm, comm));
        if stale {
            // It ran another program since: the old one has ended.
            self.end(pid, dims, now);
        }
        if !self.live.contains_key(&pid) {
            let Some(identity) = (self.probe)(pid) else {
                return;
            };
            if !comm_matches(&identity.comm, comm) {
                return;
            }
            self.live.insert(
                pid,
                Tracked {
                    identity,
                    values: Vec::new(),
                },
            );
        }
        let Some(tracked) = self.live.get_mut(&pid) else {
            return;
        };
        for (dim, value) in values {
            if !tracked.values.iter().any(|(d, v)| d == dim && v == *value) {
                dims[*dim as usize].attach(value);
                tracked.values.push((*dim, Arc::clone(value)));
            }
        }
    }

    /// Checks every tracked process; those that ended release their values.
    pub fn refresh(&mut self, dims: &mut [Dimension; 4], now: Instant) {
        let probe = self.probe;
        let ended: Vec<u32> = self
            .live
            .iter()
            .filter(|(pid, t)| probe(**pid).as_ref() != Some(&t.identity))
            .map(|(pid, _)| *pid)
            .collect();
        for pid in ended {
            self.end(pid, dims, now);
        }
    }

    fn end(&mut self, pid: u32, dims: &mut [Dimension; 4], now: Instant) {
        if let Some(tracked) = self.live.remove(&pid) {
            for (dim, value) in tracked.values {
                dims[dim as usize].detach(&value, now);
            }
        }
    }

    /// Processes tracked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.live.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

/// Whether a comm from procfs and one from the kernel's events agree (both
/// are the kernel's 15-byte `task->comm`).
fn comm_matches(proc_comm: &str, event_comm: &str) -> bool {
    proc_comm == event_comm
}

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, time::Duration};

    use super::*;

    thread_local! {
        static ALIVE: RefCell<HashMap<u32, Identity>> = RefCell::new(HashMap::new());
    }

    fn probe(pid: u32) -> Option<Identity> {
        ALIVE.with(|a| a.borrow().get(&pid).cloned())
    }

    fn set(pid: u32, identity: Option<(u64, &str)>) {
        ALIVE.with(|a| match identity {
            Some((start, comm)) => {
                a.borrow_mut().insert(
                    pid,
                    Identity {
                        start,
                        comm: comm.into(),
                    },
                );
            }
            None => {
                a.borrow_mut().remove(&pid);
            }
        });
    }

    fn dims() -> [Dimension; 4] {
        [(); 4].map(|()| Dimension::new(4))
    }

    #[test]
    fn a_value_lives_while_a_process_that_used_it_does() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(10);
        let mut dims = dims();
        let mut p = Processes::new(probe);
        let comm: Arc<str> = "redis".into();
        set(7, Some((100, "redis")));
        dims[0].add(&comm, 1, t0);
        p.saw(7, "redis", &[(Dim::Comm, &comm)], &mut dims, t0);
        p.saw(7, "redis", &[(Dim::Comm, &comm)], &mut dims, t0);
        assert_eq!(p.len(), 1);
        let later = t0 + grace * 2;
        p.refresh(&mut dims, later);
        assert!(dims[0].expire(later, grace).expired.is_empty(), "alive");
        set(7, Some((200, "redis")));
        p.refresh(&mut dims, later);
        assert!(p.is_empty(), "pid 7 was reused: a new process");
        assert!(
            dims[0].expire(later + grace, grace).expired.is_empty(),
            "grace"
        );
        let changes = dims[0].expire(later + grace * 2, grace);
        assert_eq!(changes.expired, vec![comm]);
    }

    #[test]
    fn a_process_gone_before_its_first_tally_is_not_tracked() {
        let mut dims = dims();
        let mut p = Processes::new(probe);
        let comm: Arc<str> = "short".into();
        dims[0].add(&comm, 1, Instant::now());
        p.saw(9, "short", &[(Dim::Comm, &comm)], &mut dims, Instant::now());
        assert!(p.is_empty());
        set(10, Some((1, "bash")));
        p.saw(
            10,
            "short",
            &[(Dim::Comm, &comm)],
            &mut dims,
            Instant::now(),
        );
        assert!(p.is_empty(), "pid 10 runs another command now");
    }
}
