//! The locks that keep a chunk collection from deleting a chunk that a save
//! in progress relies on.
//!
//! A chunked save lists `chunks/` and does not write again a chunk it finds
//! there; from then until its manifest is committed, nothing but the save
//! itself knows that it needs that chunk. A collection deletes the chunks no
//! committed manifest refers to. Without a protocol, a collection running
//! between the save's listing and its commit deletes a chunk the save is
//! about to commit a reference to, and the checkpoint is born broken.
//!
//! Both take a lock: an object `chunks/locks/save-<token>` or
//! `chunks/locks/collection-<token>` holding its kind, its holder and when it
//! was last refreshed (wall clock, [`WallClock`]). A holder refreshes its
//! lock every quarter of [`CheckpointOptions::chunk_lock_lifetime`]; a lock
//! not refreshed for a whole lifetime is stale, the leftover of a process
//! that died, and is ignored (a collection removes it).
//!
//! Each side writes its own lock first and only then lists the others':
//! - a save, once its lock is written, waits while any fresh collection lock
//!   is listed, and lists `chunks/` only when none is;
//! - a collection, once its lock is written, gives way (removes its lock,
//!   waits, tries again, and in the end reports that it deferred) while any
//!   fresh save lock is listed, and deletes chunks only when none is.
//!
//! The storage orders a write before a later listing (every back end of this
//! crate does: a local file system, the memory store, S3 and the object
//! stores that are strongly consistent). Of a save and a collection that run
//! at the same time, the second to write its lock therefore lists the
//! first's: either the save waits until the collection has finished, or the
//! collection gives way until the save has committed and released its lock.
//! A collection never deletes while a save that may trust a listed chunk
//! holds a fresh lock.
//!
//! What a stale lock cannot tell: a process paused (SIGSTOP, a stalled VM)
//! for longer than a lifetime is taken for dead. Each holder checks, before
//! the step that depends on its lock (a save before it reports its shard, a
//! collection before each delete), that it refreshed its lock less than a
//! lifetime ago, and fails (the save) or stops (the collection) otherwise;
//! a pause that falls between that check and the step itself is not
//! detected. A checkpoint committed then may refer to a deleted chunk: its
//! load fails with an error naming the missing chunk (wrong bytes are never
//! returned) and [`restore_latest`](crate::manager::CheckpointManager::restore_latest)
//! falls back to an earlier checkpoint. Choose a lifetime well above the
//! longest pause expected and the clock skew between hosts.
//!
//! [`WallClock`]: crate::checkpoint::WallClock
//! [`CheckpointOptions::chunk_lock_lifetime`]: crate::checkpoint::CheckpointOptions::chunk_lock_lifetime

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::super::distributed::DistributedCheckpoint;
use super::super::error::describe;
use super::super::TARGET;
use super::CHUNKS_PREFIX;
use crate::coordinator::Coordinator;
use crate::storage::{CheckpointStorage, StorageError};

/// The prefix of every lock object.
pub(crate) fn locks_prefix() -> String {
    format!("{CHUNKS_PREFIX}/locks/")
}

/// Who holds a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LockKind {
    /// A chunked save, from before it lists `chunks/` to its commit.
    Save,
    /// A chunk collection, while it deletes.
    Collection,
}

impl LockKind {
    fn key_prefix(self) -> &'static str {
        match self {
            LockKind::Save => "save-",
            LockKind::Collection => "collection-",
        }
    }
}

/// The content of a lock object.
#[derive(Debug, Serialize, Deserialize)]
struct LockRecord {
    kind: LockKind,
    /// When the holder last wrote the lock, in milliseconds since the Unix
    /// epoch, from its wall clock.
    refreshed_at_ms: u64,
    /// The rank of the holder.
    rank: usize,
    /// The process of the holder, for people reading the lock.
    pid: u32,
}

/// A lock found by listing `chunks/locks/`.
#[derive(Debug, Clone)]
pub(crate) struct SeenLock {
    pub(crate) key: String,
    /// Its kind, from its key.
    pub(crate) kind: LockKind,
    /// How long ago it was refreshed; `None` when that cannot be told (an
    /// unreadable record with no storage time), which counts as stale.
    pub(crate) age: Option<Duration>,
}

impl SeenLock {
    pub(crate) fn is_fresh(&self, lifetime: Duration) -> bool {
        self.age.is_some_and(|age| age < lifetime)
    }
}

/// A lock this process holds.
#[derive(Debug)]
pub(crate) struct HeldLock {
    key: String,
    kind: LockKind,
    /// When the lock was last written, in milliseconds since the Unix epoch
    /// (the holder's wall clock).
    refreshed_at_ms: Arc<AtomicU64>,
}

impl HeldLock {
    /// The lock object's key.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How long to wait between two looks at the locks.
fn poll_interval(lifetime: Duration) -> Duration {
    (lifetime / 8).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

impl<S: CheckpointStorage, C: Coordinator> DistributedCheckpoint<S, C> {
    fn lock_record(&self, kind: LockKind) -> Result<bytes::Bytes, StorageError> {
        let record = LockRecord {
            kind,
            refreshed_at_ms: millis(self.clock.now()),
            rank: self.rank(),
            pid: std::process::id(),
        };
        serde_json::to_vec(&record)
            .map(Into::into)
            .map_err(|e| StorageError::Backend {
                key: String::new(),
                message: format!("encoding a chunk lock: {e}"),
                transient: false,
                source: Some(Box::new(e)),
            })
    }

    /// Writes (or refreshes) the lock `key`.
    async fn write_lock(&self, key: &str, kind: LockKind) -> Result<u64, StorageError> {
        let record = self.lock_record(kind)?;
        let at = millis(self.clock.now());
        self.retry
            .retry(|| self.storage.put(key, record.clone()))
            .await
            .map_err(|e| e.into_inner())?;
        Ok(at)
    }

    /// Every lock in `chunks/locks/`, with its age.
    pub(crate) async fn scan_locks(&self) -> Result<Vec<SeenLock>, StorageError> {
        let prefix = locks_prefix();
        let listed = self
            .retry
            .retry(|| self.storage.list(&prefix))
            .await
            .map_err(|e| e.into_inner())?;
        let now = self.clock.now();
        let mut locks = Vec::with_capacity(listed.len());
        for object in listed {
            let Some(name) = object.key.strip_prefix(&prefix) else {
                continue;
            };
            let kind = if name.starts_with(LockKind::Save.key_prefix()) {
                LockKind::Save
            } else if name.starts_with(LockKind::Collection.key_prefix()) {
                LockKind::Collection
            } else {
                continue;
            };
            let read = self.retry.retry(|| self.storage.get(&object.key)).await;
            let refreshed = match read {
                Ok(bytes) => serde_json::from_slice::<LockRecord>(&bytes)
                    .ok()
                    .map(|r| UNIX_EPOCH + Duration::from_millis(r.refreshed_at_ms))
                    .or(object.last_modified),
                // Released since the listing.
                Err(e) if matches!(e.inner(), StorageError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into_inner()),
            };
            let age = refreshed.map(|at| now.duration_since(at).unwrap_or(Duration::ZERO));
            locks.push(SeenLock {
                key: object.key,
                kind,
                age,
            });
        }
        Ok(locks)
    }

    /// Takes a save lock: writes it, then waits while a fresh collection
    /// lock is listed, for at most `wait`. On success the save may list
    /// `chunks/` and trust what it finds until it releases the lock, as long
    /// as it keeps the lock fresh ([`hold_lock`](Self::hold_lock)).
    ///
    /// Fails with the reason, the lock removed, when the lock cannot be
    /// written or listed, or when a collection still runs after `wait`.
    pub(crate) async fn acquire_save_lock(&self, wait: Duration) -> Result<HeldLock, String> {
        let lifetime = self.options.chunk_lock_lifetime();
        let key = format!(
            "{}{}{:016x}",
            locks_prefix(),
            LockKind::Save.key_prefix(),
            rand::random::<u64>()
        );
        let at = self
            .write_lock(&key, LockKind::Save)
            .await
            .map_err(|e| format!("writing the chunk lock {key:?}: {}", describe(&e)))?;
        let lock = HeldLock {
            key,
            kind: LockKind::Save,
            refreshed_at_ms: Arc::new(AtomicU64::new(at)),
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let collections: Vec<SeenLock> = match self.scan_locks().await {
                Ok(locks) => locks
                    .into_iter()
                    .filter(|l| l.kind == LockKind::Collection && l.is_fresh(lifetime))
                    .collect(),
                Err(e) => {
                    let reason = format!("listing the chunk locks: {}", describe(&e));
                    self.release_lock(lock).await;
                    return Err(reason);
                }
            };
            let Some(first) = collections.first() else {
                return Ok(lock);
            };
            if tokio::time::Instant::now() >= deadline {
                let reason = format!(
                    "a chunk collection ({}) was still deleting chunks after {wait:?}",
                    first.key
                );
                self.release_lock(lock).await;
                return Err(reason);
            }
            tracing::debug!(target: TARGET, collection = %first.key, "a chunked save waits for a chunk collection to finish");
            // Keep this save's own lock fresh while it waits, so that a
            // collection that finishes and a new one that starts see it.
            self.refresh_if_due(&lock, lifetime).await;
            tokio::time::sleep(poll_interval(lifetime)).await;
        }
    }

    /// Takes a collection lock: writes it, and keeps it only if no fresh
    /// save lock is listed; otherwise removes it and tries again until
    /// `wait` has passed. Returns the lock and the stale locks seen (left to
    /// the caller to remove), or the fresh save locks that made it give way.
    pub(crate) async fn acquire_collection_lock(
        &self,
        wait: Duration,
    ) -> Result<Result<(HeldLock, Vec<SeenLock>), Vec<String>>, StorageError> {
        let lifetime = self.options.chunk_lock_lifetime();
        let key = format!(
            "{}{}{:016x}",
            locks_prefix(),
            LockKind::Collection.key_prefix(),
            rand::random::<u64>()
        );
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(10);
        loop {
            let at = self.write_lock(&key, LockKind::Collection).await?;
            let lock = HeldLock {
                key: key.clone(),
                kind: LockKind::Collection,
                refreshed_at_ms: Arc::new(AtomicU64::new(at)),
            };
            let locks = match self.scan_locks().await {
                Ok(locks) => locks,
                Err(e) => {
                    self.release_lock(lock).await;
                    return Err(e);
                }
            };
            let (fresh, stale): (Vec<SeenLock>, Vec<SeenLock>) = locks
                .into_iter()
                .filter(|l| l.key != key)
                .partition(|l| l.is_fresh(lifetime));
            let saves: Vec<String> = fresh
                .into_iter()
                .filter(|l| l.kind == LockKind::Save)
                .map(|l| l.key)
                .collect();
            if saves.is_empty() {
                return Ok(Ok((lock, stale)));
            }
            self.release_lock(lock).await;
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Err(saves));
            }
            tracing::debug!(target: TARGET, saves = ?saves, "a chunk collection gives way to saves in progress");
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(poll_interval(lifetime) * 4);
        }
    }

    /// Rewrites `lock` when a quarter of its lifetime has passed since it
    /// was last written.
    async fn refresh_if_due(&self, lock: &HeldLock, lifetime: Duration) {
        let last = lock.refreshed_at_ms.load(Ordering::Acquire);
        let now = millis(self.clock.now());
        if Duration::from_millis(now.saturating_sub(last)) >= lifetime / 4 {
            self.refresh(lock).await;
        }
    }

    async fn refresh(&self, lock: &HeldLock) {
        match self.write_lock(&lock.key, lock.kind).await {
            Ok(at) => lock.refreshed_at_ms.store(at, Ordering::Release),
            Err(e) => {
                tracing::warn!(target: TARGET, lock = %lock.key, error = %e, "refreshing a chunk lock failed")
            }
        }
    }

    /// Runs `body` while refreshing `lock` every quarter of its lifetime.
    pub(crate) async fn hold_lock<T>(&self, lock: &HeldLock, body: impl Future<Output = T>) -> T {
        let lifetime = self.options.chunk_lock_lifetime();
        let refresher = async {
            loop {
                tokio::time::sleep(lifetime / 4).await;
                self.refresh(lock).await;
            }
        };
        tokio::select! {
            biased;
            out = body => out,
            never = refresher => never,
        }
    }

    /// Fails, saying why, when `lock` was last refreshed a lifetime or more
    /// ago: others may have taken its holder for dead.
    pub(crate) fn ensure_fresh(&self, lock: &HeldLock) -> Result<(), String> {
        let lifetime = self.options.chunk_lock_lifetime();
        let last = lock.refreshed_at_ms.load(Ordering::Acquire);
        let age = Duration::from_millis(millis(self.clock.now()).saturating_sub(last));
        if age < lifetime {
            Ok(())
        } else {
            Err(format!(
                "the chunk lock {:?} was last refreshed {age:?} ago, not within its lifetime of \
                 {lifetime:?}: a chunk collection may have taken this process for dead",
                lock.key
            ))
        }
    }

    /// Removes `lock`. A lock that cannot be removed turns stale and is
    /// removed by a later collection.
    pub(crate) async fn release_lock(&self, lock: HeldLock) {
        if let Err(e) = self.retry.retry(|| self.storage.delete(&lock.key)).await {
            let e = e.into_inner();
            if !matches!(e, StorageError::NotFound { .. }) {
                tracing::warn!(target: TARGET, lock = %lock.key, error = %e, "releasing a chunk lock failed; it turns stale");
            }
        }
    }
}
