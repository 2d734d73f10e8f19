//! [`CoordinatorFaults`]: the faults an [`InMemoryCoordinator`] job can be
//! made to suffer, for tests and examples.
//!
//! Two kinds of faults:
//!
//! - **per rank** (the rank number, whoever holds it): a rank that never
//!   arrives ([`set_absent`](CoordinatorFaults::set_absent)), a rank whose
//!   calls are slow ([`set_delay`](CoordinatorFaults::set_delay)), calls
//!   that fail with a transient error ([`fail_next`](CoordinatorFaults::fail_next));
//! - **per member**, as a real deployment suffers them: a process that dies
//!   ([`kill`](CoordinatorFaults::kill),
//!   [`kill_member`](CoordinatorFaults::kill_member)), a lease that expires
//!   while the process runs on ([`expire`](CoordinatorFaults::expire),
//!   [`expire_member`](CoordinatorFaults::expire_member)), members cut off
//!   from the coordinator ([`partition`](CoordinatorFaults::partition),
//!   [`heal`](CoordinatorFaults::heal)).
//!
//! A graceful departure is not a fault: it is
//! [`InMemoryCoordinator::leave`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[cfg(doc)]
use super::InMemoryCoordinator;
use super::{Shared, Status};
#[cfg(doc)]
use crate::coordinator::CoordinatorError;

/// The faults injected on one rank.
#[derive(Debug, Default, Clone)]
pub(super) struct RankFaults {
    pub(super) absent: bool,
    pub(super) delay: Duration,
    pub(super) fail_next: u32,
}

/// Fault injection controls of an [`InMemoryCoordinator`] job.
///
/// Every method takes effect at once, for every handle of the job, and
/// wakes every waiting call so that it sees the change.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::{Coordinator, InMemoryCoordinator};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ranks = InMemoryCoordinator::new(1);
/// ranks[0].faults().fail_next(0, 1);
/// assert!(ranks[0].barrier(Duration::from_secs(1)).await.is_err());
/// assert!(ranks[0].barrier(Duration::from_secs(1)).await.is_ok());
/// # }
/// ```
#[derive(Clone)]
pub struct CoordinatorFaults {
    shared: Arc<Shared>,
}

impl fmt::Debug for CoordinatorFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("CoordinatorFaults")
            .field("faults", &state.faults)
            .field("partitioned", &state.partitioned)
            .finish()
    }
}

impl CoordinatorFaults {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        CoordinatorFaults { shared }
    }

    /// Changes the faults of `rank`, a rank of the job's current epoch;
    /// other ranks are ignored.
    fn update(&self, rank: usize, f: impl FnOnce(&mut RankFaults)) {
        {
            let mut state = self.shared.lock();
            if rank >= state.epoch.world_size() {
                return;
            }
            f(state.faults.entry(rank).or_default());
        }
        self.shared.bump();
    }

    /// Makes `rank` never arrive: its barriers and gathers do not count and
    /// its signals are not seen, so the others time out naming it.
    /// Ranks outside the current epoch are ignored.
    ///
    /// The rank stays live: nothing fails at once, as nothing tells the job
    /// that it will not come (for that, see [`kill`](Self::kill)).
    ///
    /// # Examples
    ///
    /// ```
    /// let ranks = steadfast::coordinator::InMemoryCoordinator::new(2);
    /// ranks[0].faults().set_absent(1, true);
    /// ```
    pub fn set_absent(&self, rank: usize, absent: bool) {
        self.update(rank, |f| f.absent = absent);
    }

    /// Delays every operation of `rank` by `delay` before it arrives.
    ///
    /// The delay counts against the timeout of the delayed call, as a slow
    /// network would: a barrier or all-gather whose delay outlasts its
    /// timeout times out at its deadline without having arrived (and breaks
    /// the round, naming this rank), and a `wait_for_rank` times out.
    /// `signal` has no timeout and waits the whole delay.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let ranks = steadfast::coordinator::InMemoryCoordinator::new(2);
    /// ranks[0].faults().set_delay(1, Duration::from_secs(2));
    /// ```
    pub fn set_delay(&self, rank: usize, delay: Duration) {
        self.update(rank, |f| f.delay = delay);
    }

    /// Makes the next `count` operations of `rank` fail at once with a
    /// transient [`CoordinatorError::Unavailable`].
    ///
    /// A failed call never reaches the job: it takes no part in its round,
    /// as if the rank's connection had dropped before it arrived. The
    /// rank's next call of the same collective therefore joins that same
    /// round, which is what a retry wants: it meets the other ranks if they
    /// are still waiting, and gets [`CoordinatorError::Broken`] (naming this
    /// rank) if they timed out on it meanwhile; the call after that is in
    /// step with the job again.
    ///
    /// # Examples
    ///
    /// ```
    /// let ranks = steadfast::coordinator::InMemoryCoordinator::new(2);
    /// ranks[0].faults().fail_next(1, 3);
    /// ```
    pub fn fail_next(&self, rank: usize, count: u32) {
        self.update(rank, |f| f.fail_next = count);
    }

    /// Removes every fault injected with [`set_absent`](Self::set_absent),
    /// [`set_delay`](Self::set_delay) and [`fail_next`](Self::fail_next),
    /// and heals any partition. A killed or expired member stays gone.
    ///
    /// # Examples
    ///
    /// ```
    /// let ranks = steadfast::coordinator::InMemoryCoordinator::new(2);
    /// ranks[0].faults().set_absent(1, true);
    /// ranks[0].faults().clear();
    /// ```
    pub fn clear(&self) {
        {
            let mut state = self.shared.lock();
            state.faults.clear();
            state.partitioned.clear();
        }
        self.shared.bump();
    }

    /// Kills the member holding `rank` in the job's current epoch, as a
    /// SIGKILL of its process would: see [`kill_member`](Self::kill_member).
    /// A rank outside the current epoch is ignored.
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
    /// ranks[0].faults().kill(2);
    /// // The survivors learn at once, not after the timeout.
    /// let start = tokio::time::Instant::now();
    /// let err = ranks[0].barrier(Duration::from_secs(60)).await.unwrap_err();
    /// assert!(matches!(err, CoordinatorError::RanksFailed { ref ranks, .. } if ranks[..] == [2]));
    /// assert!(start.elapsed() < Duration::from_secs(1));
    /// // The dead rank's own handle is fenced.
    /// let err = ranks[2].barrier(Duration::from_secs(1)).await.unwrap_err();
    /// assert!(matches!(err, CoordinatorError::Fenced { .. }));
    /// # }
    /// ```
    pub fn kill(&self, rank: usize) {
        let member = self.shared.lock().epoch.ranks.get(rank).cloned();
        if let Some(member) = member {
            self.kill_member(&member);
        }
    }

    /// Kills member `member_id` (a rank holder or a standby), as a SIGKILL
    /// of its process would; an unknown or already gone member is ignored.
    ///
    /// At once:
    /// - the member is no longer live, and watchers see it leave with
    ///   `graceful: false` (a rank holder's departure is then a failure:
    ///   [`MembershipEvent::failed_rank`](crate::coordinator::MembershipEvent::failed_rank));
    /// - its leadership, if it led, ends (watchers see
    ///   `LeaderChanged(None)`), so another member's campaign can win;
    /// - if it holds a rank of the current epoch, that rank is failed: every
    ///   collective of the epoch waiting for it, and every later one, fails
    ///   on every survivor with [`CoordinatorError::RanksFailed`] naming it
    ///   (as does a `wait_for_rank` for it), until the job enters a new
    ///   epoch;
    /// - every later call of its handles (and of their clones) fails with
    ///   [`CoordinatorError::Fenced`] ("lease lost"), reads included: a
    ///   dead process does nothing; a call of its own that was waiting in a
    ///   collective fails the same way.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::{InMemoryCoordinator, Membership};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::coordinator::CoordinatorError> {
    /// let ranks = InMemoryCoordinator::new(2);
    /// let spare = ranks[0].add_standby("spare-0")?;
    /// ranks[0].faults().kill_member("spare-0");
    /// assert!(spare.current_epoch().await.is_err());
    /// assert_eq!(ranks[0].live_members().await?.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn kill_member(&self, member_id: &str) {
        self.depart(
            member_id,
            Status::Killed,
            format!("member {member_id} was killed (its process died)"),
        );
    }

    /// Makes the lease of the member holding `rank` in the job's current
    /// epoch expire while its process runs on, as a process paused past
    /// its lease (SIGSTOP) or cut off from etcd for longer than its TTL
    /// would find on waking: see [`expire_member`](Self::expire_member).
    /// A rank outside the current epoch is ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::{CoordinatorError, InMemoryCoordinator, Membership};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::coordinator::CoordinatorError> {
    /// let ranks = InMemoryCoordinator::new(2);
    /// ranks[0].faults().expire(1);
    /// // It can still read, and so learns that it is out...
    /// assert_eq!(ranks[1].current_epoch().await?.epoch, 0);
    /// // ...but can no longer write.
    /// let err = ranks[1].put_fenced("commits/1", b"x".to_vec(), None).await.unwrap_err();
    /// assert!(matches!(err, CoordinatorError::Fenced { .. }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn expire(&self, rank: usize) {
        let member = self.shared.lock().epoch.ranks.get(rank).cloned();
        if let Some(member) = member {
            self.expire_member(&member);
        }
    }

    /// Makes the lease of member `member_id` expire while its process runs
    /// on; an unknown or already gone member is ignored.
    ///
    /// For the others it is the same as [`kill_member`](Self::kill_member):
    /// the member leaves with `graceful: false`, its leadership ends, and
    /// its rank of the current epoch fails every round waiting for it. Its
    /// own handle differs: it keeps running and may still **read**
    /// (`current_epoch`, `live_members`, `read_record`, `list_records`,
    /// `leader`, `watch_membership`, which ends after its own departure),
    /// but every **action** (collectives, signals, waits, proposals,
    /// `enter_epoch`, `declare_failed`, writes, campaigns) fails with
    /// [`CoordinatorError::Fenced`] ("lease lost"). An expired member does
    /// not come back: a process that wants to rejoin registers as a new
    /// member (a standby with a new id).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::{Coordinator, CoordinatorError, InMemoryCoordinator};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let ranks = InMemoryCoordinator::new(2);
    /// ranks[0].faults().expire_member("rank-0");
    /// let err = ranks[0].barrier(Duration::from_secs(1)).await.unwrap_err();
    /// assert!(matches!(err, CoordinatorError::Fenced { .. }));
    /// # }
    /// ```
    pub fn expire_member(&self, member_id: &str) {
        self.depart(
            member_id,
            Status::Expired,
            format!("the lease of member {member_id} expired"),
        );
    }

    /// Cuts members `member_ids` off from the coordinator, as a network
    /// partition that leaves them on the side without etcd's quorum would:
    /// until [`heal`](Self::heal), every call they start fails at once with
    /// a transient [`CoordinatorError::Unavailable`] (a call already
    /// waiting in a collective or a wait is left to its timeout). They stay
    /// live members, and the others keep waiting for them, until their
    /// leases expire ([`expire_member`](Self::expire_member)) or they are
    /// killed. Unknown ids are kept and apply to a member registered later
    /// with that id; partitioning adds to the members already cut off.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::{CoordinatorError, InMemoryCoordinator, Membership};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::coordinator::CoordinatorError> {
    /// let ranks = InMemoryCoordinator::new(3);
    /// ranks[0].faults().partition(&["rank-2"]);
    /// assert!(matches!(ranks[2].current_epoch().await, Err(CoordinatorError::Unavailable { .. })));
    /// ranks[0].faults().heal();
    /// assert_eq!(ranks[2].current_epoch().await?.epoch, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn partition(&self, member_ids: &[&str]) {
        {
            let mut state = self.shared.lock();
            state
                .partitioned
                .extend(member_ids.iter().map(|m| m.to_string()));
        }
        tracing::info!(
            target: "steadfast::coordinator",
            coordinator = "in-memory",
            members = ?member_ids,
            "injected partition"
        );
        self.shared.bump();
    }

    /// Ends every partition: the cut-off members reach the coordinator
    /// again, as the members they still are (if their epoch is no longer
    /// the job's, they find themselves fenced and read the current one).
    ///
    /// # Examples
    ///
    /// ```
    /// let ranks = steadfast::coordinator::InMemoryCoordinator::new(2);
    /// ranks[0].faults().partition(&["rank-1"]);
    /// ranks[0].faults().heal();
    /// ```
    pub fn heal(&self) {
        self.shared.lock().partitioned.clear();
        self.shared.bump();
    }

    fn depart(&self, member: &str, status: Status, reason: String) {
        let changed = self.shared.lock().depart(member, status, reason.clone());
        if changed {
            tracing::warn!(
                target: "steadfast::coordinator",
                coordinator = "in-memory",
                member,
                %reason,
                "injected member failure"
            );
            self.shared.bump();
        }
    }
}
