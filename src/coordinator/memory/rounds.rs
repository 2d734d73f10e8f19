//! Barriers, all-gathers and signals of an [`InMemoryCoordinator`]: rounds
//! numbered per epoch and collective, each rank's seat in a round, and how
//! a round ends (complete, broken by a timeout, failed by a dead rank,
//! fenced by a new epoch).

use std::time::Duration;

use tokio::time::Instant;

use super::{InMemoryCoordinator, Shared, State};
use crate::coordinator::{deadline_after, validate_signal_key, CoordinatorError, Result, Signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Collective {
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
}

#[derive(Debug)]
pub(super) struct Round {
    /// What each rank sent, `None` until it arrives; its length is the
    /// world size of the round's epoch.
    arrived: Vec<Option<Vec<u8>>>,
    /// Set when a rank timed out waiting: the ranks missing then.
    broken: Option<Vec<usize>>,
    /// How many ranks have entered this round and left it again (with a
    /// result, an error, or by being cancelled).
    departed: usize,
}

impl Round {
    fn new(world_size: usize) -> Self {
        Round {
            arrived: vec![None; world_size],
            broken: None,
            departed: 0,
        }
    }

    fn missing(&self) -> Vec<usize> {
        (0..self.arrived.len())
            .filter(|&r| self.arrived[r].is_none())
            .collect()
    }

    fn complete(&self) -> bool {
        self.arrived.iter().all(Option::is_some)
    }
}

/// The error of a round that misses ranks that failed: names them and says
/// why, or `None` when no missing rank failed.
fn failed_missing(
    state: &State,
    operation: &'static str,
    missing: &[usize],
) -> Option<CoordinatorError> {
    let ranks: Vec<usize> = missing
        .iter()
        .copied()
        .filter(|r| state.failed.contains_key(r))
        .collect();
    if ranks.is_empty() {
        return None;
    }
    let reason = ranks
        .iter()
        .filter_map(|r| state.failed.get(r).map(|why| format!("rank {r}: {why}")))
        .collect::<Vec<_>>()
        .join("; ");
    Some(CoordinatorError::RanksFailed {
        operation,
        ranks: ranks.into(),
        reason: reason.into(),
    })
}

/// What became of a rank's injected faults before an operation.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    /// The rank is absent: its arrivals and signals do not count.
    absent: bool,
    /// Its injected delay outlasted the call's deadline.
    late: bool,
}

impl Arrival {
    fn arrives(self) -> bool {
        !self.absent && !self.late
    }
}

impl InMemoryCoordinator {
    /// Applies this rank's injected faults before an operation: returns an
    /// injected failure, or waits the injected delay, but never past the
    /// call's `deadline` (a delay counts against the call's timeout, as a
    /// slow network would).
    async fn before_operation(
        &self,
        operation: &'static str,
        deadline: Option<Instant>,
    ) -> Result<Arrival> {
        let rank = self.my_rank();
        let faults = {
            let mut state = self.shared.lock();
            let faults = state.faults.entry(rank).or_default();
            if faults.fail_next > 0 {
                faults.fail_next -= 1;
                return Err(CoordinatorError::unavailable(format!(
                    "injected failure of {operation} on rank {rank}"
                )));
            }
            faults.clone()
        };
        let mut late = false;
        if !faults.delay.is_zero() {
            let delayed_until = deadline_after(faults.delay);
            match deadline {
                Some(deadline) if deadline < delayed_until => {
                    tokio::time::sleep_until(deadline).await;
                    late = true;
                }
                _ => tokio::time::sleep_until(delayed_until).await,
            }
        }
        Ok(Arrival {
            absent: faults.absent,
            late,
        })
    }

    pub(super) async fn collective(
        &self,
        op: Collective,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<Vec<u8>>> {
        let deadline = deadline_after(timeout);
        // A member that is gone, cut off, fenced or a standby never reaches
        // the round.
        self.check_participant(&self.shared.lock())?;
        let arrival = self.before_operation(op.name(), Some(deadline)).await?;
        let mut changes = self.shared.changed.subscribe();
        let (epoch, rank) = (self.my_epoch(), self.my_rank());
        let (round, broken) = {
            let mut state = self.shared.lock();
            // The member may have been fenced during an injected delay.
            self.check_participant(&state)?;
            let world_size = state.epoch.world_size();
            let next = state.next_round.entry((epoch, op, rank)).or_insert(0);
            let round = *next;
            *next += 1;
            let entry = state
                .rounds
                .entry((epoch, op, round))
                .or_insert_with(|| Round::new(world_size));
            let broken = entry.broken.clone();
            // A rank whose injected delay outlasted its timeout takes its
            // seat without arriving, and breaks the round below, as any rank
            // whose timeout expires does.
            if broken.is_none()
                && arrival.arrives()
                && let Some(seat) = entry.arrived.get_mut(rank)
            {
                *seat = Some(data);
            }
            (round, broken)
        };
        // From here on, however this call ends (even by being dropped), the
        // rank leaves the round exactly once.
        let _seat = Seat {
            shared: &self.shared,
            key: (epoch, op, round),
        };
        if let Some(missing) = broken {
            return Err(CoordinatorError::Broken {
                operation: op.name(),
                round,
                missing,
            });
        }
        self.shared.bump();
        loop {
            {
                let mut state = self.shared.lock();
                let fenced = self
                    .check_live(&state, super::Access::Act)
                    .and_then(|()| self.check_epoch(&state));
                let Some(entry) = state.rounds.get_mut(&(epoch, op, round)) else {
                    // A new epoch removed the rounds of the old ones.
                    fenced?;
                    // Unreachable otherwise while this rank holds its seat:
                    // a round is removed only after every rank has left it.
                    return Err(CoordinatorError::Backend {
                        message: format!("{} round {round} vanished", op.name()),
                        source: None,
                    });
                };
                if let Some(missing) = &entry.broken {
                    return Err(CoordinatorError::Broken {
                        operation: op.name(),
                        round,
                        missing: missing.clone(),
                    });
                }
                if entry.complete() {
                    let result = entry
                        .arrived
                        .iter()
                        .map(|d| d.clone().unwrap_or_default())
                        .collect();
                    return Ok(result);
                }
                let missing = entry.missing();
                match fenced {
                    // Killed or expired while waiting, or the job moved on
                    // to a new epoch.
                    Err(CoordinatorError::Unavailable { .. }) => {}
                    Err(e) => return Err(e),
                    Ok(()) => {}
                }
                if let Some(err) = failed_missing(&state, op.name(), &missing) {
                    drop(state);
                    tracing::warn!(
                        target: "steadfast::coordinator",
                        coordinator = "in-memory",
                        rank,
                        epoch,
                        operation = op.name(),
                        round,
                        failed = ?err.missing_ranks(),
                        "collective failed: ranks it waits for failed"
                    );
                    return Err(err);
                }
                if Instant::now() >= deadline {
                    if let Some(entry) = state.rounds.get_mut(&(epoch, op, round)) {
                        entry.broken = Some(missing.clone());
                    }
                    drop(state);
                    self.shared.bump();
                    tracing::warn!(
                        target: "steadfast::coordinator",
                        coordinator = "in-memory",
                        rank,
                        epoch,
                        operation = op.name(),
                        round,
                        ?missing,
                        "collective timed out"
                    );
                    return Err(CoordinatorError::Timeout {
                        operation: op.name(),
                        after: timeout,
                        missing,
                    });
                }
            }
            // Woken by any change, or by the deadline to time out.
            let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
        }
    }

    pub(super) async fn raise_signal(&self, key: &str, payload: Vec<u8>) -> Result<u64> {
        validate_signal_key(key)?;
        self.check_participant(&self.shared.lock())?;
        // A signal has no timeout: the whole delay is waited.
        let absent = self.before_operation("signal", None).await?.absent;
        let seq = {
            let mut state = self.shared.lock();
            self.check_participant(&state)?;
            let current = state
                .signals
                .entry((self.my_epoch(), self.my_rank(), key.to_string()))
                .or_default();
            if absent {
                // An absent rank's signals never reach the others.
                return Ok(current.seq + 1);
            }
            current.seq += 1;
            current.payload = payload;
            current.seq
        };
        self.shared.bump();
        Ok(seq)
    }

    pub(super) async fn wait_for_signal(
        &self,
        rank: usize,
        key: &str,
        min_seq: u64,
        timeout: Duration,
    ) -> Result<Signal> {
        self.check_rank(rank)?;
        validate_signal_key(key)?;
        let deadline = deadline_after(timeout);
        let epoch = self.my_epoch();
        {
            let state = self.shared.lock();
            self.check_live(&state, super::Access::Act)?;
            self.check_epoch(&state)?;
        }
        if self
            .before_operation("wait_for_rank", Some(deadline))
            .await?
            .late
        {
            return Err(CoordinatorError::Timeout {
                operation: "wait_for_rank",
                after: timeout,
                missing: vec![rank],
            });
        }
        let mut changes = self.shared.changed.subscribe();
        loop {
            {
                let state = self.shared.lock();
                let current = state
                    .signals
                    .get(&(epoch, rank, key.to_string()))
                    .cloned()
                    .unwrap_or_default();
                if current.seq >= min_seq {
                    return Ok(current);
                }
                self.check_live(&state, super::Access::Act)
                    .or_else(|e| match e {
                        // A partition that starts while waiting leaves the
                        // wait to its timeout.
                        CoordinatorError::Unavailable { .. } => Ok(()),
                        e => Err(e),
                    })?;
                self.check_epoch(&state)?;
                if let Some(err) = failed_missing(&state, "wait_for_rank", &[rank]) {
                    return Err(err);
                }
            }
            if Instant::now() >= deadline {
                return Err(CoordinatorError::Timeout {
                    operation: "wait_for_rank",
                    after: timeout,
                    missing: vec![rank],
                });
            }
            let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
        }
    }
}

/// A rank's place in one round of a collective.
///
/// Every rank that enters a round leaves it exactly once, when its call
/// returns or is dropped; the last of the round's ranks to leave removes
/// the round. A broken round therefore stays known (with its missing
/// ranks) until the late ranks have entered it too and been told it is
/// broken, instead of being recreated empty for them. The rounds of an
/// epoch the job left are removed when it leaves it (a dead rank never
/// leaves its seats).
struct Seat<'a> {
    shared: &'a Shared,
    key: (u64, Collective, u64),
}

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if let Some(entry) = state.rounds.get_mut(&self.key) {
            entry.departed += 1;
            if entry.departed >= entry.arrived.len() {
                state.rounds.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::Coordinator;

    fn rounds_left(rank: &InMemoryCoordinator) -> usize {
        rank.shared.lock().rounds.len()
    }

    #[tokio::test(start_paused = true)]
    async fn rounds_are_removed_once_every_rank_has_left() {
        let ranks = InMemoryCoordinator::new(2);
        let other = ranks[1].clone();
        let t = tokio::spawn(async move { other.barrier(Duration::from_secs(1)).await });
        ranks[0].barrier(Duration::from_secs(1)).await.unwrap();
        t.await.unwrap().unwrap();
        assert_eq!(rounds_left(&ranks[0]), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_broken_round_is_kept_until_the_late_rank_has_seen_it() {
        let ranks = InMemoryCoordinator::new(2);
        let err = ranks[0].barrier(Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(err.missing_ranks(), &[1]);
        assert_eq!(rounds_left(&ranks[0]), 1);
        let err = ranks[1].barrier(Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, CoordinatorError::Broken { round: 0, .. }));
        assert_eq!(rounds_left(&ranks[0]), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_call_leaves_its_round() {
        let ranks = InMemoryCoordinator::new(2);
        let gave_up = tokio::time::timeout(
            Duration::from_secs(1),
            ranks[0].barrier(Duration::from_secs(9)),
        )
        .await;
        assert!(gave_up.is_err());
        assert_eq!(rounds_left(&ranks[0]), 1);
        ranks[1].barrier(Duration::from_secs(1)).await.unwrap();
        assert_eq!(rounds_left(&ranks[0]), 0);
    }
}
