//! [`MemoryStorage`]: an in-memory [`CheckpointStorage`] for tests, with
//! fault injection and a record of the calls it received (their types are in
//! [`testing`](super::testing)).
//!
//! Objects live in a `BTreeMap` behind an `Arc<RwLock<..>>`, so clones of a
//! storage share them and every write replaces an object in one step: a
//! reader sees the old object or the new one, never a mix.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::testing::{
    injected, lock_faults, Call, Decision, Effect, Fault, FaultState, Operation, StorageFaults,
};
use super::{
    check_range, validate_key, validate_prefix, CheckpointStorage, ObjectMeta, ObjectStream,
    ObjectWriter, Result, StorageError,
};

const TARGET: &str = "steadfast::storage";

#[derive(Debug, Clone)]
struct StoredObject {
    data: Bytes,
    last_modified: SystemTime,
}

impl StoredObject {
    fn meta(&self, key: &str) -> ObjectMeta {
        ObjectMeta {
            key: key.to_string(),
            size: self.data.len() as u64,
            last_modified: Some(self.last_modified),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<String, StoredObject>,
}

/// An in-memory [`CheckpointStorage`]: the mock that tests of everything
/// above the storage use.
///
/// Clones share the same objects, the same fault rules and the same call
/// record. Faults are injected through [`MemoryStorage::faults`]; the calls
/// received are read back with [`MemoryStorage::calls`] and
/// [`MemoryStorage::count`]. A call refused for an invalid key is neither
/// recorded nor shown to the fault rules.
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
/// let view = storage.clone();
/// storage.put("a/1", vec![1, 2, 3].into()).await?;
/// assert_eq!(view.list("a/").await?.len(), 1);
///
/// storage.faults().fail_nth(Operation::Get, 1);
/// assert!(view.get("a/1").await.is_err());
/// assert_eq!(view.get("a/1").await?, vec![1, 2, 3]);
/// assert_eq!(storage.count(Operation::Get), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct MemoryStorage {
    inner: Arc<RwLock<Inner>>,
    faults: Arc<Mutex<FaultState>>,
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let faults = lock_faults(&self.faults);
        f.debug_struct("MemoryStorage")
            .field("objects", &self.len())
            .field("fault_rules", &faults.rules.len())
            .field("calls", &faults.calls.len())
            .finish()
    }
}

impl MemoryStorage {
    /// An empty storage.
    ///
    /// # Examples
    ///
    /// ```
    /// let storage = steadfast::storage::MemoryStorage::new();
    /// assert!(storage.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// How many objects are stored.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::storage::MemoryStorage::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    /// Whether no object is stored.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::storage::MemoryStorage::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every stored key, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::storage::MemoryStorage::new().keys().is_empty());
    /// ```
    pub fn keys(&self) -> Vec<String> {
        self.read().objects.keys().cloned().collect()
    }

    /// The fault injection controls of this storage, shared by its clones.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::storage::MemoryStorage;
    /// use steadfast::storage::testing::Operation;
    ///
    /// let storage = MemoryStorage::new();
    /// storage.faults().fail_next(Operation::Put, 2);
    /// storage.faults().set_latency(Operation::Get, Duration::from_millis(20));
    /// ```
    pub fn faults(&self) -> StorageFaults {
        StorageFaults {
            state: Arc::clone(&self.faults),
        }
    }

    /// Every call received so far (since the last
    /// [`clear_calls`](MemoryStorage::clear_calls)), in order.
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
    /// storage.list("run/").await?;
    /// assert_eq!(storage.calls()[0].operation, Operation::List);
    /// assert_eq!(storage.calls()[0].key, "run/");
    /// # Ok(())
    /// # }
    /// ```
    pub fn calls(&self) -> Vec<Call> {
        lock_faults(&self.faults).calls.clone()
    }

    /// How many calls of `operation` were received (since the last
    /// [`clear_calls`](MemoryStorage::clear_calls)).
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
    /// storage.put("a", vec![].into()).await?;
    /// storage.put("b", vec![].into()).await?;
    /// assert_eq!(storage.count(Operation::Put), 2);
    /// assert_eq!(storage.count(Operation::Get), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn count(&self, operation: Operation) -> usize {
        lock_faults(&self.faults)
            .calls
            .iter()
            .filter(|c| c.operation == operation)
            .count()
    }

    /// The key and range of each [`get_range`](CheckpointStorage::get_range)
    /// received (since the last [`clear_calls`](MemoryStorage::clear_calls)),
    /// in order: what a test reads to check that a load read only the bytes
    /// it needed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{CheckpointStorage, MemoryStorage};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> steadfast::storage::Result<()> {
    /// let storage = MemoryStorage::new();
    /// storage.put("a", vec![0; 10].into()).await?;
    /// storage.get_range("a", 2..5).await?;
    /// assert_eq!(storage.ranges_read(), vec![("a".to_string(), 2..5)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ranges_read(&self) -> Vec<(String, Range<u64>)> {
        lock_faults(&self.faults).ranges.clone()
    }

    /// Forgets the calls recorded so far. Fault rules keep their state.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{CheckpointStorage, MemoryStorage};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> steadfast::storage::Result<()> {
    /// let storage = MemoryStorage::new();
    /// storage.put("a", vec![].into()).await?;
    /// storage.clear_calls();
    /// assert!(storage.calls().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn clear_calls(&self) {
        let mut faults = lock_faults(&self.faults);
        faults.calls.clear();
        faults.ranges.clear();
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A panic while the lock was held cannot leave the map half-updated:
        // every update is a single insert or remove.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn decide(&self, operation: Operation, key: &str) -> Decision {
        lock_faults(&self.faults).decide(operation, key)
    }

    /// Records the call, sleeps its latency and returns its injected fault,
    /// if any.
    async fn enter(&self, operation: Operation, key: &str) -> Option<Fault> {
        let decision = self.decide(operation, key);
        if !decision.latency.is_zero() {
            tokio::time::sleep(decision.latency).await;
        }
        decision.fault
    }

    /// Records the call, sleeps its latency and fails it if a fault fired.
    async fn enter_or_fail(&self, operation: Operation, key: &str) -> Result<()> {
        match self.enter(operation, key).await {
            Some(fault) => Err(injected(operation, key, fault)),
            None => Ok(()),
        }
    }

    fn store(&self, key: &str, data: Bytes, only_if_absent: bool) -> Result<ObjectMeta> {
        let object = StoredObject {
            data,
            last_modified: SystemTime::now(),
        };
        let meta = object.meta(key);
        let mut inner = self.write();
        if only_if_absent && inner.objects.contains_key(key) {
            return Err(StorageError::AlreadyExists {
                key: key.to_string(),
            });
        }
        inner.objects.insert(key.to_string(), object);
        drop(inner);
        tracing::debug!(target: TARGET, storage = "memory", key, size = meta.size, "object stored");
        Ok(meta)
    }

    fn lookup(&self, key: &str) -> Result<StoredObject> {
        self.read()
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| StorageError::NotFound {
                key: key.to_string(),
            })
    }
}

#[async_trait]
impl CheckpointStorage for MemoryStorage {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(key)?;
        self.enter_or_fail(Operation::Put, key).await?;
        self.store(key, data, false).map(drop)
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(key)?;
        self.enter_or_fail(Operation::PutIfAbsent, key).await?;
        self.store(key, data, true).map(drop)
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        validate_key(key)?;
        self.enter_or_fail(Operation::Get, key).await?;
        // A clone of `Bytes` shares the stored bytes: no copy.
        Ok(self.lookup(key)?.data)
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        self.enter_or_fail(Operation::Head, key).await?;
        Ok(self.lookup(key)?.meta(key))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.enter_or_fail(Operation::Delete, key).await?;
        if self.write().objects.remove(key).is_some() {
            tracing::debug!(target: TARGET, storage = "memory", key, "object deleted");
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        self.enter_or_fail(Operation::List, prefix).await?;
        Ok(self
            .read()
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, o)| o.meta(k))
            .collect())
    }

    async fn put_stream(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        validate_key(key)?;
        // The streamed write is one call, recorded now; its fault (if any)
        // shows on the first write (a failure) or on the commit (a torn
        // write), and its latency is slept at the commit.
        let decision = self.decide(Operation::PutStream, key);
        Ok(Box::new(MemoryWriter {
            storage: self.clone(),
            key: key.to_string(),
            buffer: Vec::new(),
            decision,
            failed: false,
        }))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        validate_key(key)?;
        lock_faults(&self.faults)
            .ranges
            .push((key.to_string(), range.clone()));
        self.enter_or_fail(Operation::GetRange, key).await?;
        let data = self.lookup(key)?.data;
        let (start, end) = check_range(key, &range, data.len() as u64)?;
        // A slice of `Bytes` shares the stored bytes: no copy.
        Ok(data.slice(start..end))
    }

    async fn get_stream(&self, key: &str) -> Result<ObjectStream> {
        validate_key(key)?;
        self.enter_or_fail(Operation::GetStream, key).await?;
        let object = self.lookup(key)?;
        let meta = object.meta(key);
        Ok(ObjectStream {
            meta,
            reader: Box::pin(std::io::Cursor::new(object.data)),
        })
    }
}

struct MemoryWriter {
    storage: MemoryStorage,
    key: String,
    buffer: Vec<u8>,
    decision: Decision,
    /// Set once an injected failure was returned: the write is lost.
    failed: bool,
}

impl MemoryWriter {
    fn injected_failure(&self) -> Option<StorageError> {
        match self.decision.fault {
            Some(fault) if fault.effect == Effect::Fail => {
                Some(injected(Operation::PutStream, &self.key, fault))
            }
            _ => None,
        }
    }
}

#[async_trait]
impl ObjectWriter for MemoryWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        if let Some(err) = self.injected_failure() {
            self.failed = true;
            self.buffer = Vec::new();
            return Err(err);
        }
        self.buffer.extend_from_slice(chunk);
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<ObjectMeta> {
        if !self.decision.latency.is_zero() {
            tokio::time::sleep(self.decision.latency).await;
        }
        if let Some(err) = self.injected_failure() {
            return Err(err);
        }
        if let Some(fault) = self.decision.fault {
            // A torn write: every byte was accepted, then the write "crashed"
            // before the object became visible. Nothing of it is kept.
            return Err(injected(Operation::PutStream, &self.key, fault));
        }
        let MemoryWriter {
            storage,
            key,
            buffer,
            ..
        } = *self;
        storage.store(&key, Bytes::from(buffer), false)
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
