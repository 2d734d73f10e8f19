//! The recovery plan: what the surviving members agree to do after a
//! failure, and how the leader computes it from the current epoch, the
//! failed ranks, the live standbys and the chosen strategy. Pure functions,
//! so that every rule is tested without a coordinator.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::coordinator::{EpochRecord, Leadership};
use crate::ConfigError;

use super::error::RecoveryError;

/// How the job recovers from a failed rank.
///
/// # Examples
///
/// ```
/// use steadfast::recovery::RecoveryStrategyKind;
/// let kind: RecoveryStrategyKind = "fastest_node".parse()?;
/// assert_eq!(kind, RecoveryStrategyKind::FastestNode);
/// assert_eq!(kind.to_string(), "fastest_node");
/// assert!("pray".parse::<RecoveryStrategyKind>().is_err());
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RecoveryStrategyKind {
    /// A live standby takes over each failed rank (same number, same world
    /// size), and every rank restores from the last checkpoint. Failed
    /// ranks for which no standby is left are dropped as with
    /// [`RedistributeWork`](Self::RedistributeWork).
    #[default]
    RestartFromCheckpoint,
    /// No standby is used: the survivors are renumbered `0..n` in their old
    /// order, the world shrinks, and the failed ranks' shards are assigned
    /// to the survivors in turn (each survivor loads them from the
    /// checkpoint, resharding).
    RedistributeWork,
    /// Like [`RedistributeWork`](Self::RedistributeWork), but every failed
    /// rank's shard goes to the one survivor that answered the recovery
    /// call first (the fastest node).
    FastestNode,
}

impl RecoveryStrategyKind {
    /// The name used in configuration files.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::RecoveryStrategyKind;
    /// assert_eq!(RecoveryStrategyKind::RedistributeWork.as_str(), "redistribute_work");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryStrategyKind::RestartFromCheckpoint => "restart_from_checkpoint",
            RecoveryStrategyKind::RedistributeWork => "redistribute_work",
            RecoveryStrategyKind::FastestNode => "fastest_node",
        }
    }
}

impl fmt::Display for RecoveryStrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecoveryStrategyKind {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "restart_from_checkpoint" => Ok(RecoveryStrategyKind::RestartFromCheckpoint),
            "redistribute_work" => Ok(RecoveryStrategyKind::RedistributeWork),
            "fastest_node" => Ok(RecoveryStrategyKind::FastestNode),
            _ => Err(ConfigError::new(
                "recovery_strategy",
                format!(
                    "unknown recovery strategy {s:?}: expected \"restart_from_checkpoint\", \
                     \"redistribute_work\" or \"fastest_node\""
                ),
            )),
        }
    }
}

crate::serde_text::serde_as_text!(RecoveryStrategyKind);

/// What caused a rank's failure; recovery handlers can be registered
/// per kind.
///
/// # Examples
///
/// ```
/// use steadfast::recovery::FailureCause;
/// assert_eq!(FailureCause::of_declaration("predicted: p=0.93"), FailureCause::Predicted);
/// assert_eq!(FailureCause::of_declaration("health: silent for 30s"), FailureCause::Declared);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCause {
    /// The member left without shutting down: its process died, hung or
    /// was cut off past its lease.
    Crashed,
    /// Someone declared the rank failed (the health monitor, an operator).
    Declared,
    /// A failure predictor handed the member over for preemptive
    /// migration; it may still be alive.
    Predicted,
}

/// The prefix of a declaration's reason that marks a preemptive migration
/// ([`FailureCause::Predicted`]).
pub const PREDICTED_PREFIX: &str = "predicted:";

impl FailureCause {
    /// The kind of a failure declared with this reason
    /// ([`Membership::declare_failed`](crate::coordinator::Membership::declare_failed)):
    /// [`Predicted`](Self::Predicted) when it starts with
    /// [`PREDICTED_PREFIX`], [`Declared`](Self::Declared) otherwise.
    ///
    /// # Examples
    ///
    /// See [`FailureCause`].
    pub fn of_declaration(reason: &str) -> Self {
        if reason.starts_with(PREDICTED_PREFIX) {
            FailureCause::Predicted
        } else {
            FailureCause::Declared
        }
    }
}

/// A rank that failed, as the plan records it.
///
/// # Examples
///
/// ```
/// use steadfast::recovery::{FailedRank, FailureCause};
/// let failed = FailedRank { rank: 3, member: "rank-3".into(), kind: FailureCause::Crashed, reason: "lease expired".into() };
/// assert_eq!(failed.rank, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedRank {
    /// Its rank in the epoch it failed in.
    pub rank: usize,
    /// The member that held it.
    pub member: String,
    /// The kind of failure.
    pub kind: FailureCause,
    /// What is known of the failure.
    pub reason: String,
}

/// What one rank of the new epoch does.
///
/// # Examples
///
/// ```
/// use steadfast::recovery::RankAssignment;
/// let a = RankAssignment { rank: 0, member: "rank-0".into(), previous_rank: Some(0), shards: vec![0, 2] };
/// assert!(a.takes_over_work());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankAssignment {
    /// Its rank in the new epoch.
    pub rank: usize,
    /// The member holding it.
    pub member: String,
    /// Its rank in the previous epoch; `None` for a standby taking over.
    pub previous_rank: Option<usize>,
    /// The ranks of the previous epoch whose checkpoint shards it loads,
    /// in order: its own, the one it takes over, or several after
    /// redistribution.
    pub shards: Vec<usize>,
}

impl RankAssignment {
    /// Whether the rank takes on work beyond its own shard.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::recovery::RankAssignment;
    /// let a = RankAssignment { rank: 1, member: "b".into(), previous_rank: Some(1), shards: vec![1] };
    /// assert!(!a.takes_over_work());
    /// ```
    pub fn takes_over_work(&self) -> bool {
        self.shards.iter().any(|&s| Some(s) != self.previous_rank)
    }
}

/// What the surviving members agreed to do after a failure. It travels as
/// the payload of the epoch it creates, so that every member reads the
/// same plan.
///
/// # Examples
///
/// ```
/// use steadfast::recovery::RecoveryPlan;
/// let json = r#"{"epoch":2,"previous_epoch":1,"previous_world_size":2,"attempt":1,
///   "strategy":"redistribute_work","leader":{"member":"rank-0","term":7},
///   "failed":[{"rank":1,"member":"rank-1","kind":"crashed","reason":"lease expired"}],"checkpoint":"step-10",
///   "assignments":[{"rank":0,"member":"rank-0","previous_rank":0,"shards":[0,1]}]}"#;
/// let plan: RecoveryPlan = serde_json::from_str(json).unwrap();
/// assert_eq!(plan.world_size(), 1);
/// assert_eq!(plan.assignment_of("rank-0").unwrap().shards, vec![0, 1]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryPlan {
    /// The epoch the plan creates.
    pub epoch: u64,
    /// The epoch the failure happened in.
    pub previous_epoch: u64,
    /// The world size of the previous epoch (the checkpoint's, for
    /// resharding).
    pub previous_world_size: usize,
    /// Which attempt at recovering this failure it is, from 1.
    pub attempt: u32,
    /// The strategy it follows.
    pub strategy: RecoveryStrategyKind,
    /// The leader that proposed it, which commits in the new epoch.
    pub leader: Leadership,
    /// The ranks that failed.
    pub failed: Vec<FailedRank>,
    /// The checkpoint every rank restores from: the newest one the leader
    /// could verify; `None` when the job has none yet.
    pub checkpoint: Option<String>,
    /// What each rank of the new epoch does, by rank.
    pub assignments: Vec<RankAssignment>,
}

impl RecoveryPlan {
    /// How many ranks the new epoch has.
    ///
    /// # Examples
    ///
    /// See [`RecoveryPlan`].
    pub fn world_size(&self) -> usize {
        self.assignments.len()
    }

    /// What `member` does in the new epoch, if it holds a rank.
    ///
    /// # Examples
    ///
    /// See [`RecoveryPlan`].
    pub fn assignment_of(&self, member: &str) -> Option<&RankAssignment> {
        self.assignments.iter().find(|a| a.member == member)
    }

    /// The epoch record that carries the plan.
    ///
    /// # Errors
    ///
    /// [`RecoveryError::InvalidPlan`] if the plan cannot be encoded.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::recovery::RecoveryPlan;
    /// # let plan: RecoveryPlan = serde_json::from_str(r#"{"epoch":2,"previous_epoch":1,"previous_world_size":1,"attempt":1,
    /// #   "strategy":"restart_from_checkpoint","leader":{"member":"a","term":1},"failed":[],"checkpoint":null,
    /// #   "assignments":[{"rank":0,"member":"a","previous_rank":0,"shards":[0]}]}"#).unwrap();
    /// let record = plan.to_epoch_record()?;
    /// assert_eq!((record.epoch, record.ranks.clone()), (2, vec!["a".to_string()]));
    /// assert_eq!(RecoveryPlan::from_epoch_record(&record)?, Some(plan));
    /// # Ok::<(), steadfast::recovery::RecoveryError>(())
    /// ```
    pub fn to_epoch_record(&self) -> Result<EpochRecord, RecoveryError> {
        let mut record = EpochRecord::new(
            self.epoch,
            self.assignments.iter().map(|a| a.member.clone()).collect(),
        );
        record.payload = serde_json::to_string(self).map_err(|e| RecoveryError::InvalidPlan {
            reason: format!("the plan cannot be encoded: {e}"),
        })?;
        Ok(record)
    }

    /// The plan an epoch record carries: `None` for an epoch without one
    /// (epoch 0).
    ///
    /// # Errors
    ///
    /// [`RecoveryError::InvalidPlan`] when the payload is not a plan, or a
    /// plan that does not match its record (another epoch, other members).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EpochRecord;
    /// use steadfast::recovery::RecoveryPlan;
    /// let start = EpochRecord::new(0, vec!["a".into()]);
    /// assert_eq!(RecoveryPlan::from_epoch_record(&start)?, None);
    /// # Ok::<(), steadfast::recovery::RecoveryError>(())
    /// ```
    pub fn from_epoch_record(record: &EpochRecord) -> Result<Option<Self>, RecoveryError> {
        if record.payload.is_empty() {
            return Ok(None);
        }
        let plan: RecoveryPlan =
            serde_json::from_str(&record.payload).map_err(|e| RecoveryError::InvalidPlan {
                reason: format!("epoch {} carries no readable plan: {e}", record.epoch),
            })?;
        let members: Vec<&str> = plan.assignments.iter().map(|a| a.member.as_str()).collect();
        let ranks_match = plan
            .assignments
            .iter()
            .enumerate()
            .all(|(i, a)| a.rank == i);
        if plan.epoch != record.epoch || members != record.ranks || !ranks_match {
            return Err(RecoveryError::InvalidPlan {
                reason: format!(
                    "the plan of epoch {} does not match its record (plan epoch {}, ranks {:?}, record ranks {:?})",
                    record.epoch, plan.epoch, members, record.ranks
                ),
            });
        }
        Ok(Some(plan))
    }
}

/// What the leader knows when it plans.
#[derive(Debug, Clone)]
pub(crate) struct PlanInput<'a> {
    pub(crate) current: &'a EpochRecord,
    pub(crate) failed: &'a [FailedRank],
    /// Live standbys, in the order they should be used.
    pub(crate) standbys: &'a [String],
    /// Surviving members in the order they answered (first = fastest).
    pub(crate) answered: &'a [String],
    pub(crate) strategy: RecoveryStrategyKind,
    pub(crate) leader: &'a Leadership,
    pub(crate) checkpoint: Option<String>,
    pub(crate) attempt: u32,
}

/// Computes the plan: who holds each rank of the next epoch and which
/// shards each loads.
pub(crate) fn make_plan(input: PlanInput<'_>) -> Result<RecoveryPlan, RecoveryError> {
    let current = input.current;
    let failed_ranks: BTreeSet<usize> = input.failed.iter().map(|f| f.rank).collect();
    if let Some(bad) = failed_ranks.iter().find(|&&r| r >= current.world_size()) {
        return Err(RecoveryError::InvalidPlan {
            reason: format!(
                "rank {bad} is not a rank of epoch {} ({} ranks)",
                current.epoch,
                current.world_size()
            ),
        });
    }
    let survivors: Vec<usize> = (0..current.world_size())
        .filter(|r| !failed_ranks.contains(r))
        .collect();
    if survivors.is_empty() {
        return Err(RecoveryError::InvalidPlan {
            reason: format!("every rank of epoch {} failed", current.epoch),
        });
    }
    let mut assignments: Vec<RankAssignment> = Vec::with_capacity(current.world_size());
    let mut orphaned: Vec<usize> = Vec::new();
    match input.strategy {
        RecoveryStrategyKind::RestartFromCheckpoint => {
            let mut standbys = input
                .standbys
                .iter()
                .filter(|s| current.rank_of(s).is_none());
            for rank in 0..current.world_size() {
                if !failed_ranks.contains(&rank) {
                    assignments.push(keep(rank, &current.ranks[rank]));
                } else if let Some(standby) = standbys.next() {
                    assignments.push(RankAssignment {
                        rank,
                        member: standby.clone(),
                        previous_rank: None,
                        shards: vec![rank],
                    });
                } else {
                    orphaned.push(rank);
                }
            }
            // Renumber what is left, should a rank have no standby.
            for (i, a) in assignments.iter_mut().enumerate() {
                a.rank = i;
            }
        }
        RecoveryStrategyKind::RedistributeWork | RecoveryStrategyKind::FastestNode => {
            for (i, &rank) in survivors.iter().enumerate() {
                let mut a = keep(rank, &current.ranks[rank]);
                a.rank = i;
                assignments.push(a);
            }
            orphaned.extend(failed_ranks.iter().copied());
        }
    }
    if !orphaned.is_empty() {
        let fastest = match input.strategy {
            RecoveryStrategyKind::FastestNode => input
                .answered
                .iter()
                .find_map(|m| assignments.iter().position(|a| &a.member == m)),
            _ => None,
        };
        for (i, rank) in orphaned.into_iter().enumerate() {
            let to = fastest.unwrap_or(i % assignments.len());
            assignments[to].shards.push(rank);
        }
    }
    Ok(RecoveryPlan {
        epoch: current.epoch.saturating_add(1),
        previous_epoch: current.epoch,
        previous_world_size: current.world_size(),
        attempt: input.attempt,
        strategy: input.strategy,
        leader: input.leader.clone(),
        failed: input.failed.to_vec(),
        checkpoint: input.checkpoint,
        assignments,
    })
}

fn keep(rank: usize, member: &str) -> RankAssignment {
    RankAssignment {
        rank,
        member: member.to_string(),
        previous_rank: Some(rank),
        shards: vec![rank],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(n: usize) -> EpochRecord {
        EpochRecord::new(4, (0..n).map(|r| format!("rank-{r}")).collect())
    }

    fn failed(ranks: &[usize]) -> Vec<FailedRank> {
        ranks
            .iter()
            .map(|&rank| FailedRank {
                rank,
                member: format!("rank-{rank}"),
                kind: FailureCause::Crashed,
                reason: "lease expired".into(),
            })
            .collect()
    }

    fn plan(
        strategy: RecoveryStrategyKind,
        n: usize,
        dead: &[usize],
        standbys: &[&str],
        answered: &[&str],
    ) -> RecoveryPlan {
        let current = epoch(n);
        let failed = failed(dead);
        let standbys: Vec<String> = standbys.iter().map(|s| s.to_string()).collect();
        let answered: Vec<String> = answered.iter().map(|s| s.to_string()).collect();
        let leader = Leadership {
            member: "rank-0".into(),
            term: 9,
        };
        make_plan(PlanInput {
            current: &current,
            failed: &failed,
            standbys: &standbys,
            answered: &answered,
            strategy,
            leader: &leader,
            checkpoint: Some("step-5".into()),
            attempt: 1,
        })
        .unwrap()
    }

    fn members(plan: &RecoveryPlan) -> Vec<&str> {
        plan.assignments.iter().map(|a| a.member.as_str()).collect()
    }

    #[test]
    fn a_standby_takes_over_the_failed_rank() {
        let p = plan(
            RecoveryStrategyKind::RestartFromCheckpoint,
            3,
            &[1],
            &["spare"],
            &[],
        );
        assert_eq!(members(&p), ["rank-0", "spare", "rank-2"]);
        assert_eq!(p.assignments[1].shards, vec![1]);
        assert_eq!(p.assignments[1].previous_rank, None);
        assert_eq!((p.epoch, p.previous_epoch, p.world_size()), (5, 4, 3));
    }

    #[test]
    fn without_enough_standbys_the_rest_is_redistributed() {
        let p = plan(
            RecoveryStrategyKind::RestartFromCheckpoint,
            4,
            &[1, 3],
            &["spare"],
            &[],
        );
        assert_eq!(members(&p), ["rank-0", "spare", "rank-2"]);
        assert_eq!(p.assignments[0].shards, vec![0, 3]);
        assert!(p.assignments.iter().enumerate().all(|(i, a)| a.rank == i));
    }

    #[test]
    fn redistribution_spreads_failed_shards_over_survivors() {
        let p = plan(
            RecoveryStrategyKind::RedistributeWork,
            4,
            &[0, 2],
            &["spare"],
            &[],
        );
        assert_eq!(members(&p), ["rank-1", "rank-3"]);
        assert_eq!(p.assignments[0].shards, vec![1, 0]);
        assert_eq!(p.assignments[1].shards, vec![3, 2]);
        assert_eq!(p.assignments[1].previous_rank, Some(3));
    }

    #[test]
    fn fastest_node_takes_all_failed_shards() {
        let p = plan(
            RecoveryStrategyKind::FastestNode,
            4,
            &[0, 1],
            &[],
            &["rank-3", "rank-2"],
        );
        assert_eq!(members(&p), ["rank-2", "rank-3"]);
        assert_eq!(p.assignments[1].shards, vec![3, 0, 1]);
        assert_eq!(p.assignments[0].shards, vec![2]);
    }

    #[test]
    fn plans_round_trip_through_their_epoch_record() {
        let p = plan(RecoveryStrategyKind::FastestNode, 3, &[2], &[], &["rank-1"]);
        let record = p.to_epoch_record().unwrap();
        assert!(record.validate().is_ok());
        assert_eq!(RecoveryPlan::from_epoch_record(&record).unwrap(), Some(p));
    }

    #[test]
    fn a_record_whose_plan_does_not_match_is_refused() {
        let p = plan(RecoveryStrategyKind::RedistributeWork, 3, &[2], &[], &[]);
        let mut record = p.to_epoch_record().unwrap();
        record.ranks.reverse();
        assert!(RecoveryPlan::from_epoch_record(&record).is_err());
        record.payload = "{".into();
        assert!(RecoveryPlan::from_epoch_record(&record).is_err());
    }

    #[test]
    fn bad_failures_are_refused() {
        let current = epoch(2);
        let leader = Leadership {
            member: "rank-0".into(),
            term: 1,
        };
        for dead in [vec![5], vec![0, 1]] {
            let failed = failed(&dead);
            let result = make_plan(PlanInput {
                current: &current,
                failed: &failed,
                standbys: &[],
                answered: &[],
                strategy: RecoveryStrategyKind::RedistributeWork,
                leader: &leader,
                checkpoint: None,
                attempt: 1,
            });
            assert!(
                matches!(result, Err(RecoveryError::InvalidPlan { .. })),
                "{dead:?}"
            );
        }
    }
}
