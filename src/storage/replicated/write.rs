//! Replicated writes: `put`, `put_stream`, `delete` and `cleanup_temporary`
//! fan out to every replica and succeed once W acknowledge; the writes
//! still running go on in background tasks. `put_if_absent` asks the
//! replicas one after the other, in their fixed order, until one creates
//! the copy or has one (the arbiter: two writers of one key race on the
//! same replica first), then the others at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use futures::stream::{FuturesUnordered, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::envelope::{self, seal, Footer};
use super::{count, ConsistencyLevel, ReplicatedStorage, Turn, TARGET};
use crate::storage::{
    validate_key, Bytes, ObjectMeta, ObjectWriter, ReplicaFailure, Result, StorageError,
};

/// A replica's write running in its own task, so that it can outlive the
/// call that started it.
type WriteTask = (usize, JoinHandle<Result<()>>);

fn join_failure(key: &str, operation: &'static str, e: tokio::task::JoinError) -> StorageError {
    StorageError::Io {
        key: key.to_string(),
        operation,
        source: std::io::Error::other(format!("the replica's write task failed: {e}")),
    }
}

impl ReplicatedStorage {
    /// Runs `write` on the replica of `turn`, once the writes before it
    /// there ended, in a task counted as a background write until it ends;
    /// records the replica's success or failure.
    ///
    /// Writes of one key to one replica run in the order they took their
    /// turns: a write still running in the background when the next one
    /// starts (a slow replica) cannot land after it.
    fn spawn_write<F>(&self, mut turn: Turn, operation: &'static str, write: F) -> WriteTask
    where
        F: Future<Output = Result<()>> + Send + 'static,
    {
        let guard = self.inner.writes.start();
        let inner = Arc::clone(&self.inner);
        let (replica, key) = (turn.replica, turn.key.clone());
        let task = async move {
            turn.wait().await;
            let result = write.await;
            drop(turn);
            inner.record(replica, result.is_ok());
            if let Err(e) = &result {
                tracing::debug!(
                    target: TARGET,
                    replica = %inner.name(replica),
                    operation,
                    key = %key,
                    error = %e,
                    "replica write failed"
                );
            }
            drop(guard);
            result
        };
        // Inside the caller's span (a checkpoint save's write), so that the
        // replica writes stay in the save's trace.
        let handle = tokio::spawn(task.instrument(tracing::Span::current()));
        (replica, handle)
    }

    /// Waits until the tasks' replicas make a write quorum (the others go on
    /// in the background), or until they no longer can.
    async fn acknowledge(
        &self,
        operation: &'static str,
        key: &str,
        tasks: Vec<WriteTask>,
        failures: Vec<ReplicaFailure>,
    ) -> Result<()> {
        let inner = &self.inner;
        self.acknowledge_by(
            operation,
            key,
            tasks,
            failures,
            inner.write_quorum,
            |acked| inner.distinct(acked),
        )
        .await
    }

    /// Waits until the tasks' replicas weigh `needed` (as `weigh` counts
    /// them: every replica, or distinct domains), or until they no longer
    /// can.
    async fn acknowledge_by(
        &self,
        operation: &'static str,
        key: &str,
        tasks: Vec<WriteTask>,
        mut failures: Vec<ReplicaFailure>,
        needed: usize,
        weigh: impl Fn(&[usize]) -> usize,
    ) -> Result<()> {
        let met = |replicas: &[usize]| weigh(replicas) >= needed;
        let inner = &self.inner;
        let mut waiting: Vec<usize> = tasks.iter().map(|(i, _)| *i).collect();
        let mut pending: FuturesUnordered<_> = tasks
            .into_iter()
            .map(|(i, handle)| async move { (i, handle.await) })
            .collect();
        let mut acked = Vec::new();
        loop {
            if met(&acked) {
                return Ok(());
            }
            let possible: Vec<usize> = acked.iter().chain(&waiting).copied().collect();
            if !met(&possible) {
                break;
            }
            let Some((i, joined)) = pending.next().await else {
                break;
            };
            waiting.retain(|&w| w != i);
            match joined {
                Ok(Ok(())) => acked.push(i),
                Ok(Err(e)) => failures.push(inner.failure(i, e)),
                Err(e) => failures.push(inner.failure(i, join_failure(key, operation, e))),
            }
        }
        tracing::warn!(
            target: TARGET,
            operation,
            key,
            acknowledged = acked.len(),
            needed,
            "a replicated write did not reach its quorum"
        );
        Err(StorageError::QuorumNotReached {
            operation,
            key: key.to_string(),
            needed: count(needed),
            succeeded: count(weigh(&acked)),
            failures: failures.into(),
        })
    }

    pub(super) async fn put_replicated(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(key)?;
        let stored = seal(&data);
        let n = self.inner.replicas.len();
        let tasks = Turn::take_many(&self.inner, 0..n, key)
            .into_iter()
            .map(|turn| {
                let slot = &self.inner.replicas[turn.replica];
                let (storage, key_owned, stored) =
                    (Arc::clone(&slot.storage), key.to_string(), stored.clone());
                self.spawn_write(
                    turn,
                    "put",
                    async move { storage.put(&key_owned, stored).await },
                )
            })
            .collect();
        self.acknowledge("put", key, tasks, Vec::new()).await
    }

    pub(super) async fn delete_replicated(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let n = self.inner.replicas.len();
        let tasks = Turn::take_many(&self.inner, 0..n, key)
            .into_iter()
            .map(|turn| {
                let slot = &self.inner.replicas[turn.replica];
                let (storage, key_owned) = (Arc::clone(&slot.storage), key.to_string());
                self.spawn_write(
                    turn,
                    "delete",
                    async move { storage.delete(&key_owned).await },
                )
            })
            .collect();
        // Fewer than W copies may remain, so that no read shows the key:
        // N − W + 1 replicas must delete it (W at least).
        let needed = self.inner.answers_needed();
        self.acknowledge_by("delete", key, tasks, Vec::new(), needed, <[usize]>::len)
            .await
    }

    /// Creates `key` on W replicas if it is absent. First the arbiter: the
    /// replicas in their fixed order until one answers with a created copy
    /// or a copy already there (which ends the write: another writer got
    /// there first). Then the other replicas at once, until W hold this
    /// write's copy. The replicas that answer with another copy are
    /// overwritten once the write has won, left alone if it lost; a write
    /// that lost deletes the copies it created.
    pub(super) async fn put_if_absent_replicated(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(key)?;
        let inner = &self.inner;
        if inner.level == ConsistencyLevel::One && !inner.allow_put_if_absent_at_one {
            return Err(StorageError::ConditionalWriteNeedsQuorum {
                key: key.to_string(),
            });
        }
        let stored = seal(&data);
        let n = inner.replicas.len();
        let mut won = Vec::new();
        let mut failures = Vec::new();
        let mut conflict = false;
        let mut next = 0;
        // The arbiter.
        while next < n {
            let possible: Vec<usize> = (next..n).collect();
            if !inner.quorum_met(&possible) {
                break;
            }
            let i = next;
            next += 1;
            match inner.replicas[i]
                .storage
                .put_if_absent(key, stored.clone())
                .await
            {
                Ok(()) => {
                    won.push(i);
                    break;
                }
                Err(e @ StorageError::AlreadyExists { .. }) => {
                    failures.push(inner.failure(i, e));
                    conflict = true;
                    break;
                }
                Err(e) => {
                    inner.record(i, false);
                    failures.push(inner.failure(i, e));
                }
            }
        }
        if won.is_empty() {
            return Err(self.put_if_absent_lost(key, conflict, &won, failures));
        }
        // The others at once. Each task reports its first answer, then,
        // when that answer was another copy, waits for the outcome and
        // overwrites it if this write won.
        let (decided, decision) = watch::channel(None::<bool>);
        let (report, mut reports) = mpsc::unbounded_channel();
        let mut waiting: Vec<usize> = (next..n).collect();
        for turn in Turn::take_many(inner, next..n, key) {
            let i = turn.replica;
            let (storage, key_owned, stored) = (
                Arc::clone(&inner.replicas[i].storage),
                key.to_string(),
                stored.clone(),
            );
            let (report, mut decision) = (report.clone(), decision.clone());
            drop(self.spawn_write(turn, "put_if_absent", async move {
                let result = storage.put_if_absent(&key_owned, stored.clone()).await;
                let other_copy = matches!(result, Err(StorageError::AlreadyExists { .. }));
                let _ = report.send((i, result));
                if !other_copy {
                    return Ok(());
                }
                match decision.wait_for(Option::is_some).await.map(|d| *d) {
                    Ok(Some(true)) => storage.put(&key_owned, stored).await,
                    _ => Ok(()),
                }
            }));
        }
        drop(report);
        while !inner.quorum_met(&won) {
            let possible: Vec<usize> = won.iter().chain(&waiting).copied().collect();
            if !inner.quorum_met(&possible) {
                break;
            }
            let Some((i, result)) = reports.recv().await else {
                break;
            };
            waiting.retain(|&w| w != i);
            match result {
                Ok(()) => won.push(i),
                Err(e) => {
                    conflict |= matches!(e, StorageError::AlreadyExists { .. });
                    if !matches!(e, StorageError::AlreadyExists { .. }) {
                        inner.record(i, false);
                    }
                    failures.push(inner.failure(i, e));
                }
            }
        }
        let success = inner.quorum_met(&won);
        let _ = decided.send(Some(success));
        if success {
            return Ok(());
        }
        // Lost: take back the copies this write created (those that still
        // hold its bytes).
        let digest = Footer::of(&data).digest;
        let undo = join_all(won.iter().map(|&i| async move {
            let storage = &inner.replicas[i].storage;
            let mut turn = Turn::take(inner, i, key);
            turn.wait().await;
            match storage.get(key).await {
                Ok(current) if envelope::open(&current).is_ok_and(|(_, f)| f.digest == digest) => {
                    storage.delete(key).await
                }
                Ok(_) | Err(StorageError::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }))
        .await;
        for (&i, result) in won.iter().zip(undo) {
            if let Err(e) = result {
                tracing::warn!(
                    target: TARGET,
                    replica = %inner.name(i),
                    key,
                    error = %e,
                    "could not delete the copy of a put_if_absent that did not reach its quorum"
                );
            }
        }
        Err(self.put_if_absent_lost(key, conflict, &won, failures))
    }

    /// The error of a `put_if_absent` that did not win: `AlreadyExists`
    /// when another copy was found, `QuorumNotReached` otherwise.
    fn put_if_absent_lost(
        &self,
        key: &str,
        conflict: bool,
        won: &[usize],
        failures: Vec<ReplicaFailure>,
    ) -> StorageError {
        if conflict {
            return StorageError::AlreadyExists {
                key: key.to_string(),
            };
        }
        StorageError::QuorumNotReached {
            operation: "put_if_absent",
            key: key.to_string(),
            needed: count(self.inner.write_quorum),
            succeeded: count(self.inner.distinct(won)),
            failures: failures.into(),
        }
    }

    pub(super) async fn put_stream_replicated(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        validate_key(key)?;
        let inner = &self.inner;
        let opened = join_all(inner.replicas.iter().map(|s| s.storage.put_stream(key))).await;
        let mut writers = Vec::new();
        let mut failures = Vec::new();
        for (i, result) in opened.into_iter().enumerate() {
            match result {
                Ok(writer) => writers.push((i, writer)),
                Err(e) => {
                    inner.record(i, false);
                    failures.push(inner.failure(i, e));
                }
            }
        }
        let mut writer = ReplicatedWriter {
            storage: self.clone(),
            key: key.to_string(),
            writers,
            failures,
            hasher: Sha256::new(),
            len: 0,
        };
        writer.check_quorum()?;
        Ok(Box::new(writer))
    }

    pub(super) async fn cleanup_replicated(&self, older_than: Duration) -> Result<u64> {
        let inner = &self.inner;
        let results = join_all(
            inner
                .replicas
                .iter()
                .map(|s| s.storage.cleanup_temporary(older_than)),
        )
        .await;
        let mut removed = 0u64;
        let mut done = Vec::new();
        let mut failures = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(n) => {
                    removed = removed.saturating_add(n);
                    done.push(i);
                }
                Err(e) => failures.push(inner.failure(i, e)),
            }
        }
        if inner.quorum_met(&done) {
            return Ok(removed);
        }
        Err(StorageError::QuorumNotReached {
            operation: "cleanup_temporary",
            key: String::new(),
            needed: count(inner.write_quorum),
            succeeded: count(inner.distinct(&done)),
            failures: failures.into(),
        })
    }
}

/// A streamed write to every replica at once: each chunk goes to every
/// replica still writing (a replica whose write fails is dropped from it,
/// and the write fails as soon as too few are left for a quorum); the
/// commit appends the footer and succeeds once W replicas committed.
struct ReplicatedWriter {
    storage: ReplicatedStorage,
    key: String,
    writers: Vec<(usize, Box<dyn ObjectWriter>)>,
    failures: Vec<ReplicaFailure>,
    hasher: Sha256,
    len: u64,
}

impl ReplicatedWriter {
    /// Fails (handing over the failures seen) once the replicas still
    /// writing can no longer make a quorum.
    fn check_quorum(&mut self) -> Result<()> {
        let live: Vec<usize> = self.writers.iter().map(|(i, _)| *i).collect();
        let inner = &self.storage.inner;
        if inner.quorum_met(&live) {
            return Ok(());
        }
        Err(StorageError::QuorumNotReached {
            operation: "put_stream",
            key: self.key.clone(),
            needed: count(inner.write_quorum),
            succeeded: count(inner.distinct(&live)),
            failures: std::mem::take(&mut self.failures).into(),
        })
    }

    /// Writes `bytes` to every replica still writing; drops those that fail.
    async fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let results = join_all(
            self.writers
                .iter_mut()
                .map(|(i, w)| async move { (*i, w.write(bytes).await) }),
        )
        .await;
        let inner = Arc::clone(&self.storage.inner);
        for (i, result) in results {
            if let Err(e) = result {
                inner.record(i, false);
                self.writers.retain(|(w, _)| *w != i);
                self.failures.push(inner.failure(i, e));
            }
        }
        self.check_quorum()
    }
}

#[async_trait]
impl ObjectWriter for ReplicatedWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
        self.write_all(chunk).await
    }

    async fn commit(mut self: Box<Self>) -> Result<ObjectMeta> {
        let footer = Footer {
            digest: std::mem::take(&mut self.hasher).finalize().into(),
            payload_len: self.len,
        }
        .encode();
        self.write_all(&footer).await?;
        let key = self.key.clone();
        let ReplicatedWriter {
            storage,
            writers,
            failures,
            len,
            ..
        } = *self;
        let mut turns = Turn::take_many(&storage.inner, writers.iter().map(|(i, _)| *i), &key);
        let tasks = writers
            .into_iter()
            .zip(turns.drain(..))
            .map(|((_, writer), turn)| {
                storage.spawn_write(turn, "put_stream", async move {
                    writer.commit().await.map(drop)
                })
            })
            .collect();
        storage
            .acknowledge("put_stream", &key, tasks, failures)
            .await?;
        Ok(ObjectMeta {
            key,
            size: len,
            last_modified: None,
        })
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        let results = join_all(self.writers.into_iter().map(|(_, w)| w.abort())).await;
        results.into_iter().collect::<Result<Vec<()>>>().map(drop)
    }
}
