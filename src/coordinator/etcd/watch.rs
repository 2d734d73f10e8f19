//! [`Membership::watch_membership`](crate::coordinator::Membership::watch_membership)
//! for an [`EtcdCoordinator`]: a background task reads the job (members,
//! standbys, the epoch, the leader, the declared failures), reports every
//! live member as joined, then follows the whole job prefix with one watch
//! and turns its events into [`MembershipEvent`]s. A watch that breaks is
//! re-established from a fresh read, reporting what changed meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::task::{Context, Poll};

use etcd_client::{Client, EventType, GetOptions, Txn, TxnOp, TxnOpResponse, WatchOptions};
use tokio::sync::mpsc;

use super::members::{MemberState, MemberValue};
use super::{parse_rank, retry_call, AbortOnDrop, EtcdConfig, EtcdCoordinator, TARGET};
use crate::coordinator::{EpochRecord, Leadership, MembershipEvent, MembershipWatch, Role};

/// The receiving end of the task, which ends the task when dropped.
struct Events {
    rx: mpsc::Receiver<MembershipEvent>,
    _task: AbortOnDrop,
}

impl futures::Stream for Events {
    type Item = MembershipEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl EtcdCoordinator {
    pub(super) fn membership_watch(&self) -> MembershipWatch {
        let (tx, rx) = mpsc::channel(256);
        let task = tokio::spawn(watch_loop(
            self.inner.client.clone(),
            self.inner.config.clone(),
            tx,
            self.inner.closed.subscribe(),
        ));
        MembershipWatch::new(Events {
            rx,
            _task: AbortOnDrop(task),
        })
    }
}

/// What the watch knows of the job.
#[derive(Default)]
struct Known {
    /// Live members by their key (relative to the job).
    members: BTreeMap<String, String>,
    /// Members seen saying `left`.
    leaving: BTreeSet<String>,
    epoch: Option<EpochRecord>,
    leader: Option<Leadership>,
    failed: BTreeSet<String>,
}

impl Known {
    fn role(&self, key: &str, member: &str) -> Role {
        match &self.epoch {
            Some(record) => record.rank_of(member).map_or(Role::Standby, Role::Rank),
            None => key
                .strip_prefix("members/")
                .and_then(parse_rank)
                .map_or(Role::Standby, Role::Rank),
        }
    }
}

fn is_member_key(key: &str) -> bool {
    key.starts_with("members/") || key.starts_with("standby/")
}

fn failed_event(key: &str, value: &[u8]) -> Option<MembershipEvent> {
    let mut parts = key.strip_prefix("failed/")?.split('/');
    let epoch = parts.next()?.parse().ok()?;
    let rank = parse_rank(parts.next()?)?;
    Some(MembershipEvent::RankFailed {
        epoch,
        rank,
        reason: String::from_utf8_lossy(value).into_owned(),
    })
}

async fn watch_loop(
    client: Client,
    config: EtcdConfig,
    tx: mpsc::Sender<MembershipEvent>,
    mut closed: tokio::sync::watch::Receiver<bool>,
) {
    let root = format!("{}/", config.prefix);
    let mut known: Option<Known> = None;
    let mut backoff = config.retry.backoff();
    loop {
        if *closed.borrow() {
            return;
        }
        let read = retry_call(
            &config.retry,
            "read membership",
            config.op_timeout,
            &client,
            |mut c| {
                let ops: Vec<TxnOp> = ["members/", "standby/", "failed/"]
                    .iter()
                    .map(|dir| {
                        TxnOp::get(
                            format!("{root}{dir}"),
                            Some(GetOptions::new().with_prefix()),
                        )
                    })
                    .chain([
                        TxnOp::get(format!("{root}epoch"), None),
                        TxnOp::get(format!("{root}leader"), None),
                    ])
                    .collect();
                async move { c.txn(Txn::new().and_then(ops)).await }
            },
            |_| {},
        )
        .await;
        let resp = match read {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(target: TARGET, coordinator = "etcd", error = %e, "membership read failed; retrying");
                tokio::time::sleep(backoff.next().unwrap_or(config.retry.max_delay())).await;
                continue;
            }
        };
        let mut now = Known::default();
        for op in resp.op_responses() {
            let TxnOpResponse::Get(get) = op else {
                continue;
            };
            for kv in get.kvs() {
                let Some(key) = super::suffix_of(kv.key(), &root) else {
                    continue;
                };
                if is_member_key(key) {
                    if let Some(v) = MemberValue::parse(kv.value())
                        && v.state == MemberState::Running
                    {
                        now.members.insert(key.to_string(), v.member);
                    }
                } else if key.starts_with("failed/") {
                    now.failed.insert(key.to_string());
                } else if key == "epoch" {
                    now.epoch = EpochRecord::from_bytes(kv.value()).ok();
                } else if key == "leader" {
                    now.leader = Some(Leadership {
                        member: String::from_utf8_lossy(kv.value()).into_owned(),
                        term: kv.create_revision().unsigned_abs(),
                    });
                }
            }
        }
        let mut events = Vec::new();
        match &known {
            None => {
                for (key, member) in &now.members {
                    events.push(MembershipEvent::Joined {
                        member: member.clone(),
                        role: now.role(key, member),
                    });
                }
                // The ranks already declared failed in the current epoch are
                // part of the state a new watcher starts from: a
                // declaration made between creating the watch and its first
                // read is not lost.
                let epoch = now.epoch.as_ref().map_or(0, |e| e.epoch);
                for op in resp.op_responses() {
                    let TxnOpResponse::Get(get) = op else {
                        continue;
                    };
                    for kv in get.kvs() {
                        if let Some(key) = super::suffix_of(kv.key(), &root)
                            && key.starts_with("failed/")
                            && let Some(event @ MembershipEvent::RankFailed { epoch: e, .. }) =
                                failed_event(key, kv.value())
                            && e == epoch
                        {
                            events.push(event);
                        }
                    }
                }
            }
            Some(before) => {
                if before.epoch != now.epoch
                    && let Some(record) = &now.epoch
                {
                    events.push(MembershipEvent::EpochChanged(record.clone()));
                }
                for (key, member) in &before.members {
                    if now.members.get(key) != Some(member) {
                        events.push(MembershipEvent::Left {
                            member: member.clone(),
                            role: before.role(key, member),
                            graceful: before.leaving.contains(member),
                        });
                    }
                }
                for (key, member) in &now.members {
                    if before.members.get(key) != Some(member) {
                        events.push(MembershipEvent::Joined {
                            member: member.clone(),
                            role: now.role(key, member),
                        });
                    }
                }
                if before.leader != now.leader {
                    events.push(MembershipEvent::LeaderChanged(now.leader.clone()));
                }
            }
        }
        if known.is_some() {
            // Declared failures seen for the first time.
            let before = known.as_ref().map(|k| k.failed.clone()).unwrap_or_default();
            for op in resp.op_responses() {
                let TxnOpResponse::Get(get) = op else {
                    continue;
                };
                for kv in get.kvs() {
                    if let Some(key) = super::suffix_of(kv.key(), &root)
                        && key.starts_with("failed/")
                        && !before.contains(key)
                        && let Some(event) = failed_event(key, kv.value())
                    {
                        events.push(event);
                    }
                }
            }
        }
        if let Some(before) = &known {
            now.leaving = before.leaving.clone();
        }
        known = Some(now);
        for event in events {
            if tx.send(event).await.is_err() {
                return;
            }
        }
        let Some(state) = known.as_mut() else { return };

        let start = resp
            .header()
            .map(|h| h.revision())
            .unwrap_or(0)
            .saturating_add(1);
        let watch = retry_call(
            &config.retry,
            "watch membership",
            config.op_timeout,
            &client,
            |mut c| {
                let root = root.clone();
                let options = WatchOptions::new()
                    .with_start_revision(start)
                    .with_prefix()
                    .with_prev_key();
                async move { c.watch(root, Some(options)).await }
            },
            |_| {},
        )
        .await;
        let mut stream = match watch {
            Ok(stream) => stream,
            Err(_) => {
                tokio::time::sleep(backoff.next().unwrap_or(config.retry.max_delay())).await;
                continue;
            }
        };
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                () = tx.closed() => return,
                _ = closed.changed() => return,
            };
            let resp = match message {
                Ok(Some(resp)) if !resp.canceled() => resp,
                _ => break,
            };
            backoff = config.retry.backoff();
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                let Some(key) = super::suffix_of(kv.key(), &root) else {
                    continue;
                };
                let put = event.event_type() == EventType::Put;
                let out = if is_member_key(key) {
                    if put {
                        let Some(v) = MemberValue::parse(kv.value()) else {
                            continue;
                        };
                        match v.state {
                            MemberState::Left => {
                                state.leaving.insert(v.member);
                                None
                            }
                            MemberState::Running => {
                                if state.members.get(key) == Some(&v.member) {
                                    None
                                } else {
                                    let role = state.role(key, &v.member);
                                    state.members.insert(key.to_string(), v.member.clone());
                                    Some(MembershipEvent::Joined {
                                        member: v.member,
                                        role,
                                    })
                                }
                            }
                        }
                    } else {
                        match state.members.remove(key) {
                            None => None,
                            Some(member) => {
                                let said_left = event
                                    .prev_kv()
                                    .and_then(|kv| MemberValue::parse(kv.value()))
                                    .is_some_and(|v| v.state == MemberState::Left);
                                let graceful = said_left || state.leaving.remove(&member);
                                Some(MembershipEvent::Left {
                                    role: state.role(key, &member),
                                    member,
                                    graceful,
                                })
                            }
                        }
                    }
                } else if key.starts_with("failed/") {
                    if put && state.failed.insert(key.to_string()) {
                        failed_event(key, kv.value())
                    } else {
                        None
                    }
                } else if key == "epoch" {
                    match (put, EpochRecord::from_bytes(kv.value())) {
                        (true, Ok(record)) => {
                            state.epoch = Some(record.clone());
                            Some(MembershipEvent::EpochChanged(record))
                        }
                        _ => None,
                    }
                } else if key == "leader" {
                    let leader = put.then(|| Leadership {
                        member: String::from_utf8_lossy(kv.value()).into_owned(),
                        term: kv.create_revision().unsigned_abs(),
                    });
                    if leader == state.leader {
                        None
                    } else {
                        state.leader = leader.clone();
                        Some(MembershipEvent::LeaderChanged(leader))
                    }
                } else {
                    None
                };
                if let Some(out) = out {
                    tracing::debug!(target: TARGET, coordinator = "etcd", prefix = %config.prefix, event = ?out, "membership event");
                    if tx.send(out).await.is_err() {
                        return;
                    }
                }
            }
        }
        tracing::debug!(target: TARGET, coordinator = "etcd", prefix = %config.prefix, "membership watch broke; reading again");
        tokio::time::sleep(backoff.next().unwrap_or(config.retry.max_delay())).await;
    }
}
