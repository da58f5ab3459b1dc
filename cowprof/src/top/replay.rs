//! The replay source of `top`: a recorded profile played through the same
//! screen, at real speed or faster, with pause and seek. A thread moves a
//! clock over the profile and publishes the report of the events before it
//! (newest wins); at the end it publishes the report of every event, which
//! is what `cowprof report` shows.
use std::{
    path::Path,
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::{app::Request, TopError};
use crate::{
    newest::{self, Latest, Newest, Offered},
    profile::timeline::Timeline,
    report::Report,
};

/// How often the clock moves and a report is published.
const STEP: Duration = Duration::from_millis(500);

/// One published moment of a replay.
#[derive(Debug)]
pub struct Moment {
    pub report: Arc<Report>,
    /// Its time since the start of the recording.
    pub at: Duration,
    /// The end: every event of the profile.
    pub last: bool,
}

/// A profile being replayed.
pub struct Replay {
    moments: Latest<Moment>,
    control: Sender<Request>,
    thread: Option<JoinHandle<()>>,
    pub length_s: f64,
    pub strategy: String,
    pub target: String,
}

struct Clock {
    timeline: Timeline,
    length_s: f64,
    at_s: f64,
    speed: f64,
    paused: bool,
    out: Newest<Moment>,
    /// The clock reached the end and the full report went out.
    done: bool,
}

impl Clock {
    fn publish(&mut self) -> bool {
        let until = (self.at_s < self.length_s).then_some(self.at_s);
        let report = match self.timeline.report_at(until) {
            Ok(report) => report,
            Err(err) => {
                log::error!("replay at {:.1} s: {err}", self.at_s);
                return false;
            }
        };
        self.done = until.is_none();
        let moment = Moment {
            report: Arc::new(report),
            at: Duration::from_secs_f64(self.at_s.max(0.0)),
            last: self.done,
        };
        self.out.offer(moment) != Offered::Closed
    }

    fn run(mut self, control: &Receiver<Request>) {
        if !self.publish() {
            return;
        }
        let mut last = Instant::now();
        loop {
            let wait = if self.paused || self.done {
                Duration::from_hours(1)
            } else {
                STEP
            };
            let mut moved = false;
            match control.recv_timeout(wait) {
                Ok(Request::Pause(paused)) => self.paused = paused,
                Ok(Request::Seek(by)) => {
                    self.at_s = (self.at_s + by).clamp(0.0, self.length_s);
                    moved = true;
                }
                Ok(Request::Speed(speed)) => self.speed = speed,
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if !self.paused && !self.done {
                self.at_s = (self.at_s + now.duration_since(last).as_secs_f64() * self.speed)
                    .min(self.length_s);
                moved = true;
            }
            last = now;
            if moved && !self.publish() {
                return;
            }
        }
    }
}

impl Replay {
    /// Starts playing `profile` (opened from `dir`) at `speed`.
    ///
    /// # Errors
    /// When the clock's thread cannot start.
    pub fn start(timeline: Timeline, dir: &Path, speed: f64) -> Result<Self, TopError> {
        let profile = timeline.profile();
        let length_s = profile.manifest.duration_s.max(0.0);
        let strategy = profile.manifest.strategy.clone();
        let _ = profile;
        let target = format!("replay of {}", dir.display());
        let (out, moments) = newest::channel();
        let (control, requests) = crossbeam_channel::unbounded();
        let clock = Clock {
            timeline,
            length_s,
            at_s: 0.0,
            speed,
            paused: false,
            out,
            done: false,
        };
        let thread = std::thread::Builder::new()
            .name("cowprof-replay".into())
            .spawn(move || clock.run(&requests))
            .map_err(TopError::Thread)?;
        Ok(Self {
            moments,
            control,
            thread: Some(thread),
            length_s,
            strategy,
            target,
        })
    }

    pub fn moments(&self) -> &Receiver<Moment> {
        self.moments.receiver()
    }

    /// Passes a pause, seek or speed request to the clock.
    pub fn request(&self, request: Request) {
        let _ = self.control.send(request);
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        // Dropping the control sender ends the clock's loop.
        let (dead, _) = crossbeam_channel::unbounded();
        self.control = dead;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
