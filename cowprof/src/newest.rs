//! A bounded channel of one where the newest item wins: a sink that reads
//! snapshots (the TUI, the exporter) always gets the latest one, and the
//! collector never waits for it. Built on crossbeam's MPMC channel: the
//! sender keeps a receiver of its own to take out a stale item it replaces.
use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};

/// The sending side, held by the collector.
#[derive(Debug)]
pub struct Newest<T> {
    tx: Sender<T>,
    stale: Receiver<T>,
    closed: Arc<AtomicBool>,
}

/// The reading side. Dropping it closes the channel.
#[derive(Debug)]
pub struct Latest<T> {
    rx: Receiver<T>,
    closed: Arc<AtomicBool>,
}

impl<T> Latest<T> {
    /// The underlying receiver, to wait on with `crossbeam_channel::select!`.
    #[must_use]
    pub fn receiver(&self) -> &Receiver<T> {
        &self.rx
    }

    /// The unread item, if there is one.
    #[must_use]
    pub fn take(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// Waits up to `timeout` for an item.
    ///
    /// # Errors
    /// When none came in time.
    pub fn recv_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> Result<T, crossbeam_channel::RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }
}

impl<T> Drop for Latest<T> {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// What an offer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    /// The slot was empty.
    Sent,
    /// An item the reader had not taken yet was replaced.
    Replaced,
    /// The reader is gone.
    Closed,
}

/// A channel of capacity one where each send replaces what is unread.
#[must_use]
pub fn channel<T>() -> (Newest<T>, Latest<T>) {
    let (tx, rx) = bounded(1);
    let closed = Arc::new(AtomicBool::new(false));
    (
        Newest {
            tx,
            stale: rx.clone(),
            closed: Arc::clone(&closed),
        },
        Latest { rx, closed },
    )
}

impl<T> Newest<T> {
    /// Sends `item`, replacing the unread one if there is one. Never waits.
    pub fn offer(&self, mut item: T) -> Offered {
        if self.is_closed() {
            return Offered::Closed;
        }
        let mut replaced = false;
        loop {
            match self.tx.try_send(item) {
                Ok(()) => {
                    return if replaced {
                        Offered::Replaced
                    } else {
                        Offered::Sent
                    }
                }
                Err(TrySendError::Disconnected(_)) => return Offered::Closed,
                Err(TrySendError::Full(back)) => {
                    item = back;
                    match self.stale.try_recv() {
                        Ok(_) => replaced = true,
                        // The reader took it meanwhile: try again.
                        Err(TryRecvError::Empty) => {}
                        Err(TryRecvError::Disconnected) => return Offered::Closed,
                    }
                }
            }
        }
    }

    /// Whether the reader has hung up.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_item_wins_and_replacements_are_told() {
        let (tx, rx) = channel();
        assert_eq!(tx.offer(1), Offered::Sent);
        assert_eq!(tx.offer(2), Offered::Replaced);
        assert_eq!(tx.offer(3), Offered::Replaced);
        assert_eq!(rx.take(), Some(3));
        assert_eq!(rx.take(), None);
        assert_eq!(tx.offer(4), Offered::Sent);
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.offer(5), Offered::Closed);
    }
}
