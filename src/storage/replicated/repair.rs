//! Repairs: read repair (a read that found a copy missing or bad rewrites
//! it from a verified copy, in a bounded background task) and the scrub
//! ([`ReplicatedStorage::repair`]), which checks every copy of every key.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::join_all;

use super::envelope;
use super::{ReplicatedStorage, Turn, TARGET};
use crate::storage::{Bytes, ReplicaFailure, Result, StorageError};

/// The read repair counters, shared by clones of a storage.
#[derive(Debug, Default)]
pub(super) struct Counters {
    scheduled: AtomicU64,
    repaired: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    obsolete: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> RepairStats {
        RepairStats {
            scheduled: self.scheduled.load(Ordering::Relaxed),
            repaired: self.repaired.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            obsolete: self.obsolete.load(Ordering::Relaxed),
        }
    }
}

/// What read repair has done so far, counted in copies.
///
/// # Examples
///
/// ```
/// use steadfast::storage::RepairStats;
/// let stats = RepairStats::default();
/// assert_eq!(stats.scheduled, stats.repaired + stats.failed + stats.obsolete);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairStats {
    /// Copies handed to a repair task.
    pub scheduled: u64,
    /// Copies rewritten from a verified copy (or found good meanwhile).
    pub repaired: u64,
    /// Copies a repair could not rewrite (the replica failed, or no
    /// verified copy was found).
    pub failed: u64,
    /// Copies not repaired because too many repairs were in flight (the
    /// scrub, [`ReplicatedStorage::repair`], fixes them).
    pub skipped: u64,
    /// Copies not repaired because their key was deleted before the repair
    /// ran.
    pub obsolete: u64,
}

/// What the scrub did for one key that needed something.
///
/// # Examples
///
/// ```
/// use steadfast::storage::{CheckpointStorage, MemoryStorage, Replica, ReplicatedStorage};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let replicas = [MemoryStorage::new(), MemoryStorage::new(), MemoryStorage::new()];
/// let storage = ReplicatedStorage::builder()
///     .replicas(["a", "b", "c"].iter().zip(&replicas).map(|(d, r)| Replica::new(r.clone()).domain(*d)))
///     .build()?;
/// storage.put("run/shard-0", vec![1; 10].into()).await?;
/// storage.wait_for_writes().await;
/// replicas[2].delete("run/shard-0").await?;
///
/// let report = storage.repair().await?;
/// let repair = &report.keys[0];
/// assert_eq!(repair.key, "run/shard-0");
/// assert!(repair.outcome.is_repaired());
/// assert_eq!(repair.rewritten, ["#2 (c)"]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct KeyRepair {
    /// The key.
    pub key: String,
    /// What was decided.
    pub outcome: RepairOutcome,
    /// The replicas whose copy was rewritten.
    pub rewritten: Vec<String>,
    /// The replicas whose copy is missing or bad and could not be
    /// rewritten, with why (a verified copy, or a rewrite, failed).
    pub failed: Vec<ReplicaFailure>,
}

/// The scrub's decision for one key.
///
/// # Examples
///
/// ```
/// use steadfast::storage::RepairOutcome;
/// assert!(!RepairOutcome::NoVerifiedCopy.is_repaired());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RepairOutcome {
    /// The missing and bad copies were rewritten from a verified one
    /// (see [`KeyRepair::failed`] for those that could not be).
    Repaired,
    /// The key is held by fewer than W replicas: a write that did not reach
    /// its quorum (or whose copies were lost). It is not visible, and the
    /// scrub leaves it as it is rather than make it visible; delete it if it
    /// is not wanted.
    BelowQuorum {
        /// How many replicas hold a copy.
        holders: usize,
    },
    /// No copy verifies: nothing could be rewritten.
    NoVerifiedCopy,
}

impl RepairOutcome {
    /// Whether the copies were rewritten.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::storage::RepairOutcome::Repaired.is_repaired());
    /// ```
    pub fn is_repaired(&self) -> bool {
        matches!(self, RepairOutcome::Repaired)
    }
}

/// What [`ReplicatedStorage::repair`] found and did.
///
/// # Examples
///
/// ```
/// use steadfast::storage::{CheckpointStorage, MemoryStorage, Replica, ReplicatedStorage};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let replicas = [MemoryStorage::new(), MemoryStorage::new(), MemoryStorage::new()];
/// let storage = ReplicatedStorage::builder()
///     .replicas(replicas.iter().cloned().map(Replica::new))
///     .build()?;
/// storage.put("a", vec![1, 2, 3].into()).await?;
/// storage.wait_for_writes().await;
/// replicas[1].delete("a").await?; // a lost copy
/// let report = storage.repair().await?;
/// assert_eq!(report.keys_checked, 1);
/// assert_eq!(report.copies_rewritten(), 1);
/// assert!(replicas[1].exists("a").await?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RepairReport {
    /// How many keys were checked (every key any replica holds).
    pub keys_checked: usize,
    /// Each key that needed something, with what was done.
    pub keys: Vec<KeyRepair>,
    /// The replicas whose listing failed: their copies were not checked
    /// and not rewritten.
    pub unreachable: Vec<ReplicaFailure>,
}

impl RepairReport {
    /// How many copies were rewritten, over every key.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::storage::RepairReport::default().copies_rewritten(), 0);
    /// ```
    pub fn copies_rewritten(&self) -> usize {
        self.keys.iter().map(|k| k.rewritten.len()).sum()
    }

    /// Whether every copy of every key was found good, or rewritten, on
    /// every replica.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::storage::RepairReport::default().is_clean());
    /// ```
    pub fn is_clean(&self) -> bool {
        self.unreachable.is_empty()
            && self
                .keys
                .iter()
                .all(|k| k.outcome.is_repaired() && k.failed.is_empty())
    }
}

impl ReplicatedStorage {
    /// Hands the copies of `key` on `targets` to a background repair, which
    /// rewrites them from a verified copy it reads.
    pub(super) fn schedule_repair(&self, key: &str, targets: Vec<usize>) {
        if targets.is_empty() {
            return;
        }
        let inner = &self.inner;
        let count = targets.len() as u64;
        let Ok(permit) = Arc::clone(&inner.repair_permits).try_acquire_owned() else {
            inner.stats.skipped.fetch_add(count, Ordering::Relaxed);
            tracing::warn!(target: TARGET, key, copies = count, "read repair skipped: too many in flight");
            return;
        };
        inner.stats.scheduled.fetch_add(count, Ordering::Relaxed);
        let guard = inner.repairs.start();
        let storage = self.clone();
        let key = key.to_string();
        tokio::spawn(async move {
            let stats = &storage.inner.stats;
            let Some(outcome) = storage.repair_copies(&key, &targets).await else {
                stats.obsolete.fetch_add(count, Ordering::Relaxed);
                drop(permit);
                drop(guard);
                return;
            };
            for (replica, result) in outcome {
                match result {
                    Ok(()) => {
                        stats.repaired.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(target: TARGET, key = %key, replica = %storage.inner.name(replica), "copy repaired");
                    }
                    Err(e) => {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(target: TARGET, key = %key, replica = %storage.inner.name(replica), error = %e, "copy repair failed");
                    }
                }
            }
            drop(permit);
            drop(guard);
        });
    }

    /// Checks, in the background, whether `replicas` (which did not answer
    /// a read in time) hold a copy of `key`, and repairs those that do not.
    /// Skipped when as many repairs as allowed are in flight.
    pub(super) fn probe(&self, key: &str, replicas: Vec<usize>) {
        if replicas.is_empty() {
            return;
        }
        let Ok(permit) = Arc::clone(&self.inner.repair_permits).try_acquire_owned() else {
            return;
        };
        let guard = self.inner.repairs.start();
        let storage = self.clone();
        let key = key.to_string();
        tokio::spawn(async move {
            let heads = join_all(replicas.iter().map(|&i| {
                let storage = &storage;
                let key = &key;
                async move { (i, storage.inner.replicas[i].storage.head(key).await) }
            }))
            .await;
            let targets: Vec<usize> = heads
                .into_iter()
                .filter_map(|(i, head)| match head {
                    Ok(meta) if meta.size >= envelope::FOOTER_LEN => None,
                    Ok(_) | Err(StorageError::NotFound { .. }) => Some(i),
                    Err(_) => None,
                })
                .collect();
            drop(permit);
            storage.schedule_repair(&key, targets);
            drop(guard);
        });
    }

    /// A verified stored copy of `key` from a replica not in `exclude`.
    async fn verified_copy(&self, key: &str, exclude: &[usize]) -> Result<Bytes> {
        let inner = &self.inner;
        let order = inner.read_order((0..inner.replicas.len()).filter(|i| !exclude.contains(i)));
        let mut failures = Vec::new();
        for i in order {
            match inner.replicas[i].storage.get(key).await {
                Ok(stored) => match envelope::open(&stored) {
                    Ok(_) => return Ok(stored),
                    Err(reason) => failures.push(inner.failure(
                        i,
                        StorageError::CorruptCopy {
                            key: key.to_string(),
                            replica: i,
                            reason,
                        },
                    )),
                },
                Err(e) => failures.push(inner.failure(i, e)),
            }
        }
        Err(StorageError::NoVerifiedCopy {
            key: key.to_string(),
            failures: failures.into(),
        })
    }

    /// Rewrites the copies of `key` on `targets` from a verified copy on
    /// another replica, with every replica's turn at the key held: a write
    /// or delete started before the repair ends before it reads, one
    /// started after waits for it. `None` when the key is no longer
    /// visible (deleted meanwhile: a repair never brings a key back). A
    /// target whose copy verifies by now (rewritten meanwhile) is left as
    /// it is.
    async fn repair_copies(
        &self,
        key: &str,
        targets: &[usize],
    ) -> Option<Vec<(usize, Result<()>)>> {
        let inner = &self.inner;
        let mut turns = Turn::take_many(inner, 0..inner.replicas.len(), key);
        for turn in &mut turns {
            turn.wait().await;
        }
        if let Err(e) = self.find(key, false).await {
            tracing::debug!(target: TARGET, key, error = %e, "read repair not needed: the key is gone");
            return None;
        }
        let stored = match self.verified_copy(key, targets).await {
            Ok(stored) => stored,
            Err(e) => {
                let reason = e.to_string();
                return Some(
                    targets
                        .iter()
                        .map(|&t| {
                            (
                                t,
                                Err(StorageError::Backend {
                                    key: key.to_string(),
                                    message: reason.clone(),
                                    transient: false,
                                    source: None,
                                }),
                            )
                        })
                        .collect(),
                );
            }
        };
        let mut out = Vec::new();
        for &t in targets {
            let storage = &inner.replicas[t].storage;
            if let Ok(current) = storage.get(key).await
                && envelope::open(&current).is_ok()
            {
                out.push((t, Ok(())));
                continue;
            }
            out.push((t, storage.put(key, stored.clone()).await));
        }
        drop(turns);
        Some(out)
    }

    /// Scrubs every replica against the others: lists every key on every
    /// replica, reads and verifies every copy, and rewrites each missing,
    /// short, damaged or divergent copy from the verified copy held by the
    /// most replicas.
    ///
    /// A key is restored when it is visible (listed by W replicas, so a
    /// `list` shows it) or when W replicas hold the same verified copy. A
    /// key held by fewer than W replicas is left alone and reported
    /// ([`RepairOutcome::BelowQuorum`]): it is what a write that did not
    /// reach its quorum leaves, and restoring it would make visible a
    /// checkpoint that never committed. Copies are read whole, one key at
    /// a time.
    ///
    /// # Errors
    ///
    /// [`StorageError::QuorumNotReached`] when fewer replicas could list
    /// their keys than a read needs. Replicas that failed to list, or to
    /// rewrite a copy, are reported in the [`RepairReport`] instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{CheckpointStorage, MemoryStorage, Replica, ReplicatedStorage};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let replicas = [MemoryStorage::new(), MemoryStorage::new(), MemoryStorage::new()];
    /// let storage = ReplicatedStorage::builder()
    ///     .replicas(replicas.iter().cloned().map(Replica::new))
    ///     .build()?;
    /// storage.put("run/shard-0", vec![7; 100].into()).await?;
    /// storage.wait_for_writes().await;
    /// // Damage one copy: flip a byte of what replica 0 stores.
    /// let mut bytes = replicas[0].get("run/shard-0").await?.to_vec();
    /// bytes[10] ^= 0xff;
    /// replicas[0].put("run/shard-0", bytes.into()).await?;
    ///
    /// let report = storage.repair().await?;
    /// assert_eq!(report.copies_rewritten(), 1);
    /// assert!(report.is_clean());
    /// assert_eq!(storage.get("run/shard-0").await?, vec![7; 100]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn repair(&self) -> Result<RepairReport> {
        let listings = self.list_all("repair", "").await?;
        let mut report = RepairReport {
            keys_checked: listings.keys.len(),
            keys: Vec::new(),
            unreachable: listings.failures,
        };
        for key in listings.keys.into_keys() {
            if let Some(repair) = self.scrub_key(&key, &listings.answered).await {
                report.keys.push(repair);
            }
        }
        tracing::info!(
            target: TARGET,
            keys = report.keys_checked,
            rewritten = report.copies_rewritten(),
            clean = report.is_clean(),
            "replica scrub done"
        );
        Ok(report)
    }

    /// Checks every copy of `key` on the replicas that `answered` the
    /// listing; `None` when every copy is good.
    async fn scrub_key(&self, key: &str, answered: &[usize]) -> Option<KeyRepair> {
        let inner = &self.inner;
        // Every replica's turn at the key, held to the end: a write or
        // delete started before ends first, one started after waits.
        let mut turns = Turn::take_many(inner, 0..inner.replicas.len(), key);
        for turn in &mut turns {
            turn.wait().await;
        }
        let reads = join_all(answered.iter().map(|&i| async move {
            let read = inner.replicas[i].storage.get(key).await.and_then(|stored| {
                envelope::open(&stored)
                    .map(|(_, footer)| (stored.clone(), footer.digest))
                    .map_err(|reason| StorageError::CorruptCopy {
                        key: key.to_string(),
                        replica: i,
                        reason,
                    })
            });
            (i, read)
        }))
        .await;
        // Group the verified copies by digest.
        let mut by_digest: BTreeMap<[u8; 32], (Vec<usize>, Bytes)> = BTreeMap::new();
        let mut bad = Vec::new();
        let mut present = Vec::new();
        let mut failed = Vec::new();
        for (i, read) in reads {
            match read {
                Ok((stored, digest)) => {
                    present.push(i);
                    by_digest
                        .entry(digest)
                        .or_insert_with(|| (Vec::new(), stored))
                        .0
                        .push(i);
                }
                Err(StorageError::NotFound { .. }) => bad.push(i),
                Err(StorageError::CorruptCopy { .. }) => {
                    present.push(i);
                    bad.push(i);
                }
                Err(e) => failed.push(inner.failure(i, e)),
            }
        }
        if present.is_empty() && failed.is_empty() {
            // Deleted since it was listed.
            return None;
        }
        let best = by_digest
            .values()
            .max_by_key(|(holders, _)| holders.len())
            .cloned();
        let Some((holders, stored)) = best else {
            return Some(KeyRepair {
                key: key.to_string(),
                outcome: RepairOutcome::NoVerifiedCopy,
                rewritten: Vec::new(),
                failed,
            });
        };
        // Copies that verify but differ from the best one are rewritten too.
        for (other, _) in by_digest.values().filter(|(h, _)| *h != holders) {
            bad.extend(other);
        }
        if bad.is_empty() && failed.is_empty() {
            return None;
        }
        if !inner.quorum_met(&present) && !inner.quorum_met(&holders) {
            return Some(KeyRepair {
                key: key.to_string(),
                outcome: RepairOutcome::BelowQuorum {
                    holders: present.len(),
                },
                rewritten: Vec::new(),
                failed,
            });
        }
        bad.sort_unstable();
        let writes = join_all(
            bad.iter()
                .map(|&i| inner.replicas[i].storage.put(key, stored.clone())),
        )
        .await;
        drop(turns);
        let mut rewritten = Vec::new();
        for (&i, result) in bad.iter().zip(writes) {
            match result {
                Ok(()) => rewritten.push(inner.name(i)),
                Err(e) => failed.push(inner.failure(i, e)),
            }
        }
        Some(KeyRepair {
            key: key.to_string(),
            outcome: RepairOutcome::Repaired,
            rewritten,
            failed,
        })
    }
}
