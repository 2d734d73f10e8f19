//! The members of a job: the member keys, [`EtcdCoordinator::members_alive`],
//! and [`EtcdCoordinator::watch_members`] with its [`MemberWatch`], a stream
//! of [`MemberEvent`]s that a health monitor can follow
//! (`HealthMonitor::follow_members`).

use std::collections::BTreeSet;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{
    parse_rank, retry_call, revision_of, suffix_of, AbortOnDrop, EtcdConfig, EtcdCoordinator,
    TARGET,
};
use crate::coordinator::{MemberEvent, Result};

/// What a member key (`members/{rank}`, `standby/{member}`) says about its
/// member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct MemberValue {
    pub(super) world_size: usize,
    pub(super) state: MemberState,
    /// The member id (absent in values written before member ids existed).
    #[serde(default)]
    pub(super) member: String,
}

impl MemberValue {
    pub(super) fn parse(value: &[u8]) -> Option<MemberValue> {
        serde_json::from_slice(value).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum MemberState {
    Running,
    Left,
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

    fn members_dir(&self) -> String {
        format!("{}/members/", self.inner.config.prefix)
    }
}

pub(super) fn member_key(prefix: &str, rank: usize) -> String {
    format!("{prefix}/members/{rank}")
}

pub(super) fn standby_key(prefix: &str, member: &str) -> String {
    format!("{prefix}/standby/{member}")
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
