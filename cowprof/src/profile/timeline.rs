//! A recorded profile as it stood at any moment: the same [`Report`] the
//! live collector publishes, from the model fed the events recorded up to
//! that moment. `top --replay` shows these.
//!
//! The model is fed forward: moving on applies only the events since the
//! last moment. Every [`CHECKPOINT_EVENTS`] events fed, a copy of the
//! state is kept, so seeking back rebuilds from the nearest one before.
use cowprof_common::Kind;
use cowprof_model::state::{Keep, SnapshotOptions, State, View};
use polars::prelude::{col, len, lit};

use super::{
    dictionary::Dictionary,
    feed::{Cursor, Feed},
    read::Profile,
    scan::{collect, polars_error, Columns, Filters},
    ProfileError,
};
use crate::{
    probe::ProbeStats,
    report::{naming, Report},
};

/// The views a replayed report names.
pub const VIEWS: [View; 3] = [View::Mapping, View::Image, View::Writer];

/// Events fed between two kept copies of the state.
pub const CHECKPOINT_EVENTS: u64 = 1 << 20;

/// Copies of the state kept at most: past it, every other one goes, and
/// they are kept twice as far apart.
const CHECKPOINTS: usize = 16;

/// A profile being replayed.
pub struct Timeline {
    profile: Profile,
    feed: Feed,
    dict: Dictionary,
    state: State,
    cursor: Cursor,
    /// Copies of the state, by position, the empty one first.
    checkpoints: Vec<(Cursor, State)>,
    every: u64,
    /// Each part's (events before it, events, earliest and latest `ts_ns`).
    times: Vec<(u64, u64, u64, u64)>,
}

impl Timeline {
    /// Opens `profile` for replaying.
    ///
    /// # Errors
    /// When its files cannot be read.
    pub fn open(profile: Profile) -> Result<Self, ProfileError> {
        let keep = Keep::only(&VIEWS).with_process_mappings();
        let mut dict = Dictionary::default();
        let feed = Feed::open(&profile, &Filters::default(), keep, &mut dict)?;
        let mut times = Vec::new();
        let mut offset = 0;
        for (part, rows) in profile.parts.iter().zip(&profile.part_rows) {
            let df = collect(part, None, &[], |lf| {
                lf.select([
                    col("ts_ns").min().alias("min"),
                    col("ts_ns").max().alias("max"),
                ])
            })
            .map_err(|e| polars_error(&profile, &e))?;
            let c = Columns { df: &df };
            let at = |name| c.number(name).and_then(|n| n.get(0)).unwrap_or(0);
            times.push((offset, *rows, at("min"), at("max")));
            offset += rows;
        }
        let state = State::new(keep);
        Ok(Self {
            checkpoints: vec![(Cursor::default(), state.clone())],
            profile,
            feed,
            dict,
            state,
            cursor: Cursor::default(),
            every: CHECKPOINT_EVENTS,
            times,
        })
    }

    /// The profile replayed.
    #[must_use]
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// How many events were recorded before `until` seconds into the
    /// recording (all of them when `None`).
    ///
    /// # Errors
    /// When a part cannot be scanned.
    pub fn position_at(&self, until: Option<f64>) -> Result<u64, ProfileError> {
        let Some(secs) = until else {
            return Ok(self.feed.events());
        };
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "seconds to ns, clamped at 0"
        )]
        let at = self
            .profile
            .manifest
            .start_ktime_ns
            .saturating_add((secs.max(0.0) * 1e9) as u64);
        let mut position = 0;
        for (part, &(_, rows, first, last)) in self.profile.parts.iter().zip(&self.times) {
            if last < at {
                position += rows;
            } else if first < at {
                let df = collect(part, None, &[col("ts_ns").lt(lit(at))], |lf| {
                    lf.select([len().alias("n")])
                })
                .map_err(|e| polars_error(&self.profile, &e))?;
                let c = Columns { df: &df };
                position += c.number("n").and_then(|n| n.get(0)).unwrap_or(0);
            }
        }
        Ok(position)
    }

    /// Moves the state to position `to`: forward from where it is, or
    /// from the nearest copy before.
    ///
    /// # Errors
    /// When a part cannot be scanned.
    pub fn seek(&mut self, to: u64) -> Result<(), ProfileError> {
        let nearest = self.checkpoints.iter().rev().find(|(c, _)| c.at <= to);
        if let Some((cursor, state)) =
            nearest.filter(|(c, _)| to < self.cursor.at || c.at > self.cursor.at)
        {
            self.cursor = *cursor;
            self.state = state.clone();
        }
        while self.cursor.at < to {
            let last = self.checkpoints.last().map_or(0, |(c, _)| c.at);
            let next = to.min(last + self.every);
            self.feed
                .feed(&mut self.state, &mut self.dict, &mut self.cursor, next)?;
            if self.cursor.at >= last + self.every {
                self.checkpoint();
            }
        }
        // The exits at the last position, too.
        self.feed
            .feed(&mut self.state, &mut self.dict, &mut self.cursor, to)
    }

    fn checkpoint(&mut self) {
        self.checkpoints.push((self.cursor, self.state.clone()));
        if self.checkpoints.len() > CHECKPOINTS {
            let mut i = 0;
            self.checkpoints.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.every *= 2;
        }
    }

    /// The events fed so far.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.cursor.at
    }

    /// The report of the events before `until` seconds (all of them when
    /// `None`).
    ///
    /// # Errors
    /// When a file cannot be scanned.
    pub fn report_at(&mut self, until: Option<f64>) -> Result<Report, ProfileError> {
        let to = self.position_at(until)?;
        self.seek(to)?;
        let mut kernel = ProbeStats {
            lost_events: self.profile.manifest.lost_events,
            ..ProbeStats::default()
        };
        if until.is_none() {
            for (i, kind) in Kind::ALL.iter().enumerate() {
                kernel.kernel_counts[i] = self
                    .profile
                    .manifest
                    .kernel_totals
                    .get(kind.name())
                    .copied()
                    .unwrap_or_default();
            }
        }
        let snapshot = self.state.snapshot(SnapshotOptions {
            top: None,
            touch_map: true,
        });
        Ok(naming::report(snapshot, &self.dict, &VIEWS, kernel))
    }
}

/// The report of `profile` with the events before `until` seconds (all of
/// them when `None`), fed from the start.
///
/// # Errors
/// When a file cannot be scanned.
pub fn report_at(profile: Profile, until: Option<f64>) -> Result<Report, ProfileError> {
    Timeline::open(profile)?.report_at(until)
}
