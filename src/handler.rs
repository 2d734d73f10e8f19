//! One handler for the three things a fault-tolerant job does around its
//! checkpoints: run an operation with retry, run it with a timeout, and roll
//! back what a failed save wrote.
//!
//! [`FaultToleranceHandler`] bundles a storage, a [`RetryPolicy`] and a
//! [`TimeoutHandler`]. [`execute_with_retry`](FaultToleranceHandler::execute_with_retry)
//! and [`execute_with_timeout`](FaultToleranceHandler::execute_with_timeout)
//! return the retry and timeout futures themselves, so they cost what those
//! cost. [`rollback`](FaultToleranceHandler::rollback) removes a single
//! object or a whole multi-shard checkpoint: the manifest first, so that the
//! checkpoint stops being visible, then every object found by listing its
//! prefix directly under `NAME/` (never by guessing rank numbers; keys
//! further down belong to other names). What could not be deleted is in
//! the returned [`RollbackReport`] and logged at error level with target
//! `"steadfast::checkpoint"`.
//!
//! [`CheckpointRollbackManager`] saves one object whose bytes an operation
//! produces: the operation runs under retry, the bytes are written
//! atomically under retry, and on any failure nothing partial remains and the
//! previous version of the key stays as it was.

use std::fmt::Display;
use std::future::{Future, IntoFuture};
use std::time::Duration;

use tracing::Instrument;

use crate::checkpoint::trace;
use crate::checkpoint::{delete_object, describe, remove_checkpoint, CheckpointError};
use crate::retry::{ByTransient, NoHook, Retry, RetryPolicy, Transient};
use crate::storage::{validate_key, CheckpointStorage, ObjectMeta, StorageError};
use crate::timeout::{Timed, TimeoutHandler};

pub use crate::checkpoint::RollbackReport;

const TARGET: &str = "steadfast::checkpoint";

/// What [`FaultToleranceHandler::rollback`] removes.
///
/// # Examples
///
/// ```
/// use steadfast::handler::RollbackTarget;
///
/// let one = RollbackTarget::file("models/latest.bin");
/// let all = RollbackTarget::checkpoint("run-7/step-1200");
/// assert_eq!(one, RollbackTarget::File("models/latest.bin".into()));
/// assert_eq!(all, RollbackTarget::Checkpoint("run-7/step-1200".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackTarget {
    /// A single object, by key.
    File(String),
    /// A multi-shard checkpoint, by name: its manifest and every object
    /// directly under `NAME/`.
    Checkpoint(String),
}

impl RollbackTarget {
    /// A single object.
    ///
    /// # Examples
    ///
    /// ```
    /// let t = steadfast::handler::RollbackTarget::file("a.bin");
    /// assert!(matches!(t, steadfast::handler::RollbackTarget::File(_)));
    /// ```
    pub fn file(key: impl Into<String>) -> Self {
        RollbackTarget::File(key.into())
    }

    /// A multi-shard checkpoint.
    ///
    /// # Examples
    ///
    /// ```
    /// let t = steadfast::handler::RollbackTarget::checkpoint("step-5");
    /// assert!(matches!(t, steadfast::handler::RollbackTarget::Checkpoint(_)));
    /// ```
    pub fn checkpoint(name: impl Into<String>) -> Self {
        RollbackTarget::Checkpoint(name.into())
    }
}

/// Retry, timeout and rollback around a checkpoint storage.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::handler::{FaultToleranceHandler, RollbackTarget};
/// use steadfast::retry::RetryPolicy;
/// use steadfast::storage::{CheckpointStorage, MemoryStorage};
/// use steadfast::timeout::TimeoutHandler;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let storage = MemoryStorage::new();
/// let handler = FaultToleranceHandler::new(storage.clone(), RetryPolicy::default(), TimeoutHandler::default());
///
/// let mut calls = 0;
/// let value = handler
///     .execute_with_retry(|| {
///         calls += 1;
///         let n = calls;
///         async move {
///             if n < 2 {
///                 Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
///             } else {
///                 Ok(n)
///             }
///         }
///     })
///     .await?;
/// assert_eq!(value, 2);
///
/// let quick = handler.execute_with_timeout(async { 5 }, Duration::from_secs(1)).await?;
/// assert_eq!(quick, 5);
///
/// storage.put("tmp/partial.bin", vec![1, 2, 3].into()).await?;
/// let report = handler.rollback(RollbackTarget::file("tmp/partial.bin")).await;
/// assert_eq!(report.deleted, ["tmp/partial.bin"]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FaultToleranceHandler<S> {
    storage: S,
    retry: RetryPolicy,
    timeouts: TimeoutHandler,
}

impl<S: CheckpointStorage> FaultToleranceHandler<S> {
    /// A handler over `storage`, retrying as `retry` says and bounding calls
    /// with `timeouts`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::handler::FaultToleranceHandler;
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::MemoryStorage;
    /// use steadfast::timeout::TimeoutHandler;
    ///
    /// let handler = FaultToleranceHandler::new(MemoryStorage::new(), RetryPolicy::default(), TimeoutHandler::default());
    /// assert_eq!(handler.retry_policy().max_retries(), 3);
    /// ```
    pub fn new(storage: S, retry: RetryPolicy, timeouts: TimeoutHandler) -> Self {
        FaultToleranceHandler {
            storage,
            retry,
            timeouts,
        }
    }

    /// The storage.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::handler::FaultToleranceHandler;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::timeout::TimeoutHandler;
    /// let handler = FaultToleranceHandler::new(MemoryStorage::new(), RetryPolicy::default(), TimeoutHandler::default());
    /// assert!(handler.storage().is_empty());
    /// ```
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The retry policy.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::handler::FaultToleranceHandler;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::timeout::TimeoutHandler;
    /// let handler = FaultToleranceHandler::new(MemoryStorage::new(), RetryPolicy::no_retry(), TimeoutHandler::default());
    /// assert_eq!(handler.retry_policy().max_retries(), 0);
    /// ```
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The timeout handler.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use steadfast::handler::FaultToleranceHandler;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # use steadfast::timeout::TimeoutHandler;
    /// let handler = FaultToleranceHandler::new(MemoryStorage::new(), RetryPolicy::default(), TimeoutHandler::default());
    /// assert_eq!(handler.timeouts().default_timeout(), Duration::from_secs(600));
    /// ```
    pub fn timeouts(&self) -> &TimeoutHandler {
        &self.timeouts
    }

    /// Runs `operation` under the handler's retry policy: transient errors
    /// (by [`Transient`]) are retried with backoff, others end it at once.
    /// Awaiting the returned [`Retry`] gives the value, or a
    /// [`RetryError`](crate::retry::RetryError) with the last error and the
    /// number of attempts; `.when(..)` and `.notify(..)` work on it as on any
    /// retry.
    ///
    /// # Cancellation
    ///
    /// Dropping the future cancels the attempt in flight; no further attempt
    /// starts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io;
    /// use steadfast::handler::FaultToleranceHandler;
    /// use steadfast::retry::{GiveUp, RetryPolicy};
    /// use steadfast::storage::MemoryStorage;
    /// use steadfast::timeout::TimeoutHandler;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let handler = FaultToleranceHandler::new(MemoryStorage::new(), RetryPolicy::default(), TimeoutHandler::default());
    /// let err = handler
    ///     .execute_with_retry(|| async { Err::<(), _>(io::Error::from(io::ErrorKind::NotFound)) })
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.attempts(), 1); // NotFound is not transient
    /// assert_eq!(err.reason(), GiveUp::NotTransient);
    /// # }
    /// ```
    pub fn execute_with_retry<F, Fut, T, E>(
        &self,
        operation: F,
    ) -> Retry<F, Fut, ByTransient, NoHook>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Transient + Display,
    {
        self.retry.retry(operation)
    }

    /// Runs `operation` until it completes or `timeout` has passed. Awaiting
    /// the returned [`Timed`] gives the operation's output, or
    /// [`TimeoutError::Elapsed`](crate::timeout::TimeoutError::Elapsed).
    ///
    /// # Cancellation
    ///
    /// Dropping the future drops (and so cancels) the operation; so does the
    /// timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::handler::FaultToleranceHandler;
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::MemoryStorage;
    /// use steadfast::timeout::{TimeoutError, TimeoutHandler};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let handler = FaultToleranceHandler::new(MemoryStorage::new(), RetryPolicy::default(), TimeoutHandler::default());
    /// let slow = handler
    ///     .execute_with_timeout(tokio::time::sleep(Duration::from_secs(60)), Duration::from_secs(1))
    ///     .await;
    /// assert!(matches!(slow, Err(TimeoutError::Elapsed { .. })));
    /// # }
    /// ```
    pub fn execute_with_timeout<F: IntoFuture>(
        &self,
        operation: F,
        timeout: Duration,
    ) -> Timed<F::IntoFuture> {
        self.timeouts.run(timeout, operation)
    }

    /// Removes what a failed save wrote.
    ///
    /// - [`RollbackTarget::File`]: deletes the object.
    /// - [`RollbackTarget::Checkpoint`]: deletes the manifest first (the
    ///   checkpoint stops being visible), then every object found by listing
    ///   `NAME/` that lies directly under it, whatever its name (keys further
    ///   down, such as `NAME/x/...`, belong to other names and are left
    ///   alone). If the manifest cannot be deleted, the
    ///   shards are left alone so that the still-visible checkpoint stays
    ///   loadable.
    ///
    /// Deletes are retried under the retry policy. Nothing fails silently:
    /// each object that still cannot be deleted (or a prefix that cannot be
    /// listed, or an invalid key) is in the report's `failed` and logged at
    /// error level with target `"steadfast::checkpoint"`.
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the deletes where they are. A checkpoint's
    /// manifest goes first, so it is left either whole or no longer visible.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::handler::{FaultToleranceHandler, RollbackTarget};
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::{Bytes, CheckpointStorage, MemoryStorage};
    /// use steadfast::timeout::TimeoutHandler;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let storage = MemoryStorage::new();
    /// storage.put("ckpt/shard-a.bin", vec![1].into()).await?;
    /// storage.put("ckpt/shard-b.bin", vec![2].into()).await?;
    /// storage.put("ckpt/metadata.json", Bytes::from_static(b"{}")).await?;
    /// let handler = FaultToleranceHandler::new(storage.clone(), RetryPolicy::default(), TimeoutHandler::default());
    /// let report = handler.rollback(RollbackTarget::checkpoint("ckpt")).await;
    /// assert_eq!(report.deleted[0], "ckpt/metadata.json");
    /// assert_eq!(report.deleted.len(), 3);
    /// assert!(storage.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn rollback(&self, target: RollbackTarget) -> RollbackReport {
        let (kind, name) = match &target {
            RollbackTarget::File(key) => ("object", key.as_str()),
            RollbackTarget::Checkpoint(name) => ("checkpoint", name.as_str()),
        };
        // The same span as a checkpoint save's rollback (`crate::spans`).
        let span = tracing::info_span!(
            target: TARGET,
            "steadfast.checkpoint.rollback",
            name,
            target = kind,
            deleted = tracing::field::Empty,
            failed = tracing::field::Empty,
        );
        let report = self.rollback_steps(target).instrument(span.clone()).await;
        trace::record_rollback(&span, &report);
        report
    }

    /// [`rollback`](Self::rollback), inside its span.
    async fn rollback_steps(&self, target: RollbackTarget) -> RollbackReport {
        let mut report = RollbackReport::default();
        match &target {
            RollbackTarget::File(key) => {
                tracing::info!(target: TARGET, key = %key, "rolling back an object");
                delete_object(&self.storage, &self.retry, key, &mut report).await;
            }
            RollbackTarget::Checkpoint(name) => {
                tracing::info!(target: TARGET, name = %name, "rolling back a checkpoint");
                let _ = remove_checkpoint(&self.storage, &self.retry, name, &mut report).await;
            }
        }
        if report.is_complete() {
            tracing::info!(target: TARGET, ?target, deleted = report.deleted.len(), "rollback complete");
        } else {
            tracing::error!(
                target: TARGET,
                ?target,
                deleted = report.deleted.len(),
                failed = ?report.failed.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
                "rollback incomplete"
            );
        }
        report
    }
}

/// Saves single objects so that a failure never damages what was there.
///
/// [`save_with_rollback`](Self::save_with_rollback) runs the operation that
/// produces the bytes under retry, then writes them under retry with a
/// streaming, atomic write: the new version appears whole or not at all. On
/// any failure the write is aborted, and the previous version of the key
/// stays intact.
///
/// # Examples
///
/// ```
/// use steadfast::handler::CheckpointRollbackManager;
/// use steadfast::retry::RetryPolicy;
/// use steadfast::storage::{CheckpointStorage, MemoryStorage};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let storage = MemoryStorage::new();
/// let manager = CheckpointRollbackManager::new(storage.clone(), RetryPolicy::default());
/// manager
///     .save_with_rollback("model.bin", || async { Ok::<_, std::io::Error>(vec![1, 2, 3]) })
///     .await?;
/// assert_eq!(storage.get("model.bin").await?, vec![1, 2, 3]);
///
/// // Producing the next version fails: the first one stays.
/// let failed = manager
///     .save_with_rollback("model.bin", || async {
///         Err::<Vec<u8>, _>(std::io::Error::other("out of memory"))
///     })
///     .await;
/// assert!(failed.is_err());
/// assert_eq!(storage.get("model.bin").await?, vec![1, 2, 3]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointRollbackManager<S> {
    storage: S,
    retry: RetryPolicy,
    chunk_size: usize,
}

impl<S: CheckpointStorage> CheckpointRollbackManager<S> {
    /// A manager writing to `storage`, retrying as `retry` says.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::handler::CheckpointRollbackManager;
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::MemoryStorage;
    ///
    /// let manager = CheckpointRollbackManager::new(MemoryStorage::new(), RetryPolicy::default());
    /// assert!(manager.storage().is_empty());
    /// ```
    pub fn new(storage: S, retry: RetryPolicy) -> Self {
        CheckpointRollbackManager {
            storage,
            retry,
            chunk_size: 1024 * 1024,
        }
    }

    /// The storage.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::handler::CheckpointRollbackManager;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// let manager = CheckpointRollbackManager::new(MemoryStorage::new(), RetryPolicy::default());
    /// assert_eq!(manager.storage().len(), 0);
    /// ```
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Produces bytes with `save_op` (under retry) and stores them under
    /// `key` (atomically, under retry). Returns the stored object's
    /// metadata.
    ///
    /// On any failure nothing partial remains under `key`: the previous
    /// version, if any, is left exactly as it was, and the failed write is
    /// aborted. The one failure that can leave the new version in place is
    /// one the storage reports after making it visible (on
    /// [`LocalFsStorage`](crate::storage::LocalFsStorage), a failed flush of
    /// the directory after the rename); the key then holds the new version,
    /// whole.
    ///
    /// # Errors
    ///
    /// - [`CheckpointError::InvalidName`] for an invalid key (before
    ///   anything runs);
    /// - [`CheckpointError::SaveFailed`] naming the key (its `failed_ranks`
    ///   is empty) when `save_op` or the write still fails after retries;
    ///   the source is the [`RetryError`](crate::retry::RetryError) with the
    ///   cause: a `RetryError<E>` when `save_op` failed, a
    ///   `RetryError<StorageError>` when the write did.
    ///
    /// # Cancellation
    ///
    /// Dropping the future aborts the write in flight (the storage discards
    /// it); the previous version stays.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::CheckpointError;
    /// use steadfast::handler::CheckpointRollbackManager;
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::MemoryStorage;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let manager = CheckpointRollbackManager::new(MemoryStorage::new(), RetryPolicy::default());
    /// let err = manager
    ///     .save_with_rollback("state.json", || async {
    ///         Err::<Vec<u8>, _>(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
    ///     })
    ///     .await
    ///     .unwrap_err();
    /// assert!(matches!(err, CheckpointError::SaveFailed { ref name, .. } if name == "state.json"));
    /// # }
    /// ```
    pub async fn save_with_rollback<F, Fut, E>(
        &self,
        key: &str,
        save_op: F,
    ) -> Result<ObjectMeta, CheckpointError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, E>>,
        E: Transient + std::error::Error + Send + Sync + 'static,
    {
        // The same span as a checkpoint save (`crate::spans`).
        let span = tracing::info_span!(
            target: TARGET,
            "steadfast.checkpoint.save",
            name = key,
            bytes = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let saved = self.save_steps(key, save_op).instrument(span.clone()).await;
        trace::record_outcome(&span, &saved, |meta| meta.size);
        saved
    }

    /// [`save_with_rollback`](Self::save_with_rollback), inside its span.
    async fn save_steps<F, Fut, E>(
        &self,
        key: &str,
        save_op: F,
    ) -> Result<ObjectMeta, CheckpointError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, E>>,
        E: Transient + std::error::Error + Send + Sync + 'static,
    {
        validate_key(key).map_err(|source| CheckpointError::InvalidName {
            name: key.to_string(),
            source,
        })?;
        let bytes = match self.retry.retry(save_op).await {
            Ok(bytes) => bytes,
            Err(e) => {
                let reason = format!("producing the bytes: {}", describe(&e));
                tracing::error!(target: TARGET, key, reason = %reason, "save failed; the previous version is kept");
                return Err(CheckpointError::SaveFailed {
                    name: key.to_string(),
                    failed_ranks: Vec::new(),
                    reason,
                    source: Some(Box::new(e)),
                });
            }
        };
        let bytes = &bytes;
        let written = self
            .retry
            .retry(|| self.write_once(key, bytes))
            .notify(|attempt: u32, error: &StorageError, delay: Duration| {
                tracing::debug!(target: TARGET, key, attempt, delay = ?delay, error = %error, "writing failed; retrying");
            })
            .await;
        match written {
            Ok(meta) => {
                tracing::info!(target: TARGET, key, size = meta.size, "saved");
                Ok(meta)
            }
            Err(e) => {
                let reason = format!("writing {key:?}: {}", describe(&e));
                tracing::error!(target: TARGET, key, reason = %reason, "save failed; the previous version is kept");
                Err(CheckpointError::SaveFailed {
                    name: key.to_string(),
                    failed_ranks: Vec::new(),
                    reason,
                    source: Some(Box::new(e)),
                })
            }
        }
    }

    /// One atomic write of `bytes` under `key`, aborted on failure.
    async fn write_once(&self, key: &str, bytes: &[u8]) -> Result<ObjectMeta, StorageError> {
        let mut writer = self.storage.put_stream(key).await?;
        let mut written = Ok(());
        for chunk in bytes.chunks(self.chunk_size) {
            written = writer.write(chunk).await;
            if written.is_err() {
                break;
            }
        }
        if let Err(e) = written {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(target: TARGET, key, error = %abort, "aborting a failed write failed");
            }
            return Err(e);
        }
        writer.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    #[test]
    fn handlers_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<FaultToleranceHandler<MemoryStorage>>();
        check::<FaultToleranceHandler<std::sync::Arc<dyn CheckpointStorage>>>();
        check::<CheckpointRollbackManager<MemoryStorage>>();
        check::<RollbackTarget>();
        check::<RollbackReport>();
    }
}
