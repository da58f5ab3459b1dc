//! The views of a recorded profile: its events fed to the model
//! ([`super::feed`]) and named by the profile's dictionary, exactly as the
//! live summary computes and names them.
use std::collections::BTreeMap;

use cowprof_model::state::{Keep, KindCounts, Snapshot, SnapshotOptions, State, View};

use super::{
    dictionary::Dictionary,
    feed::{Cursor, Feed},
    read::Profile,
    scan::Filters,
    ProfileError,
};
use crate::{
    probe::ProbeStats,
    report::{naming, ImageWaste, ProcessSummary, Row},
};

/// A profile's views.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Offline {
    pub processes: Vec<ProcessSummary>,
    /// Exited processes summed into the `(exited)` entry, pid 0, as the
    /// recording summed them.
    #[serde(skip_serializing_if = "is_zero")]
    pub folded_processes: u64,
    pub views: BTreeMap<View, Vec<Row>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waste: Vec<ImageWaste>,
    pub totals: KindCounts,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The state of every event of `profile` that passes `filters`, keeping
/// the views `by`; its names go into `dict`.
///
/// # Errors
/// When a file cannot be scanned.
pub fn state(
    profile: &Profile,
    by: &[View],
    filters: &Filters,
    dict: &mut Dictionary,
) -> Result<State, ProfileError> {
    let keep = Keep::only(by);
    let feed = Feed::open(profile, filters, keep, dict)?;
    let mut state = State::new(keep);
    feed.feed(&mut state, dict, &mut Cursor::default(), feed.events())?;
    Ok(state)
}

/// The snapshot of every row of `state`, with its touch map when kept.
#[must_use]
pub fn snapshot(state: &State) -> Snapshot {
    state.snapshot(SnapshotOptions {
        top: None,
        touch_map: state.keeps().touch_map,
    })
}

/// The views `by` of `profile`, of the events that pass `filters`.
///
/// # Errors
/// When a file cannot be scanned.
pub fn views(profile: &Profile, by: &[View], filters: &Filters) -> Result<Offline, ProfileError> {
    let mut dict = Dictionary::default();
    let state = state(profile, by, filters, &mut dict)?;
    Ok(named(snapshot(&state), &dict, by))
}

/// The views `by` of `snapshot`, named by `dict`.
#[must_use]
pub fn named(snapshot: Snapshot, dict: &Dictionary, by: &[View]) -> Offline {
    let report = naming::report(snapshot, dict, by, ProbeStats::default());
    Offline {
        processes: report.processes,
        folded_processes: report.folded_processes,
        views: report.views,
        waste: report.waste,
        totals: report.totals,
    }
}

/// Keeps the top `n` rows of each view, and processes.
pub fn keep_top(offline: &mut Offline, n: usize) {
    offline.processes.truncate(n);
    for rows in offline.views.values_mut() {
        rows.truncate(n);
    }
}
