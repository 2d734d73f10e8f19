//! Membership changes: what a job needs to replace a dead rank, shrink, elect
//! a new committer and keep a cut-off rank from writing. The [`Membership`]
//! trait, a companion of [`Coordinator`], and its plain types.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};

use super::{Coordinator, CoordinatorError, Result};

/// The largest value a record may hold, in bytes. Records are meant to be
/// small (plans, votes, commit digests); etcd refuses requests above about
/// 1.5 MiB.
pub const MAX_RECORD_SIZE: usize = 512 * 1024;

/// The most ranks an epoch may hold.
pub const MAX_EPOCH_RANKS: usize = 65_536;

/// What a member does in its epoch: it holds a rank, or it waits as a
/// standby.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::Role;
/// assert_eq!(Role::Rank(3).rank(), Some(3));
/// assert_eq!(Role::Standby.rank(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The member holds this rank.
    Rank(usize),
    /// The member holds no rank: it waits to take one over.
    Standby,
}

impl Role {
    /// The rank held, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::Role;
    /// assert_eq!(Role::Rank(0).rank(), Some(0));
    /// ```
    pub fn rank(self) -> Option<usize> {
        match self {
            Role::Rank(rank) => Some(rank),
            Role::Standby => None,
        }
    }
}

/// The membership of a job in one epoch: who holds each rank.
///
/// Written with [`Membership::propose_epoch`], read with
/// [`Membership::current_epoch`]. Epoch 0 is the membership the job started
/// with; each later epoch is proposed by the recovery layer and carries its
/// plan in `payload`.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::EpochRecord;
///
/// let start = EpochRecord::new(0, vec!["a".into(), "b".into(), "c".into()]);
/// assert_eq!(start.world_size(), 3);
/// assert_eq!(start.rank_of("b"), Some(1));
///
/// let mut next = EpochRecord::next_after(&start);
/// next.ranks.remove(1); // the job goes on with two ranks
/// next.payload = r#"{"reason":"rank 1 failed"}"#.to_string();
/// assert_eq!(next.epoch, 1);
/// assert_eq!(next.rank_of("c"), Some(1));
/// assert!(next.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochRecord {
    /// The epoch number: 0 at the start, one more at each change.
    pub epoch: u64,
    /// The member id holding each rank, indexed by rank; its length is the
    /// world size of the epoch.
    pub ranks: Vec<String>,
    /// What the proposer attached (the recovery layer: its plan, as JSON);
    /// empty for epoch 0.
    #[serde(default)]
    pub payload: String,
}

impl EpochRecord {
    /// A record of `epoch` with these ranks and no payload.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EpochRecord;
    /// assert_eq!(EpochRecord::new(4, vec!["x".into()]).epoch, 4);
    /// ```
    pub fn new(epoch: u64, ranks: Vec<String>) -> Self {
        EpochRecord {
            epoch,
            ranks,
            payload: String::new(),
        }
    }

    /// The record of the next epoch, with the same ranks and no payload: the
    /// starting point of a proposal.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EpochRecord;
    /// let next = EpochRecord::next_after(&EpochRecord::new(2, vec!["x".into()]));
    /// assert_eq!((next.epoch, next.ranks.len()), (3, 1));
    /// ```
    pub fn next_after(current: &EpochRecord) -> Self {
        EpochRecord::new(current.epoch.saturating_add(1), current.ranks.clone())
    }

    /// How many ranks the epoch has.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EpochRecord;
    /// assert_eq!(EpochRecord::new(0, vec!["a".into(), "b".into()]).world_size(), 2);
    /// ```
    pub fn world_size(&self) -> usize {
        self.ranks.len()
    }

    /// The rank `member` holds in this epoch, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EpochRecord;
    /// let record = EpochRecord::new(0, vec!["a".into(), "b".into()]);
    /// assert_eq!(record.rank_of("b"), Some(1));
    /// assert_eq!(record.rank_of("z"), None);
    /// ```
    pub fn rank_of(&self, member: &str) -> Option<usize> {
        self.ranks.iter().position(|m| m == member)
    }

    /// Checks the record: at least one and at most [`MAX_EPOCH_RANKS`]
    /// ranks, each held by a distinct, valid member id, and an encoding no
    /// larger than [`MAX_RECORD_SIZE`].
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EpochRecord;
    /// assert!(EpochRecord::new(1, vec![]).validate().is_err());
    /// assert!(EpochRecord::new(1, vec!["a".into(), "a".into()]).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        if self.ranks.is_empty() {
            return Err(CoordinatorError::InvalidArgument(format!(
                "epoch {} has no ranks",
                self.epoch
            )));
        }
        if self.ranks.len() > MAX_EPOCH_RANKS {
            return Err(CoordinatorError::InvalidArgument(format!(
                "epoch {} has {} ranks; at most {MAX_EPOCH_RANKS} are allowed",
                self.epoch,
                self.ranks.len()
            )));
        }
        let mut seen = std::collections::HashSet::with_capacity(self.ranks.len());
        for (rank, member) in self.ranks.iter().enumerate() {
            validate_member_id(member)?;
            if !seen.insert(member.as_str()) {
                return Err(CoordinatorError::InvalidArgument(format!(
                    "epoch {}: member {member:?} holds more than one rank (again at rank {rank})",
                    self.epoch
                )));
            }
        }
        let size = self.to_bytes()?.len();
        if size > MAX_RECORD_SIZE {
            return Err(CoordinatorError::InvalidArgument(format!(
                "epoch {} encodes to {size} bytes; at most {MAX_RECORD_SIZE} are allowed",
                self.epoch
            )));
        }
        Ok(())
    }

    /// The record as stored: JSON.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EpochRecord;
    /// let record = EpochRecord::new(3, vec!["a".into()]);
    /// assert_eq!(EpochRecord::from_bytes(&record.to_bytes()?)?, record);
    /// # Ok::<(), steadfast::coordinator::CoordinatorError>(())
    /// ```
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| CoordinatorError::Backend {
            message: format!("encoding epoch {}: {e}", self.epoch),
            source: Some(Box::new(e)),
        })
    }

    /// Reads a record as stored; a value that is not one is a
    /// [`CoordinatorError::Backend`] error.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EpochRecord;
    /// assert!(EpochRecord::from_bytes(b"not json").is_err());
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| CoordinatorError::Backend {
            message: format!("the stored epoch record is not valid: {e}"),
            source: Some(Box::new(e)),
        })
    }
}

/// Checks a member id: 1 to 128 characters of ASCII letters, digits, `-`,
/// `_`, `.` and `:`, so that it can name a key in any coordinator.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::validate_member_id;
/// assert!(validate_member_id("host-7:4242").is_ok());
/// assert!(validate_member_id("").is_err());
/// assert!(validate_member_id("a/b").is_err());
/// ```
pub fn validate_member_id(member: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if member.is_empty() || member.len() > 128 || !member.chars().all(allowed) {
        return Err(CoordinatorError::InvalidArgument(format!(
            "a member id is 1 to 128 characters of ASCII letters, digits, '-', '_', '.' and ':', got {member:?}"
        )));
    }
    Ok(())
}

/// Checks a record key: what [`validate_signal_key`](super::validate_signal_key)
/// accepts, at most 512 bytes, without an empty `/`-separated segment.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::validate_record_key;
/// assert!(validate_record_key("commits/step-100").is_ok());
/// assert!(validate_record_key("commits//x").is_err());
/// ```
pub fn validate_record_key(key: &str) -> Result<()> {
    super::validate_signal_key(key)?;
    if key.len() > 512 || key.split('/').any(str::is_empty) {
        return Err(CoordinatorError::InvalidArgument(format!(
            "a record key is at most 512 bytes with no empty segment, got {key:?}"
        )));
    }
    Ok(())
}

/// Checks a record's value: at most [`MAX_RECORD_SIZE`] bytes.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{validate_record_value, MAX_RECORD_SIZE};
/// assert!(validate_record_value("k", &[0; 16]).is_ok());
/// assert!(validate_record_value("k", &vec![0; MAX_RECORD_SIZE + 1]).is_err());
/// ```
pub fn validate_record_value(key: &str, value: &[u8]) -> Result<()> {
    if value.len() > MAX_RECORD_SIZE {
        return Err(CoordinatorError::InvalidArgument(format!(
            "the value of record {key:?} is {} bytes; at most {MAX_RECORD_SIZE} are allowed",
            value.len()
        )));
    }
    Ok(())
}

/// A record as stored: its value and its version, which grows on every
/// write of the key (for etcd, the key's modification revision).
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::Versioned;
/// let record = Versioned { value: b"v".to_vec(), version: 7 };
/// assert_eq!(record.version, 7);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The value.
    pub value: Vec<u8>,
    /// The version, never 0 for a stored record.
    pub version: u64,
}

/// What a compare-and-set did.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::CasOutcome;
/// assert!(CasOutcome::Written { version: 3 }.is_written());
/// assert!(!CasOutcome::Conflict { current: None }.is_written());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasOutcome {
    /// The value was written, with this version.
    Written {
        /// The new version.
        version: u64,
    },
    /// The record was not at the expected version; this is what is there.
    Conflict {
        /// The current record, `None` when the key is absent.
        current: Option<Versioned>,
    },
}

impl CasOutcome {
    /// Whether the value was written.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::CasOutcome;
    /// assert!(CasOutcome::Written { version: 1 }.is_written());
    /// ```
    pub fn is_written(&self) -> bool {
        matches!(self, CasOutcome::Written { .. })
    }
}

/// What became of a proposed epoch.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{EpochOutcome, EpochRecord};
/// let current = EpochRecord::new(5, vec!["a".into()]);
/// assert!(!EpochOutcome::Superseded { current }.is_accepted());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EpochOutcome {
    /// The proposal is now the job's epoch.
    Accepted,
    /// The job's epoch was not the one the proposal followed: another
    /// proposal won, or the proposer was behind. This is the current one.
    Superseded {
        /// The job's current epoch.
        current: EpochRecord,
    },
}

impl EpochOutcome {
    /// Whether the proposal won.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EpochOutcome;
    /// assert!(EpochOutcome::Accepted.is_accepted());
    /// ```
    pub fn is_accepted(&self) -> bool {
        matches!(self, EpochOutcome::Accepted)
    }
}

/// A member that is alive now.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{LiveMember, Role};
/// let member = LiveMember { member: "spare-1".into(), role: Role::Standby };
/// assert_eq!(member.role.rank(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveMember {
    /// Its member id.
    pub member: String,
    /// Its role in the epoch it registered under or last entered.
    pub role: Role,
}

/// A leadership won with [`Membership::campaign`].
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::Leadership;
/// let leader = Leadership { member: "a".into(), term: 12 };
/// assert_eq!(leader.term, 12);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Leadership {
    /// The member that leads.
    pub member: String,
    /// The leadership's term: it grows with every new leadership (for
    /// etcd, the revision at which the leader key was created).
    pub term: u64,
}

/// A change in a job's membership, as [`Membership::watch_membership`]
/// reports it.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::{MembershipEvent, Role};
/// let event = MembershipEvent::Left { member: "b".into(), role: Role::Rank(1), graceful: false };
/// assert_eq!(event.failed_rank(), Some(1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipEvent {
    /// A member is alive: it connected, or was there when the watch started.
    Joined {
        /// Its member id.
        member: String,
        /// Its role.
        role: Role,
    },
    /// A member is gone.
    Left {
        /// Its member id.
        member: String,
        /// The role it had.
        role: Role,
        /// `true` when it left on purpose (shut down), `false` when it
        /// failed (its process died, hung, or was cut off for longer than
        /// its lease).
        graceful: bool,
    },
    /// A rank of the current epoch was declared failed
    /// ([`Membership::declare_failed`]).
    RankFailed {
        /// The epoch.
        epoch: u64,
        /// The rank.
        rank: usize,
        /// Why, as the declarer said.
        reason: String,
    },
    /// The job moved to a new epoch.
    EpochChanged(EpochRecord),
    /// The leadership changed: a member won it, or it ended (`None`).
    LeaderChanged(Option<Leadership>),
}

impl MembershipEvent {
    /// The rank whose failure the event reports, if it reports one: a rank
    /// holder that left without shutting down, or a rank declared failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::{MembershipEvent, Role};
    /// let event = MembershipEvent::Left { member: "b".into(), role: Role::Rank(1), graceful: true };
    /// assert_eq!(event.failed_rank(), None);
    /// ```
    pub fn failed_rank(&self) -> Option<usize> {
        match self {
            MembershipEvent::Left {
                role: Role::Rank(rank),
                graceful: false,
                ..
            } => Some(*rank),
            MembershipEvent::RankFailed { rank, .. } => Some(*rank),
            _ => None,
        }
    }
}

/// The stream of [`MembershipEvent`]s of a job, from
/// [`Membership::watch_membership`].
///
/// It first reports every live member as [`MembershipEvent::Joined`] (and,
/// where the implementation keeps them as state, as etcd does, every rank
/// already declared failed in the current epoch as
/// [`MembershipEvent::RankFailed`]), then each change as it happens. It ends when the coordinator's handle is shut
/// down; a watch that breaks (etcd restarted) is re-established by the
/// implementation, which reports what changed meanwhile.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use steadfast::coordinator::{InMemoryCoordinator, Membership, MembershipEvent};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ranks = InMemoryCoordinator::new(2);
/// let mut watch = ranks[0].watch_membership();
/// ranks[0].faults().kill(1);
/// let mut failed = None;
/// while let Some(event) = watch.next().await {
///     if let Some(rank) = event.failed_rank() {
///         failed = Some(rank);
///         break;
///     }
/// }
/// assert_eq!(failed, Some(1));
/// # }
/// ```
pub struct MembershipWatch {
    events: Pin<Box<dyn Stream<Item = MembershipEvent> + Send>>,
}

impl MembershipWatch {
    /// Wraps a stream of events; for implementations of [`Membership`].
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::{MembershipEvent, MembershipWatch};
    /// let watch = MembershipWatch::new(futures::stream::empty::<MembershipEvent>());
    /// # drop(watch);
    /// ```
    pub fn new(events: impl Stream<Item = MembershipEvent> + Send + 'static) -> Self {
        MembershipWatch {
            events: Box::pin(events),
        }
    }
}

impl fmt::Debug for MembershipWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MembershipWatch").finish_non_exhaustive()
    }
}

impl Stream for MembershipWatch {
    type Item = MembershipEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.as_mut().poll_next(cx)
    }
}

/// What a coordinator offers for membership changes: members and standbys,
/// epochs, failures that fail rounds at once, records with compare-and-set,
/// fenced writes and leader election.
///
/// A [`Coordinator`] alone has a fixed rank and world size. A job that
/// recovers from failures needs more, and this trait gives it, on the same
/// source of truth as the collectives (one process's memory for
/// [`InMemoryCoordinator`](super::InMemoryCoordinator), etcd's Raft for
/// `EtcdCoordinator`):
///
/// - **Members.** Every process of a job is a *member* with an id that is
///   unique for its lifetime ([`Membership::member_id`]). A member either
///   holds a rank or waits as a *standby* ([`Role`]). Members come and go:
///   [`Membership::live_members`] lists them and
///   [`Membership::watch_membership`] reports each change as a
///   [`MembershipEvent`].
/// - **Epochs.** The job's membership is an [`EpochRecord`]: a number that
///   only grows, the member holding each rank (so its length is the world
///   size), and what the proposer attached (a recovery plan). Epoch 0 is the
///   membership the job started with. A new epoch is written with a
///   compare-and-set on the current one ([`Membership::propose_epoch`]), so
///   of two proposals for the same next epoch exactly one wins, and every
///   member then reads the same record. A handle takes part in collectives
///   under the epoch it entered ([`Membership::enter_epoch`]): rounds are
///   numbered per epoch, and a handle whose epoch is no longer the job's
///   fails every collective with [`CoordinatorError::Fenced`]. A rank thus
///   changes hands (a standby enters an epoch that gives it a dead rank's
///   number) and the world size can change (an epoch with fewer ranks).
/// - **Failures fail rounds at once.** When a rank of the current epoch
///   leaves without shutting down (its process died, its lease expired), or
///   someone declares it failed ([`Membership::declare_failed`], which a
///   health monitor does when it marks a rank Failed), every collective of
///   that epoch that still waits for it fails on every rank with
///   [`CoordinatorError::RanksFailed`] naming it, as soon as that is known;
///   the collective's timeout stays as the last resort.
/// - **Records.** Small values under keys, with a version that grows on each
///   write: [`Membership::read_record`], [`Membership::list_records`],
///   [`Membership::compare_and_set`] for agreement, and
///   [`Membership::put_fenced`] for a write that lands only if the writer is
///   still live, still in the job's current epoch and, when it says so,
///   still the leader: the commit records that fence checkpoints.
/// - **A leader.** [`Membership::campaign`] elects one member at a time; the
///   leadership ends when its holder resigns or leaves (for etcd, when its
///   lease expires), and each leadership has a term that only grows.
///
/// What the trait does not do is decide: the recovery layer
/// (`recovery::RecoveryCoordinator`) reads failures, elects, proposes the
/// next epoch with its plan, and acts on it.
///
/// # Examples
///
/// A rank dies; a survivor proposes the next epoch, in which a standby takes
/// the dead rank's number; everyone enters it:
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::{Coordinator, EpochRecord, InMemoryCoordinator, Membership, Role};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::coordinator::CoordinatorError> {
/// let ranks = InMemoryCoordinator::new(2);
/// let standby = ranks[0].add_standby("spare-0")?;
/// assert_eq!(standby.role(), Role::Standby);
///
/// ranks[0].faults().kill(1); // rank 1's process dies
/// let current = ranks[0].current_epoch().await?;
/// let mut next = EpochRecord::next_after(&current);
/// next.ranks[1] = standby.member_id().to_string();
/// assert!(ranks[0].propose_epoch(current.epoch, &next).await?.is_accepted());
///
/// for member in [&ranks[0], &standby] {
///     member.enter_epoch(&next).await?;
/// }
/// assert_eq!(standby.role(), Role::Rank(1));
/// let (a, b) = tokio::join!(
///     ranks[0].barrier(Duration::from_secs(5)),
///     standby.barrier(Duration::from_secs(5)),
/// );
/// a?;
/// b?;
/// # Ok(())
/// # }
/// ```
///
/// Every implementation is checked by the conformance suite
/// (`coordinator::conformance::run_membership`, feature `testing`).
#[async_trait]
pub trait Membership: Coordinator {
    /// This member's id, unique among the job's members for its lifetime.
    fn member_id(&self) -> &str;

    /// The epoch this handle takes part in collectives under.
    fn epoch(&self) -> u64;

    /// This handle's role in its epoch. A standby's
    /// [`rank`](Coordinator::rank) is its epoch's world size (no rank), and
    /// its collectives fail with [`CoordinatorError::NotAMember`].
    fn role(&self) -> Role;

    /// The job's current epoch, as stored.
    async fn current_epoch(&self) -> Result<EpochRecord>;

    /// Writes `next` as the job's epoch if the current one is still
    /// `expected`; `next.epoch` must be greater than `expected` and `next`
    /// must [validate](EpochRecord::validate). Of several proposals after
    /// the same epoch, exactly one is accepted.
    ///
    /// Proposing does not enter the epoch: every member, the proposer too,
    /// calls [`enter_epoch`](Membership::enter_epoch).
    async fn propose_epoch(&self, expected: u64, next: &EpochRecord) -> Result<EpochOutcome>;

    /// Takes part in `record`'s epoch from now on: this handle's rank and
    /// world size become the ones `record` gives it, and its collectives
    /// start again at round 0 of that epoch.
    ///
    /// Fails with [`CoordinatorError::Fenced`] when `record` is not the
    /// job's current epoch, and with [`CoordinatorError::NotAMember`] when
    /// it gives this member no rank (the handle is then a standby of that
    /// epoch).
    async fn enter_epoch(&self, record: &EpochRecord) -> Result<()>;

    /// The members alive now, ranks and standbys, in no particular order.
    async fn live_members(&self) -> Result<Vec<LiveMember>>;

    /// Follows the job's membership; see [`MembershipWatch`].
    fn watch_membership(&self) -> MembershipWatch;

    /// Declares `rank` of this handle's epoch failed: every collective of
    /// that epoch waiting for it fails at once with
    /// [`CoordinatorError::RanksFailed`], on every rank, and so does every
    /// later one, until the job enters a new epoch. Members watching see
    /// [`MembershipEvent::RankFailed`].
    async fn declare_failed(&self, rank: usize, reason: &str) -> Result<()>;

    /// Reads record `key` ([`validate_record_key`]).
    async fn read_record(&self, key: &str) -> Result<Option<Versioned>>;

    /// Every record whose key starts with `prefix`, by key.
    async fn list_records(&self, prefix: &str) -> Result<Vec<(String, Versioned)>>;

    /// Writes record `key` if its version is still `expected` (`0`: the key
    /// is absent). Values are at most [`MAX_RECORD_SIZE`] bytes.
    async fn compare_and_set(&self, key: &str, expected: u64, value: Vec<u8>)
        -> Result<CasOutcome>;

    /// Writes record `key` only if this member is live, its epoch is the
    /// job's current epoch and, with `leadership`, that leadership is still
    /// held; returns the new version. Otherwise nothing is written and it
    /// fails with [`CoordinatorError::Fenced`] saying which check failed.
    /// The check and the write are one atomic step of the coordinator (one
    /// etcd transaction), so a member paused between deciding to write and
    /// writing cannot land a write after it was fenced.
    async fn put_fenced(
        &self,
        key: &str,
        value: Vec<u8>,
        leadership: Option<&Leadership>,
    ) -> Result<u64>;

    /// Campaigns for leadership: returns once this member leads, or fails
    /// with [`CoordinatorError::Timeout`] after `timeout`. A member that
    /// already leads gets its current leadership back.
    async fn campaign(&self, timeout: Duration) -> Result<Leadership>;

    /// The current leadership, if anyone leads.
    async fn leader(&self) -> Result<Option<Leadership>>;

    /// Gives up `leadership`; nothing happens if it already ended.
    async fn resign(&self, leadership: &Leadership) -> Result<()>;
}

macro_rules! forward_membership {
    ($ty:ty) => {
        #[async_trait]
        impl<T: Membership + ?Sized> Membership for $ty {
            fn member_id(&self) -> &str {
                (**self).member_id()
            }
            fn epoch(&self) -> u64 {
                (**self).epoch()
            }
            fn role(&self) -> Role {
                (**self).role()
            }
            async fn current_epoch(&self) -> Result<EpochRecord> {
                (**self).current_epoch().await
            }
            async fn propose_epoch(
                &self,
                expected: u64,
                next: &EpochRecord,
            ) -> Result<EpochOutcome> {
                (**self).propose_epoch(expected, next).await
            }
            async fn enter_epoch(&self, record: &EpochRecord) -> Result<()> {
                (**self).enter_epoch(record).await
            }
            async fn live_members(&self) -> Result<Vec<LiveMember>> {
                (**self).live_members().await
            }
            fn watch_membership(&self) -> MembershipWatch {
                (**self).watch_membership()
            }
            async fn declare_failed(&self, rank: usize, reason: &str) -> Result<()> {
                (**self).declare_failed(rank, reason).await
            }
            async fn read_record(&self, key: &str) -> Result<Option<Versioned>> {
                (**self).read_record(key).await
            }
            async fn list_records(&self, prefix: &str) -> Result<Vec<(String, Versioned)>> {
                (**self).list_records(prefix).await
            }
            async fn compare_and_set(
                &self,
                key: &str,
                expected: u64,
                value: Vec<u8>,
            ) -> Result<CasOutcome> {
                (**self).compare_and_set(key, expected, value).await
            }
            async fn put_fenced(
                &self,
                key: &str,
                value: Vec<u8>,
                leadership: Option<&Leadership>,
            ) -> Result<u64> {
                (**self).put_fenced(key, value, leadership).await
            }
            async fn campaign(&self, timeout: Duration) -> Result<Leadership> {
                (**self).campaign(timeout).await
            }
            async fn leader(&self) -> Result<Option<Leadership>> {
                (**self).leader().await
            }
            async fn resign(&self, leadership: &Leadership) -> Result<()> {
                (**self).resign(leadership).await
            }
        }
    };
}

forward_membership!(Arc<T>);
forward_membership!(Box<T>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_is_object_safe() {
        fn takes(_: &dyn Membership) {}
        let _ = takes;
    }

    #[test]
    fn epoch_records_refuse_bad_membership() {
        assert!(EpochRecord::new(0, vec!["a".into()]).validate().is_ok());
        assert!(EpochRecord::new(0, vec!["a/b".into()]).validate().is_err());
        assert!(EpochRecord::new(0, vec![String::new()]).validate().is_err());
        let mut big = EpochRecord::new(0, vec!["a".into()]);
        big.payload = "x".repeat(MAX_RECORD_SIZE);
        assert!(big.validate().is_err());
    }

    #[test]
    fn record_keys_refuse_empty_segments() {
        for bad in ["", "/a", "a/", "a//b", "a\nb"] {
            assert!(validate_record_key(bad).is_err(), "{bad:?}");
        }
        assert!(validate_record_key("commits/a.b-c").is_ok());
    }
}
