//! The collective operations and signals of an
//! [`EtcdCoordinator`]: barrier and all-gather rounds (arrive under the
//! epoch, follow the round and the members with one watch, fail the round
//! when a participant fails, mark it broken on a timeout), and signals
//! raised with a compare-and-swap and followed with a watch.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};

use super::round::{
    encode_ranks, missing_ranks, round_outcome, round_view, Mark, RoundOutcome, RoundWatch, Seen,
    BROKEN,
};
use super::{suffix_of, EpochState, EtcdCoordinator, Range, View, TARGET};
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

/// The transaction that ends round `dir` with `mark` under its `broken`
/// key, only if no mark is there yet and the `missing` ranks are still
/// missing; otherwise it reads the round.
fn mark_round(dir: &str, missing: &[usize], mark: Vec<u8>, lease: i64) -> Txn {
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
    Txn::new()
        .when(compares)
        .and_then([TxnOp::put(
            broken_key,
            mark,
            Some(PutOptions::new().with_lease(lease)),
        )])
        .or_else([TxnOp::get(
            dir.to_string(),
            Some(GetOptions::new().with_prefix()),
        )])
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
        let txn = mark_round(
            dir,
            missing,
            Mark::encode_failed(failed, reason),
            self.inner.lease_id,
        );
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
                    ranks: ranks.into(),
                    reason: reason.into(),
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
        let lease = self.inner.lease_id;
        // Each failed attempt means another rank arrived (or broke the
        // round), so this ends after at most world_size + 1 attempts.
        for _ in 0..=world_size {
            let missing = missing_ranks(&view, world_size);
            let txn = mark_round(dir, &missing, encode_ranks(&missing), lease);
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
    use super::super::parse_rank;
    use super::super::round::decode_ranks;
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
}
