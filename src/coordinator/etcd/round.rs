//! How a collective round is judged from what etcd holds: complete,
//! broken (a rank timed out, or participants failed: the round's `broken`
//! key), fenced (the job left the epoch, or this member's key is gone), or
//! failed (a participant that has not arrived is gone or was declared
//! failed). The collectives in `collective.rs` act on the verdict.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::members::{MemberState, MemberValue};
use super::{is_live, parse_rank, View};
use crate::coordinator::EpochRecord;

/// Why a round is broken, as its `broken` key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Mark {
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
    pub(super) fn decode(value: &[u8]) -> Mark {
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

    pub(super) fn encode_failed(ranks: &[usize], reason: &str) -> Vec<u8> {
        serde_json::to_vec(&FailedMark {
            failed: ranks.to_vec(),
            reason: reason.to_string(),
        })
        .unwrap_or_else(|_| encode_ranks(ranks))
    }
}

/// What a collective round looks like in a [`View`] of its directory.
pub(super) enum RoundOutcome {
    Complete(Vec<Vec<u8>>),
    Broken(Mark),
}

pub(super) fn round_outcome(view: &View, world_size: usize) -> Option<RoundOutcome> {
    if let Some(value) = view.get(BROKEN) {
        return Some(RoundOutcome::Broken(Mark::decode(value)));
    }
    let mut values = Vec::with_capacity(world_size);
    for rank in 0..world_size {
        values.push(view.get(&rank.to_string())?.clone());
    }
    Some(RoundOutcome::Complete(values))
}

pub(super) fn missing_ranks(view: &View, world_size: usize) -> Vec<usize> {
    (0..world_size)
        .filter(|rank| !view.contains_key(&rank.to_string()))
        .collect()
}

pub(super) const BROKEN: &str = "broken";

pub(super) fn encode_ranks(ranks: &[usize]) -> Vec<u8> {
    ranks
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
        .into_bytes()
}

pub(super) fn decode_ranks(value: &[u8]) -> Vec<usize> {
    String::from_utf8_lossy(value)
        .split(',')
        .filter_map(|r| parse_rank(r.trim()))
        .collect()
}

/// The keys of a round's directory, by rank (and `broken`), out of a view
/// of the whole job.
pub(super) fn round_view(view: &View, round_path: &str) -> View {
    view.range(round_path.to_string()..)
        .take_while(|(k, _)| k.starts_with(round_path))
        .filter_map(|(k, v)| Some((k.strip_prefix(round_path)?.to_string(), v.clone())))
        .collect()
}

/// What a wait in a round saw.
pub(super) enum Seen {
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
pub(super) struct RoundWatch {
    pub(super) round_path: String,
    pub(super) epoch: u64,
    pub(super) world_size: usize,
    /// The epoch's members by rank; `None` in epoch 0 (read from `ranks/`).
    pub(super) ranks: Option<Vec<String>>,
    /// This handle's live key, relative to the job.
    pub(super) own_key: String,
    /// Members seen saying `left`.
    pub(super) left: BTreeSet<String>,
}

impl RoundWatch {
    pub(super) fn evaluate(&mut self, view: &View) -> Option<Seen> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
