//! Keeping the state's size proportional to the processes that matter, not
//! to every process a long recording ever saw.
//!
//! A process the collector finds exited ([`State::exited`]) keeps its own
//! rows while it is among the [`KEEP_EXITED`] heaviest exited processes.
//! Past that, the lightest is *folded*: its process entry is summed into
//! the `(exited)` entry (pid 0, a pid no user process has), its anonymous
//! mapping rows into one row per kind of mapping
//! (`[anon] (exited processes)`), and it leaves the lists of writers that
//! rows keep, still counted in their number of processes. Totals, every
//! row's counts and every row's number of distinct processes stay exact;
//! only the folded processes' own rows lose their identity (the events, in
//! a profile, keep it).
//!
//! Rows keep writers in sorted lists, so taking a folded process out of
//! every list is a pass over all rows. It is done in batches: every
//! [`COMPACT_FOLDED`] folded processes, when the lists have doubled since
//! the last pass, or at once when a folded pid writes again (the pid was
//! reused, by a new process to count anew).
use std::{cmp::Reverse, collections::BinaryHeap};

use cowprof_common::event::COMM_LEN;
use hashbrown::{HashMap, HashSet};

use super::{Process, State};
use crate::{
    keys::MappingKey,
    views::{RowKey, View},
};

/// Exited processes that keep rows of their own.
pub const KEEP_EXITED: usize = 1024;

/// The pid and comm of the entry folded processes are summed into.
pub const FOLDED_PID: u32 = 0;
pub const FOLDED_COMM: [u8; COMM_LEN] = *b"(exited)\0\0\0\0\0\0\0\0";

/// Folded processes that make a compaction due: a pass over every row
/// costs about what the lists hold, so the lists never hold more than a
/// few hundred folded processes' writes.
const COMPACT_FOLDED: usize = 256;
/// (Row, writer) pairs that make a compaction due, when they have also
/// doubled since the last.
const COMPACT_MIN_PAIRS: u64 = 1 << 20;

/// The bookkeeping of exited processes.
#[derive(Clone, Default)]
pub struct Retirement {
    /// Exited processes with rows of their own, lightest first (stale
    /// entries, of a pid that wrote again, are skipped when popped).
    kept: BinaryHeap<Reverse<(u64, u32)>>,
    /// How many processes are marked exited and not folded.
    exited: usize,
    /// Per process: its own rows (anonymous mappings, and its rows of the
    /// per-process mapping table), keyed with its pid.
    own: HashMap<u32, Vec<MappingKey>>,
    /// Folded pids still in rows' lists of writers.
    folded: HashSet<u32>,
    /// (Row, writer) pairs in the lists, and after the last compaction.
    pairs: u64,
    compacted_pairs: u64,
    /// Processes folded so far.
    folded_processes: u64,
}

impl Retirement {
    /// Notes that a list of writers took one more process.
    pub(super) fn paired(&mut self) {
        self.pairs += 1;
    }

    /// Notes a new row of `pid`'s own, keyed `key` (an anonymous mapping
    /// row is new in both tables at the same fault: noted once).
    pub(super) fn own_row(&mut self, pid: u32, key: MappingKey) {
        let rows = self.own.entry(pid).or_default();
        if rows.last() != Some(&key) {
            rows.push(key);
        }
    }

    /// Whether `pid` was folded and is still in some list of writers.
    pub(super) fn was_folded(&self, pid: u32) -> bool {
        !self.folded.is_empty() && self.folded.contains(&pid)
    }

    /// Processes folded into the `(exited)` entry so far.
    #[must_use]
    pub fn folded_processes(&self) -> u64 {
        self.folded_processes
    }

    fn due(&self) -> bool {
        self.folded.len() >= COMPACT_FOLDED
            || (!self.folded.is_empty()
                && self.pairs >= COMPACT_MIN_PAIRS.max(self.compacted_pairs.saturating_mul(2)))
    }
}

/// The key of the row a folded process's own mapping row joins.
fn folded_key(key: MappingKey) -> MappingKey {
    MappingKey {
        map: key.map,
        start: 0,
        end: 0,
        pid: FOLDED_PID,
    }
}

impl State {
    /// The processes with an entry of their own that have not been found
    /// exited.
    pub fn live_pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.processes
            .values()
            .filter(|p| !p.exited && p.pid != FOLDED_PID)
            .map(|p| p.pid)
    }

    /// Marks `pid` exited (every record it sent has been applied); folds
    /// the lightest exited processes past [`KEEP_EXITED`].
    pub fn exited(&mut self, pid: u32) {
        let Some(process) = self.processes.get_mut(&pid) else {
            return;
        };
        if process.exited || pid == FOLDED_PID {
            return;
        }
        process.exited = true;
        self.retire.exited += 1;
        self.retire
            .kept
            .push(Reverse((process.counts.cow_total(), pid)));
        while self.retire.exited > KEEP_EXITED {
            let Some(Reverse((_, pid))) = self.retire.kept.pop() else {
                break;
            };
            if self.processes.get(&pid).is_some_and(|p| p.exited) {
                self.fold(pid);
            }
        }
        if self.retire.due() {
            self.compact();
        }
    }

    /// Sums `pid`'s entry and own rows into the folded ones.
    pub(super) fn fold(&mut self, pid: u32) {
        let Some(process) = self.processes.remove(&pid) else {
            return;
        };
        self.retire.exited -= 1;
        self.retire.folded_processes += 1;
        // Not marked exited: the entry is never folded itself (pid 0 is
        // no user process's).
        let folded = self
            .processes
            .entry(FOLDED_PID)
            .or_insert(Process::new(FOLDED_PID, FOLDED_COMM));
        folded.counts.merge(&process.counts);
        folded.latency_ns = folded.latency_ns.saturating_add(process.latency_ns);
        let mapping_view = View::KEYED
            .iter()
            .position(|v| *v == View::Mapping)
            .unwrap_or_default();
        // Several rows of one process can join one folded row: it counts
        // once there.
        let mut joined: Vec<MappingKey> = Vec::new();
        for key in self.retire.own.remove(&pid).unwrap_or_default() {
            let rows = &mut self.views[mapping_view];
            if let Some(tally) = rows.remove(&RowKey::Mapping(key)) {
                self.retire.pairs = self.retire.pairs.saturating_sub(tally.pids.len() as u64);
                let first = !joined.contains(&folded_key(key));
                if first {
                    joined.push(folded_key(key));
                }
                rows.entry(RowKey::Mapping(folded_key(key)))
                    .or_default()
                    .merge(&tally, first);
            }
            if let Some(tally) = self.process_mappings.remove(&(pid, key)) {
                self.process_mappings
                    .entry((FOLDED_PID, folded_key(key)))
                    .or_default()
                    .merge(&tally, false);
            }
        }
        self.retire.folded.insert(pid);
    }

    /// Takes every folded process out of the rows' lists of writers.
    pub(super) fn compact(&mut self) {
        let folded = std::mem::take(&mut self.retire.folded);
        let gone = |pid: u32| folded.contains(&pid);
        let mut pairs = 0u64;
        for rows in &mut self.views {
            for tally in rows.values_mut() {
                tally.forget(&gone);
                pairs += tally.pids.len() as u64;
            }
        }
        for pages in self.touched.values_mut() {
            for page in pages.values_mut() {
                page.forget(&gone);
                pairs += page.pids.len() as u64;
            }
        }
        self.retire.pairs = pairs;
        self.retire.compacted_pairs = pairs;
    }
}
