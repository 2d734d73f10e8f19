//! The collective operations and signals of an
//! [`EtcdCoordinator`]: barrier and all-gather rounds (arrive under the
//! epoch, follow the round and the members with one watch, fail the round
//! when a participant fails, mark it broken on a timeout), and signals
//! raised with a compare-and-swap and followed with a watch.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use serde::{Deserialize, Serialize};

use super::members::{MemberState, MemberValue};
use super::{is_live, parse_rank, suffix_of, EpochState, EtcdCoordinator, Range, View, TARGET};
use crate::coordinator::{
    deadline_after, validate_signal_key, Coordinator, CoordinatorError, EpochRecord, Result, Role,
    Signal,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collective {
    Barrier,
    AllGather,
}

impl Collective {
    fn name(self) -> &'static str {
        match self {
            Collective::Barrier => "barrier",
            Collective::AllGather => "all_gather",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Collective::Barrier => "barrier",
            Collective::AllGather => "gather",
        }
    }
}

/// Why a round is broken, as its `broken` key says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mark {
    /// A rank timed out waiting for these ranks (the value `2,3`).
    Timeout(Vec<usize>),
    /// These ranks failed (the value is JSON, [`FailedMark`]).
    Failed { ranks: Vec<usize>, reason: String },
}

/// The JSON form of [`Mark::Failed`].
#[derive(Serialize, Deserialize)]
struct FailedMark {
    failed: Vec<usize>,
    reason: String,
}

impl Mark {
    fn decode(value: &[u8]) -> Mark {
        if value.first() == Some(&b'{')
            && let Ok(mark) = serde_json::from_slice::<FailedMark>(value)
        {
            return Mark::Failed {
                ranks: mark.failed,
                reason: mark.reason,
            };
        }
        Mark::Timeout(decode_ranks(value))
    }

    fn encode_failed(ranks: &[usize], reason: &str) -> Vec<u8> {
        serde_json::to_vec(&FailedMark {
            failed: ranks.to_vec(),
            reason: reason.to_string(),
        })
        .unwrap_or_else(|_| encode_ranks(ranks))
    }
}

/// What a collective round looks like in a [`View`] of its directory.
enum RoundOutcome {
    Complete(Vec<Vec<u8>>),
    Broken(Mark),
}

fn round_outcome(view: &View, world_size: usize) -> Option<RoundOutcome> {
    if let Some(value) = view.get(BROKEN) {
        return Some(RoundOutcome::Broken(Mark::decode(value)));
    }
    let mut values = Vec::with_capacity(world_size);
    for rank in 0..world_size {
        values.push(view.get(&rank.to_string())?.clone());
    }
    Some(RoundOutcome::Complete(values))
}

fn missing_ranks(view: &View, world_size: usize) -> Vec<usize> {
    (0..world_size)
        .filter(|rank| !view.contains_key(&rank.to_string()))
        .collect()
}

const BROKEN: &str = "broken";

fn encode_ranks(ranks: &[usize]) -> Vec<u8> {
    ranks
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
        .into_bytes()
}

fn decode_ranks(value: &[u8]) -> Vec<usize> {
    String::from_utf8_lossy(value)
        .split(',')
        .filter_map(|r| parse_rank(r.trim()))
        .collect()
}

fn encode_signal(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(8 + payload.len());
    value.extend_from_slice(&seq.to_be_bytes());
    value.extend_from_slice(payload);
    value
}

fn decode_signal(value: &[u8]) -> Option<Signal> {
    let (seq, payload) = value.split_first_chunk::<8>()?;
    Some(Signal {
        seq: u64::from_be_bytes(*seq),
        payload: payload.to_vec(),
    })
}

/// The keys of a round's directory, by rank (and `broken`), out of a view
/// of the whole job.
fn round_view(view: &View, round_path: &str) -> View {
    view.range(round_path.to_string()..)
        .take_while(|(k, _)| k.starts_with(round_path))
        .filter_map(|(k, v)| Some((k.strip_prefix(round_path)?.to_string(), v.clone())))
        .collect()
}

/// What a wait in a round saw.
enum Seen {
    Outcome(RoundOutcome),
    /// This handle may no longer take part: the job moved to another epoch,
    /// or its own member key is gone.
    Fenced(String),
    /// Participants failed: the round must be marked broken for them.
    Failed {
        ranks: Vec<usize>,
        reason: String,
        missing: Vec<usize>,
    },
}

/// Judges a round from a view of the job: the round's directory, the member
/// and standby keys, the failed ranks of the epoch, the epoch key and (in
/// epoch 0) the `ranks/` keys. It remembers members seen leaving on purpose
/// (their key said `left` before it went), to tell a shutdown from a death.
struct RoundWatch {
    round_path: String,
    epoch: u64,
    world_size: usize,
    /// The epoch's members by rank; `None` in epoch 0 (read from `ranks/`).
    ranks: Option<Vec<String>>,
    /// This handle's live key, relative to the job.
    own_key: String,
    /// Members seen saying `left`.
    left: BTreeSet<String>,
}

impl RoundWatch {
    fn evaluate(&mut self, view: &View) -> Option<Seen> {
        let round = round_view(view, &self.round_path);
        if let Some(outcome) = round_outcome(&round, self.world_size) {
            return Some(Seen::Outcome(outcome));
        }
        match view.get("epoch").map(|v| EpochRecord::from_bytes(v)) {
            Some(Ok(record)) if record.epoch == self.epoch => {}
            Some(Ok(record)) => {
                return Some(Seen::Fenced(format!(
                    "the job moved to epoch {} during the round",
                    record.epoch
                )));
            }
            Some(Err(e)) => {
                return Some(Seen::Fenced(format!("the job's epoch is unreadable: {e}")))
            }
            None if self.epoch > 0 => {
                return Some(Seen::Fenced("the job's epoch record is gone".to_string()));
            }
            None => {}
        }
        if !view.contains_key(&self.own_key) {
            return Some(Seen::Fenced(format!(
                "this member's key {:?} is gone: its lease expired",
                self.own_key
            )));
        }
        for (key, value) in view {
            if (key.starts_with("members/") || key.starts_with("standby/"))
                && let Some(v) = MemberValue::parse(value)
                && v.state == MemberState::Left
            {
                self.left.insert(v.member);
            }
        }
        let missing = missing_ranks(&round, self.world_size);
        let mut failed: BTreeMap<usize, String> = BTreeMap::new();
        let declared = format!("failed/{}/", self.epoch);
        for (key, value) in view
            .range(declared.clone()..)
            .take_while(|(k, _)| k.starts_with(&declared))
        {
            if let Some(rank) = key.strip_prefix(&declared).and_then(parse_rank)
                && rank < self.world_size
            {
                failed.insert(
                    rank,
                    format!(
                        "rank {rank} was declared failed: {}",
                        String::from_utf8_lossy(value)
                    ),
                );
            }
        }
        for &rank in &missing {
            if failed.contains_key(&rank) {
                continue;
            }
            let member = match &self.ranks {
                Some(ranks) => ranks.get(rank).cloned(),
                // Epoch 0: a rank that never connected is not failed, only late.
                None => view
                    .get(&format!("ranks/{rank}"))
                    .map(|v| String::from_utf8_lossy(v).into_owned()),
            };
            let Some(member) = member else { continue };
            if is_live(view, &member) {
                continue;
            }
            let why = if self.left.contains(&member) {
                format!("rank {rank} (member {member:?}) shut down")
            } else {
                format!("rank {rank} (member {member:?}) is gone: its lease expired")
            };
            failed.insert(rank, why);
        }
        if failed.is_empty() {
            return None;
        }
        Some(Seen::Failed {
            ranks: failed.keys().copied().collect(),
            reason: failed.into_values().collect::<Vec<_>>().join("; "),
            missing,
        })
    }
}

impl EtcdCoordinator {
    /// The compare that fences a write to the epoch this handle entered:
    /// `{prefix}/epoch` is still at the revision it had then (absent, for
    /// epoch 0).
    pub(super) fn epoch_compare(&self, state: &EpochState) -> Compare {
        Compare::mod_revision(self.key("epoch"), CompareOp::Equal, state.revision)
    }

    /// The compare that says this member is still alive: its live key is
    /// held by its own lease.
    pub(super) fn liveness_compare(&self) -> Compare {
        Compare::lease(self.live_key(), CompareOp::Equal, self.inner.lease_id)
    }

    /// The `Fenced` error for a handle of `state` when the job's epoch key
    /// holds `stored` (`None`: absent).
    pub(super) fn fenced_by_epoch(
        &self,
        state: &EpochState,
        stored: Option<&[u8]>,
    ) -> CoordinatorError {
        let now = match stored.map(EpochRecord::from_bytes) {
            Some(Ok(record)) => format!("epoch {}", record.epoch),
            Some(Err(_)) => "an unreadable epoch".to_string(),
            None => "epoch 0".to_string(),
        };
        CoordinatorError::Fenced {
            epoch: state.epoch,
            reason: format!(
                "member {:?} entered epoch {}, but the job is in {now}",
                self.inner.member_id, state.epoch
            ),
        }
    }

    async fn collective(
        &self,
        kind: Collective,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<Vec<u8>>> {
        self.check_usable()?;
        let deadline = deadline_after(timeout);
        let (state, round) = {
            let mut state = self.epoch_state();
            let counter = match kind {
                Collective::Barrier => &mut state.next_barrier,
                Collective::AllGather => &mut state.next_gather,
            };
            let round = *counter;
            *counter = counter.saturating_add(1);
            (state.clone(), round)
        };
        let Role::Rank(rank) = state.role else {
            return Err(CoordinatorError::NotAMember {
                member: self.inner.member_id.clone(),
                epoch: state.epoch,
            });
        };
        let prefix = &self.inner.config.prefix;
        let world_size = state.world_size;
        let epoch = state.epoch;
        let root = format!("{prefix}/");
        let round_path = format!("rounds/{epoch}/{}/{round}/", kind.dir());
        let dir = format!("{root}{round_path}");
        let my_key = format!("{dir}{rank}");
        let broken_key = format!("{dir}{BROKEN}");
        let epoch_key = self.key("epoch");
        let live_key = self.live_key();
        let lease = self.inner.lease_id;
        tracing::debug!(
            target: TARGET,
            coordinator = "etcd",
            prefix = %prefix,
            rank,
            epoch,
            operation = kind.name(),
            round,
            "arriving"
        );

        // Arrive, unless the round is broken, the job left this epoch, or
        // this member's lease is gone.
        let arrive = self.call(kind.name(), |mut c| {
            let txn = Txn::new()
                .when([
                    Compare::create_revision(broken_key.clone(), CompareOp::Equal, 0),
                    self.epoch_compare(&state),
                    self.liveness_compare(),
                ])
                .and_then([TxnOp::put(
                    my_key.clone(),
                    data.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                )])
                .or_else([
                    TxnOp::get(broken_key.clone(), None),
                    TxnOp::get(epoch_key.clone(), None),
                    TxnOp::get(live_key.clone(), None),
                ]);
            async move { c.txn(txn).await }
        });
        let arrived = match tokio::time::timeout_at(deadline, arrive).await {
            Ok(arrived) => arrived?,
            Err(_) => {
                return Err(CoordinatorError::Unavailable {
                    message: format!(
                        "could not record the arrival of rank {rank} at {} round {round} within {timeout:?}",
                        kind.name()
                    ),
                    source: None,
                })
            }
        };
        if !arrived.succeeded() {
            let values: Vec<Option<(Vec<u8>, i64, i64)>> = arrived
                .op_responses()
                .into_iter()
                .map(|op| match op {
                    TxnOpResponse::Get(get) => get
                        .kvs()
                        .first()
                        .map(|kv| (kv.value().to_vec(), kv.mod_revision(), kv.lease())),
                    _ => None,
                })
                .collect();
            let get = |i: usize| values.get(i).cloned().flatten();
            if get(2).is_none_or(|(_, _, holder)| holder != lease) {
                return Err(self.lease_lost());
            }
            let stored_epoch = get(1);
            if stored_epoch.as_ref().map_or(0, |(_, rev, _)| *rev) != state.revision {
                return Err(self
                    .fenced_by_epoch(&state, stored_epoch.as_ref().map(|(v, _, _)| v.as_slice())));
            }
            let mark = get(0).map_or(Mark::Timeout(Vec::new()), |(v, _, _)| Mark::decode(&v));
            return Err(self.broken(kind, round, mark));
        }

        let mut ranges = vec![
            Range::prefix(round_path.clone()),
            Range::prefix("members/"),
            Range::prefix("standby/"),
            Range::prefix(format!("failed/{epoch}/")),
            Range::key("epoch"),
        ];
        if state.ranks.is_none() {
            ranges.push(Range::prefix("ranks/"));
        }
        let own_key = live_key
            .strip_prefix(&root)
            .unwrap_or(&live_key)
            .to_string();
        let mut watcher = RoundWatch {
            round_path: round_path.clone(),
            epoch,
            world_size,
            ranks: state.ranks.clone(),
            own_key,
            left: BTreeSet::new(),
        };
        let outcome = loop {
            let mut view = View::new();
            let seen = self
                .follow_ranges(kind.name(), &root, &ranges, deadline, &mut view, |view| {
                    watcher.evaluate(view)
                })
                .await?;
            match seen {
                None => {
                    let round_only = round_view(&view, &round_path);
                    break self
                        .break_round(kind, round, &dir, round_only, world_size, timeout)
                        .await?;
                }
                Some(Seen::Outcome(outcome)) => break outcome,
                Some(Seen::Fenced(reason)) => {
                    tracing::warn!(
                        target: TARGET,
                        coordinator = "etcd",
                        prefix = %prefix,
                        rank,
                        epoch,
                        operation = kind.name(),
                        round,
                        reason = %reason,
                        "fenced during a round"
                    );
                    return Err(CoordinatorError::Fenced { epoch, reason });
                }
                Some(Seen::Failed {
                    ranks,
                    reason,
                    missing,
                }) => {
                    if let Some(outcome) = self
                        .fail_round(kind, round, &dir, &ranks, &reason, &missing, world_size)
                        .await?
                    {
                        break outcome;
                    }
                    // Someone arrived meanwhile: judge the round again.
                }
            }
        };
        match outcome {
            RoundOutcome::Complete(values) => {
                self.forget_previous_round(kind, epoch, rank, round);
                tracing::debug!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %prefix,
                    rank,
                    epoch,
                    operation = kind.name(),
                    round,
                    "round complete"
                );
                Ok(values)
            }
            RoundOutcome::Broken(mark) => Err(self.broken(kind, round, mark)),
        }
    }

    /// Participants failed: marks the round broken for them, in a
    /// transaction that succeeds only while the missing ranks are still
    /// missing, so that every rank sees the same end of the round (complete,
    /// or failed). Returns the round's outcome, or `None` when a rank
    /// arrived meanwhile and the round must be judged again.
    #[allow(clippy::too_many_arguments)]
    async fn fail_round(
        &self,
        kind: Collective,
        round: u64,
        dir: &str,
        failed: &[usize],
        reason: &str,
        missing: &[usize],
        world_size: usize,
    ) -> Result<Option<RoundOutcome>> {
        let broken_key = format!("{dir}{BROKEN}");
        let mut compares = vec![Compare::create_revision(
            broken_key.clone(),
            CompareOp::Equal,
            0,
        )];
        compares.extend(
            missing
                .iter()
                .map(|r| Compare::create_revision(format!("{dir}{r}"), CompareOp::Equal, 0)),
        );
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::put(
                broken_key,
                Mark::encode_failed(failed, reason),
                Some(PutOptions::new().with_lease(self.inner.lease_id)),
            )])
            .or_else([TxnOp::get(
                dir.to_string(),
                Some(GetOptions::new().with_prefix()),
            )]);
        let resp = self
            .call("mark round failed", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        tracing::debug!(
            target: TARGET,
            coordinator = "etcd",
            operation = kind.name(),
            round,
            ?failed,
            marked = resp.succeeded(),
            "participants failed; marking the round"
        );
        if resp.succeeded() {
            return Ok(Some(RoundOutcome::Broken(Mark::Failed {
                ranks: failed.to_vec(),
                reason: reason.to_string(),
            })));
        }
        let mut view = View::new();
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(get) = op {
                for kv in get.kvs() {
                    if let Some(suffix) = suffix_of(kv.key(), dir) {
                        view.insert(suffix.to_string(), kv.value().to_vec());
                    }
                }
            }
        }
        Ok(round_outcome(&view, world_size))
    }

    fn broken(&self, kind: Collective, round: u64, mark: Mark) -> CoordinatorError {
        match mark {
            Mark::Timeout(missing) => {
                tracing::warn!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %self.inner.config.prefix,
                    member = %self.inner.member_id,
                    operation = kind.name(),
                    round,
                    ?missing,
                    "round is broken: another rank timed out waiting"
                );
                CoordinatorError::Broken {
                    operation: kind.name(),
                    round,
                    missing,
                }
            }
            Mark::Failed { ranks, reason } => {
                tracing::warn!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %self.inner.config.prefix,
                    member = %self.inner.member_id,
                    operation = kind.name(),
                    round,
                    ?ranks,
                    reason = %reason,
                    "round failed: participants failed"
                );
                CoordinatorError::RanksFailed {
                    operation: kind.name(),
                    ranks,
                    reason,
                }
            }
        }
    }

    /// The deadline passed: marks the round broken, naming the ranks still
    /// missing, unless they arrived meanwhile. Returns the outcome when the
    /// round turned out complete or broken by another rank, and the timeout
    /// error otherwise.
    async fn break_round(
        &self,
        kind: Collective,
        round: u64,
        dir: &str,
        mut view: View,
        world_size: usize,
        timeout: Duration,
    ) -> Result<RoundOutcome> {
        let broken_key = format!("{dir}{BROKEN}");
        let lease = self.inner.lease_id;
        // Each failed attempt means another rank arrived (or broke the
        // round), so this ends after at most world_size + 1 attempts.
        for _ in 0..=world_size {
            let missing = missing_ranks(&view, world_size);
            let mut compares = vec![Compare::create_revision(
                broken_key.clone(),
                CompareOp::Equal,
                0,
            )];
            compares.extend(
                missing
                    .iter()
                    .map(|r| Compare::create_revision(format!("{dir}{r}"), CompareOp::Equal, 0)),
            );
            let txn = Txn::new()
                .when(compares)
                .and_then([TxnOp::put(
                    broken_key.clone(),
                    encode_ranks(&missing),
                    Some(PutOptions::new().with_lease(lease)),
                )])
                .or_else([TxnOp::get(
                    dir.to_string(),
                    Some(GetOptions::new().with_prefix()),
                )]);
            let resp = match self
                .call_once("mark round broken", |mut c| async move { c.txn(txn).await })
                .await
            {
                Ok(resp) => resp,
                Err(e) => {
                    tracing::warn!(
                        target: TARGET,
                        coordinator = "etcd",
                        prefix = %self.inner.config.prefix,
                        member = %self.inner.member_id,
                        operation = kind.name(),
                        round,
                        ?missing,
                        error = %e,
                        "timed out, and could not mark the round broken"
                    );
                    return Err(CoordinatorError::Timeout {
                        operation: kind.name(),
                        after: timeout,
                        missing,
                    });
                }
            };
            if resp.succeeded() {
                tracing::warn!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %self.inner.config.prefix,
                    member = %self.inner.member_id,
                    operation = kind.name(),
                    round,
                    ?missing,
                    "timed out; round marked broken"
                );
                return Err(CoordinatorError::Timeout {
                    operation: kind.name(),
                    after: timeout,
                    missing,
                });
            }
            view.clear();
            for op in resp.op_responses() {
                if let TxnOpResponse::Get(get) = op {
                    for kv in get.kvs() {
                        if let Some(suffix) = suffix_of(kv.key(), dir) {
                            view.insert(suffix.to_string(), kv.value().to_vec());
                        }
                    }
                }
            }
            if let Some(outcome) = round_outcome(&view, world_size) {
                return Ok(outcome);
            }
        }
        Err(CoordinatorError::Timeout {
            operation: kind.name(),
            after: timeout,
            missing: missing_ranks(&view, world_size),
        })
    }

    /// Once round `round` is complete, every rank has left round
    /// `round - 1`: delete this rank's key there, in the background.
    fn forget_previous_round(&self, kind: Collective, epoch: u64, rank: usize, round: u64) {
        let Some(previous) = round.checked_sub(1) else {
            return;
        };
        let key = self.key(&format!("rounds/{epoch}/{}/{previous}/{rank}", kind.dir()));
        let mut client = self.inner.client.clone();
        let op_timeout = self.inner.config.op_timeout;
        tokio::spawn(async move {
            if let Ok(Err(e)) =
                tokio::time::timeout(op_timeout, client.delete(key.clone(), None)).await
            {
                tracing::debug!(
                    target: TARGET,
                    coordinator = "etcd",
                    key,
                    error = %e,
                    "could not delete a finished round's key (its lease will)"
                );
            }
        });
    }

    /// This handle's rank, or `NotAMember` for a standby.
    fn own_rank(&self) -> Result<usize> {
        let state = self.epoch_state();
        match state.role {
            Role::Rank(rank) => Ok(rank),
            Role::Standby => Err(CoordinatorError::NotAMember {
                member: self.inner.member_id.clone(),
                epoch: state.epoch,
            }),
        }
    }

    fn signal_key(&self, key: &str, rank: usize) -> String {
        format!("{}/signal/{key}/{rank}", self.inner.config.prefix)
    }
}
#[async_trait]
impl Coordinator for EtcdCoordinator {
    /// This handle's rank in its epoch; a standby answers its epoch's
    /// world size (it holds no rank).
    fn rank(&self) -> usize {
        self.epoch_state().rank_or_world()
    }

    /// The world size of this handle's epoch.
    fn world_size(&self) -> usize {
        self.epoch_state().world_size
    }

    fn name(&self) -> &str {
        "etcd"
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
        validate_signal_key(key)?;
        self.check_usable()?;
        let rank = self.own_rank()?;
        let etcd_key = self.signal_key(key, rank);
        let lease = self.inner.lease_id;
        // Compare-and-swap on the key's revision: a concurrent signal from a
        // clone of this handle makes the swap fail, and it is tried again.
        for _ in 0..64 {
            let current = self
                .call("signal", |mut c| {
                    let key = etcd_key.clone();
                    async move { c.get(key, None).await }
                })
                .await?;
            let (seq, mod_revision) = current
                .kvs()
                .first()
                .map(|kv| {
                    (
                        decode_signal(kv.value()).map_or(0, |s| s.seq),
                        kv.mod_revision(),
                    )
                })
                .unwrap_or((0, 0));
            let next = seq.saturating_add(1);
            let value = encode_signal(next, &payload);
            let swapped = self
                .call("signal", |mut c| {
                    let txn = Txn::new()
                        .when([Compare::mod_revision(
                            etcd_key.clone(),
                            CompareOp::Equal,
                            mod_revision,
                        )])
                        .and_then([TxnOp::put(
                            etcd_key.clone(),
                            value.clone(),
                            Some(PutOptions::new().with_lease(lease)),
                        )]);
                    async move { c.txn(txn).await }
                })
                .await?;
            if swapped.succeeded() {
                tracing::debug!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %self.inner.config.prefix,
                    rank,
                    key,
                    seq = next,
                    "signal raised"
                );
                return Ok(next);
            }
        }
        Err(CoordinatorError::Backend {
            message: format!("signal {key:?} kept changing under concurrent writers"),
            source: None,
        })
    }

    async fn wait_for_rank(
        &self,
        rank: usize,
        key: &str,
        min_seq: u64,
        timeout: Duration,
    ) -> Result<Signal> {
        self.check_rank(rank)?;
        validate_signal_key(key)?;
        self.check_usable()?;
        let deadline = deadline_after(timeout);
        let etcd_key = self.signal_key(key, rank);
        let current = |view: &View| {
            view.get("")
                .and_then(|v| decode_signal(v))
                .unwrap_or_default()
        };
        let mut view = View::new();
        let found = self
            .follow(
                "wait_for_rank",
                &etcd_key,
                false,
                deadline,
                &mut view,
                |view| {
                    let signal = current(view);
                    (signal.seq >= min_seq).then_some(signal)
                },
            )
            .await?;
        match found {
            Some(signal) => Ok(signal),
            None => {
                tracing::warn!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %self.inner.config.prefix,
                    member = %self.inner.member_id,
                    waited_for = rank,
                    key,
                    min_seq,
                    "wait for rank timed out"
                );
                Err(CoordinatorError::Timeout {
                    operation: "wait_for_rank",
                    after: timeout,
                    missing: vec![rank],
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_parse_strictly() {
        assert_eq!(parse_rank("0"), Some(0));
        assert_eq!(parse_rank("17"), Some(17));
        for bad in ["", "01", "-1", "+1", "1/2", "members/1", "broken", " 1"] {
            assert_eq!(parse_rank(bad), None, "{bad:?}");
        }
        assert_eq!(decode_ranks(&encode_ranks(&[2, 3, 10])), vec![2, 3, 10]);
        assert_eq!(decode_ranks(b""), Vec::<usize>::new());
    }

    #[test]
    fn signals_encode_sequence_and_payload() {
        let value = encode_signal(7, b"ready");
        assert_eq!(
            decode_signal(&value),
            Some(Signal {
                seq: 7,
                payload: b"ready".to_vec()
            })
        );
        assert_eq!(decode_signal(&encode_signal(1, b"")).unwrap().payload, b"");
        assert_eq!(decode_signal(b"short"), None);
    }

    #[test]
    fn round_outcome_needs_every_rank_or_a_broken_mark() {
        let mut view = View::new();
        view.insert("0".into(), b"a".to_vec());
        view.insert("2".into(), b"c".to_vec());
        view.insert("9".into(), b"stray".to_vec());
        assert!(round_outcome(&view, 3).is_none());
        assert_eq!(missing_ranks(&view, 3), vec![1]);
        view.insert("1".into(), b"b".to_vec());
        match round_outcome(&view, 3) {
            Some(RoundOutcome::Complete(values)) => {
                assert_eq!(values, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
            }
            _ => panic!("round should be complete"),
        }
        view.insert(BROKEN.into(), encode_ranks(&[1]));
        match round_outcome(&view, 3) {
            Some(RoundOutcome::Broken(Mark::Timeout(missing))) => assert_eq!(missing, vec![1]),
            _ => panic!("a broken mark wins over completion"),
        }
    }

    fn member(name: &str, state: MemberState) -> Vec<u8> {
        serde_json::to_vec(&MemberValue {
            world_size: 3,
            state,
            member: name.to_string(),
        })
        .unwrap()
    }

    /// A view of a job of 3 ranks in epoch 0, all connected and alive, in
    /// barrier round 4 where ranks 0 and 1 arrived.
    fn job() -> (RoundWatch, View) {
        let mut view = View::new();
        for rank in 0..3 {
            let name = format!("m{rank}");
            view.insert(format!("ranks/{rank}"), name.clone().into_bytes());
            view.insert(
                format!("members/{rank}"),
                member(&name, MemberState::Running),
            );
        }
        view.insert("rounds/0/barrier/4/0".into(), Vec::new());
        view.insert("rounds/0/barrier/4/1".into(), Vec::new());
        let watch = RoundWatch {
            round_path: "rounds/0/barrier/4/".into(),
            epoch: 0,
            world_size: 3,
            ranks: None,
            own_key: "members/0".into(),
            left: BTreeSet::new(),
        };
        (watch, view)
    }

    fn failed(seen: Option<Seen>) -> (Vec<usize>, String, Vec<usize>) {
        match seen {
            Some(Seen::Failed {
                ranks,
                reason,
                missing,
            }) => (ranks, reason, missing),
            _ => panic!("expected a failure"),
        }
    }

    #[test]
    fn a_round_waits_for_live_ranks_and_completes() {
        let (mut watch, mut view) = job();
        assert!(watch.evaluate(&view).is_none());
        view.insert("rounds/0/barrier/4/2".into(), Vec::new());
        assert!(matches!(
            watch.evaluate(&view),
            Some(Seen::Outcome(RoundOutcome::Complete(_)))
        ));
        // Complete wins over a failure seen at the same time.
        view.remove("members/2");
        assert!(matches!(
            watch.evaluate(&view),
            Some(Seen::Outcome(RoundOutcome::Complete(_)))
        ));
    }

    #[test]
    fn a_missing_rank_whose_member_is_gone_fails_the_round() {
        let (mut watch, mut view) = job();
        view.remove("members/2");
        let (ranks, reason, missing) = failed(watch.evaluate(&view));
        assert_eq!((ranks, missing), (vec![2], vec![2]));
        assert!(reason.contains("lease expired"), "{reason}");

        // A rank that said `left` before its key went shut down.
        let (mut watch, mut view) = job();
        view.insert("members/2".into(), member("m2", MemberState::Left));
        let (ranks, reason, _) = failed(watch.evaluate(&view));
        assert_eq!(ranks, vec![2]);
        assert!(reason.contains("shut down"), "{reason}");
        view.remove("members/2");
        let (_, reason, _) = failed(watch.evaluate(&view));
        assert!(reason.contains("shut down"), "{reason}");
    }

    #[test]
    fn a_rank_that_never_connected_is_late_not_failed() {
        let (mut watch, mut view) = job();
        view.remove("members/2");
        view.remove("ranks/2");
        assert!(watch.evaluate(&view).is_none());
    }

    #[test]
    fn a_declared_rank_fails_the_round_even_if_it_arrived() {
        let (mut watch, mut view) = job();
        view.insert("failed/0/1".into(), b"missed heartbeats".to_vec());
        view.insert("failed/1/2".into(), b"another epoch".to_vec());
        let (ranks, reason, missing) = failed(watch.evaluate(&view));
        assert_eq!((ranks, missing), (vec![1], vec![2]));
        assert!(reason.contains("missed heartbeats"), "{reason}");
    }

    #[test]
    fn later_epochs_follow_member_ids_wherever_their_key_is() {
        let (mut watch, mut view) = job();
        watch.epoch = 1;
        watch.round_path = "rounds/1/barrier/0/".into();
        watch.ranks = Some(vec!["m0".into(), "spare".into(), "m2".into()]);
        let record = EpochRecord::new(1, watch.ranks.clone().unwrap());
        view.insert("epoch".into(), record.to_bytes().unwrap());
        view.insert("rounds/1/barrier/0/0".into(), Vec::new());
        view.insert(
            "standby/spare".into(),
            member("spare", MemberState::Running),
        );
        assert!(watch.evaluate(&view).is_none());
        view.remove("standby/spare");
        let (ranks, _, missing) = failed(watch.evaluate(&view));
        assert_eq!((ranks, missing), (vec![1], vec![1, 2]));
    }

    #[test]
    fn a_new_epoch_or_a_lost_lease_fences_the_wait() {
        let (mut watch, mut view) = job();
        view.insert(
            "epoch".into(),
            EpochRecord::new(1, vec!["m0".into()]).to_bytes().unwrap(),
        );
        match watch.evaluate(&view) {
            Some(Seen::Fenced(reason)) => assert!(reason.contains("epoch 1"), "{reason}"),
            _ => panic!("expected Fenced"),
        }
        let (mut watch, mut view) = job();
        view.remove("members/0");
        assert!(matches!(watch.evaluate(&view), Some(Seen::Fenced(_))));
    }

    #[test]
    fn broken_marks_say_timeout_or_failure() {
        assert_eq!(Mark::decode(b"2,3"), Mark::Timeout(vec![2, 3]));
        assert_eq!(
            Mark::decode(&Mark::encode_failed(&[3], "rank 3 is gone")),
            Mark::Failed {
                ranks: vec![3],
                reason: "rank 3 is gone".into()
            }
        );
        let (mut watch, mut view) = job();
        view.insert(
            "rounds/0/barrier/4/broken".into(),
            Mark::encode_failed(&[2], "gone"),
        );
        assert!(matches!(
            watch.evaluate(&view),
            Some(Seen::Outcome(RoundOutcome::Broken(Mark::Failed { .. })))
        ));
    }
}
