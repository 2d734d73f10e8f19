//! [`InMemoryCoordinator`]: `n` ranks in one process, with fault injection.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{deadline_after, validate_signal_key, Coordinator, CoordinatorError, Result, Signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
}

#[derive(Debug)]
struct Round {
    /// What each rank sent, `None` until it arrives.
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

#[derive(Debug, Default, Clone)]
struct RankFaults {
    absent: bool,
    delay: Duration,
    fail_next: u32,
}

#[derive(Debug)]
struct State {
    /// The next round each rank will enter, per collective.
    next_round: HashMap<(Collective, usize), u64>,
    rounds: HashMap<(Collective, u64), Round>,
    signals: HashMap<(usize, String), Signal>,
    faults: Vec<RankFaults>,
}

#[derive(Debug)]
struct Shared {
    world_size: usize,
    state: Mutex<State>,
    /// Bumped on every change, so that waiters re-check their condition.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before any
        // operation that could panic, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// A [`Coordinator`] whose ranks are tasks of one process.
///
/// [`InMemoryCoordinator::new(n)`](InMemoryCoordinator::new) returns one
/// handle per rank; give each to the task that plays that rank. Faults are
/// injected through [`InMemoryCoordinator::faults`]: a rank that never
/// arrives, a rank that arrives late, transient failures.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::{Coordinator, CoordinatorError, InMemoryCoordinator};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ranks = InMemoryCoordinator::new(3);
/// ranks[0].faults().set_absent(2, true); // rank 2 will never arrive
/// let waits: Vec<_> = ranks
///     .iter()
///     .cloned()
///     .map(|r| tokio::spawn(async move { r.barrier(Duration::from_secs(1)).await }))
///     .collect();
/// for w in waits {
///     let err = w.await.unwrap().unwrap_err();
///     assert_eq!(err.missing_ranks(), &[2]);
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct InMemoryCoordinator {
    rank: usize,
    shared: Arc<Shared>,
}

impl fmt::Debug for InMemoryCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryCoordinator")
            .field("rank", &self.rank)
            .field("world_size", &self.shared.world_size)
            .finish()
    }
}

impl InMemoryCoordinator {
    /// Creates a job of `world_size` ranks and returns one handle per rank,
    /// in rank order. A `world_size` of 0 gives no handles.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::{Coordinator, InMemoryCoordinator};
    /// let ranks = InMemoryCoordinator::new(4);
    /// assert_eq!(ranks[3].rank(), 3);
    /// assert_eq!(ranks[3].world_size(), 4);
    /// ```
    pub fn new(world_size: usize) -> Vec<InMemoryCoordinator> {
        let shared = Arc::new(Shared {
            world_size,
            state: Mutex::new(State {
                next_round: HashMap::new(),
                rounds: HashMap::new(),
                signals: HashMap::new(),
                faults: vec![RankFaults::default(); world_size],
            }),
            changed: watch::Sender::new(0),
        });
        (0..world_size)
            .map(|rank| InMemoryCoordinator {
                rank,
                shared: Arc::clone(&shared),
            })
            .collect()
    }

    /// The fault injection controls of this job (shared by all its ranks).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// let ranks = InMemoryCoordinator::new(2);
    /// ranks[0].faults().set_delay(1, Duration::from_millis(500));
    /// ```
    pub fn faults(&self) -> CoordinatorFaults {
        CoordinatorFaults {
            shared: Arc::clone(&self.shared),
        }
    }

    fn check_rank(&self, rank: usize) -> Result<()> {
        if rank >= self.shared.world_size {
            return Err(CoordinatorError::InvalidRank {
                rank,
                world_size: self.shared.world_size,
            });
        }
        Ok(())
    }

    /// Applies this rank's injected faults before an operation: returns an
    /// injected failure, or waits the injected delay, but never past the
    /// call's `deadline` (a delay counts against the call's timeout, as a
    /// slow network would).
    async fn before_operation(
        &self,
        operation: &'static str,
        deadline: Option<Instant>,
    ) -> Result<Arrival> {
        let faults = {
            let mut state = self.shared.lock();
            let faults = &mut state.faults[self.rank];
            if faults.fail_next > 0 {
                faults.fail_next -= 1;
                return Err(CoordinatorError::unavailable(format!(
                    "injected failure of {operation} on rank {}",
                    self.rank
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

    async fn collective(
        &self,
        op: Collective,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<Vec<u8>>> {
        let deadline = deadline_after(timeout);
        let arrival = self.before_operation(op.name(), Some(deadline)).await?;
        let world_size = self.shared.world_size;
        let mut changes = self.shared.changed.subscribe();
        let (round, broken) = {
            let mut state = self.shared.lock();
            let next = state.next_round.entry((op, self.rank)).or_insert(0);
            let round = *next;
            *next += 1;
            let entry = state
                .rounds
                .entry((op, round))
                .or_insert_with(|| Round::new(world_size));
            let broken = entry.broken.clone();
            // A rank whose injected delay outlasted its timeout takes its
            // seat without arriving, and breaks the round below, as any rank
            // whose timeout expires does.
            if broken.is_none() && arrival.arrives() {
                entry.arrived[self.rank] = Some(data);
            }
            (round, broken)
        };
        // From here on, however this call ends (even by being dropped), the
        // rank leaves the round exactly once.
        let _seat = Seat {
            shared: &self.shared,
            op,
            round,
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
                let Some(entry) = state.rounds.get_mut(&(op, round)) else {
                    // Unreachable while this rank holds its seat: a round is
                    // removed only after every rank has left it.
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
                if Instant::now() >= deadline {
                    let missing = entry.missing();
                    entry.broken = Some(missing.clone());
                    drop(state);
                    self.shared.bump();
                    tracing::warn!(
                        target: "steadfast::coordinator",
                        coordinator = "in-memory",
                        rank = self.rank,
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
}

/// A rank's place in one round of a collective.
///
/// Every rank that enters a round leaves it exactly once, when its call
/// returns or is dropped; the last of the `world_size` ranks to leave
/// removes the round. A broken round therefore stays known (with its missing
/// ranks) until the late ranks have entered it too and been told it is
/// broken, instead of being recreated empty for them.
struct Seat<'a> {
    shared: &'a Shared,
    op: Collective,
    round: u64,
}

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        let world_size = self.shared.world_size;
        let mut state = self.shared.lock();
        let key = (self.op, self.round);
        if let Some(entry) = state.rounds.get_mut(&key) {
            entry.departed += 1;
            if entry.departed >= world_size {
                state.rounds.remove(&key);
            }
        }
    }
}

#[async_trait]
impl Coordinator for InMemoryCoordinator {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.shared.world_size
    }

    fn name(&self) -> &str {
        "in-memory"
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
        // A signal has no timeout: the whole delay is waited.
        let absent = self.before_operation("signal", None).await?.absent;
        let seq = {
            let mut state = self.shared.lock();
            let current = state
                .signals
                .entry((self.rank, key.to_string()))
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

    async fn wait_for_rank(
        &self,
        rank: usize,
        key: &str,
        min_seq: u64,
        timeout: Duration,
    ) -> Result<Signal> {
        self.check_rank(rank)?;
        validate_signal_key(key)?;
        let deadline = deadline_after(timeout);
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
            let current = self
                .shared
                .lock()
                .signals
                .get(&(rank, key.to_string()))
                .cloned()
                .unwrap_or_default();
            if current.seq >= min_seq {
                return Ok(current);
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

/// Fault injection controls of an [`InMemoryCoordinator`] job.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::{Coordinator, InMemoryCoordinator};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ranks = InMemoryCoordinator::new(1);
/// ranks[0].faults().fail_next(0, 1);
/// assert!(ranks[0].barrier(Duration::from_secs(1)).await.is_err());
/// assert!(ranks[0].barrier(Duration::from_secs(1)).await.is_ok());
/// # }
/// ```
#[derive(Clone)]
pub struct CoordinatorFaults {
    shared: Arc<Shared>,
}

impl fmt::Debug for CoordinatorFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoordinatorFaults")
            .field("faults", &self.shared.lock().faults)
            .finish()
    }
}

impl CoordinatorFaults {
    fn update(&self, rank: usize, f: impl FnOnce(&mut RankFaults)) {
        let mut state = self.shared.lock();
        if let Some(faults) = state.faults.get_mut(rank) {
            f(faults);
        }
    }

    /// Makes `rank` never arrive: its barriers and gathers do not count and
    /// its signals are not seen, so the others time out naming it.
    /// Out-of-range ranks are ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// let ranks = steadfast::coordinator::InMemoryCoordinator::new(2);
    /// ranks[0].faults().set_absent(1, true);
    /// ```
    pub fn set_absent(&self, rank: usize, absent: bool) {
        self.update(rank, |f| f.absent = absent);
    }

    /// Delays every operation of `rank` by `delay` before it arrives.
    ///
    /// The delay counts against the timeout of the delayed call, as a slow
    /// network would: a barrier or all-gather whose delay outlasts its
    /// timeout times out at its deadline without having arrived (and breaks
    /// the round, naming this rank), and a `wait_for_rank` times out.
    /// `signal` has no timeout and waits the whole delay.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let ranks = steadfast::coordinator::InMemoryCoordinator::new(2);
    /// ranks[0].faults().set_delay(1, Duration::from_secs(2));
    /// ```
    pub fn set_delay(&self, rank: usize, delay: Duration) {
        self.update(rank, |f| f.delay = delay);
    }

    /// Makes the next `count` operations of `rank` fail at once with a
    /// transient [`CoordinatorError::Unavailable`].
    ///
    /// A failed call never reaches the job: it takes no part in its round,
    /// as if the rank's connection had dropped before it arrived. The
    /// rank's next call of the same collective therefore joins that same
    /// round, which is what a retry wants: it meets the other ranks if they
    /// are still waiting, and gets [`CoordinatorError::Broken`] (naming this
    /// rank) if they timed out on it meanwhile; the call after that is in
    /// step with the job again.
    ///
    /// # Examples
    ///
    /// ```
    /// let ranks = steadfast::coordinator::InMemoryCoordinator::new(2);
    /// ranks[0].faults().fail_next(1, 3);
    /// ```
    pub fn fail_next(&self, rank: usize, count: u32) {
        self.update(rank, |f| f.fail_next = count);
    }

    /// Removes every injected fault.
    ///
    /// # Examples
    ///
    /// ```
    /// let ranks = steadfast::coordinator::InMemoryCoordinator::new(2);
    /// ranks[0].faults().set_absent(1, true);
    /// ranks[0].faults().clear();
    /// ```
    pub fn clear(&self) {
        let mut state = self.shared.lock();
        for f in state.faults.iter_mut() {
            *f = RankFaults::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
