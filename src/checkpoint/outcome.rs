//! How the ranks of a save learn its outcome (see [`DistributedCheckpoint`]):
//! each rank tells the others what it wrote, the committer tells every rank
//! what its commit came to, and a rank that did not hear it reads the
//! manifest in storage, so that no rank rolls back a save that committed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::coordinator::{Coordinator, CoordinatorError};
use crate::storage::CheckpointStorage;

use super::distributed::DistributedCheckpoint;
use super::error::{BoxError, CheckpointError, CommitFailure, LocalFailure, Result};
use super::manifest::{CheckpointInfo, Manifest};
use super::tally::{RankReport, Written};
use super::TARGET;

/// Bounds of the pause between two reads of the manifest by a rank that
/// waits for a commit it did not hear.
pub(super) const MANIFEST_POLL_MIN: Duration = Duration::from_millis(10);
pub(super) const MANIFEST_POLL_MAX: Duration = Duration::from_secs(5);

/// What the committer tells the others after trying to commit.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum CommitOutcome {
    Committed {
        created_at: u64,
        /// The commit sequence the committer assigned.
        #[serde(default)]
        sequence: Option<u64>,
    },
    AlreadyExists,
    Failed {
        failed_ranks: Vec<usize>,
        reason: String,
    },
    /// The manifest write failed and the committer could not find out whether it
    /// landed: nothing may be rolled back.
    Unknown {
        reason: String,
    },
}

impl<S: CheckpointStorage, C: Coordinator> DistributedCheckpoint<S, C> {
    /// Tells the other ranks what this rank wrote, or why it failed, and
    /// gathers their reports.
    pub(super) async fn exchange_reports(
        &self,
        name: &str,
        local: &Result<Written, LocalFailure>,
        timeout: Duration,
    ) -> std::result::Result<Vec<Vec<u8>>, CoordinatorError> {
        let rank = self.rank();
        let report = match local {
            Ok(w) => {
                tracing::info!(target: TARGET, name, rank, key = %w.key, size = w.size, sha256 = %w.sha256, "shard written");
                RankReport::Written {
                    name: name.to_string(),
                    key: w.key.clone(),
                    size: w.size,
                    sha256: w.sha256.clone(),
                    compression: w.compression.clone(),
                    entries: w.entries.clone(),
                    chunks: w.chunks.clone(),
                }
            }
            Err(f) => {
                tracing::error!(target: TARGET, name, rank, reason = %f.reason, "this rank's part of the save failed");
                RankReport::Failed {
                    name: name.to_string(),
                    kind: f.kind,
                    reason: f.reason.clone(),
                }
            }
        };
        // Serializing strings and integers cannot fail; an empty report would
        // read as a failure on the other ranks.
        let payload = serde_json::to_vec(&report).unwrap_or_default();
        self.coordinator.all_gather(payload, timeout).await
    }

    /// Rank 0's commit, as the outcome it tells the others, with the cause
    /// of a failure.
    pub(super) async fn decide_commit(
        &self,
        manifest: &mut Manifest,
        timeout: Duration,
    ) -> (CommitOutcome, Option<BoxError>) {
        // The others wait `timeout` for the outcome, and then as long again
        // for a manifest: the manifest write must start within the first
        // `timeout`, so that it has the second to land.
        let start_by = tokio::time::Instant::now().checked_add(timeout);
        match self.commit(manifest, start_by).await {
            Ok(()) => (
                CommitOutcome::Committed {
                    created_at: manifest.created_at,
                    sequence: manifest.sequence,
                },
                None,
            ),
            Err(CommitFailure::AlreadyExists) => (CommitOutcome::AlreadyExists, None),
            Err(CommitFailure::Failed {
                failed_ranks,
                reason,
                source,
            }) => (
                CommitOutcome::Failed {
                    failed_ranks,
                    reason,
                },
                source,
            ),
            Err(CommitFailure::Unknown { reason, source }) => {
                (CommitOutcome::Unknown { reason }, source)
            }
        }
    }

    /// Exchanges the committer's outcome (`Some` on the committer only). An
    /// error means this rank did not hear it, and must look for the
    /// manifest.
    pub(super) async fn hear_outcome(
        &self,
        name: &str,
        committer: usize,
        outcome: Option<CommitOutcome>,
        timeout: Duration,
    ) -> std::result::Result<CommitOutcome, CoordinatorError> {
        let payload = outcome
            .as_ref()
            .map(|o| serde_json::to_vec(o).unwrap_or_default())
            .unwrap_or_default();
        match self.coordinator.all_gather(payload, timeout).await {
            Ok(all) => all
                .get(committer)
                .and_then(|b| serde_json::from_slice::<CommitOutcome>(b).ok())
                .ok_or_else(|| CoordinatorError::Backend {
                    message: format!("rank {committer}'s commit outcome was unreadable"),
                    source: None,
                }),
            Err(e) => match outcome {
                // The committer knows the outcome: it decided it.
                Some(outcome) => {
                    tracing::warn!(target: TARGET, name, error = %e, "the other ranks did not hear the commit outcome");
                    Ok(outcome)
                }
                None => Err(e),
            },
        }
    }

    /// After the commit outcome was not heard: the manifest in storage says
    /// whether the save succeeded.
    pub(super) async fn resolve_from_storage(
        &self,
        name: &str,
        my_shard: Option<(String, String)>,
        key: &str,
        timeout: Duration,
        error: CoordinatorError,
    ) -> Result<CheckpointInfo> {
        let rank = self.rank();
        // The exchange failed because a rank was late: the committer may still be
        // writing the manifest (a slow storage), so wait for it as long as a
        // collective step may take. Any other failure says nothing about
        // the committer's progress: look once.
        let late = matches!(
            error,
            CoordinatorError::Timeout { .. } | CoordinatorError::Broken { .. }
        );
        let deadline = if late {
            tokio::time::Instant::now().checked_add(timeout)
        } else {
            None
        };
        let pause = (timeout / 20).clamp(MANIFEST_POLL_MIN, MANIFEST_POLL_MAX);
        let found = loop {
            match self.manifest(name).await {
                Err(CheckpointError::NotFound { .. } | CheckpointError::Unconfirmed { .. })
                    if deadline.is_some_and(|d| tokio::time::Instant::now() < d) =>
                {
                    tokio::time::sleep(pause).await;
                }
                other => break other,
            }
        };
        match found {
            Ok(manifest) => {
                let mine = manifest
                    .shard(rank)
                    .map(|s| (s.key.clone(), s.sha256.clone()));
                if mine.is_some() && mine == my_shard {
                    tracing::warn!(target: TARGET, name, rank, error = %error, "commit outcome not heard; the stored manifest confirms the commit");
                    return Ok(manifest.info());
                }
                // Someone else's checkpoint of that name: this rank's shard is
                // garbage.
                self.roll_back(name, key, false).await;
                Err(CheckpointError::AlreadyExists {
                    name: name.to_string(),
                })
            }
            Err(e) => {
                tracing::error!(
                    target: TARGET,
                    name,
                    rank,
                    key,
                    error = %error,
                    manifest = %e,
                    "commit outcome unknown; leaving this rank's shard for cleanup_uncommitted"
                );
                Err(collective_error(name, timeout, error))
            }
        }
    }
}

/// Maps a coordinator failure of a collective step: a timeout (or a round
/// broken by another rank's timeout) names the missing ranks.
pub(super) fn collective_error(
    name: &str,
    after: Duration,
    e: CoordinatorError,
) -> CheckpointError {
    match e {
        CoordinatorError::Timeout { .. } | CoordinatorError::Broken { .. } => {
            CheckpointError::Timeout {
                name: name.to_string(),
                after,
                missing_ranks: e.missing_ranks().to_vec(),
                source: e,
            }
        }
        other => CheckpointError::Coordinator(other),
    }
}
