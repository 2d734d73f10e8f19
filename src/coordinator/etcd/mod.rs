//! [`EtcdCoordinator`]: the ranks of a job meet through an etcd cluster, so
//! that they can run as separate processes on separate machines (feature
//! `etcd`).
//!
//! The key layout, the liveness protocol and the failure handling are
//! written down on [`EtcdCoordinator`], right below. The parts live apart:
//!
//! - `config.rs`: [`EtcdConfig`] and its builder;
//! - `lease.rs`: connecting, the lease and its keep-alive, leaving the job;
//! - `members.rs`: the member keys and [`MemberWatch`];
//! - `collective.rs`: barriers, all-gathers and signals (the
//!   [`Coordinator`](super::Coordinator) implementation), and how a round
//!   fails when a participant does;
//! - `membership.rs`: the [`Membership`](super::Membership) implementation:
//!   epochs, declared failures, records, fenced writes;
//! - `round.rs`: how a round is judged (complete, broken, fenced, failed);
//! - `election.rs`: leader election on a lease-backed key;
//! - `watch.rs`: the membership watch;
//! - `error.rs`: how etcd client errors map to [`CoordinatorError`]s.
//!
//! This file holds what they share: the handle, one etcd call with retries,
//! and the read-then-watch loop that every wait is built on.

mod collective;
mod config;
mod election;
mod error;
mod lease;
mod members;
mod membership;
mod round;
mod watch;

pub use config::{EtcdConfig, EtcdConfigBuilder};
pub use members::MemberWatch;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{
    Client, EventType, GetOptions, GetResponse, Txn, TxnOp, TxnOpResponse, WatchOptions,
    WatchStream,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::error::{from_etcd, op_timed_out};
use super::{CoordinatorError, Result, Role};
use crate::retry::{Backoff, RetryError, RetryPolicy};

const TARGET: &str = "steadfast::coordinator";

/// A [`Coordinator`](super::Coordinator) whose ranks meet through etcd: each rank is its own
/// process, on any machine that reaches the etcd cluster.
///
/// Handles are cheap to clone and share one lease and one set of round
/// counters; dropping the last one stops the lease keep-alive (its keys
/// expire after the TTL).
///
/// # How it works
///
/// Every rank connects with an [`EtcdConfig`] naming the same etcd
/// endpoints, the same job prefix and the same world size, and its own rank
/// (or joins as a standby, [`EtcdConfigBuilder::standby`]). All keys of a
/// job live under its prefix, so two jobs with different prefixes never see
/// each other:
///
/// | key | value | written by | lease |
/// |---|---|---|---|
/// | `{prefix}/members/{rank}` | `{"world_size":N,"state":"running","member":"id"}` (`"left"` while it shuts down) | the rank, when it connects | its own |
/// | `{prefix}/ranks/{rank}` | the member id that connected as `rank`: epoch 0 | the rank, in the same transaction | none |
/// | `{prefix}/standby/{member}` | as a member key | a standby, when it connects | its own |
/// | `{prefix}/epoch` | the current [`EpochRecord`](super::EpochRecord), JSON; absent in epoch 0 | [`propose_epoch`](super::Membership::propose_epoch), compare-and-set | none |
/// | `{prefix}/rounds/{epoch}/barrier/{round}/{rank}` | empty | the rank, when it reaches barrier round `round` of `epoch` | its own |
/// | `{prefix}/rounds/{epoch}/gather/{round}/{rank}` | the rank's payload | the rank, in all-gather round `round` of `epoch` | its own |
/// | `{prefix}/rounds/{epoch}/{barrier,gather}/{round}/broken` | the missing ranks, `2,3` (a timeout), or `{"failed":[3],"reason":"..."}` (failed ranks) | the first rank that gave up on the round | its own |
/// | `{prefix}/failed/{epoch}/{rank}` | why, as the declarer said | [`declare_failed`](super::Membership::declare_failed) | none |
/// | `{prefix}/leader` | the leader's member id; its create revision is the term | [`campaign`](super::Membership::campaign) | the leader's |
/// | `{prefix}/records/{key}` | a record; its mod revision is its version | [`compare_and_set`](super::Membership::compare_and_set), [`put_fenced`](super::Membership::put_fenced) | none |
/// | `{prefix}/signal/{key}/{rank}` | 8-byte big-endian sequence number, then the payload | the rank, for each signal | its own |
/// | `{prefix}/done/{rank}` | empty | the rank, in [`EtcdCoordinator::shutdown`] | its own |
///
/// Keys without a lease (`ranks/`, `epoch`, `failed/`, `records/`) outlive
/// the processes: they are the job's history. Delete the prefix when the
/// job is over, or start the next run under a new prefix.
///
/// **Liveness.** Each rank holds an etcd *lease* with a TTL (10 s by
/// default) and attaches every key it writes to it. A background task keeps
/// the lease alive every TTL/3. When a process dies, or loses etcd for longer
/// than the TTL, etcd expires the lease and deletes its keys: its member key
/// disappears, which [`EtcdCoordinator::watch_members`] reports, and nothing
/// the dead rank wrote lingers. Dropping the last handle of a coordinator
/// stops the keep-alive, so its keys expire after the TTL;
/// [`EtcdCoordinator::shutdown`] leaves at once instead.
///
/// **Collectives** ([`barrier`](super::Coordinator::barrier),
/// [`all_gather`](super::Coordinator::all_gather)) are numbered by round,
/// one counter per kind and per epoch, and complete when the keys of all
/// `world_size` ranks of the epoch exist in that round. A rank arrives with
/// a transaction that writes its key only if the round is not broken, the
/// job is still in the epoch the handle entered (the mod revision of
/// `{prefix}/epoch` is the one it entered with, 0 in epoch 0) and its own
/// member key is still held by its lease; otherwise it fails with
/// [`CoordinatorError::Fenced`] (or the round's breakage). It then reads,
/// in one transaction, the round, the member and standby keys, the failed
/// ranks of the epoch, the epoch key (and, in epoch 0, `ranks/`), and, if
/// the round is incomplete, follows them with one etcd WATCH of the job
/// prefix that starts at the revision of that read, so that no event
/// between the read and the watch is missed. Nothing polls.
///
/// **A failed participant fails the round at once.** A rank of the epoch
/// that has not arrived and whose member is gone (its key expired with its
/// lease: it died, hung, or lost etcd for longer than the TTL; or it said
/// `left` and shut down), or any rank declared failed in the epoch
/// (`{prefix}/failed/{epoch}/{rank}`), makes the waiting ranks mark the
/// round broken with the failed ranks and why, in a transaction that
/// succeeds only while the missing ranks are still missing; every rank
/// (and any late one) then fails with [`CoordinatorError::RanksFailed`]
/// naming them, as soon as etcd reports the change: within the lease TTL
/// of a SIGKILL. A round that completed first stays complete, so every
/// rank sees the same end. In epoch 0 a rank that never connected is late,
/// not failed. When the job moves to another epoch during a wait, or the
/// handle's own member key goes, the wait fails with `Fenced`.
///
/// **Timeouts** stay as the last resort: when its timeout expires, the rank
/// marks the round *broken* in a transaction that succeeds only if the
/// missing ranks are still missing, and fails with
/// [`CoordinatorError::Timeout`] naming them; the other ranks (and any late
/// one) then fail with [`CoordinatorError::Broken`] instead of completing a
/// round that another rank gave up on. Once a round completes, each rank
/// deletes its key of the round before (every rank has left that one).
///
/// **Epochs.** Epoch 0 is the ranks as connected (`ranks/{rank}`); its
/// record is complete once every rank has connected (before that,
/// [`current_epoch`](super::Membership::current_epoch) fails with
/// [`CoordinatorError::Unavailable`] naming the ranks not yet there). A
/// later epoch is one
/// key, `{prefix}/epoch`, written by
/// [`propose_epoch`](super::Membership::propose_epoch) in a transaction
/// that compares its mod revision with the one read (0: absent), so of
/// several proposals after the same epoch exactly one lands. A handle
/// [enters](super::Membership::enter_epoch) the record it read back: its
/// rank is its member id's place in it (none: a standby), its world size
/// the record's, its rounds start at 0 under `rounds/{epoch}/`, and every
/// arrival compares the epoch key's revision, so a rank of an older epoch
/// cannot take part.
///
/// **Standbys** register `standby/{member}` under their lease and hold no
/// rank: [`rank`](super::Coordinator::rank) answers the world size of their
/// epoch (the job's current one when they connected), and their collectives
/// and signals fail with [`CoordinatorError::NotAMember`], until they enter
/// an epoch that gives them a rank. Their member key stays
/// `standby/{member}`: liveness follows the member id, wherever its key is.
///
/// **Fencing.** [`put_fenced`](super::Membership::put_fenced) writes a
/// record in one transaction that compares the epoch key's revision, that
/// this member's key is held by its own lease (`Compare::lease`), and, with
/// a leadership, that `{prefix}/leader` was created at the leadership's
/// term and names this member. When it fails, the transaction's reads say
/// which check failed, and the error is [`CoordinatorError::Fenced`]
/// naming it. A member whose lease expired (a process stopped past its TTL
/// and resumed) can no longer write under it: every operation fails with
/// `Fenced`, whether its keep-alive noticed first or etcd refused the
/// transaction.
///
/// **Election.** [`campaign`](super::Membership::campaign) creates
/// `{prefix}/leader` under the campaigner's lease in a transaction that
/// succeeds only while the key is absent (create revision 0); the term is
/// the revision that created it, so it grows with every leadership. A
/// campaign that loses follows the key with a watch until it is deleted
/// (resigned, or its holder's lease expired) and tries again. This is the
/// protocol of etcd's election API, written with a transaction so that the
/// term is the key's create revision that
/// [`put_fenced`](super::Membership::put_fenced) compares, with no second
/// client API (etcd's election service is a separate gRPC service).
///
/// **Membership watch.** [`watch_membership`](super::Membership::watch_membership)
/// reads the job, reports every live member as joined, then follows the
/// job prefix: member keys (a delete after `left` is a graceful leave, a
/// delete without it a failure), `failed/`, `epoch` and `leader`. A broken
/// watch is re-established from a fresh read, reporting the difference.
///
/// **Signals** ([`signal`](super::Coordinator::signal),
/// [`wait_for_rank`](super::Coordinator::wait_for_rank)) are one key per rank and
/// signal key; the sequence number is raised with a compare-and-swap
/// transaction, and a wait follows the key with a watch.
///
/// **Failures.** Every etcd call has a timeout (`op_timeout`) and transient
/// errors (etcd unavailable, a connection reset, a leader election, a call
/// that did not answer in time) are retried under the configured
/// [`RetryPolicy`]; a watch that breaks (etcd restarted) is re-established
/// from a fresh read. Errors map to [`CoordinatorError::Unavailable`]
/// (transient) or [`CoordinatorError::Backend`] (permanent). An unreachable
/// etcd fails [`EtcdCoordinator::connect`] within `connect_timeout`; an etcd
/// that stays unreachable for longer than the retry policy allows fails a
/// wait with `Unavailable`, even before its own timeout.
///
/// **One prefix per run.** A rank registers only if no other process holds
/// its member key under the prefix, and refuses to join ranks of another
/// world size. Keys of a crashed run expire with their leases; until then,
/// start the next run under a new prefix (`/jobs/train-42/attempt-2`).
///
/// **Health.** [`EtcdCoordinator::watch_members`] reports the leases as
/// [`MemberEvent`](super::MemberEvent)s; a health monitor that follows them
/// (`HealthMonitor::follow_members(world_size, coordinator.watch_members())`)
/// marks a rank whose lease expires Failed.
///
/// # Examples
///
/// Four ranks, here tasks of one process (each would normally be its own
/// process, started with its own rank):
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::{Coordinator, EtcdConfig, EtcdCoordinator};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
/// let prefix = format!("doc-example-{}", std::process::id());
/// let mut tasks = Vec::new();
/// for rank in 0..4 {
///     let config = EtcdConfig::builder()
///         .endpoints_csv(&endpoints)
///         .prefix(prefix.clone())
///         .rank(rank)
///         .world_size(4)
///         .build()?;
///     tasks.push(tokio::spawn(async move {
///         let coordinator = EtcdCoordinator::connect(config).await?;
///         let all = coordinator
///             .all_gather(vec![rank as u8], Duration::from_secs(30))
///             .await?;
///         assert_eq!(all, vec![vec![0], vec![1], vec![2], vec![3]]);
///         coordinator.barrier(Duration::from_secs(30)).await?;
///         coordinator.shutdown(Duration::from_secs(30)).await
///     }));
/// }
/// for task in tasks {
///     task.await??;
/// }
/// # Ok(())
/// # }
/// ```
///
/// A rank fails; a standby takes its rank in the next epoch, and the rank
/// left behind in epoch 0 is fenced:
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::{
///     Coordinator, CoordinatorError, EpochRecord, EtcdConfig, EtcdCoordinator, Membership, Role,
/// };
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
/// let prefix = format!("doc-membership-{}", std::process::id());
/// let builder = || EtcdConfig::builder().endpoints_csv(&endpoints).prefix(prefix.clone()).world_size(2);
/// let rank0 = EtcdCoordinator::connect(builder().rank(0).member_id("a").build()?).await?;
/// let rank1 = EtcdCoordinator::connect(builder().rank(1).member_id("b").build()?).await?;
/// let spare = EtcdCoordinator::connect(builder().member_id("spare").standby(true).build()?).await?;
/// assert_eq!((spare.role(), spare.rank()), (Role::Standby, 2));
///
/// rank0.declare_failed(1, "missed heartbeats").await?;
/// let err = rank0.barrier(Duration::from_secs(30)).await.unwrap_err();
/// assert_eq!(err.missing_ranks(), &[1]); // RanksFailed, at once
///
/// let current = rank0.current_epoch().await?;
/// let mut next = EpochRecord::next_after(&current);
/// next.ranks[1] = "spare".into();
/// assert!(rank0.propose_epoch(current.epoch, &next).await?.is_accepted());
/// rank0.enter_epoch(&next).await?;
/// spare.enter_epoch(&next).await?;
/// let (a, b) = tokio::join!(
///     rank0.barrier(Duration::from_secs(30)),
///     spare.barrier(Duration::from_secs(30)),
/// );
/// a?;
/// b?;
/// let err = rank1.put_fenced("commits/1", b"late".to_vec(), None).await.unwrap_err();
/// assert!(matches!(err, CoordinatorError::Fenced { epoch: 0, .. }));
/// # rank1.shutdown(Duration::from_millis(100)).await.ok();
/// # let (a, b) = tokio::join!(rank0.shutdown(Duration::from_secs(5)), spare.shutdown(Duration::from_secs(5)));
/// # a?; b?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct EtcdCoordinator {
    inner: Arc<Inner>,
}

impl fmt::Debug for EtcdCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdCoordinator")
            .field("endpoints", &self.inner.config.endpoints)
            .field("prefix", &self.inner.config.prefix)
            .field("member_id", &self.inner.member_id)
            .field("epoch", &self.epoch_state().epoch)
            .field("role", &self.epoch_state().role)
            .field("lease_id", &self.inner.lease_id)
            .finish()
    }
}

struct Inner {
    config: EtcdConfig,
    client: Client,
    lease_id: i64,
    lease_ttl_secs: i64,
    /// This member's id (set, or made at connect).
    member_id: String,
    /// The epoch this handle takes part in, with its round counters; shared
    /// by the clones of a handle.
    epoch: Mutex<EpochState>,
    /// `ACTIVE`, `LEASE_LOST` or `SHUT_DOWN` (see `lease.rs`).
    state: Arc<AtomicU8>,
    keep_alive: Mutex<Option<AbortOnDrop>>,
    /// Set to `true` at shutdown: membership watches end.
    closed: tokio::sync::watch::Sender<bool>,
}

/// The epoch a handle entered, and its place in it.
#[derive(Debug, Clone)]
struct EpochState {
    epoch: u64,
    /// The mod revision of `{prefix}/epoch` when the handle entered; 0 for
    /// epoch 0 (the key absent). Every round arrival compares it.
    revision: i64,
    /// The member holding each rank; `None` in epoch 0, whose members are
    /// the `{prefix}/ranks/{rank}` keys.
    ranks: Option<Vec<String>>,
    role: Role,
    world_size: usize,
    /// The next round of each collective in this epoch.
    next_barrier: u64,
    next_gather: u64,
}

impl EpochState {
    /// This handle's rank, or the world size for a standby.
    fn rank_or_world(&self) -> usize {
        self.role.rank().unwrap_or(self.world_size)
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
/// The keys under `dir` that a wait follows, by the part after `dir`, with
/// their values.
type View = BTreeMap<String, Vec<u8>>;
/// Parses a key segment that must be exactly a rank number.
fn parse_rank(segment: &str) -> Option<usize> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if segment.len() > 1 && segment.starts_with('0') {
        return None;
    }
    segment.parse().ok()
}
fn revision_of(resp: &GetResponse) -> i64 {
    resp.header().map(|h| h.revision()).unwrap_or(0)
}
/// Whether `member` is alive in a view of the whole job (keys relative to
/// `{prefix}/`): a `members/{rank}` or `standby/{member}` key names it and
/// says it runs (a member that is shutting down says `left` first).
fn is_live(view: &View, member: &str) -> bool {
    let running = |value: &Vec<u8>| {
        members::MemberValue::parse(value)
            .is_some_and(|v| v.member == member && v.state == members::MemberState::Running)
    };
    view.get(&format!("standby/{member}")).is_some_and(running)
        || view
            .range("members/".to_string()..)
            .take_while(|(k, _)| k.starts_with("members/"))
            .any(|(_, v)| running(v))
}
/// The part of `key` after `dir`, when `key` starts with `dir` and is UTF-8.
fn suffix_of<'a>(key: &'a [u8], dir: &str) -> Option<&'a str> {
    std::str::from_utf8(key.strip_prefix(dir.as_bytes())?).ok()
}

impl EtcdCoordinator {
    /// The configuration this coordinator was connected with.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::coordinator::{EtcdConfig, EtcdCoordinator};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
    /// # let prefix = format!("doc-config-{}", std::process::id());
    /// let config = EtcdConfig::builder().endpoints_csv(&endpoints).prefix(prefix).build()?;
    /// let coordinator = EtcdCoordinator::connect(config.clone()).await?;
    /// assert_eq!(coordinator.config(), &config);
    /// # coordinator.shutdown(std::time::Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn config(&self) -> &EtcdConfig {
        &self.inner.config
    }

    /// The id of this rank's etcd lease.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::coordinator::{EtcdConfig, EtcdCoordinator};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
    /// # let prefix = format!("doc-lease-{}", std::process::id());
    /// let config = EtcdConfig::builder().endpoints_csv(&endpoints).prefix(prefix).build()?;
    /// let coordinator = EtcdCoordinator::connect(config).await?;
    /// assert_ne!(coordinator.lease_id(), 0);
    /// # coordinator.shutdown(std::time::Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn lease_id(&self) -> i64 {
        self.inner.lease_id
    }

    /// The lease TTL etcd granted (it may raise the configured one to its
    /// minimum).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use steadfast::coordinator::{EtcdConfig, EtcdCoordinator};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
    /// # let prefix = format!("doc-ttl-{}", std::process::id());
    /// let config = EtcdConfig::builder().endpoints_csv(&endpoints).prefix(prefix).build()?;
    /// let coordinator = EtcdCoordinator::connect(config).await?;
    /// assert!(coordinator.lease_ttl() >= Duration::from_secs(10));
    /// # coordinator.shutdown(Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.inner.lease_ttl_secs.unsigned_abs())
    }

    fn epoch_state(&self) -> MutexGuard<'_, EpochState> {
        self.inner.epoch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key of a job path, `{prefix}/{path}`.
    fn key(&self, path: &str) -> String {
        format!("{}/{path}", self.inner.config.prefix)
    }

    fn check_rank(&self, rank: usize) -> Result<()> {
        let world_size = self.epoch_state().world_size;
        if rank >= world_size {
            return Err(CoordinatorError::InvalidRank { rank, world_size });
        }
        Ok(())
    }

    /// One etcd call with a timeout per attempt, retried under the policy.
    async fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut + Send,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>> + Send,
        T: Send,
    {
        self.check_usable()?;
        retry_call(
            &self.inner.config.retry,
            what,
            self.inner.config.op_timeout,
            &self.inner.client,
            op,
            |_| {},
        )
        .await
        .map_err(|e| self.fence_lost_lease(e))
    }

    /// etcd refuses a write under a lease that is gone ("requested lease
    /// not found", as etcd's own clients recognise it): this member lost
    /// its liveness, so the error is [`CoordinatorError::Fenced`], and the
    /// handle stays fenced.
    fn fence_lost_lease(&self, e: CoordinatorError) -> CoordinatorError {
        if matches!(&e, CoordinatorError::Backend { message, .. } if message.contains("requested lease not found"))
        {
            self.inner
                .state
                .compare_exchange(
                    lease::ACTIVE,
                    lease::LEASE_LOST,
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                )
                .ok();
            return self.lease_lost();
        }
        e
    }

    /// One etcd call with a timeout, not retried.
    async fn call_once<T, Fut>(&self, what: &str, op: impl FnOnce(Client) -> Fut) -> Result<T>
    where
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let op_timeout = self.inner.config.op_timeout;
        match tokio::time::timeout(op_timeout, op(self.inner.client.clone())).await {
            Ok(result) => result.map_err(|e| from_etcd(what, e)),
            Err(_) => Err(op_timed_out(what, op_timeout)),
        }
    }

    /// Reads the keys under `key` (a prefix when `prefix` is set), then
    /// follows them with a watch that starts right after that read, calling
    /// `decide` on every new state until it returns `Some`.
    ///
    /// Returns `Ok(None)` when `deadline` passes first, leaving the last
    /// state seen in `view`. A watch that breaks (etcd restarted, the
    /// revision was compacted) is re-established from a fresh read.
    async fn follow<R>(
        &self,
        what: &'static str,
        key: &str,
        prefix: bool,
        deadline: Instant,
        view: &mut View,
        decide: impl FnMut(&View) -> Option<R> + Send,
    ) -> Result<Option<R>> {
        let ranges = [Range {
            path: String::new(),
            prefix,
        }];
        self.follow_ranges(what, key, &ranges, deadline, view, decide)
            .await
    }

    /// [`follow`](Self::follow) for several key ranges under `root`: they
    /// are read in one transaction (one revision), and followed with one
    /// watch of `root` (a prefix watch, unless the only range is one key)
    /// whose events outside the ranges are ignored. `view` holds the keys by
    /// the part after `root`.
    async fn follow_ranges<R>(
        &self,
        what: &'static str,
        root: &str,
        ranges: &[Range],
        deadline: Instant,
        view: &mut View,
        mut decide: impl FnMut(&View) -> Option<R> + Send,
    ) -> Result<Option<R>> {
        let mut backoff: Option<Backoff> = None;
        let watch_prefix = ranges.len() != 1 || ranges.iter().any(|r| r.prefix);
        let watch_key = if watch_prefix {
            root.to_string()
        } else {
            ranges
                .first()
                .map(|r| format!("{root}{}", r.path))
                .unwrap_or_else(|| root.to_string())
        };
        let wanted = |suffix: &str| ranges.iter().any(|r| r.holds(suffix));
        loop {
            let read = self.call(what, |mut c| {
                let ops: Vec<TxnOp> = ranges
                    .iter()
                    .map(|r| {
                        let options = r.prefix.then(|| GetOptions::new().with_prefix());
                        TxnOp::get(format!("{root}{}", r.path), options)
                    })
                    .collect();
                async move { c.txn(Txn::new().and_then(ops)).await }
            });
            let resp = match tokio::time::timeout_at(deadline, read).await {
                Err(_) => return Ok(None),
                Ok(resp) => resp?,
            };
            view.clear();
            for op in resp.op_responses() {
                if let TxnOpResponse::Get(get) = op {
                    for kv in get.kvs() {
                        if let Some(suffix) = suffix_of(kv.key(), root) {
                            view.insert(suffix.to_string(), kv.value().to_vec());
                        }
                    }
                }
            }
            if let Some(result) = decide(view) {
                return Ok(Some(result));
            }
            let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
            let start = revision.saturating_add(1);
            let watch = self.call("watch", |mut c| {
                let key = watch_key.clone();
                let mut options = WatchOptions::new().with_start_revision(start);
                if watch_prefix {
                    options = options.with_prefix();
                }
                async move { c.watch(key, Some(options)).await }
            });
            let mut stream: WatchStream = match tokio::time::timeout_at(deadline, watch).await {
                Err(_) => return Ok(None),
                Ok(stream) => stream?,
            };
            loop {
                let message = match tokio::time::timeout_at(deadline, stream.message()).await {
                    Err(_) => return Ok(None),
                    Ok(message) => message,
                };
                match message {
                    Ok(Some(resp)) => {
                        if resp.canceled() {
                            tracing::debug!(
                                target: TARGET,
                                coordinator = "etcd",
                                operation = what,
                                key = root,
                                reason = resp.cancel_reason(),
                                compact_revision = resp.compact_revision(),
                                "watch canceled; reading again"
                            );
                            break;
                        }
                        backoff = None;
                        let mut changed = false;
                        for event in resp.events() {
                            let Some(kv) = event.kv() else { continue };
                            let Some(suffix) = suffix_of(kv.key(), root) else {
                                continue;
                            };
                            if !wanted(suffix) {
                                continue;
                            }
                            changed = true;
                            match event.event_type() {
                                EventType::Put => {
                                    view.insert(suffix.to_string(), kv.value().to_vec());
                                }
                                EventType::Delete => {
                                    view.remove(suffix);
                                }
                            }
                        }
                        if changed && let Some(result) = decide(view) {
                            return Ok(Some(result));
                        }
                    }
                    Ok(None) => {
                        tracing::debug!(
                            target: TARGET,
                            coordinator = "etcd",
                            operation = what,
                            key = root,
                            "watch stream ended; reading again"
                        );
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(
                            target: TARGET,
                            coordinator = "etcd",
                            operation = what,
                            key = root,
                            error = %e,
                            "watch broke; reading again"
                        );
                        break;
                    }
                }
            }
            // A watch that keeps breaking at once is not retried in a tight
            // loop: wait the policy's backoff, bounded by the deadline.
            let delay = backoff
                .get_or_insert_with(|| self.inner.config.retry.backoff())
                .next()
                .unwrap_or(self.inner.config.retry.max_delay());
            if tokio::time::timeout_at(deadline, tokio::time::sleep(delay))
                .await
                .is_err()
            {
                return Ok(None);
            }
        }
    }
}

/// A key range that a wait follows: the key `path` under the wait's root,
/// or every key starting with it.
#[derive(Debug, Clone)]
struct Range {
    path: String,
    prefix: bool,
}

impl Range {
    fn key(path: impl Into<String>) -> Range {
        Range {
            path: path.into(),
            prefix: false,
        }
    }

    fn prefix(path: impl Into<String>) -> Range {
        Range {
            path: path.into(),
            prefix: true,
        }
    }

    fn holds(&self, suffix: &str) -> bool {
        if self.prefix {
            suffix.starts_with(&self.path)
        } else {
            suffix == self.path
        }
    }
}

/// One etcd call with a timeout per attempt, retried under `policy` while it
/// fails with a transient error. `record` sees every failed attempt.
async fn retry_call<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    op_timeout: Duration,
    client: &Client,
    mut op: F,
    mut record: impl FnMut(&CoordinatorError) + Send,
) -> Result<T>
where
    F: FnMut(Client) -> Fut + Send,
    Fut: Future<Output = std::result::Result<T, etcd_client::Error>> + Send,
    T: Send,
{
    let result = policy
        .retry(|| {
            let attempt = op(client.clone());
            async move {
                match tokio::time::timeout(op_timeout, attempt).await {
                    Ok(result) => result.map_err(|e| from_etcd(what, e)),
                    Err(_) => Err(op_timed_out(what, op_timeout)),
                }
            }
        })
        .when(|e: &CoordinatorError| {
            record(e);
            matches!(e, CoordinatorError::Unavailable { .. })
        })
        .notify(|attempt: u32, e: &CoordinatorError, delay: Duration| {
            tracing::debug!(
                target: TARGET,
                coordinator = "etcd",
                operation = what,
                attempt,
                ?delay,
                error = %e,
                "etcd call failed; retrying"
            );
        })
        .await;
    result.map_err(RetryError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<EtcdConfig>();
        assert_send_sync::<EtcdCoordinator>();
        assert_send_sync::<crate::coordinator::MemberEvent>();
        fn assert_send<T: Send>() {}
        assert_send::<MemberWatch>();
    }
}
