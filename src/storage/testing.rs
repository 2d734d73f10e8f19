//! The types with which a test drives a [`MemoryStorage`]: its fault rules
//! and its record of the calls it received.
//!
//! [`MemoryStorage`] itself is a first-class storage, at
//! `steadfast::storage::MemoryStorage`; these types are the part of its API
//! that only tests use: [`StorageFaults`] (from [`MemoryStorage::faults`])
//! adds [`FaultRule`]s that fail, tear or slow down calls of one
//! [`Operation`], and [`MemoryStorage::calls`] returns the [`Call`]s
//! received. They are always compiled, so that a user's own tests can inject
//! faults without a feature; the conformance suite, which only tests run, is
//! behind the `testing` feature.
//!
//! Fault injection works per [`Operation`]. Every accepted call (one whose key
//! passed validation) is recorded as a [`Call`] and shown to the fault rules
//! added through [`MemoryStorage::faults`], in the order they were added. A
//! rule fires on the `n`-th call from when it was added, on the next `k`
//! calls, or with a probability drawn from a [`SmallRng`] seeded by the user
//! (so a run is repeatable). When a rule fires the call fails with
//! [`StorageError::Injected`], transient unless the rule was made
//! [`permanent`](FaultRule::permanent). A call may also be slowed down by a
//! latency, slept with `tokio::time::sleep` so that tests on paused time see
//! it without waiting.
//!
//! # Examples
//!
//! ```
//! use steadfast::storage::testing::{Call, Operation};
//! use steadfast::storage::{CheckpointStorage, MemoryStorage};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> steadfast::storage::Result<()> {
//! let storage = MemoryStorage::new();
//! storage.faults().fail_nth(Operation::Put, 1);
//! assert!(storage.put("a", vec![1].into()).await.is_err());
//! storage.put("a", vec![1].into()).await?;
//! assert_eq!(storage.calls()[1], Call { operation: Operation::Put, key: "a".into() });
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::distr::{Bernoulli, Distribution};
use rand::rngs::SmallRng;
use rand::SeedableRng;

#[cfg(doc)]
use super::MemoryStorage;
use super::StorageError;
#[cfg(doc)]
use super::{CheckpointStorage, ObjectWriter};
use crate::ConfigError;

const TARGET: &str = "steadfast::storage";

/// One operation of a [`CheckpointStorage`], as seen by fault injection and
/// by the call record of a [`MemoryStorage`].
///
/// [`CheckpointStorage::exists`] is answered through
/// [`head`](CheckpointStorage::head), so it counts as a [`Operation::Head`].
///
/// # Examples
///
/// ```
/// use steadfast::storage::testing::Operation;
///
/// assert_eq!(Operation::PutIfAbsent.name(), "put_if_absent");
/// assert!(Operation::PutStream.is_write());
/// assert_eq!(Operation::ALL.len(), 9);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// [`CheckpointStorage::put`].
    Put,
    /// [`CheckpointStorage::put_if_absent`].
    PutIfAbsent,
    /// [`CheckpointStorage::get`].
    Get,
    /// [`CheckpointStorage::head`] (and [`CheckpointStorage::exists`]).
    Head,
    /// [`CheckpointStorage::delete`].
    Delete,
    /// [`CheckpointStorage::list`]; the call's key is the prefix.
    List,
    /// A streamed write: opened by [`CheckpointStorage::put_stream`], written
    /// and committed through its [`ObjectWriter`].
    PutStream,
    /// [`CheckpointStorage::get_stream`].
    GetStream,
    /// [`CheckpointStorage::get_range`]; [`MemoryStorage::ranges_read`]
    /// records the range of each.
    GetRange,
}

impl Operation {
    /// Every operation, in declaration order.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::testing::Operation;
    /// assert_eq!(Operation::ALL[0], Operation::Put);
    /// ```
    pub const ALL: [Operation; 9] = [
        Operation::Put,
        Operation::PutIfAbsent,
        Operation::Get,
        Operation::Head,
        Operation::Delete,
        Operation::List,
        Operation::PutStream,
        Operation::GetStream,
        Operation::GetRange,
    ];

    /// The operation's name, as it appears in [`StorageError::Injected`] and
    /// [`StorageError::Io`]: the name of the trait method.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::storage::testing::Operation::GetStream.name(), "get_stream");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Operation::Put => "put",
            Operation::PutIfAbsent => "put_if_absent",
            Operation::Get => "get",
            Operation::Head => "head",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::PutStream => "put_stream",
            Operation::GetStream => "get_stream",
            Operation::GetRange => "get_range",
        }
    }

    /// Whether the operation writes an object (`Put`, `PutIfAbsent`,
    /// `PutStream`): the operations a torn write applies to.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::testing::Operation;
    /// assert!(Operation::Put.is_write());
    /// assert!(!Operation::Delete.is_write());
    /// ```
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Operation::Put | Operation::PutIfAbsent | Operation::PutStream
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One call received by a [`MemoryStorage`], as recorded for assertions.
///
/// # Examples
///
/// ```
/// use steadfast::storage::{CheckpointStorage, MemoryStorage};
/// use steadfast::storage::testing::{Call, Operation};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> steadfast::storage::Result<()> {
/// let storage = MemoryStorage::new();
/// storage.put("a", vec![1].into()).await?;
/// assert_eq!(storage.calls(), vec![Call { operation: Operation::Put, key: "a".into() }]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Call {
    /// The operation called.
    pub operation: Operation,
    /// Its key (the prefix, for [`Operation::List`]).
    pub key: String,
}

/// When a fault rule fires.
#[derive(Debug)]
enum Trigger {
    /// On one call: after `skip` more calls have gone by.
    Nth { skip: u64, spent: bool },
    /// On each of the next `remaining` calls.
    Next { remaining: u64 },
    /// On each call with a fixed probability.
    Random { rng: SmallRng, dist: Bernoulli },
}

impl Trigger {
    /// Advances the trigger by one call and says whether it fires on it.
    fn fires(&mut self) -> bool {
        match self {
            Trigger::Nth { skip, spent } => {
                if *spent {
                    false
                } else if *skip == 0 {
                    *spent = true;
                    true
                } else {
                    *skip -= 1;
                    false
                }
            }
            Trigger::Next { remaining } => {
                if *remaining > 0 {
                    *remaining -= 1;
                    true
                } else {
                    false
                }
            }
            Trigger::Random { rng, dist } => dist.sample(rng),
        }
    }
}

/// What a fault does to the call it fires on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    /// The call fails.
    Fail,
    /// The write runs, then "crashes" before its object becomes visible.
    Tear,
}

#[derive(Debug)]
pub(super) struct Rule {
    id: u64,
    operation: Operation,
    trigger: Trigger,
    effect: Effect,
    transient: bool,
    fired: u64,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Fault {
    pub(super) effect: Effect,
    pub(super) transient: bool,
}

/// What fault injection decided for one call.
#[derive(Debug, Clone, Copy)]
pub(super) struct Decision {
    pub(super) fault: Option<Fault>,
    pub(super) latency: Duration,
}

#[derive(Debug, Default)]
pub(super) struct FaultState {
    pub(super) calls: Vec<Call>,
    /// The key and range of each ranged read, in order.
    pub(super) ranges: Vec<(String, std::ops::Range<u64>)>,
    pub(super) rules: Vec<Rule>,
    pub(super) latency: [Duration; Operation::ALL.len()],
    pub(super) next_rule_id: u64,
}

impl FaultState {
    /// Records a call and runs every rule of its operation over it. Every
    /// rule sees every call (so that "the n-th call" counts them all); the
    /// first rule that fires decides the fault.
    pub(super) fn decide(&mut self, operation: Operation, key: &str) -> Decision {
        self.calls.push(Call {
            operation,
            key: key.to_string(),
        });
        let mut fault = None;
        for rule in self.rules.iter_mut().filter(|r| r.operation == operation) {
            if rule.trigger.fires() {
                rule.fired += 1;
                fault.get_or_insert(Fault {
                    effect: rule.effect,
                    transient: rule.transient,
                });
            }
        }
        Decision {
            fault,
            latency: self.latency[operation.index()],
        }
    }
}

pub(super) fn lock_faults(state: &Mutex<FaultState>) -> MutexGuard<'_, FaultState> {
    // Every critical section leaves the state consistent before anything
    // that could panic, so a poisoned lock is still usable.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn injected(operation: Operation, key: &str, fault: Fault) -> StorageError {
    tracing::debug!(
        target: TARGET,
        storage = "memory",
        operation = operation.name(),
        key,
        transient = fault.transient,
        torn = fault.effect == Effect::Tear,
        "injected storage fault"
    );
    StorageError::Injected {
        operation: operation.name(),
        key: key.to_string(),
        transient: fault.transient,
    }
}

/// Fault injection controls of a [`MemoryStorage`], shared by all its clones.
///
/// Each method adds a rule for one [`Operation`] and returns a [`FaultRule`]
/// handle to it. Rules count calls from the moment they are added. The
/// errors they inject are [`StorageError::Injected`], transient unless the
/// rule is made [`permanent`](FaultRule::permanent).
///
/// Where an injected fault shows:
/// - for every operation but `PutStream`, the call fails before it does
///   anything (after its latency, if one is set);
/// - for `PutStream`, a failure ([`fail_nth`](StorageFaults::fail_nth) and
///   the like) fails the first [`ObjectWriter::write`] (or the commit, if
///   nothing is written) and the object is not stored; a torn write
///   ([`tear_nth`](StorageFaults::tear_nth)) accepts every byte and fails the
///   commit.
///
/// # Examples
///
/// ```
/// use steadfast::retry::Transient;
/// use steadfast::storage::{CheckpointStorage, MemoryStorage, StorageError};
/// use steadfast::storage::testing::Operation;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = MemoryStorage::new();
/// storage.faults().fail_next(Operation::Put, 1).permanent();
/// let err = storage.put("a", vec![1].into()).await.unwrap_err();
/// assert!(matches!(err, StorageError::Injected { operation: "put", .. }));
/// assert!(!err.is_transient());
/// assert!(storage.put("a", vec![1].into()).await.is_ok());
/// # }
/// ```
#[derive(Clone)]
pub struct StorageFaults {
    pub(super) state: Arc<Mutex<FaultState>>,
}

impl fmt::Debug for StorageFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock_faults(&self.state);
        f.debug_struct("StorageFaults")
            .field("rules", &state.rules)
            .field("latency", &state.latency)
            .finish()
    }
}

impl StorageFaults {
    fn add(&self, operation: Operation, trigger: Trigger, effect: Effect) -> FaultRule {
        let mut state = lock_faults(&self.state);
        let id = state.next_rule_id;
        state.next_rule_id += 1;
        tracing::debug!(
            target: TARGET,
            storage = "memory",
            operation = operation.name(),
            rule = id,
            ?trigger,
            ?effect,
            "fault rule added"
        );
        state.rules.push(Rule {
            id,
            operation,
            trigger,
            effect,
            transient: true,
            fired: 0,
        });
        FaultRule {
            state: Arc::clone(&self.state),
            id,
        }
    }

    /// Fails the `n`-th call of `operation` from now: `fail_nth(op, 1)` fails
    /// the next call, `fail_nth(op, 3)` lets two go through and fails the
    /// third. `0` is read as `1`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{CheckpointStorage, MemoryStorage};
    /// use steadfast::storage::testing::Operation;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let storage = MemoryStorage::new();
    /// storage.faults().fail_nth(Operation::Put, 2);
    /// assert!(storage.put("a", vec![].into()).await.is_ok());
    /// assert!(storage.put("b", vec![].into()).await.is_err());
    /// assert!(storage.put("c", vec![].into()).await.is_ok());
    /// assert_eq!(storage.keys(), ["a", "c"]);
    /// # }
    /// ```
    pub fn fail_nth(&self, operation: Operation, n: u64) -> FaultRule {
        self.add(
            operation,
            Trigger::Nth {
                skip: n.saturating_sub(1),
                spent: false,
            },
            Effect::Fail,
        )
    }

    /// Fails each of the next `count` calls of `operation`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{CheckpointStorage, MemoryStorage};
    /// use steadfast::storage::testing::Operation;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let storage = MemoryStorage::new();
    /// storage.faults().fail_next(Operation::Head, 2);
    /// assert!(storage.exists("a").await.is_err());
    /// assert!(storage.exists("a").await.is_err());
    /// assert_eq!(storage.exists("a").await.unwrap(), false);
    /// # }
    /// ```
    pub fn fail_next(&self, operation: Operation, count: u64) -> FaultRule {
        self.add(operation, Trigger::Next { remaining: count }, Effect::Fail)
    }

    /// Fails each call of `operation` with probability `probability`, drawn
    /// from a [`SmallRng`] seeded with `seed`: the same seed and the same
    /// sequence of calls give the same failures, run after run.
    ///
    /// Fails with a [`ConfigError`] unless `probability` is in `[0, 1]`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{CheckpointStorage, MemoryStorage};
    /// use steadfast::storage::testing::Operation;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let storage = MemoryStorage::new();
    /// storage.faults().fail_with_probability(Operation::Get, 0.25, 42)?;
    /// assert!(storage.faults().fail_with_probability(Operation::Get, 1.5, 42).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn fail_with_probability(
        &self,
        operation: Operation,
        probability: f64,
        seed: u64,
    ) -> Result<FaultRule, ConfigError> {
        let dist = Bernoulli::new(probability).map_err(|_| {
            ConfigError::new(
                "probability",
                format!("must be a probability in [0, 1], got {probability}"),
            )
        })?;
        Ok(self.add(
            operation,
            Trigger::Random {
                rng: SmallRng::seed_from_u64(seed),
                dist,
            },
            Effect::Fail,
        ))
    }

    /// Tears the `n`-th write of `operation` from now (`0` is read as `1`):
    /// the write runs as if the process crashed half-way through it. It
    /// reports [`StorageError::Injected`] and nothing of it is ever visible:
    /// the key keeps its previous object, or stays absent.
    ///
    /// For a streamed write every [`ObjectWriter::write`] succeeds and the
    /// commit fails. On an operation that writes nothing (`Get`, `List`, ...)
    /// a torn call is a plain failure.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{Bytes, CheckpointStorage, MemoryStorage};
    /// use steadfast::storage::testing::Operation;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> steadfast::storage::Result<()> {
    /// let storage = MemoryStorage::new();
    /// storage.put("ckpt", Bytes::from_static(b"v1")).await?;
    /// storage.faults().tear_nth(Operation::Put, 1);
    /// assert!(storage.put("ckpt", Bytes::from_static(b"v2")).await.is_err());
    /// assert_eq!(storage.get("ckpt").await?, &b"v1"[..]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn tear_nth(&self, operation: Operation, n: u64) -> FaultRule {
        self.add(
            operation,
            Trigger::Nth {
                skip: n.saturating_sub(1),
                spent: false,
            },
            Effect::Tear,
        )
    }

    /// Tears each of the next `count` writes of `operation` (see
    /// [`tear_nth`](StorageFaults::tear_nth)).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{CheckpointStorage, MemoryStorage};
    /// use steadfast::storage::testing::Operation;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> steadfast::storage::Result<()> {
    /// let storage = MemoryStorage::new();
    /// storage.faults().tear_next(Operation::PutStream, 1);
    /// let mut writer = storage.put_stream("shard").await?;
    /// writer.write(b"half of it").await?;
    /// assert!(writer.commit().await.is_err());
    /// assert!(!storage.exists("shard").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn tear_next(&self, operation: Operation, count: u64) -> FaultRule {
        self.add(operation, Trigger::Next { remaining: count }, Effect::Tear)
    }

    /// Makes every call of `operation` take `latency` longer (slept with
    /// `tokio::time::sleep`, so paused-time tests do not wait). A zero
    /// latency removes it. Streamed writes sleep it at the commit.
    ///
    /// # Cancellation
    ///
    /// A call dropped during its latency does nothing (it is still recorded).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::storage::{CheckpointStorage, MemoryStorage};
    /// use steadfast::storage::testing::Operation;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let storage = MemoryStorage::new();
    /// storage.faults().set_latency(Operation::Get, Duration::from_secs(5));
    /// let slow = tokio::time::timeout(Duration::from_secs(1), storage.get("a")).await;
    /// assert!(slow.is_err());
    /// # }
    /// ```
    pub fn set_latency(&self, operation: Operation, latency: Duration) {
        lock_faults(&self.state).latency[operation.index()] = latency;
    }

    /// The latency set for `operation`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::storage::MemoryStorage;
    /// use steadfast::storage::testing::Operation;
    ///
    /// let storage = MemoryStorage::new();
    /// assert_eq!(storage.faults().latency(Operation::Put), Duration::ZERO);
    /// ```
    pub fn latency(&self, operation: Operation) -> Duration {
        lock_faults(&self.state).latency[operation.index()]
    }

    /// Removes every fault rule and every latency. The call record is kept.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{CheckpointStorage, MemoryStorage};
    /// use steadfast::storage::testing::Operation;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let storage = MemoryStorage::new();
    /// storage.faults().fail_next(Operation::Put, 10);
    /// storage.faults().clear();
    /// assert!(storage.put("a", vec![].into()).await.is_ok());
    /// # }
    /// ```
    pub fn clear(&self) {
        let mut state = lock_faults(&self.state);
        state.rules.clear();
        state.latency = Default::default();
        tracing::debug!(target: TARGET, storage = "memory", "fault rules cleared");
    }
}

/// A handle to one fault rule added through [`StorageFaults`].
///
/// Dropping the handle leaves the rule in place; [`remove`](FaultRule::remove)
/// takes it out.
///
/// # Examples
///
/// ```
/// use steadfast::storage::{CheckpointStorage, MemoryStorage};
/// use steadfast::storage::testing::Operation;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let storage = MemoryStorage::new();
/// let rule = storage.faults().fail_next(Operation::Delete, 5);
/// assert!(storage.delete("a").await.is_err());
/// assert_eq!(rule.fired(), 1);
/// rule.remove();
/// assert!(storage.delete("a").await.is_ok());
/// # }
/// ```
#[derive(Clone)]
pub struct FaultRule {
    state: Arc<Mutex<FaultState>>,
    id: u64,
}

impl fmt::Debug for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultRule")
            .field("id", &self.id)
            .field("fired", &self.fired())
            .finish()
    }
}

impl FaultRule {
    fn with_rule<T>(&self, f: impl FnOnce(&mut Rule) -> T) -> Option<T> {
        let mut state = lock_faults(&self.state);
        state.rules.iter_mut().find(|r| r.id == self.id).map(f)
    }

    /// Makes the errors this rule injects permanent (`transient: false`), so
    /// that a retry policy gives up on them at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::retry::Transient;
    /// use steadfast::storage::{CheckpointStorage, MemoryStorage};
    /// use steadfast::storage::testing::Operation;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let storage = MemoryStorage::new();
    /// storage.faults().fail_nth(Operation::Get, 1).permanent();
    /// assert!(!storage.get("a").await.unwrap_err().is_transient());
    /// # }
    /// ```
    pub fn permanent(self) -> Self {
        self.with_rule(|r| r.transient = false);
        self
    }

    /// How many calls this rule has fired on (0 once the rule is removed).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::MemoryStorage;
    /// use steadfast::storage::testing::Operation;
    ///
    /// let storage = MemoryStorage::new();
    /// assert_eq!(storage.faults().fail_nth(Operation::Put, 1).fired(), 0);
    /// ```
    pub fn fired(&self) -> u64 {
        self.with_rule(|r| r.fired).unwrap_or(0)
    }

    /// Removes the rule. Removing a rule that was already removed (or cleared
    /// by [`StorageFaults::clear`]) does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::MemoryStorage;
    /// use steadfast::storage::testing::Operation;
    ///
    /// let storage = MemoryStorage::new();
    /// storage.faults().fail_next(Operation::Put, 3).remove();
    /// ```
    pub fn remove(self) {
        lock_faults(&self.state).rules.retain(|r| r.id != self.id);
    }
}
