//! The committer's commit (rank 0, or the rank a fence names): check that
//! every shard is stored with the size its rank reported, then write the
//! manifest with `put_if_absent`, reading it back when the write reports an
//! error (the write may have landed), and, under a fence, confirm it.

use crate::coordinator::Coordinator;
use crate::retry::RetryError;
use crate::storage::{Bytes, CheckpointStorage, StorageError};

use super::catalog::Unusable;
use super::clock::millis_since_epoch;
use super::distributed::DistributedCheckpoint;
use super::error::describe;
use super::error::CommitFailure;
use super::fencing::{CommitRecord, FenceError};
use super::manifest::{manifest_key, Manifest, ShardInfo};
use super::TARGET;

/// How many shards the committer checks at once before it commits.
const SHARD_CHECKS_AT_ONCE: usize = 16;

impl<S: CheckpointStorage, C: Coordinator> DistributedCheckpoint<S, C> {
    /// The committer's commit: check every shard is stored with its size, assign the
    /// commit sequence, then write the manifest if none exists.
    ///
    /// A failed write may still have stored the manifest (an answer lost
    /// after the write landed). Before reporting a failure, which makes every
    /// rank delete its shard, the committer reads the key back: its own manifest
    /// there means the commit happened; none means the save can be rolled
    /// back; a read that fails too leaves the outcome unknown.
    pub(super) async fn commit(
        &self,
        manifest: &mut Manifest,
        start_by: Option<tokio::time::Instant>,
    ) -> Result<(), CommitFailure> {
        manifest.commit = self.fence.as_ref().map(|fence| fence.stamp());
        self.write_manifest(manifest, start_by).await?;
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        let record = CommitRecord {
            checksum: manifest.compute_checksum(),
            stamp: manifest.commit.clone().unwrap_or_else(|| fence.stamp()),
        };
        let rank = self.rank();
        match fence.confirm(&manifest.name, &record).await {
            Ok(()) => Ok(()),
            Err(FenceError::Fenced { reason }) => {
                // Nothing confirms this manifest and nothing ever will: take
                // it away, so that the storage holds no checkpoint the job
                // would skip forever. Should the delete fail, the job still
                // never reads it.
                tracing::warn!(target: TARGET, name = %manifest.name, reason = %reason, "the committer is fenced; deleting its unconfirmed manifest");
                let key = manifest_key(&manifest.name);
                if let Err(e) = self.retry.retry(|| self.storage.delete(&key)).await {
                    tracing::warn!(target: TARGET, name = %manifest.name, error = %e.into_inner(), "deleting the unconfirmed manifest failed; it stays, never read");
                }
                let error = FenceError::Fenced { reason };
                Err(CommitFailure::Failed {
                    failed_ranks: vec![rank],
                    reason: format!("rank {rank}: {error}"),
                    source: Some(Box::new(error)),
                })
            }
            Err(error) => Err(CommitFailure::Unknown {
                reason: format!(
                    "rank {rank}: the manifest is written, but confirming the commit failed \
                     and whether the confirmation landed is unknown ({error}); no shard was deleted"
                ),
                source: Some(Box::new(error)),
            }),
        }
    }

    /// Checks every shard, assigns the sequence and writes the manifest if
    /// none exists; see [`commit`](Self::commit).
    async fn write_manifest(
        &self,
        manifest: &mut Manifest,
        start_by: Option<tokio::time::Instant>,
    ) -> Result<(), CommitFailure> {
        // The shards are checked a few at a time: a job of many ranks on a
        // storage with some latency must not spend its timeout here.
        for group in manifest.shards.chunks(SHARD_CHECKS_AT_ONCE) {
            let checks =
                futures::future::join_all(group.iter().map(|shard| self.check_shard(shard))).await;
            if let Some(failure) = checks.into_iter().find_map(Result::err) {
                return Err(failure);
            }
        }
        manifest.sequence = Some(self.next_sequence().await?);
        if start_by.is_some_and(|deadline| tokio::time::Instant::now() >= deadline) {
            return Err(CommitFailure::Failed {
                failed_ranks: vec![self.rank()],
                reason: format!(
                    "rank {}: checking the shards took longer than the timeout, \
                     so the other ranks may have stopped waiting; the manifest was not written",
                    self.rank()
                ),
                source: None,
            });
        }
        manifest.created_at = millis_since_epoch(self.clock.now());
        let bytes = Bytes::from(manifest.to_bytes().map_err(|e| CommitFailure::Failed {
            failed_ranks: vec![self.rank()],
            reason: format!("rank {}: {e}", self.rank()),
            source: Some(Box::new(e)),
        })?);
        let key = manifest_key(&manifest.name);
        let mut first = true;
        let (key_ref, bytes_ref, name_ref) = (&key, &bytes, &manifest.name);
        let result = self
            .retry
            .retry(|| {
                let retrying = !std::mem::replace(&mut first, false);
                async move {
                    match self.storage.put_if_absent(key_ref, bytes_ref.clone()).await {
                        // An earlier attempt may have written the manifest and
                        // lost the answer: an identical manifest is ours.
                        Err(StorageError::AlreadyExists { .. }) if retrying => {
                            let read = self.read_limited(key_ref, bytes_ref.len() as u64).await?;
                            match read.map(|stored| read_back(name_ref, &stored, bytes_ref)) {
                                Ok(ReadBack::Ours) => Ok(()),
                                Ok(ReadBack::Damaged) => Err(damaged_read(key_ref)),
                                Ok(ReadBack::Other) | Err(_) => Err(StorageError::AlreadyExists {
                                    key: key_ref.clone(),
                                }),
                            }
                        }
                        other => other,
                    }
                }
            })
            .await;
        let e = match result {
            Ok(()) => return Ok(()),
            Err(e) if matches!(e.inner(), StorageError::AlreadyExists { .. }) => {
                tracing::warn!(target: TARGET, name = %manifest.name, "a checkpoint of that name was committed meanwhile");
                return Err(CommitFailure::AlreadyExists);
            }
            Err(e) => e,
        };
        let reason = format!(
            "rank {}: writing the manifest: {}",
            self.rank(),
            describe(&e)
        );
        match self.stored_manifest_is(&manifest.name, &key, &bytes).await {
            Ok(Some(true)) => {
                tracing::warn!(target: TARGET, name = %manifest.name, error = %e, "writing the manifest reported an error, but it is stored");
                Ok(())
            }
            Ok(Some(false)) => {
                tracing::warn!(target: TARGET, name = %manifest.name, "a checkpoint of that name was committed meanwhile");
                Err(CommitFailure::AlreadyExists)
            }
            Ok(None) => Err(CommitFailure::Failed {
                failed_ranks: vec![self.rank()],
                reason,
                source: Some(Box::new(e)),
            }),
            Err(check) => Err(CommitFailure::Unknown {
                reason: format!(
                    "{reason}; whether the manifest was stored anyway is unknown (reading it back failed: {}), \
                     so no shard was deleted",
                    describe(&check)
                ),
                source: Some(Box::new(e)),
            }),
        }
    }

    /// The commit sequence of the checkpoint being committed: one more than
    /// the highest sequence among the committed checkpoints of the storage
    /// (1 when none has one), found by listing their manifests.
    ///
    /// Two saves of different names committing at the same moment may both
    /// read the same highest sequence and record the same one; neither fails,
    /// and [`list`](DistributedCheckpoint::list) orders the two by step, then
    /// name. A manifest that does not read as a valid one is read again, as
    /// `list` does; one that reads the same invalid bytes twice is damaged
    /// in storage (or of a newer format) and is skipped, as `list` skips it:
    /// no load ever sees it. One that reads differently each time (ten
    /// times) was damaged on the way and may be a valid checkpoint with the
    /// highest sequence: the commit fails rather than pick a sequence that
    /// may repeat or go below it. Listing reads every committed manifest (a few
    /// at a time), within the save's timeout: retention keeps that short.
    async fn next_sequence(&self) -> Result<u64, CommitFailure> {
        let committed =
            self.list_committed(Unusable::Refuse)
                .await
                .map_err(|e| CommitFailure::Failed {
                    failed_ranks: vec![self.rank()],
                    reason: format!(
                        "rank {}: finding the highest commit sequence: {}",
                        self.rank(),
                        describe(&e)
                    ),
                    source: Some(Box::new(e)),
                })?;
        let highest = committed.iter().filter_map(|info| info.sequence).max();
        Ok(highest.map_or(1, |s| s.saturating_add(1)))
    }

    /// Checks that `shard` is in storage with the size its rank reported.
    async fn check_shard(&self, shard: &ShardInfo) -> Result<(), CommitFailure> {
        let found = self.retry.retry(|| self.storage.head(&shard.key)).await;
        let problem = match found {
            Ok(meta) if meta.size == shard.size => return Ok(()),
            Ok(meta) => format!(
                "shard {:?} has {} bytes in storage, {} were written",
                shard.key, meta.size, shard.size
            ),
            Err(e) => format!(
                "shard {:?} cannot be found in storage: {}",
                shard.key,
                describe(&e)
            ),
        };
        Err(CommitFailure::Failed {
            failed_ranks: vec![shard.rank],
            reason: format!("rank {}: {problem}", shard.rank),
            source: None,
        })
    }

    /// Whether the manifest stored under `key` is `bytes`: `None` when no
    /// object is there.
    async fn stored_manifest_is(
        &self,
        name: &str,
        key: &str,
        bytes: &[u8],
    ) -> Result<Option<bool>, RetryError<StorageError>> {
        let read = self
            .retry
            .retry(|| async {
                match self.read_limited(key, bytes.len() as u64).await? {
                    Ok(stored) => match read_back(name, &stored, bytes) {
                        ReadBack::Ours => Ok(Ok(true)),
                        ReadBack::Other => Ok(Ok(false)),
                        ReadBack::Damaged => Err(damaged_read(key)),
                    },
                    Err(size) => Ok(Err(size)),
                }
            })
            .await;
        match read {
            Ok(Ok(ours)) => Ok(Some(ours)),
            // Longer than ours: another manifest.
            Ok(Err(_)) => Ok(Some(false)),
            Err(e) if matches!(e.inner(), StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// What the bytes read back from a manifest's key say about whose
/// manifest is stored there.
enum ReadBack {
    /// The manifest written: the same bytes, or a valid manifest with the
    /// same checksum (the same content: a flipped bit in the name of an
    /// empty optional field leaves a manifest that reads the same).
    Ours,
    /// A valid manifest of another save.
    Other,
    /// No valid manifest: bytes damaged on the way (a flipped bit, a short
    /// read), which say nothing about whose manifest is stored.
    Damaged,
}

fn read_back(name: &str, stored: &[u8], ours: &[u8]) -> ReadBack {
    if stored == ours {
        return ReadBack::Ours;
    }
    match (
        Manifest::from_bytes(name, stored),
        Manifest::from_bytes(name, ours),
    ) {
        (Err(_), _) => ReadBack::Damaged,
        (Ok(found), Ok(mine)) if found.checksum == mine.checksum => ReadBack::Ours,
        (Ok(_), _) => ReadBack::Other,
    }
}

/// The transient error of a read-back that came back damaged: read again,
/// and when every read is damaged, the outcome stays unknown.
fn damaged_read(key: &str) -> StorageError {
    StorageError::Backend {
        key: key.to_string(),
        message: "the manifest read back is neither the one written nor a valid one \
                  (damaged on the way)"
            .to_string(),
        transient: true,
        source: None,
    }
}
