//! Joining and leaving a job: [`EtcdCoordinator::connect`] takes a lease and
//! registers the rank, a background task keeps the lease alive, and
//! [`EtcdCoordinator::shutdown`] leaves cleanly.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
};

use super::error::from_etcd;
use super::members::{member_key, standby_key, MemberState, MemberValue};
use super::{
    parse_rank, retry_call, AbortOnDrop, EpochState, EtcdConfig, EtcdCoordinator, Inner, View,
    TARGET,
};
use crate::coordinator::{deadline_after, CoordinatorError, EpochRecord, Result, Role};

/// The lifecycle of a coordinator's lease.
pub(super) const ACTIVE: u8 = 0;
pub(super) const LEASE_LOST: u8 = 1;
pub(super) const SHUT_DOWN: u8 = 2;
impl EtcdCoordinator {
    /// Connects to etcd, takes a lease, and registers this rank under
    /// `{prefix}/members/{rank}`.
    ///
    /// Transient failures are retried under the configured policy, all
    /// within `connect_timeout`.
    ///
    /// # Errors
    ///
    /// - [`CoordinatorError::Unavailable`] when etcd cannot be reached
    ///   within `connect_timeout`; the message names the endpoints and the
    ///   last error.
    /// - [`CoordinatorError::Backend`] when another process holds this rank
    ///   under the prefix (a rank of a crashed process is released when its
    ///   lease expires), or on a permanent etcd error.
    /// - [`CoordinatorError::InvalidArgument`] when another rank registered
    ///   with a different world size.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::{CoordinatorError, EtcdConfig, EtcdCoordinator};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Nothing listens on port 1: a clear error within the connect timeout.
    /// let config = EtcdConfig::builder()
    ///     .endpoints(["http://127.0.0.1:1"])
    ///     .prefix("doc-unreachable")
    ///     .connect_timeout(Duration::from_millis(500))
    ///     .build()?;
    /// let err = EtcdCoordinator::connect(config).await.unwrap_err();
    /// assert!(matches!(err, CoordinatorError::Unavailable { .. }));
    /// assert!(err.to_string().contains("127.0.0.1:1"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(config: EtcdConfig) -> Result<EtcdCoordinator> {
        let connect_timeout = config.connect_timeout;
        let last_error = Mutex::new(None::<String>);
        let attempt = Self::connect_inner(config.clone(), &last_error);
        match tokio::time::timeout(connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => {
                let last = last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .unwrap_or_else(|| "no answer".to_string());
                tracing::warn!(
                    target: TARGET,
                    coordinator = "etcd",
                    endpoints = ?config.endpoints,
                    prefix = %config.prefix,
                    rank = config.rank,
                    ?connect_timeout,
                    last_error = %last,
                    "could not connect to etcd"
                );
                Err(CoordinatorError::Unavailable {
                    message: format!(
                        "could not reach etcd at {:?} within {connect_timeout:?} (last error: {last})",
                        config.endpoints
                    ),
                    source: None,
                })
            }
        }
    }

    async fn connect_inner(
        config: EtcdConfig,
        last_error: &Mutex<Option<String>>,
    ) -> Result<EtcdCoordinator> {
        let record = |e: &CoordinatorError| {
            *last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        };
        let keep_alive_interval = (config.lease_ttl / 3).max(Duration::from_millis(500));
        let options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(keep_alive_interval, config.op_timeout)
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(|e| from_etcd("connecting to etcd", e))
            .inspect_err(&record)?;
        let ttl = i64::try_from(config.lease_ttl.as_secs()).unwrap_or(i64::MAX);
        let op_timeout = config.op_timeout;
        let grant = retry_call(
            &config.retry,
            "lease grant",
            op_timeout,
            &client,
            |mut c| async move { c.lease_grant(ttl, None).await },
            &record,
        )
        .await?;
        let lease_id = grant.id();
        let granted_ttl = grant.ttl().max(1);

        let member_id = match &config.member_id {
            Some(member) => member.clone(),
            None => format!("p{}-{lease_id:x}", std::process::id()),
        };
        let value = serde_json::to_vec(&MemberValue {
            world_size: config.world_size,
            state: MemberState::Running,
            member: member_id.clone(),
        })
        .map_err(|e| CoordinatorError::Backend {
            message: format!("encoding the member value: {e}"),
            source: Some(Box::new(e)),
        })?;
        // A rank registers `members/{rank}` and records who holds the rank
        // in epoch 0 (`ranks/{rank}`, kept after its lease); a standby
        // registers `standby/{member}`.
        let live_key = if config.standby {
            standby_key(&config.prefix, &member_id)
        } else {
            member_key(&config.prefix, config.rank)
        };
        let members_dir = format!("{}/members/", config.prefix);
        let epoch_key = format!("{}/epoch", config.prefix);
        let registered = {
            let live_key = live_key.clone();
            let members_dir = members_dir.clone();
            let epoch_key = epoch_key.clone();
            let rank_key =
                (!config.standby).then(|| format!("{}/ranks/{}", config.prefix, config.rank));
            let member_id = member_id.clone();
            retry_call(
                &config.retry,
                "register",
                op_timeout,
                &client,
                move |mut c| {
                    let mut ops = vec![TxnOp::put(
                        live_key.clone(),
                        value.clone(),
                        Some(PutOptions::new().with_lease(lease_id)),
                    )];
                    if let Some(rank_key) = &rank_key {
                        ops.push(TxnOp::put(rank_key.clone(), member_id.clone(), None));
                    }
                    ops.push(TxnOp::get(
                        members_dir.clone(),
                        Some(GetOptions::new().with_prefix()),
                    ));
                    ops.push(TxnOp::get(epoch_key.clone(), None));
                    let txn = Txn::new()
                        .when([Compare::create_revision(
                            live_key.clone(),
                            CompareOp::Equal,
                            0,
                        )])
                        .and_then(ops)
                        .or_else([TxnOp::get(live_key.clone(), None)]);
                    async move { c.txn(txn).await }
                },
                &record,
            )
            .await?
        };
        if !registered.succeeded() {
            let holder = registered
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.lease()),
                    _ => None,
                })
                .unwrap_or(0);
            revoke_best_effort(&client, lease_id, op_timeout).await;
            // Re-registering with our own lease cannot happen: it is new.
            let who = if config.standby {
                format!("standby member {member_id:?}")
            } else {
                format!("rank {}", config.rank)
            };
            return Err(CoordinatorError::Backend {
                message: format!(
                    "{who} of job {:?} is already registered by another process (its key {live_key:?} \
                     is held by lease {holder:#x}); a member of a process that died is released when its \
                     lease expires, within {:?}",
                    config.prefix, config.lease_ttl
                ),
                source: None,
            });
        }
        let gets: Vec<_> = registered
            .op_responses()
            .into_iter()
            .filter_map(|op| match op {
                TxnOpResponse::Get(get) => Some(get),
                _ => None,
            })
            .collect();
        // Check that the ranks already there agree on the world size.
        if let Some(members) = gets.first() {
            for kv in members.kvs() {
                let Some(rank) = kv
                    .key()
                    .strip_prefix(members_dir.as_bytes())
                    .and_then(|s| std::str::from_utf8(s).ok())
                    .and_then(parse_rank)
                else {
                    continue;
                };
                if let Some(other) = MemberValue::parse(kv.value())
                    && other.world_size != config.world_size
                {
                    revoke_best_effort(&client, lease_id, op_timeout).await;
                    return Err(CoordinatorError::InvalidArgument(format!(
                        "rank {rank} of job {:?} runs with world size {}, this rank ({}) with {}",
                        config.prefix, other.world_size, config.rank, config.world_size
                    )));
                }
            }
        }
        // A rank starts in epoch 0, as connected (a job already past it
        // fences the rank until it enters the current epoch); a standby
        // starts in the job's current epoch, holding no rank.
        let stored_epoch = gets
            .get(1)
            .and_then(|get| get.kvs().first())
            .and_then(|kv| {
                EpochRecord::from_bytes(kv.value())
                    .ok()
                    .map(|record| (record, kv.mod_revision()))
            });
        let epoch = match (config.standby, stored_epoch) {
            (true, Some((record, revision))) => EpochState {
                epoch: record.epoch,
                revision,
                role: record.rank_of(&member_id).map_or(Role::Standby, Role::Rank),
                world_size: record.world_size(),
                ranks: Some(record.ranks),
                next_barrier: 0,
                next_gather: 0,
            },
            (standby, _) => EpochState {
                epoch: 0,
                revision: 0,
                ranks: None,
                role: if standby {
                    Role::Standby
                } else {
                    Role::Rank(config.rank)
                },
                world_size: config.world_size,
                next_barrier: 0,
                next_gather: 0,
            },
        };

        let state = Arc::new(AtomicU8::new(ACTIVE));
        let keep_alive = tokio::spawn(keep_alive_loop(
            client.clone(),
            lease_id,
            Duration::from_secs(granted_ttl.unsigned_abs()),
            Arc::clone(&state),
            config.prefix.clone(),
            config.rank,
        ));
        tracing::info!(
            target: TARGET,
            coordinator = "etcd",
            prefix = %config.prefix,
            member = %member_id,
            role = ?epoch.role,
            epoch = epoch.epoch,
            world_size = epoch.world_size,
            lease_id,
            lease_ttl_secs = granted_ttl,
            "member registered"
        );
        Ok(EtcdCoordinator {
            inner: Arc::new(Inner {
                config,
                client,
                lease_id,
                lease_ttl_secs: granted_ttl,
                member_id,
                epoch: Mutex::new(epoch),
                state,
                keep_alive: Mutex::new(Some(AbortOnDrop(keep_alive))),
                closed: tokio::sync::watch::channel(false).0,
            }),
        })
    }

    /// Leaves the job cleanly: marks this rank done, waits (at most
    /// `timeout`) until every other rank is done too or gone, marks the
    /// member key as left, and revokes the lease, which deletes every key
    /// this rank wrote. Waiting first means no peer still waiting on one of
    /// this rank's keys sees it vanish. Afterwards every operation of this
    /// coordinator (and its clones) fails.
    ///
    /// # Errors
    ///
    /// [`CoordinatorError::Timeout`] naming the ranks that were neither done
    /// nor gone in time (the lease is revoked all the same), or an etcd
    /// error.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use steadfast::coordinator::{Coordinator, EtcdConfig, EtcdCoordinator};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
    /// # let prefix = format!("doc-shutdown-{}", std::process::id());
    /// let config = EtcdConfig::builder().endpoints_csv(&endpoints).prefix(prefix).build()?;
    /// let coordinator = EtcdCoordinator::connect(config).await?;
    /// coordinator.barrier(Duration::from_secs(5)).await?;
    /// coordinator.shutdown(Duration::from_secs(5)).await?;
    /// assert!(coordinator.barrier(Duration::from_secs(5)).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn shutdown(&self, timeout: Duration) -> Result<()> {
        self.check_usable()?;
        let deadline = deadline_after(timeout);
        let prefix = self.inner.config.prefix.clone();
        let epoch = self.epoch_state().clone();
        let lease = self.inner.lease_id;
        let result = match epoch.role {
            // A standby holds no rank: nobody waits on its keys.
            Role::Standby => Ok(()),
            Role::Rank(rank) => self.finish_rank(rank, &epoch, deadline, timeout).await,
        };

        // Say "left" on the member key, so that watchers can tell a clean
        // exit from a death, then drop everything with the lease.
        let live_key = self.live_key();
        let left = serde_json::to_vec(&MemberValue {
            world_size: self.inner.config.world_size,
            state: MemberState::Left,
            member: self.inner.member_id.clone(),
        })
        .unwrap_or_default();
        let _ = self
            .call("put left", move |mut c| {
                let key = live_key.clone();
                let value = left.clone();
                async move {
                    c.put(key, value, Some(PutOptions::new().with_lease(lease)))
                        .await
                }
            })
            .await;
        self.inner.state.store(SHUT_DOWN, Ordering::SeqCst);
        self.inner.closed.send_replace(true);
        if let Some(task) = self
            .inner
            .keep_alive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            drop(task);
        }
        let revoked = retry_call(
            &self.inner.config.retry,
            "lease revoke",
            self.inner.config.op_timeout,
            &self.inner.client,
            move |mut c| async move { c.lease_revoke(lease).await },
            |_| {},
        )
        .await;
        tracing::info!(
            target: TARGET,
            coordinator = "etcd",
            prefix = %prefix,
            member = %self.inner.member_id,
            role = ?epoch.role,
            revoked = revoked.is_ok(),
            "member left the job"
        );
        result.and(revoked.map(drop))
    }

    /// Marks rank `rank` done and waits until every other rank of the
    /// epoch is done too, or gone.
    async fn finish_rank(
        &self,
        rank: usize,
        epoch: &EpochState,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<()> {
        let prefix = &self.inner.config.prefix;
        let lease = self.inner.lease_id;
        let done_key = format!("{prefix}/done/{rank}");
        self.call("put done", move |mut c| {
            let key = done_key.clone();
            async move {
                c.put(key, Vec::new(), Some(PutOptions::new().with_lease(lease)))
                    .await
            }
        })
        .await?;

        // Each other rank must be done or gone (no member key).
        let world_size = epoch.world_size;
        let ranks = epoch.ranks.clone();
        let job_dir = format!("{prefix}/");
        let finished = |view: &View| {
            let pending = pending_shutdown(view, ranks.as_deref(), world_size);
            pending.is_empty().then_some(())
        };
        let mut view = View::new();
        let outcome = self
            .follow("shutdown", &job_dir, true, deadline, &mut view, finished)
            .await;
        match outcome {
            Ok(Some(())) => Ok(()),
            Ok(None) => {
                let missing = pending_shutdown(&view, epoch.ranks.as_deref(), world_size);
                tracing::warn!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %prefix,
                    rank,
                    ?missing,
                    "shutdown did not see every rank finish in time"
                );
                Err(CoordinatorError::Timeout {
                    operation: "shutdown",
                    after: timeout,
                    missing,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The key that says this member is alive: `members/{rank}` for a rank
    /// as connected, `standby/{member}` for a standby.
    pub(super) fn live_key(&self) -> String {
        if self.inner.config.standby {
            standby_key(&self.inner.config.prefix, &self.inner.member_id)
        } else {
            member_key(&self.inner.config.prefix, self.inner.config.rank)
        }
    }

    pub(super) fn check_usable(&self) -> Result<()> {
        match self.inner.state.load(Ordering::SeqCst) {
            ACTIVE => Ok(()),
            LEASE_LOST => Err(self.lease_lost()),
            _ => Err(CoordinatorError::Backend {
                message: format!(
                    "member {:?} of job {:?} has shut down",
                    self.inner.member_id, self.inner.config.prefix
                ),
                source: None,
            }),
        }
    }

    /// The error of a member whose lease is gone: it is fenced.
    pub(super) fn lease_lost(&self) -> CoordinatorError {
        CoordinatorError::Fenced {
            epoch: self.epoch_state().epoch,
            reason: format!(
                "the etcd lease of member {:?} of job {:?} expired: etcd did not hear from it \
                 within {}s, so the others consider it failed; it can no longer write under it",
                self.inner.member_id, self.inner.config.prefix, self.inner.lease_ttl_secs
            ),
        }
    }
}

/// The ranks that are neither done nor gone, in a view of the whole job.
/// In epoch 0 (`ranks` is `None`) rank `r` is alive while `members/{r}`
/// exists; in a later epoch while the member holding it has a live key.
fn pending_shutdown(view: &View, ranks: Option<&[String]>, world_size: usize) -> Vec<usize> {
    (0..world_size)
        .filter(|rank| {
            let done = view.contains_key(&format!("done/{rank}"));
            let member = match ranks {
                None => view.contains_key(&format!("members/{rank}")),
                Some(ranks) => ranks
                    .get(*rank)
                    .is_some_and(|member| super::is_live(view, member)),
            };
            !done && member
        })
        .collect()
}
async fn revoke_best_effort(client: &Client, lease: i64, op_timeout: Duration) {
    let mut client = client.clone();
    let _ = tokio::time::timeout(op_timeout, client.lease_revoke(lease)).await;
}

/// Keeps the lease alive every TTL/3 until the coordinator is dropped or
/// shut down (the task is aborted), or etcd says the lease expired.
async fn keep_alive_loop(
    client: Client,
    lease_id: i64,
    ttl: Duration,
    state: Arc<AtomicU8>,
    prefix: String,
    rank: usize,
) {
    let interval = (ttl / 3).max(Duration::from_millis(100));
    let retry_delay = interval.min(Duration::from_millis(500));
    let mut keeper = None;
    loop {
        if keeper.is_none() {
            let mut lease = client.lease_client();
            match tokio::time::timeout(interval, lease.keep_alive(lease_id)).await {
                Ok(Ok(pair)) => keeper = Some(pair),
                Ok(Err(e)) => {
                    tracing::warn!(
                        target: TARGET,
                        coordinator = "etcd",
                        prefix = %prefix,
                        rank,
                        lease_id,
                        error = %e,
                        "could not open the lease keep-alive; retrying"
                    );
                    tokio::time::sleep(retry_delay).await;
                    continue;
                }
                Err(_) => {
                    tracing::warn!(
                        target: TARGET,
                        coordinator = "etcd",
                        prefix = %prefix,
                        rank,
                        lease_id,
                        "etcd did not answer the lease keep-alive; retrying"
                    );
                    continue;
                }
            }
        }
        let Some((sender, responses)) = keeper.as_mut() else {
            continue;
        };
        let renewed = tokio::time::timeout(interval, async {
            sender.keep_alive().await?;
            responses.message().await
        })
        .await;
        match renewed {
            Ok(Ok(Some(resp))) if resp.ttl() <= 0 => {
                state
                    .compare_exchange(ACTIVE, LEASE_LOST, Ordering::SeqCst, Ordering::SeqCst)
                    .ok();
                tracing::error!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %prefix,
                    rank,
                    lease_id,
                    "the lease expired: the other ranks consider this rank failed"
                );
                return;
            }
            Ok(Ok(Some(resp))) => {
                tracing::trace!(
                    target: TARGET,
                    coordinator = "etcd",
                    rank,
                    lease_id,
                    ttl = resp.ttl(),
                    "lease renewed"
                );
                tokio::time::sleep(interval).await;
            }
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                tracing::warn!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %prefix,
                    rank,
                    lease_id,
                    "lease keep-alive failed; reconnecting"
                );
                keeper = None;
                tokio::time::sleep(retry_delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_waits_for_ranks_that_are_alive_and_not_done() {
        let mut view = View::new();
        for r in 0..3 {
            view.insert(format!("members/{r}"), Vec::new());
        }
        view.insert("done/0".into(), Vec::new());
        assert_eq!(pending_shutdown(&view, None, 3), vec![1, 2]);
        view.remove("members/2");
        assert_eq!(pending_shutdown(&view, None, 3), vec![1]);
    }
}
