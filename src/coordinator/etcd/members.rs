//! The members of a job: the member keys, [`EtcdCoordinator::watch_members`]
//! and its [`MemberWatch`], and [`EtcdCoordinator::report_liveness`], which
//! turns the leases into heartbeats of a health monitor.

use std::collections::BTreeSet;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{
    parse_rank, retry_call, revision_of, suffix_of, AbortOnDrop, EtcdConfig, EtcdCoordinator,
    TARGET,
};
use crate::coordinator::Result;
use crate::health::{HealthMonitor, MemberId};

/// What a member key says about its rank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct MemberValue {
    pub(super) world_size: usize,
    pub(super) state: MemberState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum MemberState {
    Running,
    Left,
}

/// A change in the membership of a job, from
/// [`EtcdCoordinator::watch_members`].
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::MemberEvent;
///
/// let event = MemberEvent::Left { rank: 2, graceful: false };
/// assert_eq!(event.rank(), 2);
/// assert!(event.is_failure());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberEvent {
    /// The rank's member key exists: it connected (or was there when the
    /// watch started).
    Joined {
        /// The rank.
        rank: usize,
    },
    /// The rank's member key is gone.
    Left {
        /// The rank.
        rank: usize,
        /// `true` when the rank left through
        /// [`EtcdCoordinator::shutdown`]; `false` when its lease expired (its
        /// process died, hung, or lost etcd for longer than the TTL).
        graceful: bool,
    },
}

impl MemberEvent {
    /// The rank the event is about.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::MemberEvent;
    /// assert_eq!(MemberEvent::Joined { rank: 1 }.rank(), 1);
    /// ```
    pub fn rank(&self) -> usize {
        match *self {
            MemberEvent::Joined { rank } | MemberEvent::Left { rank, .. } => rank,
        }
    }

    /// Whether the event says the rank failed: it left without shutting
    /// down.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::MemberEvent;
    /// assert!(!MemberEvent::Left { rank: 0, graceful: true }.is_failure());
    /// ```
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            MemberEvent::Left {
                graceful: false,
                ..
            }
        )
    }
}

/// A stream of [`MemberEvent`]s, from [`EtcdCoordinator::watch_members`].
///
/// It first yields a `Joined` event for every rank alive when the watch
/// starts, then each change. An etcd error is yielded as an `Err` item and
/// the watch goes on, re-established once etcd answers again. Dropping the
/// stream stops the background task that feeds it.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use steadfast::coordinator::{EtcdConfig, EtcdCoordinator, MemberEvent};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
/// # let prefix = format!("doc-member-watch-{}", std::process::id());
/// let config = EtcdConfig::builder().endpoints_csv(&endpoints).prefix(prefix).build()?;
/// let rank0 = EtcdCoordinator::connect(config).await?;
/// let mut members = rank0.watch_members();
/// assert_eq!(members.next().await.transpose()?, Some(MemberEvent::Joined { rank: 0 }));
/// # rank0.shutdown(std::time::Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
pub struct MemberWatch {
    events: mpsc::Receiver<Result<MemberEvent>>,
    task: AbortOnDrop,
}

impl fmt::Debug for MemberWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberWatch")
            .field("finished", &self.task.0.is_finished())
            .finish_non_exhaustive()
    }
}

impl futures::Stream for MemberWatch {
    type Item = Result<MemberEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}
/// The background task of [`EtcdCoordinator::report_liveness`]; dropping
/// it stops the reporting.
///
/// # Examples
///
/// ```
/// # use steadfast::coordinator::{EtcdConfig, EtcdCoordinator};
/// # use steadfast::health::HealthMonitor;
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
/// # let prefix = format!("doc-reporter-{}", std::process::id());
/// # let config = EtcdConfig::builder().endpoints_csv(&endpoints).prefix(prefix).build()?;
/// let coordinator = EtcdCoordinator::connect(config).await?;
/// let monitor = HealthMonitor::default();
/// let reporter = coordinator.report_liveness(&monitor);
/// assert!(!reporter.is_finished());
/// drop(reporter); // stops reporting
/// # coordinator.shutdown(std::time::Duration::from_millis(100)).await.ok();
/// # Ok(())
/// # }
/// ```
pub struct LivenessReporter {
    task: AbortOnDrop,
}

impl LivenessReporter {
    /// Whether the reporting task has ended (it ends only when its member
    /// watch does).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::coordinator::{EtcdConfig, EtcdCoordinator};
    /// # use steadfast::health::HealthMonitor;
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
    /// # let prefix = format!("doc-reporter-finished-{}", std::process::id());
    /// # let config = EtcdConfig::builder().endpoints_csv(&endpoints).prefix(prefix).build()?;
    /// let coordinator = EtcdCoordinator::connect(config).await?;
    /// let reporter = coordinator.report_liveness(&HealthMonitor::default());
    /// assert!(!reporter.is_finished());
    /// # coordinator.shutdown(std::time::Duration::from_millis(100)).await.ok();
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_finished(&self) -> bool {
        self.task.0.is_finished()
    }
}

impl fmt::Debug for LivenessReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LivenessReporter")
            .field("finished", &self.is_finished())
            .finish()
    }
}
impl EtcdCoordinator {
    /// The ranks whose member key exists now (their lease is alive), sorted.
    ///
    /// # Errors
    ///
    /// [`CoordinatorError::Unavailable`](crate::coordinator::CoordinatorError::Unavailable) when etcd cannot be read after
    /// retries.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::coordinator::{EtcdConfig, EtcdCoordinator};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
    /// # let prefix = format!("doc-alive-{}", std::process::id());
    /// let config = EtcdConfig::builder()
    ///     .endpoints_csv(&endpoints)
    ///     .prefix(prefix)
    ///     .rank(1)
    ///     .world_size(3)
    ///     .build()?;
    /// let rank1 = EtcdCoordinator::connect(config).await?;
    /// assert_eq!(rank1.members_alive().await?, vec![1]);
    /// # rank1.shutdown(std::time::Duration::from_millis(100)).await.ok();
    /// # Ok(())
    /// # }
    /// ```
    pub async fn members_alive(&self) -> Result<Vec<usize>> {
        let dir = self.members_dir();
        let resp = self
            .call("get members", {
                let dir = dir.clone();
                move |mut c| {
                    let dir = dir.clone();
                    async move { c.get(dir, Some(GetOptions::new().with_prefix())).await }
                }
            })
            .await?;
        let world_size = self.inner.config.world_size;
        let mut ranks: Vec<usize> = resp
            .kvs()
            .iter()
            .filter_map(|kv| suffix_of(kv.key(), &dir).and_then(parse_rank))
            .filter(|&rank| rank < world_size)
            .collect();
        ranks.sort_unstable();
        ranks.dedup();
        Ok(ranks)
    }

    /// Follows the members of the job: a `Joined` event for every rank
    /// alive now, then one event per change. A rank whose lease expires
    /// yields `Left { graceful: false }`.
    ///
    /// The watch runs in a background task on its own etcd stream until the
    /// returned [`MemberWatch`] is dropped; it survives etcd restarts (it
    /// re-reads the members and reports the difference).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use steadfast::coordinator::{EtcdConfig, EtcdCoordinator, MemberEvent};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
    /// let prefix = format!("doc-watch-{}", std::process::id());
    /// let config = |rank| {
    ///     EtcdConfig::builder()
    ///         .endpoints_csv(&endpoints)
    ///         .prefix(prefix.clone())
    ///         .rank(rank)
    ///         .world_size(2)
    ///         .build()
    /// };
    /// let rank0 = EtcdCoordinator::connect(config(0)?).await?;
    /// let mut members = rank0.watch_members();
    /// assert_eq!(members.next().await.transpose()?, Some(MemberEvent::Joined { rank: 0 }));
    ///
    /// let rank1 = EtcdCoordinator::connect(config(1)?).await?;
    /// assert_eq!(members.next().await.transpose()?, Some(MemberEvent::Joined { rank: 1 }));
    /// rank1.shutdown(std::time::Duration::from_millis(100)).await.ok();
    /// assert_eq!(
    ///     members.next().await.transpose()?,
    ///     Some(MemberEvent::Left { rank: 1, graceful: true })
    /// );
    /// # rank0.shutdown(std::time::Duration::from_millis(100)).await.ok();
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch_members(&self) -> MemberWatch {
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(member_watch_loop(
            self.inner.client.clone(),
            self.inner.config.clone(),
            tx,
        ));
        MemberWatch {
            events: rx,
            task: AbortOnDrop(task),
        }
    }

    /// Feeds `monitor` with the liveness etcd sees: every rank of the job
    /// becomes a member of the monitor ([`MemberId::Rank`]), and a rank is
    /// heard from (one heartbeat every half `heartbeat_timeout`) for as long
    /// as its lease lives.
    ///
    /// When a rank's lease expires (its process died or lost etcd for longer
    /// than the TTL), it is marked Failed at once
    /// ([`HealthMonitor::mark_failed`]) and its heartbeats stop, so it stays
    /// Failed until it joins again. A rank that never connects is marked
    /// Unresponsive and then Failed by the monitor's own sweep, after
    /// `heartbeat_timeout` and twice that. A rank that
    /// leaves through [`shutdown`](Self::shutdown) is removed from the
    /// monitor instead: a clean exit is not a failure. While etcd itself is
    /// unreachable, the ranks last seen alive keep being heard from: an etcd
    /// outage is not a failure of the ranks.
    ///
    /// The reporting runs in a background task (with its own member watch)
    /// until the returned [`LivenessReporter`] is dropped. The monitor must
    /// be swept ([`HealthMonitor::start`]) for failures to show.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::{EtcdConfig, EtcdCoordinator};
    /// use steadfast::health::{HealthConfig, HealthMonitor, HealthStatus, MemberId};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
    /// # let prefix = format!("doc-liveness-{}", std::process::id());
    /// let config = EtcdConfig::builder()
    ///     .endpoints_csv(&endpoints)
    ///     .prefix(prefix)
    ///     .world_size(2)
    ///     .build()?;
    /// let rank0 = EtcdCoordinator::connect(config).await?;
    /// let monitor = HealthMonitor::new(HealthConfig::default());
    /// let _sweeper = monitor.start()?;
    /// let _reporter = rank0.report_liveness(&monitor);
    /// // Both ranks are members; rank 1 fails unless it connects in time.
    /// assert_eq!(monitor.len(), 2);
    /// assert_eq!(monitor.status(&MemberId::Rank(0)), Some(HealthStatus::Healthy));
    /// # rank0.shutdown(Duration::from_millis(100)).await.ok();
    /// # Ok(())
    /// # }
    /// ```
    pub fn report_liveness(&self, monitor: &HealthMonitor) -> LivenessReporter {
        for rank in 0..self.inner.config.world_size {
            monitor.add_member(rank);
        }
        let members = self.watch_members();
        let task = tokio::spawn(liveness_loop(
            members,
            monitor.clone(),
            self.inner.config.prefix.clone(),
        ));
        LivenessReporter {
            task: AbortOnDrop(task),
        }
    }

    fn members_dir(&self) -> String {
        format!("{}/members/", self.inner.config.prefix)
    }
}

pub(super) fn member_key(prefix: &str, rank: usize) -> String {
    format!("{prefix}/members/{rank}")
}
/// Feeds a [`MemberWatch`]: reads the members, reports the difference with
/// what it reported before, follows them with a watch, and starts over when
/// the watch breaks.
async fn member_watch_loop(
    client: Client,
    config: EtcdConfig,
    tx: mpsc::Sender<Result<MemberEvent>>,
) {
    let dir = format!("{}/members/", config.prefix);
    let world_size = config.world_size;
    let rank_of = |key: &[u8]| {
        suffix_of(key, &dir)
            .and_then(parse_rank)
            .filter(|&r| r < world_size)
    };
    let mut known: BTreeSet<usize> = BTreeSet::new();
    let mut backoff = config.retry.backoff();
    loop {
        let read = retry_call(
            &config.retry,
            "get members",
            config.op_timeout,
            &client,
            |mut c| {
                let dir = dir.clone();
                async move { c.get(dir, Some(GetOptions::new().with_prefix())).await }
            },
            |_| {},
        )
        .await;
        let resp = match read {
            Ok(resp) => resp,
            Err(e) => {
                if tx.send(Err(e)).await.is_err() {
                    return;
                }
                tokio::time::sleep(backoff.next().unwrap_or(config.retry.max_delay())).await;
                continue;
            }
        };
        let now: BTreeSet<usize> = resp
            .kvs()
            .iter()
            .filter_map(|kv| rank_of(kv.key()))
            .collect();
        for &rank in known.difference(&now) {
            if tx
                .send(Ok(MemberEvent::Left {
                    rank,
                    graceful: false,
                }))
                .await
                .is_err()
            {
                return;
            }
        }
        for &rank in now.difference(&known) {
            if tx.send(Ok(MemberEvent::Joined { rank })).await.is_err() {
                return;
            }
        }
        known = now;
        let start = revision_of(&resp).saturating_add(1);
        let watch = retry_call(
            &config.retry,
            "watch members",
            config.op_timeout,
            &client,
            |mut c| {
                let dir = dir.clone();
                let options = WatchOptions::new()
                    .with_start_revision(start)
                    .with_prefix()
                    .with_prev_key();
                async move { c.watch(dir, Some(options)).await }
            },
            |_| {},
        )
        .await;
        let mut stream = match watch {
            Ok(stream) => stream,
            Err(e) => {
                if tx.send(Err(e)).await.is_err() {
                    return;
                }
                tokio::time::sleep(backoff.next().unwrap_or(config.retry.max_delay())).await;
                continue;
            }
        };
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                () = tx.closed() => return,
            };
            let resp = match message {
                Ok(Some(resp)) if !resp.canceled() => resp,
                _ => break,
            };
            backoff = config.retry.backoff();
            for event in resp.events() {
                let Some(rank) = event.kv().and_then(|kv| rank_of(kv.key())) else {
                    continue;
                };
                let event = match event.event_type() {
                    EventType::Put => {
                        if !known.insert(rank) {
                            continue;
                        }
                        MemberEvent::Joined { rank }
                    }
                    EventType::Delete => {
                        if !known.remove(&rank) {
                            continue;
                        }
                        let graceful = event
                            .prev_kv()
                            .and_then(|kv| serde_json::from_slice::<MemberValue>(kv.value()).ok())
                            .is_some_and(|v| v.state == MemberState::Left);
                        MemberEvent::Left { rank, graceful }
                    }
                };
                tracing::info!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %config.prefix,
                    member = rank,
                    ?event,
                    "membership changed"
                );
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        }
        tracing::debug!(
            target: TARGET,
            coordinator = "etcd",
            prefix = %config.prefix,
            "member watch broke; reading again"
        );
        tokio::time::sleep(backoff.next().unwrap_or(config.retry.max_delay())).await;
    }
}

/// Feeds a [`HealthMonitor`] from a member watch; see
/// [`EtcdCoordinator::report_liveness`].
async fn liveness_loop(mut members: MemberWatch, monitor: HealthMonitor, prefix: String) {
    use futures::StreamExt;

    let mut alive: BTreeSet<usize> = BTreeSet::new();
    let period = (monitor.config().heartbeat_timeout() / 2).max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = members.next() => {
                let Some(event) = event else { return };
                match event {
                    Ok(MemberEvent::Joined { rank }) => {
                        monitor.add_member(rank);
                        let _ = monitor.heartbeat(&MemberId::Rank(rank));
                        alive.insert(rank);
                    }
                    Ok(MemberEvent::Left { rank, graceful: true }) => {
                        alive.remove(&rank);
                        monitor.remove_member(&MemberId::Rank(rank));
                    }
                    Ok(MemberEvent::Left { rank, graceful: false }) => {
                        alive.remove(&rank);
                        tracing::warn!(
                            target: TARGET,
                            coordinator = "etcd",
                            prefix = %prefix,
                            member = rank,
                            "lease of a rank expired; reporting it failed"
                        );
                        // A member the caller removed stays removed.
                        let _ = monitor.mark_failed(&MemberId::Rank(rank));
                    }
                    Err(e) => tracing::warn!(
                        target: TARGET,
                        coordinator = "etcd",
                        prefix = %prefix,
                        error = %e,
                        "member watch failed; the ranks last seen alive are still heard from"
                    ),
                }
            }
            _ = ticker.tick() => {
                for &rank in &alive {
                    // A member the caller removed stays removed.
                    let _ = monitor.heartbeat(&MemberId::Rank(rank));
                }
            }
        }
    }
}
