//! [`CheckpointEvent`]: what a [`CheckpointManager`](super::CheckpointManager)
//! reports of its background work (a save started, committed or failed, a
//! due save skipped, checkpoints deleted by retention), and the stream that
//! delivers them.
//!
//! Events go through a `tokio::sync::broadcast` channel: each stream from
//! [`events`](super::CheckpointManager::events) sees what happens after it
//! was made, and a stream that falls more than [`EVENT_CAPACITY`] events
//! behind is told how many it missed ([`CheckpointEvent::Lagged`]) rather
//! than slowing the manager down.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::broadcast;

use crate::checkpoint::CheckpointInfo;

use super::error::ManagerError;

/// How many events a stream may fall behind before it misses some.
///
/// # Examples
///
/// ```
/// assert_eq!(steadfast::manager::EVENT_CAPACITY, 256);
/// ```
pub const EVENT_CAPACITY: usize = 256;

/// Why a due save was not taken.
///
/// # Examples
///
/// ```
/// use steadfast::manager::SkipReason;
/// assert_eq!(SkipReason::SaveInFlight.to_string(), "a save is still in flight");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipReason {
    /// A save was still in flight ([`OverlapPolicy::Skip`](super::OverlapPolicy::Skip)).
    SaveInFlight,
    /// A save was in flight and another already queued
    /// ([`OverlapPolicy::Queue`](super::OverlapPolicy::Queue)).
    QueueFull,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::SaveInFlight => "a save is still in flight",
            SkipReason::QueueFull => "a save is in flight and another is queued",
        })
    }
}

/// How long the parts of one save took.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let t = steadfast::manager::SaveTimings::default();
/// assert_eq!(t.snapshot, Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveTimings {
    /// Copying the registered states into memory (the time the caller was
    /// blocked).
    pub snapshot: Duration,
    /// Waiting for the save before it to finish (queued saves).
    pub queued: Duration,
    /// Writing, hashing, compressing and committing, on the background task.
    pub save: Duration,
}

/// Something the manager did in the background.
///
/// # Examples
///
/// ```
/// use steadfast::manager::{CheckpointEvent, SkipReason};
///
/// let event = CheckpointEvent::Skipped { step: Some(3), reason: SkipReason::SaveInFlight };
/// assert!(matches!(event, CheckpointEvent::Skipped { .. }));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CheckpointEvent {
    /// A save began writing (after the one before it, if it was queued).
    Started {
        /// The checkpoint's name.
        name: String,
        /// Its step.
        step: Option<u64>,
        /// The sequence its name carries (rank 0's prediction).
        sequence: u64,
    },
    /// A save committed.
    Committed {
        /// The committed checkpoint.
        info: CheckpointInfo,
        /// How long its parts took.
        timings: SaveTimings,
    },
    /// A save failed on every rank; the previous checkpoints are intact.
    Failed {
        /// The checkpoint's name.
        name: String,
        /// Why.
        error: Arc<ManagerError>,
    },
    /// A due save was not taken, on every rank.
    Skipped {
        /// The step it was due at.
        step: Option<u64>,
        /// Why.
        reason: SkipReason,
    },
    /// Retention deleted checkpoints (on rank 0).
    Deleted {
        /// Their names, oldest first.
        names: Vec<String>,
    },
    /// This stream fell behind and missed `missed` events.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// The events of one receiver, as a stream; `Unpin`, ends when the manager
/// is dropped.
pub(crate) fn stream(
    receiver: broadcast::Receiver<CheckpointEvent>,
) -> impl Stream<Item = CheckpointEvent> + Unpin + Send + 'static {
    Box::pin(futures::stream::unfold(
        receiver,
        |mut receiver| async move {
            match receiver.recv().await {
                Ok(event) => Some((event, receiver)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Some((CheckpointEvent::Lagged { missed }, receiver))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn a_lagging_stream_is_told_how_many_it_missed() {
        let (tx, rx) = broadcast::channel(2);
        let mut events = stream(rx);
        for step in 0..5 {
            let _ = tx.send(CheckpointEvent::Skipped {
                step: Some(step),
                reason: SkipReason::SaveInFlight,
            });
        }
        drop(tx);
        assert!(matches!(
            events.next().await,
            Some(CheckpointEvent::Lagged { missed: 3 })
        ));
        assert!(matches!(
            events.next().await,
            Some(CheckpointEvent::Skipped { step: Some(3), .. })
        ));
        assert!(events.next().await.is_some());
        assert!(events.next().await.is_none());
    }
}
