//! The collective operations and signals of an
//! [`EtcdCoordinator`]: barrier and all-gather rounds (arrive, follow the
//! round with a watch, mark it broken on a timeout), and signals raised with
//! a compare-and-swap and followed with a watch.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};

use super::{parse_rank, suffix_of, EtcdCoordinator, View, TARGET};
use crate::coordinator::{
    deadline_after, validate_signal_key, Coordinator, CoordinatorError, Result, Signal,
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
/// What a collective round looks like in a [`View`].
enum RoundOutcome {
    Complete(Vec<Vec<u8>>),
    Broken(Vec<usize>),
}

fn round_outcome(view: &View, world_size: usize) -> Option<RoundOutcome> {
    if let Some(value) = view.get(BROKEN) {
        return Some(RoundOutcome::Broken(decode_ranks(value)));
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
impl EtcdCoordinator {
    async fn collective(
        &self,
        kind: Collective,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<Vec<u8>>> {
        self.check_usable()?;
        let deadline = deadline_after(timeout);
        let counter = match kind {
            Collective::Barrier => &self.inner.next_barrier,
            Collective::AllGather => &self.inner.next_gather,
        };
        let round = counter.fetch_add(1, Ordering::SeqCst);
        let prefix = &self.inner.config.prefix;
        let rank = self.inner.config.rank;
        let world_size = self.inner.config.world_size;
        let dir = format!("{prefix}/{}/{round}/", kind.dir());
        let my_key = format!("{dir}{rank}");
        let broken_key = format!("{dir}{BROKEN}");
        let lease = self.inner.lease_id;
        tracing::debug!(
            target: TARGET,
            coordinator = "etcd",
            prefix = %prefix,
            rank,
            operation = kind.name(),
            round,
            "arriving"
        );

        // Arrive, unless the round is already broken.
        let arrive = self.call(kind.name(), |mut c| {
            let txn = Txn::new()
                .when([Compare::create_revision(
                    broken_key.clone(),
                    CompareOp::Equal,
                    0,
                )])
                .and_then([TxnOp::put(
                    my_key.clone(),
                    data.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                )])
                .or_else([TxnOp::get(broken_key.clone(), None)]);
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
            let missing = arrived
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Get(get) => get.kvs().first().map(|kv| decode_ranks(kv.value())),
                    _ => None,
                })
                .unwrap_or_default();
            return Err(self.broken(kind, round, missing));
        }

        let mut view = View::new();
        let outcome = self
            .follow(kind.name(), &dir, true, deadline, &mut view, |view| {
                round_outcome(view, world_size)
            })
            .await?;
        let outcome = match outcome {
            Some(outcome) => outcome,
            None => self.break_round(kind, round, &dir, view, timeout).await?,
        };
        match outcome {
            RoundOutcome::Complete(values) => {
                self.forget_previous_round(kind, round);
                tracing::debug!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %prefix,
                    rank,
                    operation = kind.name(),
                    round,
                    "round complete"
                );
                Ok(values)
            }
            RoundOutcome::Broken(missing) => Err(self.broken(kind, round, missing)),
        }
    }

    fn broken(&self, kind: Collective, round: u64, missing: Vec<usize>) -> CoordinatorError {
        tracing::warn!(
            target: TARGET,
            coordinator = "etcd",
            prefix = %self.inner.config.prefix,
            rank = self.inner.config.rank,
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
        timeout: Duration,
    ) -> Result<RoundOutcome> {
        let world_size = self.inner.config.world_size;
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
                        rank = self.inner.config.rank,
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
                    rank = self.inner.config.rank,
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
    fn forget_previous_round(&self, kind: Collective, round: u64) {
        let Some(previous) = round.checked_sub(1) else {
            return;
        };
        let key = format!(
            "{}/{}/{previous}/{}",
            self.inner.config.prefix,
            kind.dir(),
            self.inner.config.rank
        );
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

    fn signal_key(&self, key: &str, rank: usize) -> String {
        format!("{}/signal/{key}/{rank}", self.inner.config.prefix)
    }
}
#[async_trait]
impl Coordinator for EtcdCoordinator {
    fn rank(&self) -> usize {
        self.inner.config.rank
    }

    fn world_size(&self) -> usize {
        self.inner.config.world_size
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
        let etcd_key = self.signal_key(key, self.inner.config.rank);
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
                    rank = self.inner.config.rank,
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
                    rank = self.inner.config.rank,
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
            Some(RoundOutcome::Broken(missing)) => assert_eq!(missing, vec![1]),
            _ => panic!("a broken mark wins over completion"),
        }
    }
}
