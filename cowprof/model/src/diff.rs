//! Two states compared row by row, by key: what grew, what shrank, and by
//! how much. The keys must come from one namer (one live recording, or
//! profiles read into one dictionary), so equal keys mean the same row.
use std::hash::Hash;

use hashbrown::HashMap;

use crate::{
    keys::COMM_LEN,
    state::{Process, Snapshot, View},
    views::RowKey,
};

/// A process as a diff tells processes apart: by pid and name.
pub type ProcessKey = (u32, [u8; COMM_LEN]);

/// One row whose COW faults changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change<K> {
    pub key: K,
    /// COW faults before and after.
    pub before: u64,
    pub after: u64,
}

impl<K> Change<K> {
    /// `after - before`.
    #[must_use]
    pub fn delta(&self) -> i64 {
        i64::try_from(self.after).unwrap_or(i64::MAX)
            - i64::try_from(self.before).unwrap_or(i64::MAX)
    }
}

/// The keys whose weights differ between `before` and `after` (a key
/// missing from one weighs 0 there), in no order.
pub fn changes<K: Hash + Eq + Copy>(
    before: impl IntoIterator<Item = (K, u64)>,
    after: impl IntoIterator<Item = (K, u64)>,
) -> Vec<Change<K>> {
    let mut both: HashMap<K, (u64, u64)> = HashMap::new();
    for (key, n) in before {
        both.entry(key).or_default().0 += n;
    }
    for (key, n) in after {
        both.entry(key).or_default().1 += n;
    }
    both.into_iter()
        .filter(|(_, (b, a))| a != b)
        .map(|(key, (before, after))| Change { key, before, after })
        .collect()
}

fn process_weights(processes: &[Process]) -> impl Iterator<Item = (ProcessKey, u64)> + '_ {
    processes
        .iter()
        .map(|p| ((p.pid, p.comm), p.counts.cow_total()))
}

/// The processes whose COW faults changed.
#[must_use]
pub fn processes(before: &Snapshot, after: &Snapshot) -> Vec<Change<ProcessKey>> {
    changes(
        process_weights(&before.processes),
        process_weights(&after.processes),
    )
}

/// The rows of `view` whose COW faults changed.
#[must_use]
pub fn rows(before: &Snapshot, after: &Snapshot, view: View) -> Vec<Change<RowKey>> {
    let weights = |s: &Snapshot| -> Vec<(RowKey, u64)> {
        s.rows(view)
            .iter()
            .map(|r| (r.key, r.counts.cow_total()))
            .collect()
    };
    changes(weights(before), weights(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_keys_count_and_missing_ones_weigh_nothing() {
        let mut c = changes([(1, 5), (2, 3), (3, 7)], [(1, 5), (2, 4), (4, 1)]);
        c.sort_by_key(|c| c.key);
        let got: Vec<(i32, u64, u64, i64)> = c
            .iter()
            .map(|c| (c.key, c.before, c.after, c.delta()))
            .collect();
        assert_eq!(got, [(2, 3, 4, 1), (3, 7, 0, -7), (4, 0, 1, 1)]);
    }
}
