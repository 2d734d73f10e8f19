//! [`Stateful`]: the state a job registers with a
//! [`CheckpointManager`](super::CheckpointManager), snapshotted into bytes
//! for each checkpoint and restored from them; ready implementations for
//! `serde` types behind a lock, and [`JsonState`], a shared cell of a
//! `serde` value.
//!
//! The adapters write JSON through `serde_json`: readable, stable across
//! versions of the crate, and already a dependency. A state with a large
//! binary payload (weights, buffers) implements [`Stateful`] itself and
//! hands over its bytes as they are.

use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A snapshot or a restore of a registered state failed: which state, and
/// why.
///
/// An implementation of [`Stateful`] builds one with [`StateError::new`] or
/// [`StateError::from_error`]; the manager fills in the state's registered
/// name.
///
/// # Examples
///
/// ```
/// use steadfast::manager::StateError;
///
/// let err = StateError::new("the optimizer is mid-step");
/// assert_eq!(err.reason(), "the optimizer is mid-step");
/// let err = StateError::from_error(std::io::Error::other("disk gone"));
/// assert!(err.to_string().contains("disk gone"));
/// ```
#[derive(Debug, thiserror::Error)]
#[error("state {state:?}: {reason}")]
pub struct StateError {
    state: String,
    reason: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl StateError {
    /// A failure described by `reason`.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = steadfast::manager::StateError::new("not ready");
    /// assert_eq!(err.reason(), "not ready");
    /// ```
    pub fn new(reason: impl Into<String>) -> Self {
        StateError {
            state: String::new(),
            reason: reason.into(),
            source: None,
        }
    }

    /// A failure caused by `error` (kept as the
    /// [`source`](std::error::Error::source)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::error::Error;
    /// let err = steadfast::manager::StateError::from_error(std::io::Error::other("gone"));
    /// assert!(err.source().is_some());
    /// ```
    pub fn from_error(error: impl StdError + Send + Sync + 'static) -> Self {
        StateError {
            state: String::new(),
            reason: error.to_string(),
            source: Some(Box::new(error)),
        }
    }

    /// The registered name of the state (empty until the manager sets it).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::manager::StateError::new("x").state(), "");
    /// ```
    pub fn state(&self) -> &str {
        &self.state
    }

    /// Why it failed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::manager::StateError::new("x").reason(), "x");
    /// ```
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The same error, for the state registered as `name`.
    pub(crate) fn in_state(mut self, name: &str) -> Self {
        self.state = name.to_string();
        self
    }
}

/// State that a [`CheckpointManager`](super::CheckpointManager) snapshots
/// into each checkpoint and restores from one.
///
/// Object-safe: the manager holds registered states as `Arc<dyn Stateful>`.
/// [`snapshot`](Stateful::snapshot) runs on the caller of
/// [`step`](super::CheckpointManager::step) (or the schedule's task) while
/// it is blocked, so it should copy the state into bytes and nothing more;
/// writing them out happens in the background.
///
/// Ready implementations: `Mutex<T>` and `RwLock<T>` of any `serde` type
/// (JSON), [`JsonState<T>`], and `Arc<T>` of any `Stateful`.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use steadfast::manager::{StateError, Stateful};
///
/// struct Counter(AtomicU64);
///
/// impl Stateful for Counter {
///     fn snapshot(&self) -> Result<Vec<u8>, StateError> {
///         Ok(self.0.load(Ordering::SeqCst).to_le_bytes().to_vec())
///     }
///     fn restore(&self, bytes: &[u8]) -> Result<(), StateError> {
///         let bytes: [u8; 8] = bytes.try_into().map_err(|_| StateError::new("expected 8 bytes"))?;
///         self.0.store(u64::from_le_bytes(bytes), Ordering::SeqCst);
///         Ok(())
///     }
/// }
///
/// let c = Counter(AtomicU64::new(7));
/// let bytes = c.snapshot()?;
/// c.0.store(0, Ordering::SeqCst);
/// c.restore(&bytes)?;
/// assert_eq!(c.0.load(Ordering::SeqCst), 7);
/// # Ok::<(), StateError>(())
/// ```
pub trait Stateful: Send + Sync {
    /// The state's bytes as they are now.
    ///
    /// # Errors
    ///
    /// A [`StateError`] when the state cannot be copied; the checkpoint is
    /// then not saved (on any rank).
    fn snapshot(&self) -> Result<Vec<u8>, StateError>;

    /// Replaces the state with the one `bytes` hold (bytes a
    /// [`snapshot`](Stateful::snapshot) returned, verified by the manager).
    ///
    /// # Errors
    ///
    /// A [`StateError`] when the bytes cannot be taken in.
    fn restore(&self, bytes: &[u8]) -> Result<(), StateError>;

    /// A number that changes whenever the state does, or `None` (the
    /// default) when the state cannot tell.
    ///
    /// A manager that saves in chunks
    /// ([`chunking`](super::CheckpointManagerBuilder::chunking)) compares
    /// it with the revision the state had at the last committed save: the
    /// same `Some` value means unchanged, and the state is stored by
    /// reference to that checkpoint's chunks without
    /// [`snapshot`](Stateful::snapshot) being called. It is read before the
    /// snapshot, so a change racing with a save is seen at the next one.
    /// Return a value that never repeats for different contents (a counter
    /// bumped on every change, never reset, restores included).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::{JsonState, Stateful};
    /// let state = JsonState::new(1);
    /// let before = state.revision();
    /// state.set(2);
    /// assert_ne!(state.revision(), before);
    /// assert_eq!(std::sync::Mutex::new(1).revision(), None);
    /// ```
    fn revision(&self) -> Option<u64> {
        None
    }
}

impl<T: Stateful + ?Sized> Stateful for Arc<T> {
    fn snapshot(&self) -> Result<Vec<u8>, StateError> {
        (**self).snapshot()
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), StateError> {
        (**self).restore(bytes)
    }

    fn revision(&self) -> Option<u64> {
        (**self).revision()
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(value).map_err(StateError::from_error)
}

fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(StateError::from_error)
}

fn poisoned() -> StateError {
    StateError::new("its lock is poisoned (a thread panicked while changing it)")
}

/// JSON through `serde_json`. A poisoned lock refuses a snapshot (the value
/// may be half-changed); a restore replaces the value and clears the
/// poison.
impl<T: Serialize + DeserializeOwned + Send> Stateful for Mutex<T> {
    fn snapshot(&self) -> Result<Vec<u8>, StateError> {
        let guard = self.lock().map_err(|_| poisoned())?;
        to_json(&*guard)
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), StateError> {
        let value = from_json(bytes)?;
        *self.lock().unwrap_or_else(PoisonError::into_inner) = value;
        self.clear_poison();
        Ok(())
    }
}

/// JSON through `serde_json`, as for `Mutex<T>`.
impl<T: Serialize + DeserializeOwned + Send + Sync> Stateful for RwLock<T> {
    fn snapshot(&self) -> Result<Vec<u8>, StateError> {
        let guard = self.read().map_err(|_| poisoned())?;
        to_json(&*guard)
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), StateError> {
        let value = from_json(bytes)?;
        *self.write().unwrap_or_else(PoisonError::into_inner) = value;
        self.clear_poison();
        Ok(())
    }
}

/// A shared, cloneable cell holding a `serde` value, checkpointed as JSON:
/// register one clone with the manager and keep using another.
///
/// It counts a revision on every [`set`](Self::set),
/// [`update`](Self::update) and restore ([`Stateful::revision`]), so that a
/// manager saving in chunks stores an unchanged cell without snapshotting
/// it.
///
/// # Examples
///
/// ```
/// use steadfast::manager::{JsonState, Stateful};
///
/// let progress = JsonState::new(0u64);
/// let registered = progress.clone();
/// progress.update(|p| *p += 10);
/// let bytes = registered.snapshot()?;
/// progress.set(99);
/// registered.restore(&bytes)?;
/// assert_eq!(progress.get(), 10);
/// # Ok::<(), steadfast::manager::StateError>(())
/// ```
pub struct JsonState<T> {
    cell: Arc<Mutex<T>>,
    /// Bumped on every change (under the cell's lock).
    revision: Arc<AtomicU64>,
}

impl<T> JsonState<T> {
    /// A cell holding `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = steadfast::manager::JsonState::new(vec![1, 2]);
    /// assert_eq!(s.get(), vec![1, 2]);
    /// ```
    pub fn new(value: T) -> Self {
        JsonState {
            cell: Arc::new(Mutex::new(value)),
            revision: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A copy of the value.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::manager::JsonState::new(3).get(), 3);
    /// ```
    pub fn get(&self) -> T
    where
        T: Clone,
    {
        self.cell
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the value.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = steadfast::manager::JsonState::new(3);
    /// s.set(4);
    /// assert_eq!(s.get(), 4);
    /// ```
    pub fn set(&self, value: T) {
        let mut guard = self.cell.lock().unwrap_or_else(PoisonError::into_inner);
        *guard = value;
        self.revision.fetch_add(1, Ordering::AcqRel);
    }

    /// Changes the value in place under the cell's lock, and returns what
    /// `f` returns.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = steadfast::manager::JsonState::new(vec![1]);
    /// let len = s.update(|v| { v.push(2); v.len() });
    /// assert_eq!(len, 2);
    /// ```
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.cell.lock().unwrap_or_else(PoisonError::into_inner);
        // Counted before `f` runs: should it panic half-way, the value
        // still reads as changed.
        self.revision.fetch_add(1, Ordering::AcqRel);
        f(&mut guard)
    }
}

impl<T> Clone for JsonState<T> {
    fn clone(&self) -> Self {
        JsonState {
            cell: Arc::clone(&self.cell),
            revision: Arc::clone(&self.revision),
        }
    }
}

impl<T: Default> Default for JsonState<T> {
    fn default() -> Self {
        JsonState::new(T::default())
    }
}

impl<T: fmt::Debug> fmt::Debug for JsonState<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cell.lock() {
            Ok(value) => f.debug_tuple("JsonState").field(&*value).finish(),
            Err(_) => f.write_str("JsonState(<poisoned>)"),
        }
    }
}

impl<T: Serialize + DeserializeOwned + Send> Stateful for JsonState<T> {
    fn snapshot(&self) -> Result<Vec<u8>, StateError> {
        self.cell.snapshot()
    }

    fn restore(&self, bytes: &[u8]) -> Result<(), StateError> {
        let restored = self.cell.restore(bytes);
        self.revision.fetch_add(1, Ordering::AcqRel);
        restored
    }

    fn revision(&self) -> Option<u64> {
        Some(self.revision.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stateful_is_object_safe_and_shareable() {
        fn check<T: Send + Sync>() {}
        check::<Arc<dyn Stateful>>();
        check::<JsonState<Vec<u8>>>();
        let s: Arc<dyn Stateful> = Arc::new(Mutex::new(5u32));
        assert_eq!(s.snapshot().unwrap(), b"5");
    }

    #[test]
    fn locks_round_trip_through_json() {
        let m = Mutex::new(vec![1u8, 2]);
        let bytes = m.snapshot().unwrap();
        *m.lock().unwrap() = vec![];
        m.restore(&bytes).unwrap();
        assert_eq!(*m.lock().unwrap(), vec![1, 2]);

        let r = RwLock::new(String::from("a"));
        let bytes = r.snapshot().unwrap();
        r.restore(br#""b""#).unwrap();
        assert_eq!(*r.read().unwrap(), "b");
        r.restore(&bytes).unwrap();
        assert_eq!(*r.read().unwrap(), "a");
    }

    #[test]
    fn bad_bytes_are_an_error_and_change_nothing() {
        let m = Mutex::new(3u32);
        let err = m.restore(b"not json").unwrap_err();
        assert!(err.source().is_some());
        assert_eq!(*m.lock().unwrap(), 3);
        assert_eq!(err.in_state("s").state(), "s");
    }

    #[test]
    fn a_json_state_counts_its_changes() {
        let s = JsonState::new(1u32);
        let other = s.clone();
        let r0 = s.revision().unwrap();
        assert_eq!(s.revision(), Some(r0));
        other.set(2);
        let r1 = s.revision().unwrap();
        assert!(r1 > r0);
        s.update(|v| *v += 1);
        let r2 = s.revision().unwrap();
        assert!(r2 > r1);
        let bytes = s.snapshot().unwrap();
        assert_eq!(s.revision(), Some(r2));
        s.restore(&bytes).unwrap();
        assert!(s.revision().unwrap() > r2);
        let shared: Arc<dyn Stateful> = Arc::new(s.clone());
        assert_eq!(shared.revision(), s.revision());
        assert_eq!(Mutex::new(1).revision(), None);
    }

    #[test]
    fn a_poisoned_lock_refuses_a_snapshot_and_a_restore_heals_it() {
        let m = Arc::new(Mutex::new(1u32));
        let m2 = Arc::clone(&m);
        let _ = std::thread::spawn(move || {
            let _guard = m2.lock().unwrap();
            panic!("poison");
        })
        .join();
        assert!(m.snapshot().is_err());
        m.restore(b"2").unwrap();
        assert_eq!(m.snapshot().unwrap(), b"2");
    }
}
