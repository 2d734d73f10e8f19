//! Fenced commits: a checkpoint counts for the job only when the coordinator
//! confirms that it was committed by the job's current committer.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::coordinator::{CoordinatorError, Leadership, Membership};

#[cfg(doc)]
use super::DistributedCheckpoint;

/// The prefix of commit records among the coordinator's records.
pub const COMMIT_RECORD_PREFIX: &str = "commits/";

/// Under which epoch and leadership a checkpoint was committed; recorded in
/// its manifest and in its commit record.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::CommitStamp;
/// let stamp = CommitStamp { epoch: 3, leader: "host-a:17".into(), term: 42 };
/// assert_eq!(stamp.epoch, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitStamp {
    /// The job's epoch.
    pub epoch: u64,
    /// The member that committed (the leader), empty when the job elects
    /// none.
    #[serde(default)]
    pub leader: String,
    /// The leadership's term, 0 when the job elects no leader.
    #[serde(default)]
    pub term: u64,
}

/// What the coordinator holds for each confirmed commit.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{CommitRecord, CommitStamp};
/// let record = CommitRecord {
///     checksum: "ab".repeat(32),
///     stamp: CommitStamp { epoch: 1, leader: String::new(), term: 0 },
/// };
/// assert_eq!(record.stamp.epoch, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRecord {
    /// The manifest's checksum ([`Manifest::checksum`](super::Manifest::checksum)).
    pub checksum: String,
    /// Under which epoch and leadership it was committed.
    pub stamp: CommitStamp,
}

/// Why a fence refused or could not answer.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::FenceError;
/// let err = FenceError::Fenced { reason: "epoch 3 is no longer current".into() };
/// assert!(err.to_string().contains("epoch 3"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FenceError {
    /// The committer may no longer commit: nothing was confirmed.
    #[error("the committer is fenced: {reason}")]
    Fenced {
        /// Which check failed.
        reason: String,
    },
    /// The coordinator could not be asked, or answered with an error:
    /// whether a confirmation landed is unknown.
    #[error("the commit fence could not be consulted: {0}")]
    Coordinator(#[source] CoordinatorError),
    /// A stored commit record is not readable.
    #[error("commit record {key:?} is not valid: {reason}")]
    InvalidRecord {
        /// The record's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Who commits, and the record that confirms each commit.
///
/// # Why a manifest alone is not enough
///
/// Checkpoints live in storage (a directory, a bucket) that knows nothing of
/// the job's epochs and leaders. A committer that was paused (a long GC, a
/// `SIGSTOP`, a VM migration) or cut off from the others can wake up after
/// the job replaced it and still write a manifest: storage cannot refuse
/// it, and no check made *before* the write helps, since the pause can fall
/// between the check and the write. So the job does not trust the manifest
/// alone: a second record, held by the coordinator, confirms each commit.
///
/// # The protocol
///
/// With a fence ([`DistributedCheckpoint::with_fence`]):
///
/// 1. The committer is the rank the fence names ([`CommitFence::committer`]:
///    the leader's rank of the current epoch), not rank 0.
/// 2. It writes the manifest as before, with a [`CommitStamp`]: the epoch,
///    the leader and its term under which it commits (manifest format
///    version 5, [`Manifest::commit`](super::Manifest::commit)).
/// 3. It then asks the fence to *confirm* the commit
///    ([`CommitFence::confirm`]): a record `commits/{name}` holding the
///    manifest's checksum, written only if, at that instant, the committer
///    is live, its epoch is the job's current one and its leadership still
///    holds ([`Membership::put_fenced`]: one etcd transaction that compares
///    the epoch key, the member's lease and the leader key). A fenced
///    committer gets [`CheckpointError::Fenced`](super::CheckpointError::Fenced),
///    deletes the manifest it wrote and the save fails on every rank.
/// 4. The job's reads accept a manifest only with a matching confirmation:
///    [`list`](DistributedCheckpoint::list) (and so `latest`, the manager's
///    `restore_latest`, recovery points and retention) skips unconfirmed
///    manifests, and [`manifest`](DistributedCheckpoint::manifest) (and so
///    every load by name) refuses one with
///    [`CheckpointError::Unconfirmed`](super::CheckpointError::Unconfirmed).
///
/// A committer paused anywhere in this sequence either confirmed before it
/// was fenced (its checkpoint is a legitimate commit of its epoch, older
/// than anything the next leader commits) or fails to confirm (its manifest
/// is never read by the job, and it deletes it when it resumes). A
/// committer killed between steps 2 and 3 leaves an unconfirmed manifest
/// that the job ignores; chunk collection still counts the chunks it refers
/// to, so that nothing a confirmation could still name is ever deleted.
///
/// # What a reader without the coordinator can tell
///
/// A tool that reads only the storage (an operator's command line, a
/// restore on another cluster) sees manifests, each with its stamp. It can
/// verify every byte, and order the checkpoints by sequence and by epoch,
/// but it cannot tell a confirmed commit from one written by a fenced
/// committer: a manifest whose epoch is older than another manifest's while
/// its sequence is higher is the sign of one. Such a reader should prefer
/// the highest epoch, then the highest sequence, and say that confirmation
/// was not checked.
///
/// [`MembershipFence`] implements it on any [`Membership`] coordinator.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{CommitFence, MembershipFence};
/// use steadfast::coordinator::InMemoryCoordinator;
///
/// let ranks = InMemoryCoordinator::new(2);
/// let fence = MembershipFence::new(ranks[1].clone());
/// assert_eq!(fence.committer(), 0); // until a leader is set
/// ```
#[async_trait]
pub trait CommitFence: Send + Sync + fmt::Debug + 'static {
    /// The rank that commits now. Every rank must answer the same between
    /// two saves.
    fn committer(&self) -> usize;

    /// The stamp of a commit made now.
    fn stamp(&self) -> CommitStamp;

    /// Confirms the commit of checkpoint `name` with `record`, atomically
    /// with the checks that the committer may still commit.
    async fn confirm(&self, name: &str, record: &CommitRecord) -> Result<(), FenceError>;

    /// The confirmation of checkpoint `name`, if any.
    async fn confirmation(&self, name: &str) -> Result<Option<CommitRecord>, FenceError>;

    /// Every confirmation, by checkpoint name.
    async fn confirmations(&self) -> Result<BTreeMap<String, CommitRecord>, FenceError>;
}

#[derive(Debug, Clone, Default)]
struct FenceState {
    leadership: Option<Leadership>,
    committer: usize,
}

/// A [`CommitFence`] on a [`Membership`] coordinator: commit records are
/// coordinator records written with [`Membership::put_fenced`].
///
/// Until [`set_leader`](Self::set_leader) is called, rank 0 commits and a
/// confirmation checks the epoch and the committer's liveness only. The
/// recovery layer calls `set_leader` on every rank after each election, so
/// that the leader commits and a confirmation also checks its leadership.
/// Clones share the leader.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::checkpoint::{CommitFence, MembershipFence};
/// use steadfast::coordinator::{InMemoryCoordinator, Membership};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ranks = InMemoryCoordinator::new(2);
/// let leadership = ranks[1].campaign(Duration::from_secs(1)).await?;
/// let fence = MembershipFence::new(ranks[1].clone());
/// fence.set_leader(Some(leadership.clone()), 1);
/// assert_eq!(fence.committer(), 1);
/// assert_eq!(fence.stamp().term, leadership.term);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MembershipFence<M> {
    membership: M,
    state: Arc<Mutex<FenceState>>,
}

impl<M: Membership> fmt::Debug for MembershipFence<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MembershipFence")
            .field("member", &self.membership.member_id())
            .field("state", &*self.lock())
            .finish()
    }
}

impl<M: Membership> MembershipFence<M> {
    /// A fence on `membership` (this rank's handle), with no leader yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{CommitFence, MembershipFence};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// let fence = MembershipFence::new(InMemoryCoordinator::new(1).remove(0));
    /// assert_eq!(fence.stamp().epoch, 0);
    /// ```
    pub fn new(membership: M) -> Self {
        MembershipFence {
            membership,
            state: Arc::new(Mutex::new(FenceState::default())),
        }
    }

    /// Sets who commits: `leadership` (`None`: no leader, rank 0 commits
    /// under the epoch fence alone) held by the member at rank `committer`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{CommitFence, MembershipFence};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// let fence = MembershipFence::new(InMemoryCoordinator::new(3).remove(0));
    /// fence.set_leader(None, 2);
    /// assert_eq!(fence.committer(), 2);
    /// ```
    pub fn set_leader(&self, leadership: Option<Leadership>, committer: usize) {
        let mut state = self.lock();
        state.leadership = leadership;
        state.committer = committer;
    }

    /// The leadership commits are confirmed under, if one is set.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::MembershipFence;
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// let fence = MembershipFence::new(InMemoryCoordinator::new(1).remove(0));
    /// assert!(fence.leadership().is_none());
    /// ```
    pub fn leadership(&self) -> Option<Leadership> {
        self.lock().leadership.clone()
    }

    /// The membership handle the fence writes through.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::MembershipFence;
    /// use steadfast::coordinator::{InMemoryCoordinator, Membership};
    /// let fence = MembershipFence::new(InMemoryCoordinator::new(1).remove(0));
    /// assert_eq!(fence.membership().member_id(), "rank-0");
    /// ```
    pub fn membership(&self) -> &M {
        &self.membership
    }

    fn lock(&self) -> MutexGuard<'_, FenceState> {
        // The state is two plain values, consistent at every point.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn parse_record(key: &str, value: &[u8]) -> Result<CommitRecord, FenceError> {
    serde_json::from_slice(value).map_err(|e| FenceError::InvalidRecord {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

#[async_trait]
impl<M: Membership> CommitFence for MembershipFence<M> {
    fn committer(&self) -> usize {
        self.lock().committer
    }

    fn stamp(&self) -> CommitStamp {
        let leadership = self.lock().leadership.clone();
        CommitStamp {
            epoch: self.membership.epoch(),
            leader: leadership
                .as_ref()
                .map_or_else(String::new, |l| l.member.clone()),
            term: leadership.map_or(0, |l| l.term),
        }
    }

    async fn confirm(&self, name: &str, record: &CommitRecord) -> Result<(), FenceError> {
        let key = format!("{COMMIT_RECORD_PREFIX}{name}");
        let value = serde_json::to_vec(record).map_err(|e| FenceError::InvalidRecord {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        let leadership = self.leadership();
        match self
            .membership
            .put_fenced(&key, value, leadership.as_ref())
            .await
        {
            Ok(_) => Ok(()),
            Err(CoordinatorError::Fenced { epoch, reason }) => Err(FenceError::Fenced {
                reason: format!("epoch {epoch}: {reason}"),
            }),
            Err(CoordinatorError::NotAMember { member, epoch }) => Err(FenceError::Fenced {
                reason: format!("member {member:?} holds no rank in epoch {epoch}"),
            }),
            Err(e) => Err(FenceError::Coordinator(e)),
        }
    }

    async fn confirmation(&self, name: &str) -> Result<Option<CommitRecord>, FenceError> {
        let key = format!("{COMMIT_RECORD_PREFIX}{name}");
        match self.membership.read_record(&key).await {
            Ok(Some(record)) => parse_record(&key, &record.value).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(FenceError::Coordinator(e)),
        }
    }

    async fn confirmations(&self) -> Result<BTreeMap<String, CommitRecord>, FenceError> {
        let records = self
            .membership
            .list_records(COMMIT_RECORD_PREFIX)
            .await
            .map_err(FenceError::Coordinator)?;
        let mut confirmed = BTreeMap::new();
        for (key, record) in records {
            let Some(name) = key.strip_prefix(COMMIT_RECORD_PREFIX) else {
                continue;
            };
            confirmed.insert(name.to_string(), parse_record(&key, &record.value)?);
        }
        Ok(confirmed)
    }
}
