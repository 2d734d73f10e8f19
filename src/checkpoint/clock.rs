//! [`WallClock`]: where a commit reads the wall-clock time it records.
//!
//! A checkpoint records when it was committed, for people and for retention
//! by age; it never orders checkpoints by it (the commit sequence does). The
//! time comes from a [`WallClock`] so that a test, or a job whose hosts keep
//! time some other way, can set it: [`SystemClock`] reads
//! [`SystemTime::now`], [`ManualClock`] returns what it was last set to.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
///
/// # Examples
///
/// ```
/// use std::time::UNIX_EPOCH;
/// use steadfast::checkpoint::{SystemClock, WallClock};
/// assert!(SystemClock.now() > UNIX_EPOCH);
/// ```
pub trait WallClock: Send + Sync + Debug + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The host's wall clock ([`SystemTime::now`]).
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{SystemClock, WallClock};
/// use std::time::UNIX_EPOCH;
/// let now = SystemClock.now();
/// assert!(now.duration_since(UNIX_EPOCH).is_ok());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A wall clock that says what it was set to: for tests of ages and of
/// recovery to a point in time. Clones share the same time.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use steadfast::checkpoint::{ManualClock, WallClock};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_060));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// Milliseconds since the Unix epoch.
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock set to `at` (to the millisecond; a time before the epoch reads
    /// as the epoch).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::UNIX_EPOCH;
    /// use steadfast::checkpoint::{ManualClock, WallClock};
    /// assert_eq!(ManualClock::new(UNIX_EPOCH).now(), UNIX_EPOCH);
    /// ```
    pub fn new(at: SystemTime) -> Self {
        ManualClock {
            millis: Arc::new(AtomicU64::new(millis_since_epoch(at))),
        }
    }

    /// Sets the time (it may go back, as a wall clock can).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use steadfast::checkpoint::{ManualClock, WallClock};
    /// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(5));
    /// clock.set(UNIX_EPOCH);
    /// assert_eq!(clock.now(), UNIX_EPOCH);
    /// ```
    pub fn set(&self, at: SystemTime) {
        self.millis.store(millis_since_epoch(at), Ordering::SeqCst);
    }

    /// Moves the time forward by `by`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use steadfast::checkpoint::{ManualClock, WallClock};
    /// let clock = ManualClock::new(UNIX_EPOCH);
    /// clock.advance(Duration::from_millis(1_500));
    /// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_millis(1_500));
    /// ```
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .millis
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| {
                Some(m.saturating_add(by))
            });
    }
}

impl WallClock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

/// Milliseconds from the Unix epoch to `at` (0 before the epoch, saturating
/// far in the future).
pub(crate) fn millis_since_epoch(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
