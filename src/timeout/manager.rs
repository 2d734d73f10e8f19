//! [`TimeoutManager`]: deadlines per operation, which can be extended or
//! cancelled while the operation runs.
//!
//! The manager is a map from id to a shared `Operation` record (one atomic
//! state word and a `Notify`), behind a short `std::sync::Mutex`; the
//! [`OperationGuard`] waits on its own record. The public documentation of
//! [`TimeoutManager`] describes the algorithm.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt::{self, Debug, Display};
use std::future::IntoFuture;
use std::hash::Hash;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::TimeoutError;

/// What an operation id must be: hashable, comparable, cloneable, shareable
/// between tasks, and printable: errors show an id as written, through its
/// `Display` form (an id `"upload"` reads `upload`), and logs through its
/// `Debug` form.
///
/// It is implemented for every type with those properties (`String`,
/// `&'static str`, integers, `uuid::Uuid`, your own ids that derive `Debug`
/// and implement `Display`).
///
/// # Examples
///
/// ```
/// use std::fmt;
/// use steadfast::timeout::OperationId;
///
/// #[derive(Debug, Clone, PartialEq, Eq, Hash)]
/// struct Shard { checkpoint: u64, rank: usize }
///
/// impl fmt::Display for Shard {
///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
///         write!(f, "checkpoint {} shard {}", self.checkpoint, self.rank)
///     }
/// }
///
/// fn takes_id<K: OperationId>(_: K) {}
/// takes_id(Shard { checkpoint: 7, rank: 3 });
/// takes_id(String::from("upload"));
/// takes_id(42u64);
/// ```
pub trait OperationId: Hash + Eq + Clone + Send + Sync + Debug + Display + 'static {}

impl<T: Hash + Eq + Clone + Send + Sync + Debug + Display + 'static> OperationId for T {}

/// Bit 63 of [`Operation::state`]: the operation was cancelled.
const CANCELLED: u64 = 1 << 63;
/// Bits 0..63 of [`Operation::state`]: the deadline, in nanoseconds after
/// [`Operation::started`]. At most about 292 years; longer timeouts are
/// clamped to that.
const OFFSET_MASK: u64 = CANCELLED - 1;

/// One operation's deadline and cancellation.
#[derive(Debug)]
struct Operation {
    /// When the operation was started.
    started: Instant,
    /// Bit 63: cancelled; bits 0..63: the deadline as nanoseconds after
    /// `started`. One word, so that an extension can check "not cancelled,
    /// not expired" and move the deadline in one compare-and-swap.
    state: AtomicU64,
    /// Wakes the waiter when the operation is cancelled.
    cancelled: Notify,
}

/// How an extension failed.
enum ExtendRefused {
    Cancelled,
    Expired { after: Duration },
}

impl Operation {
    fn new(started: Instant, timeout: Duration) -> Self {
        Operation {
            started,
            state: AtomicU64::new(nanos(timeout)),
            cancelled: Notify::new(),
        }
    }

    /// `(cancelled, deadline offset)`.
    fn load(&self) -> (bool, Duration) {
        let state = self.state.load(Ordering::Acquire);
        (
            state & CANCELLED != 0,
            Duration::from_nanos(state & OFFSET_MASK),
        )
    }

    fn deadline_at(&self, offset: Duration) -> Instant {
        self.started
            .checked_add(offset)
            .or_else(|| self.started.checked_add(FAR_FUTURE))
            .unwrap_or(self.started)
    }

    fn deadline(&self) -> Instant {
        self.deadline_at(self.load().1)
    }

    fn is_cancelled(&self) -> bool {
        self.load().0
    }

    /// Moves the deadline `by` later, unless the operation is cancelled or
    /// its deadline has passed. Returns the new deadline.
    fn extend(&self, by: Duration) -> Result<Instant, ExtendRefused> {
        let now = Instant::now();
        let extra = nanos(by);
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            if current & CANCELLED != 0 {
                return Err(ExtendRefused::Cancelled);
            }
            let offset = Duration::from_nanos(current);
            if now >= self.deadline_at(offset) {
                return Err(ExtendRefused::Expired { after: offset });
            }
            let next = current.saturating_add(extra).min(OFFSET_MASK);
            match self.state.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(self.deadline_at(Duration::from_nanos(next))),
                Err(actual) => current = actual,
            }
        }
    }

    /// Marks the operation cancelled and wakes its waiter. Returns whether
    /// it was not cancelled before.
    fn cancel(&self) -> bool {
        let before = self.state.fetch_or(CANCELLED, Ordering::AcqRel);
        self.cancelled.notify_waiters();
        before & CANCELLED == 0
    }
}

/// Used when `started + timeout` cannot be represented: about 30 years.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// A duration in nanoseconds, clamped to what the state word can hold.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).map_or(OFFSET_MASK, |n| n.min(OFFSET_MASK))
}

struct Registry<K> {
    operations: Mutex<HashMap<K, Arc<Operation>>>,
}

impl<K> Registry<K> {
    fn lock(&self) -> MutexGuard<'_, HashMap<K, Arc<Operation>>> {
        // A map operation either completes or panics before changing the
        // map, so a poisoned lock still guards a consistent map.
        self.operations.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Deadlines per operation, keyed by an operation id.
///
/// [`start`](TimeoutManager::start) registers an operation with a deadline
/// and returns its [`OperationGuard`]; the guard runs the operation's future
/// against the deadline, and dropping it removes the operation. While the
/// operation runs, anyone holding the manager can
/// [`extend`](TimeoutManager::extend) its deadline (a long upload that is
/// still making progress) or [`cancel`](TimeoutManager::cancel) it (the job
/// is shutting down).
///
/// The id type `K` is generic (any [`OperationId`]) and defaults to
/// `String`; methods that look an id up take any borrowed form of it, so a
/// `TimeoutManager<String>` is asked with `&str`.
///
/// Starting an id that is already in progress replaces it: the earlier
/// operation is cancelled (its guard's [`run`](OperationGuard::run) ends
/// with [`TimeoutError::Cancelled`]) and the id now refers to the new
/// operation, with the new deadline. Dropping the earlier guard afterwards
/// leaves the new operation alone.
///
/// The manager is a handle: clones share the same operations.
///
/// # How it works
///
/// The manager is a `HashMap` from operation id to a shared record, behind
/// a `std::sync::Mutex` that is held only for one map lookup, insert or
/// removal. Starting, extending and cancelling an operation are O(1);
/// nothing scans the operations, no task is spawned per operation and no
/// background loop polls them, so tens of thousands of live operations cost
/// one small allocation each.
///
/// Each operation keeps its state in one `AtomicU64` (bit 63: cancelled;
/// bits 0..63: the deadline in nanoseconds after the start, so at most
/// about 292 years) and a [`tokio::sync::Notify`]. The guard is the only
/// waiter: it sleeps until the deadline it read last, then reads the state
/// again. An extension only moves the deadline later, so it needs no
/// wake-up: the waiter wakes at the old deadline, sees the new one and
/// sleeps on. A cancellation sets the cancelled bit and wakes the waiter
/// through the `Notify`.
///
/// An operation whose deadline has passed has expired for good: it cannot
/// be extended, and waiting on it returns at once. It stays in the manager
/// (with nothing left of its time) until its guard is dropped.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::timeout::{TimeoutError, TimeoutManager};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let manager: TimeoutManager = TimeoutManager::new();
///
/// let upload = manager.start("upload".to_string(), Duration::from_secs(5));
/// // Two seconds in, the upload is still making progress: give it three more.
/// let watchdog = manager.clone();
/// tokio::spawn(async move {
///     tokio::time::sleep(Duration::from_secs(2)).await;
///     watchdog.extend("upload", Duration::from_secs(3)).unwrap();
/// });
/// let result = upload
///     .run(tokio::time::sleep(Duration::from_secs(7)))
///     .await;
/// assert!(result.is_ok()); // done at 7 s, before the extended deadline of 8 s
///
/// drop(upload);
/// assert!(manager.is_empty());
/// # }
/// ```
pub struct TimeoutManager<K: OperationId = String> {
    registry: Arc<Registry<K>>,
}

impl<K: OperationId> Clone for TimeoutManager<K> {
    fn clone(&self) -> Self {
        TimeoutManager {
            registry: Arc::clone(&self.registry),
        }
    }
}

impl<K: OperationId> Default for TimeoutManager<K> {
    fn default() -> Self {
        TimeoutManager::new()
    }
}

impl<K: OperationId> Debug for TimeoutManager<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutManager")
            .field("operations", &self.len())
            .finish()
    }
}

impl<K: OperationId> TimeoutManager<K> {
    /// A manager with no operations.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::timeout::TimeoutManager;
    /// let manager = TimeoutManager::<u64>::new();
    /// assert!(manager.is_empty());
    /// ```
    pub fn new() -> Self {
        TimeoutManager {
            registry: Arc::new(Registry {
                operations: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Starts operation `id` with a deadline `timeout` from now, and returns
    /// its guard.
    ///
    /// If `id` is already in progress, that operation is cancelled and
    /// replaced by this one. Timeouts too long to represent (beyond about
    /// 292 years) are clamped. A zero timeout gives an operation that has
    /// already expired.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutManager;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let manager = TimeoutManager::new();
    /// let first = manager.start(1u32, Duration::from_secs(5));
    /// let second = manager.start(1u32, Duration::from_secs(9));
    /// assert_eq!(manager.len(), 1);
    /// assert!(first.is_cancelled());
    /// assert_eq!(manager.remaining(&1), Some(Duration::from_secs(9)));
    /// # drop(second);
    /// # }
    /// ```
    pub fn start(&self, id: K, timeout: Duration) -> OperationGuard<K> {
        let operation = Arc::new(Operation::new(Instant::now(), timeout));
        let replaced = self
            .registry
            .lock()
            .insert(id.clone(), Arc::clone(&operation));
        if let Some(previous) = replaced {
            previous.cancel();
            tracing::debug!(
                target: "steadfast::timeout",
                operation = ?id,
                ?timeout,
                "operation restarted; the previous one is cancelled"
            );
        } else {
            tracing::trace!(
                target: "steadfast::timeout",
                operation = ?id,
                ?timeout,
                "operation started"
            );
        }
        OperationGuard {
            registry: Arc::clone(&self.registry),
            id,
            operation,
        }
    }

    /// Moves the deadline of operation `id` `by` later, and returns the new
    /// deadline.
    ///
    /// # Errors
    ///
    /// - [`TimeoutError::NotFound`] when no operation `id` is in progress.
    /// - [`TimeoutError::Elapsed`] when its deadline has already passed: an
    ///   expired operation stays expired.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::{TimeoutError, TimeoutManager};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let manager = TimeoutManager::new();
    /// let _guard = manager.start("sync".to_string(), Duration::from_secs(5));
    /// let deadline = manager.extend("sync", Duration::from_secs(3)).unwrap();
    /// assert_eq!(manager.deadline("sync"), Some(deadline));
    /// assert_eq!(manager.remaining("sync"), Some(Duration::from_secs(8)));
    ///
    /// let err = manager.extend("other", Duration::from_secs(1)).unwrap_err();
    /// assert!(matches!(err, TimeoutError::NotFound { .. }));
    /// # }
    /// ```
    pub fn extend<Q>(&self, id: &Q, by: Duration) -> Result<Instant, TimeoutError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + Debug + Display + ?Sized,
    {
        let result = match self.registry.lock().get(id) {
            Some(operation) => operation.extend(by),
            None => Err(ExtendRefused::Cancelled),
        };
        match result {
            Ok(deadline) => {
                tracing::debug!(
                    target: "steadfast::timeout",
                    operation = ?id,
                    ?by,
                    remaining = ?deadline.saturating_duration_since(Instant::now()),
                    "deadline extended"
                );
                Ok(deadline)
            }
            Err(ExtendRefused::Cancelled) => Err(TimeoutError::NotFound {
                operation: id.to_string(),
            }),
            Err(ExtendRefused::Expired { after }) => Err(TimeoutError::Elapsed {
                operation: Some(id.to_string()),
                after,
            }),
        }
    }

    /// Cancels operation `id`: removes it, and makes its guard's
    /// [`run`](OperationGuard::run) end with [`TimeoutError::Cancelled`].
    /// Returns whether such an operation was in progress.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutManager;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let manager = TimeoutManager::new();
    /// let guard = manager.start(7u64, Duration::from_secs(5));
    /// assert!(manager.cancel(&7));
    /// assert!(!manager.cancel(&7));
    /// let err = guard.run(std::future::pending::<()>()).await.unwrap_err();
    /// assert!(err.is_cancelled());
    /// # }
    /// ```
    pub fn cancel<Q>(&self, id: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + Debug + ?Sized,
    {
        let removed = self.registry.lock().remove(id);
        match removed {
            Some(operation) => {
                operation.cancel();
                tracing::debug!(
                    target: "steadfast::timeout",
                    operation = ?id,
                    "operation cancelled"
                );
                true
            }
            None => false,
        }
    }

    /// Cancels every operation in progress and returns how many there were.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutManager;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let manager = TimeoutManager::new();
    /// let guards: Vec<_> = (0..3u32)
    ///     .map(|i| manager.start(i, Duration::from_secs(5)))
    ///     .collect();
    /// assert_eq!(manager.cancel_all(), 3);
    /// assert!(manager.is_empty());
    /// assert!(guards.iter().all(|g| g.is_cancelled()));
    /// # }
    /// ```
    pub fn cancel_all(&self) -> usize {
        // Take the operations out under the lock, wake their waiters after.
        let drained: Vec<Arc<Operation>> = self.registry.lock().drain().map(|(_, op)| op).collect();
        for operation in &drained {
            operation.cancel();
        }
        if !drained.is_empty() {
            tracing::debug!(
                target: "steadfast::timeout",
                count = drained.len(),
                "all operations cancelled"
            );
        }
        drained.len()
    }

    /// How much time operation `id` has left (zero once its deadline has
    /// passed), or `None` when no such operation is in progress.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutManager;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let manager = TimeoutManager::new();
    /// let _guard = manager.start("load".to_string(), Duration::from_secs(5));
    /// tokio::time::advance(Duration::from_secs(2)).await;
    /// assert_eq!(manager.remaining("load"), Some(Duration::from_secs(3)));
    /// assert_eq!(manager.remaining("save"), None);
    /// # }
    /// ```
    pub fn remaining<Q>(&self, id: &Q) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.deadline(id)
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    /// The deadline of operation `id`, or `None` when no such operation is
    /// in progress.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutManager;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let manager = TimeoutManager::new();
    /// let start = Instant::now();
    /// let _guard = manager.start(1u8, Duration::from_secs(5));
    /// assert_eq!(manager.deadline(&1), Some(start + Duration::from_secs(5)));
    /// # }
    /// ```
    pub fn deadline<Q>(&self, id: &Q) -> Option<Instant>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.registry.lock().get(id).map(|op| op.deadline())
    }

    /// Whether operation `id` is in progress.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutManager;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let manager = TimeoutManager::new();
    /// let guard = manager.start("a".to_string(), Duration::from_secs(1));
    /// assert!(manager.contains("a"));
    /// drop(guard);
    /// assert!(!manager.contains("a"));
    /// # }
    /// ```
    pub fn contains<Q>(&self, id: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.registry.lock().contains_key(id)
    }

    /// How many operations are in progress (including expired ones whose
    /// guards are still alive).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutManager;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let manager = TimeoutManager::new();
    /// let a = manager.start(1u8, Duration::from_secs(1));
    /// let b = manager.start(2u8, Duration::from_secs(1));
    /// assert_eq!(manager.len(), 2);
    /// drop(a);
    /// assert_eq!(manager.len(), 1);
    /// # drop(b);
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.registry.lock().len()
    }

    /// Whether no operation is in progress.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::timeout::TimeoutManager;
    /// assert!(TimeoutManager::<String>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.registry.lock().is_empty()
    }
}

/// A running operation of a [`TimeoutManager`], returned by
/// [`TimeoutManager::start`].
///
/// [`run`](OperationGuard::run) runs a future against the operation's
/// deadline; [`expired`](OperationGuard::expired) just waits for it.
/// Dropping the guard ends the operation: it is removed from the manager
/// (unless another operation has since been started under the same id).
///
/// # Cancellation
///
/// The futures of [`run`](OperationGuard::run) and
/// [`expired`](OperationGuard::expired) can be dropped at any time; dropping
/// `run`'s future drops the wrapped future. Neither ends the operation: only
/// dropping the guard, or cancelling through the manager, does.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::timeout::{TimeoutError, TimeoutManager};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let manager = TimeoutManager::new();
/// let guard = manager.start("compact".to_string(), Duration::from_secs(2));
/// let err = guard.run(std::future::pending::<()>()).await.unwrap_err();
/// assert!(matches!(err, TimeoutError::Elapsed { after, .. } if after == Duration::from_secs(2)));
/// # }
/// ```
#[must_use = "dropping the guard ends the operation at once"]
pub struct OperationGuard<K: OperationId = String> {
    registry: Arc<Registry<K>>,
    id: K,
    operation: Arc<Operation>,
}

impl<K: OperationId> Debug for OperationGuard<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperationGuard")
            .field("id", &self.id)
            .field("deadline", &self.operation.deadline())
            .field("cancelled", &self.operation.is_cancelled())
            .finish()
    }
}

impl<K: OperationId> OperationGuard<K> {
    /// The operation's id.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutManager;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let manager = TimeoutManager::new();
    /// let guard = manager.start(9u16, Duration::from_secs(1));
    /// assert_eq!(*guard.id(), 9);
    /// # }
    /// ```
    pub fn id(&self) -> &K {
        &self.id
    }

    /// The operation's current deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutManager;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let manager = TimeoutManager::new();
    /// let guard = manager.start(1u8, Duration::from_secs(4));
    /// assert_eq!(guard.deadline(), Instant::now() + Duration::from_secs(4));
    /// # }
    /// ```
    pub fn deadline(&self) -> Instant {
        self.operation.deadline()
    }

    /// How much time the operation has left (zero once its deadline has
    /// passed).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutManager;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let manager = TimeoutManager::new();
    /// let guard = manager.start(1u8, Duration::from_secs(4));
    /// tokio::time::advance(Duration::from_secs(5)).await;
    /// assert_eq!(guard.remaining(), Duration::ZERO);
    /// # }
    /// ```
    pub fn remaining(&self) -> Duration {
        self.deadline().saturating_duration_since(Instant::now())
    }

    /// Moves this operation's deadline `by` later, and returns the new
    /// deadline; the same as [`TimeoutManager::extend`] with this guard's id,
    /// but it always reaches this operation, even after it was replaced.
    ///
    /// # Errors
    ///
    /// - [`TimeoutError::Cancelled`] when the operation was cancelled or
    ///   replaced.
    /// - [`TimeoutError::Elapsed`] when its deadline has already passed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutManager;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let manager = TimeoutManager::new();
    /// let guard = manager.start(1u8, Duration::from_secs(4));
    /// guard.extend(Duration::from_secs(1)).unwrap();
    /// assert_eq!(guard.remaining(), Duration::from_secs(5));
    /// # }
    /// ```
    pub fn extend(&self, by: Duration) -> Result<Instant, TimeoutError> {
        match self.operation.extend(by) {
            Ok(deadline) => {
                tracing::debug!(
                    target: "steadfast::timeout",
                    operation = ?self.id,
                    ?by,
                    remaining = ?deadline.saturating_duration_since(Instant::now()),
                    "deadline extended"
                );
                Ok(deadline)
            }
            Err(ExtendRefused::Cancelled) => Err(self.cancelled_error()),
            Err(ExtendRefused::Expired { after }) => Err(self.elapsed_error(after)),
        }
    }

    /// Whether the operation was cancelled (through the manager, or by a new
    /// operation started under the same id).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutManager;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let manager = TimeoutManager::new();
    /// let guard = manager.start(1u8, Duration::from_secs(4));
    /// manager.cancel_all();
    /// assert!(guard.is_cancelled());
    /// # }
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.operation.is_cancelled()
    }

    /// Waits until the operation's deadline has passed, following any
    /// extension.
    ///
    /// Returns `Ok(())` once the (last) deadline has passed, at once if it
    /// already has; emits a `warn` event with target `"steadfast::timeout"`
    /// when it does.
    ///
    /// # Errors
    ///
    /// [`TimeoutError::Cancelled`] as soon as the operation is cancelled or
    /// replaced (at once if it already was).
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops waiting; the operation goes on.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutManager;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let manager = TimeoutManager::new();
    /// let start = Instant::now();
    /// let guard = manager.start(1u8, Duration::from_secs(3));
    /// guard.extend(Duration::from_secs(2)).unwrap();
    /// guard.expired().await.unwrap();
    /// assert_eq!(start.elapsed(), Duration::from_secs(5));
    /// # }
    /// ```
    pub async fn expired(&self) -> Result<(), TimeoutError> {
        loop {
            // Register for the cancellation wake-up before reading the state,
            // so that a cancellation after the read still wakes us.
            let cancelled = pin!(self.operation.cancelled.notified());
            let (is_cancelled, offset) = self.operation.load();
            if is_cancelled {
                return Err(self.cancelled_error());
            }
            let deadline = self.operation.deadline_at(offset);
            if Instant::now() >= deadline {
                tracing::warn!(
                    target: "steadfast::timeout",
                    operation = ?self.id,
                    after = ?offset,
                    "operation timed out"
                );
                return Ok(());
            }
            // Either way, read the state again: the deadline may have moved.
            tokio::select! {
                biased;
                () = cancelled => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Runs `future` until it completes, the operation's (possibly
    /// extended) deadline passes, or the operation is cancelled.
    ///
    /// The future is polled before the deadline is looked at, so a future
    /// that is ready completes even when the deadline has passed.
    ///
    /// # Errors
    ///
    /// - [`TimeoutError::Elapsed`] when the deadline passes first; `after`
    ///   is the time from the start of the operation to its last deadline.
    /// - [`TimeoutError::Cancelled`] when the operation is cancelled or
    ///   replaced first.
    ///
    /// # Cancellation
    ///
    /// Dropping the returned future drops `future`; when the deadline passes
    /// or the operation is cancelled, `future` is dropped before the error is
    /// returned. The operation itself lives on until the guard is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::timeout::TimeoutManager;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let manager = TimeoutManager::new();
    /// let bytes = manager
    ///     .start("download".to_string(), Duration::from_secs(10))
    ///     .run(async { vec![1u8, 2, 3] })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(bytes, [1, 2, 3]);
    /// assert!(manager.is_empty()); // the temporary guard is gone
    /// # }
    /// ```
    pub async fn run<F: IntoFuture>(&self, future: F) -> Result<F::Output, TimeoutError> {
        let future = pin!(future.into_future());
        let expired = pin!(self.expired());
        tokio::select! {
            biased;
            output = future => Ok(output),
            end = expired => Err(match end {
                Ok(()) => self.elapsed_error(self.operation.load().1),
                Err(err) => err,
            }),
        }
    }

    fn cancelled_error(&self) -> TimeoutError {
        TimeoutError::Cancelled {
            operation: self.id.to_string(),
        }
    }

    fn elapsed_error(&self, after: Duration) -> TimeoutError {
        TimeoutError::Elapsed {
            operation: Some(self.id.to_string()),
            after,
        }
    }
}

impl<K: OperationId> Drop for OperationGuard<K> {
    fn drop(&mut self) {
        let mut operations = self.registry.lock();
        let ours = operations
            .get(&self.id)
            .is_some_and(|current| Arc::ptr_eq(current, &self.operation));
        if ours {
            operations.remove(&self.id);
            drop(operations);
            tracing::trace!(
                target: "steadfast::timeout",
                operation = ?self.id,
                "operation ended"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_clamped_to_the_state_word() {
        assert_eq!(nanos(Duration::from_secs(1)), 1_000_000_000);
        assert_eq!(nanos(Duration::MAX), OFFSET_MASK);
        assert_eq!(nanos(Duration::from_nanos(OFFSET_MASK + 1)), OFFSET_MASK);
    }

    #[tokio::test(start_paused = true)]
    async fn extension_saturates_and_cancel_is_sticky() {
        let op = Operation::new(Instant::now(), Duration::MAX);
        let deadline = op.extend(Duration::MAX).ok().unwrap();
        assert!(deadline > Instant::now() + Duration::from_secs(86_400 * 365 * 29));
        assert!(op.cancel());
        assert!(!op.cancel());
        assert!(matches!(
            op.extend(Duration::from_secs(1)),
            Err(ExtendRefused::Cancelled)
        ));
        // The deadline survives the cancelled bit.
        assert_eq!(op.deadline(), deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_operation_cannot_be_extended() {
        let op = Operation::new(Instant::now(), Duration::from_secs(2));
        tokio::time::advance(Duration::from_secs(2)).await;
        match op.extend(Duration::from_secs(1)) {
            Err(ExtendRefused::Expired { after }) => assert_eq!(after, Duration::from_secs(2)),
            _ => panic!("an expired operation was extended"),
        }
    }
}
