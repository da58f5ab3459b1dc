//! Bounded label values: one dimension (comms, images, sections or
//! symbols) whose top K values by pages copied get series of their own,
//! the rest sharing `other`.
//!
//! - A new value gets a slot at once while fewer than K are taken, so its
//!   first faults already land in its own series.
//! - With every slot taken, a value outside replaces the smallest one inside
//!   when it has copied [`REPLACE_RATIO`] as many pages and
//!   [`REPLACE_MARGIN`] more: two values of equal weight do not trade places
//!   at every update.
//! - A value is live while a live process has faulted under it. Once none
//!   is, and [`Dimension::expire`] finds it idle for longer than the grace
//!   period, it is forgotten and its slot freed.
//!
//! A series starts at zero when its value gets a slot: what the value did
//! before stays counted in `other`, so the sum over every series is exact.
use std::{sync::Arc, time::Instant};

use hashbrown::HashMap;

/// The label value shared by everything outside the top K.
pub const OTHER: &str = "other";

/// How many times the smallest value's copies a value must have copied to
/// replace it (in quarters: 5/4).
pub const REPLACE_RATIO: (u64, u64) = (5, 4);
/// Pages a value must have copied beyond the smallest value's to replace it.
pub const REPLACE_MARGIN: u64 = 64;

#[derive(Debug)]
struct Entry {
    copies: u64,
    /// Live processes that faulted under this value.
    live: u32,
    /// When the value was last used or lost its last live process.
    idle_since: Instant,
    slot: bool,
}

/// What changed in a dimension: values whose series must go.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Values forgotten after the grace period (their series end).
    pub expired: Vec<Arc<str>>,
    /// Values that lost their slot to a bigger one (their series end; what
    /// they do next counts in `other`).
    pub displaced: Vec<Arc<str>>,
}

/// One label dimension.
#[derive(Debug)]
pub struct Dimension {
    cap: usize,
    entries: HashMap<Arc<str>, Entry>,
    slots: usize,
}

impl Dimension {
    /// A dimension with `cap` slots (0 puts every value in `other`).
    #[must_use]
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            entries: HashMap::new(),
            slots: 0,
        }
    }

    /// Counts `copies` more pages copied under `value`, and returns the
    /// label its faults go to: the value itself when it has a slot.
    pub fn add(&mut self, value: &Arc<str>, copies: u64, now: Instant) -> Arc<str> {
        let free = self.slots < self.cap;
        let entry = self.entries.entry_ref(value).or_insert_with(|| Entry {
            copies: 0,
            live: 0,
            idle_since: now,
            slot: false,
        });
        entry.copies += copies;
        entry.idle_since = now;
        if !entry.slot && free {
            entry.slot = true;
            self.slots += 1;
        }
        if entry.slot {
            Arc::clone(value)
        } else {
            OTHER.into()
        }
    }

    /// The label of `value` now.
    #[cfg(test)]
    #[must_use]
    pub fn label<'a>(&self, value: &'a str) -> Option<&'a str> {
        self.entries
            .get(value)
            .map(|e| if e.slot { value } else { OTHER })
    }

    /// A live process now counts under `value`.
    pub fn attach(&mut self, value: &str) {
        if let Some(entry) = self.entries.get_mut(value) {
            entry.live += 1;
        }
    }

    /// A process that counted under `value` has ended.
    pub fn detach(&mut self, value: &str, now: Instant) {
        if let Some(entry) = self.entries.get_mut(value) {
            entry.live = entry.live.saturating_sub(1);
            if entry.live == 0 {
                entry.idle_since = now;
            }
        }
    }

    /// Forgets values with no live process idle for longer than `grace`,
    /// then gives free and contested slots to the values that copied most.
    pub fn expire(&mut self, now: Instant, grace: std::time::Duration) -> Changes {
        let mut changes = Changes::default();
        let slots = &mut self.slots;
        self.entries.retain(|value, entry| {
            let keep = entry.live > 0 || now.saturating_duration_since(entry.idle_since) <= grace;
            if !keep && entry.slot {
                *slots -= 1;
                changes.expired.push(Arc::clone(value));
            }
            keep
        });
        self.rebalance(&mut changes);
        changes.expired.sort();
        changes
    }

    fn rebalance(&mut self, changes: &mut Changes) {
        let mut outside: Vec<(u64, Arc<str>)> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.slot)
            .map(|(v, e)| (e.copies, Arc::clone(v)))
            .collect();
        outside.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        for (copies, value) in outside {
            if self.slots < self.cap {
                self.take_slot(&value);
                continue;
            }
            let Some((smallest, weakest)) = self
                .entries
                .iter()
                .filter(|(_, e)| e.slot)
                .map(|(v, e)| (e.copies, Arc::clone(v)))
                .min_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(&a.1)))
            else {
                return;
            };
            let (num, den) = REPLACE_RATIO;
            if copies * den < smallest * num || copies < smallest + REPLACE_MARGIN {
                return;
            }
            if let Some(entry) = self.entries.get_mut(&weakest) {
                entry.slot = false;
            }
            self.slots -= 1;
            changes.displaced.push(weakest);
            self.take_slot(&value);
        }
    }

    fn take_slot(&mut self, value: &str) {
        if let Some(entry) = self.entries.get_mut(value) {
            entry.slot = true;
            self.slots += 1;
        }
    }

    /// Values with a slot.
    #[must_use]
    pub fn slotted(&self) -> usize {
        self.slots
    }

    /// Values known (with a slot or in `other`).
    #[cfg(test)]
    #[must_use]
    pub fn known(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn v(s: &str) -> Arc<str> {
        s.into()
    }

    #[test]
    fn the_first_k_values_get_slots_and_the_rest_share_other() {
        let now = Instant::now();
        let mut d = Dimension::new(2);
        assert_eq!(&*d.add(&v("a"), 1, now), "a");
        assert_eq!(&*d.add(&v("b"), 1, now), "b");
        assert_eq!(&*d.add(&v("c"), 1, now), OTHER);
        assert_eq!(d.label("c"), Some(OTHER));
        assert_eq!(d.slotted(), 2);
        assert_eq!(d.known(), 3);
        assert_eq!(d.expire(now, Duration::from_secs(1)), Changes::default());
    }

    #[test]
    fn a_much_bigger_value_replaces_the_smallest_but_an_equal_one_does_not() {
        let now = Instant::now();
        let mut d = Dimension::new(2);
        d.add(&v("a"), 100, now);
        d.add(&v("b"), 1000, now);
        d.add(&v("c"), 120, now);
        let changes = d.expire(now, Duration::from_mins(1));
        assert!(
            changes.displaced.is_empty(),
            "120 is not 25% and 64 pages more than 100"
        );
        d.add(&v("c"), 100, now);
        let changes = d.expire(now, Duration::from_mins(1));
        assert_eq!(changes.displaced, vec![v("a")]);
        assert_eq!(d.label("c"), Some("c"));
        assert_eq!(d.label("a"), Some(OTHER));
        assert_eq!(d.slotted(), 2);
    }

    #[test]
    fn values_without_live_processes_expire_after_the_grace_period() {
        let start = Instant::now();
        let grace = Duration::from_secs(10);
        let mut d = Dimension::new(1);
        d.add(&v("alive"), 1, start);
        d.attach("alive");
        d.add(&v("gone"), 1, start);
        let later = start + Duration::from_secs(5);
        assert_eq!(d.expire(later, grace), Changes::default(), "within grace");
        let much_later = start + Duration::from_secs(11);
        let changes = d.expire(much_later, grace);
        assert!(
            changes.expired.is_empty(),
            "`gone` had no slot: nothing to end"
        );
        assert_eq!(d.known(), 1, "`gone` is forgotten");
        d.detach("alive", much_later);
        assert!(d.expire(much_later + grace, grace).expired.is_empty());
        let changes = d.expire(much_later + grace + Duration::from_secs(1), grace);
        assert_eq!(changes.expired, vec![v("alive")]);
        assert_eq!(d.slotted(), 0);
        assert_eq!(
            &*d.add(&v("new"), 1, much_later + grace * 3),
            "new",
            "the slot is free"
        );
    }

    #[test]
    fn no_slots_puts_everything_in_other() {
        let mut d = Dimension::new(0);
        assert_eq!(&*d.add(&v("a"), 1_000_000, Instant::now()), OTHER);
        assert!(d
            .expire(Instant::now(), Duration::ZERO)
            .displaced
            .is_empty());
    }
}
