//! [`InMemoryCoordinator`]: the ranks, standbys and membership of a job in one
//! process, with fault injection; the coordinator of tests and examples.
//!
//! One job is one [`Shared`] value behind an `Arc`: a mutex over its
//! [`State`] (rounds, signals, members, the current epoch, records, the
//! leadership, the membership event log, injected faults) and a watch
//! channel bumped on every change, which every waiting call (a collective, a
//! `wait_for_rank`, a campaign, a membership watch) listens to, so that
//! nothing polls. Each handle also has a small state of its own
//! ([`HandleState`]: its member id, and its rank, world size and epoch as
//! atomics), shared by the clones of that handle.
//!
//! The mechanisms live in one file each:
//!
//! - `rounds.rs`: barriers, all-gathers and signals, numbered per epoch;
//! - `membership.rs`: the [`Membership`](super::Membership) implementation:
//!   epochs, records, fenced writes, leadership, the membership watch;
//! - `faults.rs`: [`CoordinatorFaults`], the injected faults (absent, late
//!   and failing ranks; killed, expired and partitioned members).
//!
//! # How a failure reaches a waiting round
//!
//! When a member holding a rank of the current epoch leaves (killed,
//! expired, shut down) or its rank is declared failed, the rank goes into
//! the epoch's set of failed ranks and the watch channel is bumped. Every
//! collective of the epoch re-checks its round when woken: a round that
//! still misses a failed rank fails at once with
//! [`CoordinatorError::RanksFailed`] naming it, on every rank, and so does
//! every later round of that epoch. Entering a new epoch starts with no
//! failed ranks.

mod faults;
mod membership;
mod rounds;

pub use faults::CoordinatorFaults;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::{
    validate_member_id, Coordinator, CoordinatorError, EpochRecord, Leadership, MembershipEvent,
    Result, Role, Signal, Versioned,
};
use faults::RankFaults;
use rounds::{Collective, Round};

/// Whether a member is alive, and if not, how it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Alive.
    Live,
    /// Shut down on purpose ([`InMemoryCoordinator::leave`]).
    Left,
    /// Its process died ([`CoordinatorFaults::kill`]): every later call of
    /// its handle is fenced.
    Killed,
    /// Its lease expired while its process ran on
    /// ([`CoordinatorFaults::expire`]): it may still read, but every action
    /// is fenced.
    Expired,
}

/// A member of the job, live or gone (ids are never reused).
#[derive(Debug, Clone)]
struct MemberState {
    /// Its role in the epoch it registered under or last entered.
    role: Role,
    status: Status,
}

/// Everything a job shares, behind one mutex.
#[derive(Debug)]
struct State {
    /// The job's current epoch.
    epoch: EpochRecord,
    /// Every member the job ever had, by id.
    members: BTreeMap<String, MemberState>,
    /// The ranks of the current epoch that failed, with why; emptied when a
    /// new epoch is accepted.
    failed: BTreeMap<usize, String>,
    /// The next round each rank will enter, per epoch and collective.
    next_round: HashMap<(u64, Collective, usize), u64>,
    /// The rounds in progress, per epoch and collective.
    rounds: HashMap<(u64, Collective, u64), Round>,
    /// The signals, per epoch, rank and key.
    signals: HashMap<(u64, usize, String), Signal>,
    /// Injected faults, by rank.
    faults: BTreeMap<usize, RankFaults>,
    /// Members cut off by an injected partition.
    partitioned: HashSet<String>,
    /// The records, by key.
    records: BTreeMap<String, Versioned>,
    /// The job-wide counter that versions records and numbers leadership
    /// terms; it only grows.
    revision: u64,
    /// The current leadership.
    leader: Option<Leadership>,
    /// Every membership event, in order; watches read it from where they
    /// started.
    events: Vec<MembershipEvent>,
}

impl State {
    /// The next revision, for a write or a term.
    fn next_revision(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    /// Marks `member` gone with `status`; if it held a rank of the current
    /// epoch, that rank fails with `reason`; its leadership ends. Returns
    /// whether anything changed.
    fn depart(&mut self, member: &str, status: Status, reason: String) -> bool {
        let role = match self.members.get_mut(member) {
            Some(m) if m.status == Status::Live => {
                m.status = status;
                m.role
            }
            _ => return false,
        };
        if let Some(rank) = self.epoch.rank_of(member) {
            self.failed.entry(rank).or_insert(reason);
        }
        self.events.push(MembershipEvent::Left {
            member: member.to_string(),
            role,
            graceful: status == Status::Left,
        });
        if self.leader.as_ref().is_some_and(|l| l.member == member) {
            self.leader = None;
            self.events.push(MembershipEvent::LeaderChanged(None));
        }
        true
    }
}

/// One job: its state and the channel that wakes its waiters.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Bumped on every change, so that waiters re-check their condition.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before any
        // operation that could panic, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// What a handle knows of itself, shared by its clones: who it is, and the
/// rank, world size and epoch it takes part under.
///
/// `enter_epoch` stores the rank and world size first and the epoch last,
/// all under the job's lock; the three are read one by one, so a reader
/// racing with `enter_epoch` on another clone may see a mix for an
/// instant, and the checks of every call are made again under the lock.
#[derive(Debug)]
struct HandleState {
    member: String,
    rank: AtomicUsize,
    world_size: AtomicUsize,
    epoch: AtomicU64,
}

/// Whether a call only reads the job or acts on it: a member whose lease
/// expired may still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Act,
}

/// A [`Coordinator`] whose ranks are tasks of one process, and a
/// [`Membership`](super::Membership) whose members are its handles.
///
/// [`InMemoryCoordinator::new(n)`](InMemoryCoordinator::new) returns one
/// handle per rank, with member ids `rank-0`, `rank-1`, ...; give each to
/// the task that plays that rank. [`add_standby`](InMemoryCoordinator::add_standby)
/// registers a spare member. Faults are injected through
/// [`InMemoryCoordinator::faults`]: a rank that never arrives, a rank that
/// arrives late, transient failures, a member that dies or is cut off.
///
/// Cloning a handle gives another handle of the same member: clones share
/// its rank, world size and epoch.
///
/// # Membership
///
/// Every handle is a member of the job, and the job implements
/// [`Membership`](super::Membership) on the same state as its collectives:
///
/// - epoch 0 holds `rank-0`, `rank-1`, ...; a proposal is a compare-and-set
///   on the epoch under the job's lock, and collectives, signals and waits
///   are numbered per epoch (a new epoch starts at round 0); a handle of an
///   older epoch is [`Fenced`](CoordinatorError::Fenced), a standby
///   [`NotAMember`](CoordinatorError::NotAMember);
/// - a rank of the current epoch whose member leaves (killed, expired,
///   shut down with [`leave`](InMemoryCoordinator::leave)) or that is
///   declared failed fails every round of the epoch waiting for it at once,
///   on every rank, with [`RanksFailed`](CoordinatorError::RanksFailed);
/// - records and leadership terms take their versions from one job-wide
///   counter that only grows (as etcd's revision);
/// - a membership watch reads the job's event log from where it started: a
///   slow reader never blocks a writer and never lags or misses an event
///   (the log holds every membership event of the job, a few per change).
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::{Coordinator, CoordinatorError, InMemoryCoordinator, Membership};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ranks = InMemoryCoordinator::new(2);
/// let waiting = ranks[0].clone();
/// let barrier = tokio::spawn(async move { waiting.barrier(Duration::from_secs(60)).await });
/// tokio::time::sleep(Duration::from_secs(1)).await;
/// ranks[0].faults().kill(1); // rank 1's process dies mid-barrier
/// let err = barrier.await.unwrap().unwrap_err();
/// assert!(matches!(err, CoordinatorError::RanksFailed { ref ranks, .. } if ranks[..] == [1]));
/// assert_eq!(ranks[0].live_members().await.unwrap().len(), 1);
/// # }
/// ```
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::{Coordinator, CoordinatorError, InMemoryCoordinator};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ranks = InMemoryCoordinator::new(3);
/// ranks[0].faults().set_absent(2, true); // rank 2 will never arrive
/// let waits: Vec<_> = ranks
///     .iter()
///     .cloned()
///     .map(|r| tokio::spawn(async move { r.barrier(Duration::from_secs(1)).await }))
///     .collect();
/// for w in waits {
///     let err = w.await.unwrap().unwrap_err();
///     assert_eq!(err.missing_ranks(), &[2]);
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct InMemoryCoordinator {
    handle: Arc<HandleState>,
    shared: Arc<Shared>,
}

impl fmt::Debug for InMemoryCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryCoordinator")
            .field("member", &self.handle.member)
            .field("rank", &self.rank())
            .field("world_size", &self.world_size())
            .field("epoch", &self.handle.epoch.load(Ordering::Acquire))
            .finish()
    }
}

impl InMemoryCoordinator {
    /// Creates a job of `world_size` ranks and returns one handle per rank,
    /// in rank order. Rank `i` is member `rank-i`, and epoch 0 is
    /// `EpochRecord::new(0, ["rank-0", "rank-1", ...])`. A `world_size` of
    /// 0 gives no handles.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::{Coordinator, InMemoryCoordinator, Membership};
    /// let ranks = InMemoryCoordinator::new(4);
    /// assert_eq!(ranks[3].rank(), 3);
    /// assert_eq!(ranks[3].world_size(), 4);
    /// assert_eq!(ranks[3].member_id(), "rank-3");
    /// ```
    pub fn new(world_size: usize) -> Vec<InMemoryCoordinator> {
        let ids: Vec<String> = (0..world_size).map(|rank| format!("rank-{rank}")).collect();
        let members = ids
            .iter()
            .enumerate()
            .map(|(rank, id)| {
                let member = MemberState {
                    role: Role::Rank(rank),
                    status: Status::Live,
                };
                (id.clone(), member)
            })
            .collect();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                epoch: EpochRecord::new(0, ids.clone()),
                members,
                failed: BTreeMap::new(),
                next_round: HashMap::new(),
                rounds: HashMap::new(),
                signals: HashMap::new(),
                faults: BTreeMap::new(),
                partitioned: HashSet::new(),
                records: BTreeMap::new(),
                revision: 0,
                leader: None,
                events: Vec::new(),
            }),
            changed: watch::Sender::new(0),
        });
        ids.into_iter()
            .enumerate()
            .map(|(rank, member)| InMemoryCoordinator {
                handle: Arc::new(HandleState {
                    member,
                    rank: AtomicUsize::new(rank),
                    world_size: AtomicUsize::new(world_size),
                    epoch: AtomicU64::new(0),
                }),
                shared: Arc::clone(&shared),
            })
            .collect()
    }

    /// Registers a new member of this job, `member_id`, as a standby of the
    /// job's current epoch, and returns its handle.
    ///
    /// The standby holds no rank: its [`rank`](Coordinator::rank) is the
    /// epoch's world size and its collectives fail with
    /// [`CoordinatorError::NotAMember`] until it enters an epoch that gives
    /// it a rank. Members watching see it join.
    ///
    /// # Errors
    ///
    /// [`CoordinatorError::InvalidArgument`] when `member_id` is not a
    /// valid member id ([`validate_member_id`]) or is already used by a
    /// member of the job, live or gone (ids are unique for the job's
    /// lifetime).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::{Coordinator, InMemoryCoordinator, Membership, Role};
    /// let ranks = InMemoryCoordinator::new(2);
    /// let spare = ranks[0].add_standby("spare-0")?;
    /// assert_eq!(spare.role(), Role::Standby);
    /// assert_eq!(spare.rank(), 2);
    /// assert!(ranks[0].add_standby("spare-0").is_err()); // taken
    /// assert!(ranks[0].add_standby("a/b").is_err()); // invalid
    /// # Ok::<(), steadfast::coordinator::CoordinatorError>(())
    /// ```
    pub fn add_standby(&self, member_id: &str) -> Result<InMemoryCoordinator> {
        validate_member_id(member_id)?;
        let handle = {
            let mut state = self.shared.lock();
            if state.members.contains_key(member_id) {
                return Err(CoordinatorError::InvalidArgument(format!(
                    "member id {member_id:?} is already used in this job"
                )));
            }
            let world_size = state.epoch.world_size();
            // A proposal may already have named this id: then it holds that
            // rank of the current epoch.
            let rank = state.epoch.rank_of(member_id);
            let role = rank.map_or(Role::Standby, Role::Rank);
            state.members.insert(
                member_id.to_string(),
                MemberState {
                    role,
                    status: Status::Live,
                },
            );
            state.events.push(MembershipEvent::Joined {
                member: member_id.to_string(),
                role,
            });
            HandleState {
                member: member_id.to_string(),
                rank: AtomicUsize::new(rank.unwrap_or(world_size)),
                world_size: AtomicUsize::new(world_size),
                epoch: AtomicU64::new(state.epoch.epoch),
            }
        };
        self.shared.bump();
        Ok(InMemoryCoordinator {
            handle: Arc::new(handle),
            shared: Arc::clone(&self.shared),
        })
    }

    /// Leaves the job on purpose (a graceful shutdown): the member is no
    /// longer live, members watching see it leave with `graceful: true`,
    /// its leadership ends, and, as it can no longer arrive, every
    /// collective of the current epoch that waits for its rank fails at
    /// once with [`CoordinatorError::RanksFailed`]. Every later call of this
    /// handle fails with [`CoordinatorError::Fenced`]. Leaving twice does
    /// nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::{InMemoryCoordinator, Membership};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::coordinator::CoordinatorError> {
    /// let ranks = InMemoryCoordinator::new(2);
    /// ranks[1].leave();
    /// assert_eq!(ranks[0].live_members().await?.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn leave(&self) {
        let changed = self.shared.lock().depart(
            &self.handle.member,
            Status::Left,
            format!("member {} left the job", self.handle.member),
        );
        if changed {
            tracing::info!(
                target: "steadfast::coordinator",
                coordinator = "in-memory",
                member = %self.handle.member,
                "member left the job"
            );
            self.shared.bump();
        }
    }

    /// The fault injection controls of this job (shared by all its
    /// members).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// let ranks = InMemoryCoordinator::new(2);
    /// ranks[0].faults().set_delay(1, Duration::from_millis(500));
    /// ```
    pub fn faults(&self) -> CoordinatorFaults {
        CoordinatorFaults::new(Arc::clone(&self.shared))
    }

    fn my_epoch(&self) -> u64 {
        self.handle.epoch.load(Ordering::Acquire)
    }

    fn my_rank(&self) -> usize {
        self.handle.rank.load(Ordering::Acquire)
    }

    fn my_world_size(&self) -> usize {
        self.handle.world_size.load(Ordering::Acquire)
    }

    fn check_rank(&self, rank: usize) -> Result<()> {
        let world_size = self.my_world_size();
        if rank >= world_size {
            return Err(CoordinatorError::InvalidRank { rank, world_size });
        }
        Ok(())
    }

    /// Whether this member may make a call at all: it is not gone (an
    /// expired member may still read) and not cut off by a partition.
    fn check_live(&self, state: &State, access: Access) -> Result<()> {
        let member = &self.handle.member;
        let status = state.members.get(member).map(|m| m.status);
        let reason = match status {
            Some(Status::Live) => None,
            Some(Status::Expired) if access == Access::Read => None,
            Some(Status::Expired) => {
                Some(format!("lease lost: the lease of member {member} expired"))
            }
            Some(Status::Killed) => Some(format!(
                "lease lost: member {member} was killed (its process died)"
            )),
            Some(Status::Left) => Some(format!("member {member} left the job")),
            None => Some(format!("member {member} is not known to the job")),
        };
        if let Some(reason) = reason {
            return Err(CoordinatorError::Fenced {
                epoch: self.my_epoch(),
                reason,
            });
        }
        if state.partitioned.contains(member) {
            return Err(CoordinatorError::unavailable(format!(
                "member {member} is cut off from the coordinator (injected partition)"
            )));
        }
        Ok(())
    }

    /// Whether this handle's epoch is still the job's.
    fn check_epoch(&self, state: &State) -> Result<()> {
        let mine = self.my_epoch();
        if mine != state.epoch.epoch {
            return Err(CoordinatorError::Fenced {
                epoch: mine,
                reason: format!(
                    "epoch {mine} is not the job's current epoch {}",
                    state.epoch.epoch
                ),
            });
        }
        Ok(())
    }

    /// Whether this handle may take part in a collective or raise a
    /// signal: live, in the current epoch, holding a rank.
    fn check_participant(&self, state: &State) -> Result<()> {
        self.check_live(state, Access::Act)?;
        self.check_epoch(state)?;
        if self.my_rank() >= self.my_world_size() {
            return Err(CoordinatorError::NotAMember {
                member: self.handle.member.clone(),
                epoch: self.my_epoch(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Coordinator for InMemoryCoordinator {
    /// This member's rank in its epoch; a standby's is the epoch's world
    /// size.
    fn rank(&self) -> usize {
        self.my_rank()
    }

    fn world_size(&self) -> usize {
        self.my_world_size()
    }

    fn name(&self) -> &str {
        "in-memory"
    }

    async fn barrier(&self, timeout: Duration) -> Result<()> {
        self.collective(Collective::Barrier, Vec::new(), timeout)
            .await
            .map(drop)
    }

    async fn all_gather(&self, data: Vec<u8>, timeout: Duration) -> Result<Vec<Vec<u8>>> {
        self.collective(Collective::AllGather, data, timeout).await
    }

    async fn signal(&self, key: &str, payload: Vec<u8>) -> Result<u64> {
        self.raise_signal(key, payload).await
    }

    async fn wait_for_rank(
        &self,
        rank: usize,
        key: &str,
        min_seq: u64,
        timeout: Duration,
    ) -> Result<Signal> {
        self.wait_for_signal(rank, key, min_seq, timeout).await
    }
}
