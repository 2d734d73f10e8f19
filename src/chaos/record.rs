//! What was injected: [`FaultKind`], one [`InjectedFault`], the shared
//! [`ChaosRecorder`] every wrapper reports to, and its [`ChaosStats`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The kinds of fault the chaos wrappers inject.
///
/// # Examples
///
/// ```
/// use steadfast::chaos::FaultKind;
///
/// assert_eq!(FaultKind::CorruptRead.name(), "corrupt read");
/// assert_eq!(FaultKind::ALL.len(), 8);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FaultKind {
    /// The call was delayed (on tokio's clock) before it ran.
    Latency,
    /// The call failed with an injected error; it did not run.
    Error,
    /// The call ran and succeeded, and its `Ok` value was altered.
    WrongResult,
    /// The call was cancelled: its future was dropped before it finished,
    /// and the caller saw a typed error.
    Dropped,
    /// A read returned the object with one bit flipped.
    CorruptRead,
    /// A read returned only a prefix of the object.
    TornRead,
    /// A write reached the storage and landed, and the caller was told it
    /// failed (its answer was lost).
    FailedWrite,
    /// A coordinator call failed because a partition cut its rank off from
    /// the ranks it needed.
    Partition,
}

impl FaultKind {
    /// Every kind, in declaration order (the order of [`ChaosStats`]'s
    /// `Display`).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::FaultKind;
    /// assert_eq!(FaultKind::ALL[0], FaultKind::Latency);
    /// ```
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Latency,
        FaultKind::Error,
        FaultKind::WrongResult,
        FaultKind::Dropped,
        FaultKind::CorruptRead,
        FaultKind::TornRead,
        FaultKind::FailedWrite,
        FaultKind::Partition,
    ];

    /// A short name, as [`ChaosStats`] prints it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::chaos::FaultKind::Dropped.name(), "dropped");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Latency => "latency",
            FaultKind::Error => "error",
            FaultKind::WrongResult => "wrong result",
            FaultKind::Dropped => "dropped",
            FaultKind::CorruptRead => "corrupt read",
            FaultKind::TornRead => "torn read",
            FaultKind::FailedWrite => "failed write",
            FaultKind::Partition => "partition",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One fault a wrapper injected, as the recorder's log keeps it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::chaos::{FaultKind, InjectedFault};
///
/// let fault = InjectedFault {
///     sequence: 0,
///     kind: FaultKind::Latency,
///     operation: "get",
///     target: "run/shard-0".into(),
///     latency: Some(Duration::from_millis(20)),
/// };
/// assert_eq!(fault.to_string(), "#0 latency of 20ms in get of run/shard-0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedFault {
    /// Its place among the faults the recorder saw, from 0.
    pub sequence: u64,
    /// What was injected.
    pub kind: FaultKind,
    /// The operation it hit (`"put"`, `"barrier"`, `"call"`, ...).
    pub operation: &'static str,
    /// What the operation was about: a storage key, `"rank 2"`, or empty.
    pub target: String,
    /// The delay, for [`FaultKind::Latency`].
    pub latency: Option<Duration>,
}

impl fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {}", self.sequence, self.kind)?;
        if let Some(latency) = self.latency {
            write!(f, " of {latency:?}")?;
        }
        write!(f, " in {}", self.operation)?;
        if !self.target.is_empty() {
            write!(f, " of {}", self.target)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct RecorderState {
    seed: Mutex<Option<u64>>,
    counts: [AtomicU64; FaultKind::ALL.len()],
    total: AtomicU64,
    /// The log, when kept: at most `capacity` faults, the first ones.
    log: Option<Mutex<Vec<InjectedFault>>>,
    capacity: usize,
}

/// Counts what the chaos wrappers injected, per [`FaultKind`], and keeps an
/// optional log of each fault.
///
/// Clones share the same counts, so one recorder can be handed to every
/// wrapper of a test (every rank's storage and coordinator) and read once
/// at the end. Counting is a relaxed atomic add; the log, when kept, takes
/// a lock per fault and holds at most its capacity (the first faults).
///
/// # Examples
///
/// ```
/// use steadfast::chaos::{ChaosRecorder, FaultKind};
///
/// let recorder = ChaosRecorder::with_log(100).seed(1234);
/// recorder.record(FaultKind::Latency, "get", "a", None);
/// recorder.record(FaultKind::Error, "put", "b", None);
/// assert_eq!(recorder.count(FaultKind::Error), 1);
/// assert_eq!(recorder.stats().to_string(), "seed 1234: 1 latency, 1 error");
/// assert_eq!(recorder.log().len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct ChaosRecorder {
    state: Arc<RecorderState>,
}

impl Default for ChaosRecorder {
    fn default() -> Self {
        ChaosRecorder::new()
    }
}

impl ChaosRecorder {
    fn build(log: Option<usize>) -> Self {
        ChaosRecorder {
            state: Arc::new(RecorderState {
                seed: Mutex::new(None),
                counts: std::array::from_fn(|_| AtomicU64::new(0)),
                total: AtomicU64::new(0),
                log: log.map(|_| Mutex::new(Vec::new())),
                capacity: log.unwrap_or(0),
            }),
        }
    }

    /// A recorder that counts, without a log.
    ///
    /// # Examples
    ///
    /// ```
    /// let recorder = steadfast::chaos::ChaosRecorder::new();
    /// assert_eq!(recorder.total(), 0);
    /// assert!(recorder.log().is_empty());
    /// ```
    pub fn new() -> Self {
        ChaosRecorder::build(None)
    }

    /// A recorder that counts and logs the first `capacity` faults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosRecorder, FaultKind};
    /// let recorder = ChaosRecorder::with_log(1);
    /// recorder.record(FaultKind::Error, "get", "a", None);
    /// recorder.record(FaultKind::Error, "get", "b", None);
    /// assert_eq!(recorder.log().len(), 1); // the first one
    /// assert_eq!(recorder.total(), 2);
    /// ```
    pub fn with_log(capacity: usize) -> Self {
        ChaosRecorder::build(Some(capacity))
    }

    /// The same recorder, printing `seed` in its [`stats`](Self::stats), so
    /// that a failing test says how to replay it. Clones share it. A chaos
    /// wrapper built with a recorder that has no seed gives it its own.
    ///
    /// # Examples
    ///
    /// ```
    /// let recorder = steadfast::chaos::ChaosRecorder::new().seed(7);
    /// assert_eq!(recorder.stats().to_string(), "seed 7: no faults");
    /// ```
    pub fn seed(self, seed: u64) -> Self {
        *self
            .state
            .seed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(seed);
        self
    }

    /// Gives the recorder `seed` unless it has one.
    pub(super) fn seed_if_unset(&self, seed: u64) {
        self.state
            .seed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(seed);
    }

    /// Records one fault of `kind` in `operation` on `target`.
    ///
    /// The wrappers call it; a strategy of your own can too.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::chaos::{ChaosRecorder, FaultKind};
    /// let recorder = ChaosRecorder::new();
    /// recorder.record(FaultKind::Latency, "call", "", Some(Duration::from_millis(5)));
    /// assert_eq!(recorder.count(FaultKind::Latency), 1);
    /// ```
    pub fn record(
        &self,
        kind: FaultKind,
        operation: &'static str,
        target: &str,
        latency: Option<Duration>,
    ) {
        self.state.counts[kind.index()].fetch_add(1, Ordering::Relaxed);
        let sequence = self.state.total.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            target: super::TARGET,
            kind = kind.name(),
            operation,
            target = target,
            ?latency,
            "fault injected"
        );
        if let Some(log) = &self.state.log {
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            if log.len() < self.state.capacity {
                log.push(InjectedFault {
                    sequence,
                    kind,
                    operation,
                    target: target.to_string(),
                    latency,
                });
            }
        }
    }

    /// How many faults of `kind` were recorded.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosRecorder, FaultKind};
    /// assert_eq!(ChaosRecorder::new().count(FaultKind::TornRead), 0);
    /// ```
    pub fn count(&self, kind: FaultKind) -> u64 {
        self.state.counts[kind.index()].load(Ordering::Relaxed)
    }

    /// How many faults were recorded, of every kind.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::chaos::ChaosRecorder::new().total(), 0);
    /// ```
    pub fn total(&self) -> u64 {
        self.state.total.load(Ordering::Relaxed)
    }

    /// The logged faults, in the order they were recorded (empty without a
    /// log).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosRecorder, FaultKind};
    /// let recorder = ChaosRecorder::with_log(8);
    /// recorder.record(FaultKind::Dropped, "put", "k", None);
    /// assert_eq!(recorder.log()[0].kind, FaultKind::Dropped);
    /// ```
    pub fn log(&self) -> Vec<InjectedFault> {
        match &self.state.log {
            Some(log) => log.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            None => Vec::new(),
        }
    }

    /// A snapshot of the counts.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosRecorder, FaultKind};
    /// let recorder = ChaosRecorder::new();
    /// recorder.record(FaultKind::Error, "put", "k", None);
    /// let stats = recorder.stats();
    /// assert_eq!(stats.count(FaultKind::Error), 1);
    /// assert_eq!(stats.to_string(), "1 error");
    /// ```
    pub fn stats(&self) -> ChaosStats {
        ChaosStats {
            seed: *self
                .state
                .seed
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
            counts: std::array::from_fn(|i| self.state.counts[i].load(Ordering::Relaxed)),
        }
    }
}

/// The counts of a [`ChaosRecorder`] at one moment, per [`FaultKind`].
///
/// `Display` prints the kinds that happened, in [`FaultKind::ALL`]'s
/// order, after the seed when the recorder knows it:
/// `"seed 1234: 3 latency, 2 errors"`.
///
/// # Examples
///
/// ```
/// use steadfast::chaos::{ChaosRecorder, FaultKind};
///
/// let recorder = ChaosRecorder::new().seed(1234);
/// for _ in 0..3 {
///     recorder.record(FaultKind::Latency, "get", "", None);
/// }
/// for _ in 0..2 {
///     recorder.record(FaultKind::Error, "put", "", None);
/// }
/// assert_eq!(recorder.stats().to_string(), "seed 1234: 3 latency, 2 errors");
/// assert_eq!(recorder.stats().total(), 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChaosStats {
    seed: Option<u64>,
    counts: [u64; FaultKind::ALL.len()],
}

impl ChaosStats {
    /// How many faults of `kind`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosRecorder, FaultKind};
    /// assert_eq!(ChaosRecorder::new().stats().count(FaultKind::Latency), 0);
    /// ```
    pub fn count(&self, kind: FaultKind) -> u64 {
        self.counts[kind.index()]
    }

    /// How many faults in all.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::chaos::ChaosRecorder::new().stats().total(), 0);
    /// ```
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The seed, when the recorder was given one.
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = steadfast::chaos::ChaosRecorder::new().seed(3).stats();
    /// assert_eq!(stats.seed(), Some(3));
    /// ```
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }
}

impl fmt::Display for ChaosStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(seed) = self.seed {
            write!(f, "seed {seed}: ")?;
        }
        let mut first = true;
        for kind in FaultKind::ALL {
            let count = self.count(kind);
            if count == 0 {
                continue;
            }
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            let plural = match kind {
                FaultKind::Latency | FaultKind::Dropped => "",
                _ if count == 1 => "",
                _ => "s",
            };
            write!(f, "{count} {}{plural}", kind.name())?;
        }
        if first {
            f.write_str("no faults")?;
        }
        Ok(())
    }
}
