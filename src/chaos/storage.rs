//! [`ChaosStorage`]: any [`CheckpointStorage`] with latency, errors,
//! cancelled calls, writes reported failed, and corrupt or torn reads.

use std::fmt;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, ReadBuf};

use super::error::Dropped;
use super::record::{ChaosRecorder, FaultKind};
use super::storage_config::StorageChaosConfig;
use super::switch::{ChaosSwitch, Dice};
use crate::storage::testing::Operation;
use crate::storage::{
    Bytes, CheckpointStorage, ObjectMeta, ObjectReader, ObjectStream, ObjectWriter, Result,
    StorageError,
};
use crate::ConfigError;

/// What one call suffers, drawn in a fixed order: latency, cancellation,
/// error, then a failed write (writes) or a corrupt and a torn read (reads).
#[derive(Debug, Default)]
struct Plan {
    latency: Option<Duration>,
    drop: bool,
    error: bool,
    failed_write: bool,
    /// Where to flip a bit (any number: taken modulo the bits read).
    corrupt: Option<u64>,
    /// Where to cut (any number: taken modulo the bytes read).
    torn: Option<u64>,
}

#[derive(Debug)]
struct Engine {
    config: StorageChaosConfig,
    switch: ChaosSwitch,
    recorder: ChaosRecorder,
    dice: Dice,
}

fn is_write(operation: Operation) -> bool {
    operation.is_write() || operation == Operation::Delete
}

fn is_read(operation: Operation) -> bool {
    matches!(
        operation,
        Operation::Get | Operation::GetStream | Operation::GetRange
    )
}

impl Engine {
    fn plan(&self, operation: Operation) -> Plan {
        if !self.switch.is_on() || !self.config.targets(operation) {
            return Plan::default();
        }
        let c = &self.config;
        let mut roll = self.dice.roll();
        let latency = roll
            .chance(c.latency_rate())
            .then(|| roll.delay(c.latency_range().0, c.latency_range().1));
        let drop = roll.chance(c.drop_rate());
        let error = !drop && roll.chance(c.error_rate());
        let mut plan = Plan {
            latency,
            drop,
            error,
            ..Plan::default()
        };
        if drop || error {
            return plan;
        }
        if is_write(operation) {
            plan.failed_write = roll.chance(c.failed_write_rate());
        }
        if is_read(operation) {
            plan.corrupt = roll.chance(c.corrupt_read_rate()).then(|| roll.number());
            plan.torn = roll.chance(c.torn_read_rate()).then(|| roll.number());
        }
        plan
    }

    fn record(&self, kind: FaultKind, operation: &'static str, key: &str) {
        self.recorder.record(kind, operation, key, None);
    }

    fn injected(&self, kind: FaultKind, operation: &'static str, key: &str) -> StorageError {
        self.record(kind, operation, key);
        StorageError::Injected {
            operation,
            key: key.to_string(),
            transient: true,
        }
    }

    /// The delay and the error of a call, before it reaches the storage.
    async fn enter(&self, plan: &Plan, operation: &'static str, key: &str) -> Result<()> {
        if let Some(latency) = plan.latency {
            self.recorder
                .record(FaultKind::Latency, operation, key, Some(latency));
            tokio::time::sleep(latency).await;
        }
        if plan.error {
            return Err(self.injected(FaultKind::Error, operation, key));
        }
        Ok(())
    }

    /// Polls `call` for `drop_after` (never, when zero), drops it, and
    /// returns the error the caller sees.
    async fn cancel<F: Future>(&self, operation: &'static str, key: &str, call: F) -> StorageError {
        let after = self.config.drop_after();
        if !after.is_zero() {
            let _ = tokio::time::timeout(after, call).await;
        }
        self.record(FaultKind::Dropped, operation, key);
        let dropped = Dropped { operation, after };
        StorageError::Backend {
            key: key.to_string(),
            message: dropped.to_string(),
            transient: true,
            source: Some(Box::new(dropped)),
        }
    }

    /// Runs `call` under the plan's delay, error and cancellation.
    async fn run<T, F>(&self, plan: &Plan, operation: &'static str, key: &str, call: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        self.enter(plan, operation, key).await?;
        if plan.drop {
            return Err(self.cancel(operation, key, call).await);
        }
        call.await
    }

    /// A write's outcome, reported failed when the plan says so.
    fn after_write<T>(&self, plan: &Plan, operation: &'static str, key: &str, out: T) -> Result<T> {
        if plan.failed_write {
            return Err(self.injected(FaultKind::FailedWrite, operation, key));
        }
        Ok(out)
    }

    /// A read's bytes, corrupted or torn when the plan says so.
    fn damage(&self, plan: &Plan, operation: &'static str, key: &str, data: Bytes) -> Bytes {
        let len = data.len() as u64;
        if len == 0 {
            return data;
        }
        let mut data = data;
        if let Some(at) = plan.corrupt {
            let bit = at % (len * 8);
            let mut bytes = data.to_vec();
            if let Some(byte) = usize::try_from(bit / 8).ok().and_then(|i| bytes.get_mut(i)) {
                *byte ^= 1 << (bit % 8);
                self.record(FaultKind::CorruptRead, operation, key);
            }
            data = Bytes::from(bytes);
        }
        if let Some(at) = plan.torn {
            let cut = usize::try_from(at % len).unwrap_or(0);
            self.record(FaultKind::TornRead, operation, key);
            data = data.slice(..cut);
        }
        data
    }
}

/// Any [`CheckpointStorage`] with faults injected into its calls: latency,
/// errors, cancelled calls, writes that land but are reported failed, and
/// reads that come back with a flipped bit or cut short — at the rates a
/// [`StorageChaosConfig`] gives, into the operations it selects, drawn from
/// a generator seeded with its seed.
///
/// What the wrapper proves is what the layers above do with such a
/// storage: a checkpoint's load must refuse a damaged shard or manifest
/// (its size and SHA-256 do not match), a save must roll back or report an
/// unknown outcome rather than commit a checkpoint whose shards are gone,
/// and every checkpoint visible once the faults stop must load and verify.
///
/// For each call of a selected operation, with the switch on, the faults
/// are drawn in this order, each only when its rate is above zero: a delay,
/// a cancellation, an error (the storage is not called), then a failed
/// write (writes) or a corrupt read and a torn read (reads). The same seed
/// and the same order of calls give the same faults; with the switch off,
/// every call goes straight to the inner storage, with no draw.
///
/// Clones share the generator, the switch and the recorder.
///
/// # Examples
///
/// ```
/// use steadfast::chaos::{ChaosStorage, FaultKind, StorageChaosConfig};
/// use steadfast::storage::{CheckpointStorage, MemoryStorage};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = StorageChaosConfig::builder().seed(5).corrupt_reads(1.0).build()?;
/// let storage = ChaosStorage::builder(MemoryStorage::new(), config).build()?;
/// storage.put("run/shard-0", vec![0u8; 16].into()).await?;
/// let read = storage.get("run/shard-0").await?;
/// assert_ne!(read, vec![0u8; 16]); // one bit flipped
/// assert_eq!(storage.recorder().count(FaultKind::CorruptRead), 1);
///
/// storage.switch().turn_off();
/// assert_eq!(storage.get("run/shard-0").await?, vec![0u8; 16]);
/// # Ok(())
/// # }
/// ```
pub struct ChaosStorage<S> {
    inner: S,
    engine: Arc<Engine>,
}

impl<S: Clone> Clone for ChaosStorage<S> {
    fn clone(&self) -> Self {
        ChaosStorage {
            inner: self.inner.clone(),
            engine: Arc::clone(&self.engine),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for ChaosStorage<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosStorage")
            .field("inner", &self.inner)
            .field("config", &self.engine.config)
            .field("switch", &self.engine.switch)
            .finish_non_exhaustive()
    }
}

impl<S> ChaosStorage<S> {
    /// A builder wrapping `inner`, injecting what `config` says.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosStorage, StorageChaosConfig};
    /// use steadfast::storage::MemoryStorage;
    /// let storage = ChaosStorage::builder(MemoryStorage::new(), StorageChaosConfig::default()).build()?;
    /// # let _ = storage;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder(inner: S, config: StorageChaosConfig) -> ChaosStorageBuilder<S> {
        ChaosStorageBuilder {
            inner,
            config,
            switch: None,
            recorder: None,
        }
    }

    /// The wrapped storage, reached without chaos.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosStorage, StorageChaosConfig};
    /// use steadfast::storage::MemoryStorage;
    /// let storage = ChaosStorage::builder(MemoryStorage::new(), StorageChaosConfig::default()).build()?;
    /// assert!(storage.inner().is_empty());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosStorage, StorageChaosConfig};
    /// use steadfast::storage::MemoryStorage;
    /// let storage = ChaosStorage::builder(MemoryStorage::new(), StorageChaosConfig::default()).build()?;
    /// assert_eq!(storage.config().error_rate(), 0.0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn config(&self) -> &StorageChaosConfig {
        &self.engine.config
    }

    /// The on/off switch.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosStorage, StorageChaosConfig};
    /// use steadfast::storage::MemoryStorage;
    /// let storage = ChaosStorage::builder(MemoryStorage::new(), StorageChaosConfig::default()).build()?;
    /// assert!(storage.switch().is_on());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn switch(&self) -> &ChaosSwitch {
        &self.engine.switch
    }

    /// The recorder of what was injected.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosStorage, StorageChaosConfig};
    /// use steadfast::storage::MemoryStorage;
    /// let storage = ChaosStorage::builder(MemoryStorage::new(), StorageChaosConfig::default()).build()?;
    /// assert_eq!(storage.recorder().total(), 0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn recorder(&self) -> &ChaosRecorder {
        &self.engine.recorder
    }
}

/// Builds a [`ChaosStorage`].
///
/// # Examples
///
/// ```
/// use steadfast::chaos::{ChaosRecorder, ChaosStorage, ChaosSwitch, StorageChaosConfig};
/// use steadfast::storage::MemoryStorage;
///
/// let switch = ChaosSwitch::new(true);
/// let recorder = ChaosRecorder::with_log(128);
/// let storage = ChaosStorage::builder(MemoryStorage::new(), StorageChaosConfig::builder().errors(0.1).build()?)
///     .switch(switch)
///     .recorder(recorder)
///     .build()?;
/// # let _ = storage;
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct ChaosStorageBuilder<S> {
    inner: S,
    config: StorageChaosConfig,
    switch: Option<ChaosSwitch>,
    recorder: Option<ChaosRecorder>,
}

impl<S> ChaosStorageBuilder<S> {
    /// A switch shared with other wrappers (default: one of its own, on
    /// when the config is `enabled`).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosStorage, ChaosSwitch, StorageChaosConfig};
    /// use steadfast::storage::MemoryStorage;
    /// let switch = ChaosSwitch::new(false);
    /// let storage = ChaosStorage::builder(MemoryStorage::new(), StorageChaosConfig::default())
    ///     .switch(switch)
    ///     .build()?;
    /// assert!(!storage.switch().is_on());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn switch(mut self, switch: ChaosSwitch) -> Self {
        self.switch = Some(switch);
        self
    }

    /// A recorder shared with other wrappers (default: one of its own).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosRecorder, ChaosStorage, StorageChaosConfig};
    /// use steadfast::storage::MemoryStorage;
    /// let recorder = ChaosRecorder::new();
    /// let storage = ChaosStorage::builder(MemoryStorage::new(), StorageChaosConfig::default())
    ///     .recorder(recorder)
    ///     .build()?;
    /// # let _ = storage;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn recorder(mut self, recorder: ChaosRecorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Checks the config and returns the wrapper.
    ///
    /// # Errors
    ///
    /// The config's [`ConfigError`] (see [`StorageChaosConfig::validate`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::{ChaosStorage, StorageChaosConfig};
    /// use steadfast::storage::MemoryStorage;
    /// assert!(ChaosStorage::builder(MemoryStorage::new(), StorageChaosConfig::default()).build().is_ok());
    /// ```
    pub fn build(self) -> Result<ChaosStorage<S>, ConfigError> {
        self.config.validate()?;
        let recorder = self.recorder.unwrap_or_default();
        recorder.seed_if_unset(self.config.seed());
        Ok(ChaosStorage {
            inner: self.inner,
            engine: Arc::new(Engine {
                switch: self
                    .switch
                    .unwrap_or_else(|| ChaosSwitch::new(self.config.enabled())),
                recorder,
                dice: Dice::new(self.config.seed()),
                config: self.config,
            }),
        })
    }
}

#[async_trait]
impl<S: CheckpointStorage> CheckpointStorage for ChaosStorage<S> {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let plan = self.engine.plan(Operation::Put);
        self.engine
            .run(&plan, "put", key, self.inner.put(key, data))
            .await?;
        self.engine.after_write(&plan, "put", key, ())
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<()> {
        let plan = self.engine.plan(Operation::PutIfAbsent);
        self.engine
            .run(
                &plan,
                "put_if_absent",
                key,
                self.inner.put_if_absent(key, data),
            )
            .await?;
        self.engine.after_write(&plan, "put_if_absent", key, ())
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let plan = self.engine.plan(Operation::Get);
        let data = self
            .engine
            .run(&plan, "get", key, self.inner.get(key))
            .await?;
        Ok(self.engine.damage(&plan, "get", key, data))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let plan = self.engine.plan(Operation::Head);
        self.engine
            .run(&plan, "head", key, self.inner.head(key))
            .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let plan = self.engine.plan(Operation::Delete);
        self.engine
            .run(&plan, "delete", key, self.inner.delete(key))
            .await?;
        self.engine.after_write(&plan, "delete", key, ())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let plan = self.engine.plan(Operation::List);
        self.engine
            .run(&plan, "list", prefix, self.inner.list(prefix))
            .await
    }

    async fn put_stream(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        let plan = self.engine.plan(Operation::PutStream);
        let writer = self
            .engine
            .run(&plan, "put_stream", key, self.inner.put_stream(key))
            .await?;
        if !plan.failed_write {
            return Ok(writer);
        }
        Ok(Box::new(FailingCommit {
            inner: writer,
            engine: Arc::clone(&self.engine),
            key: key.to_string(),
        }))
    }

    async fn get_stream(&self, key: &str) -> Result<ObjectStream> {
        let plan = self.engine.plan(Operation::GetStream);
        let stream = self
            .engine
            .run(&plan, "get_stream", key, self.inner.get_stream(key))
            .await?;
        let size = stream.meta.size;
        if size == 0 || (plan.corrupt.is_none() && plan.torn.is_none()) {
            return Ok(stream);
        }
        let flip = plan.corrupt.map(|at| {
            self.engine
                .record(FaultKind::CorruptRead, "get_stream", key);
            at % size.saturating_mul(8)
        });
        let end = plan.torn.map(|at| {
            self.engine.record(FaultKind::TornRead, "get_stream", key);
            at % size
        });
        Ok(ObjectStream {
            meta: stream.meta,
            reader: Box::pin(DamagedReader {
                inner: stream.reader,
                position: 0,
                flip,
                end,
                buffer: Vec::new(),
            }),
        })
    }

    async fn get_sized(&self, key: &str, size: u64) -> Result<Bytes> {
        let plan = self.engine.plan(Operation::GetStream);
        let data = self
            .engine
            .run(&plan, "get_sized", key, self.inner.get_sized(key, size))
            .await?;
        if let (Some(at), true) = (plan.torn, size > 0) {
            self.engine.record(FaultKind::TornRead, "get_sized", key);
            return Err(StorageError::LengthMismatch {
                key: key.to_string(),
                expected: size,
                actual: at % size,
            });
        }
        Ok(self.engine.damage(&plan, "get_sized", key, data))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let plan = self.engine.plan(Operation::GetRange);
        let data = self
            .engine
            .run(&plan, "get_range", key, self.inner.get_range(key, range))
            .await?;
        Ok(self.engine.damage(&plan, "get_range", key, data))
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        let plan = self.engine.plan(Operation::Head);
        self.engine
            .run(&plan, "exists", key, self.inner.exists(key))
            .await
    }

    async fn cleanup_temporary(&self, older_than: Duration) -> Result<u64> {
        self.inner.cleanup_temporary(older_than).await
    }
}

/// A streamed write whose commit lands and is reported failed.
struct FailingCommit {
    inner: Box<dyn ObjectWriter>,
    engine: Arc<Engine>,
    key: String,
}

#[async_trait]
impl ObjectWriter for FailingCommit {
    async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.inner.write(chunk).await
    }

    async fn write_buf(&mut self, chunk: Vec<u8>) -> Result<Vec<u8>> {
        self.inner.write_buf(chunk).await
    }

    async fn commit(self: Box<Self>) -> Result<ObjectMeta> {
        let FailingCommit { inner, engine, key } = *self;
        inner.commit().await?;
        Err(engine.injected(FaultKind::FailedWrite, "put_stream", &key))
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}

/// A reader that flips the bit at `flip` (counted from the object's
/// first bit) and ends at byte `end`, as if the object were that short.
struct DamagedReader {
    inner: ObjectReader,
    position: u64,
    flip: Option<u64>,
    end: Option<u64>,
    buffer: Vec<u8>,
}

impl AsyncRead for DamagedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let mut room = buf.remaining();
        if let Some(end) = this.end {
            let left = end.saturating_sub(this.position);
            room = room.min(usize::try_from(left).unwrap_or(usize::MAX));
        }
        if room == 0 {
            return Poll::Ready(Ok(()));
        }
        this.buffer.resize(room, 0);
        let mut read = ReadBuf::new(&mut this.buffer);
        ready!(this.inner.as_mut().poll_read(cx, &mut read))?;
        let n = read.filled().len();
        if let Some(bit) = this.flip {
            let byte = bit / 8;
            if (this.position..this.position + n as u64).contains(&byte) {
                let index = usize::try_from(byte - this.position).unwrap_or(usize::MAX);
                if let Some(b) = this.buffer.get_mut(index) {
                    *b ^= 1 << (bit % 8);
                }
            }
        }
        buf.put_slice(this.buffer.get(..n).unwrap_or_default());
        this.position += n as u64;
        Poll::Ready(Ok(()))
    }
}
