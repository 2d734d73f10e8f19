//! How the ranks of a job agree on every due save: rank 0 (the committing
//! rank) decides each one, save or skip, with its name and step, and sends
//! the decision to the other ranks; and how they agree on each restore.
//!
//! # The protocol
//!
//! Decisions travel as coordinator [signals](Coordinator::signal), not as
//! collectives: a background save of the manager uses `all_gather`, and a
//! decision must not interleave with it differently on different ranks.
//!
//! 1. Once per manager, on its first coordinated operation, the ranks
//!    exchange a token chosen by rank 0 (one `all_gather`, before any save
//!    of the manager, so in the same place on every rank). Every signal key
//!    below carries it, so that the signals of an earlier run on the same
//!    coordinator (a persistent one, such as etcd) are never read.
//! 2. Two streams of decisions: `tick` (the interval schedule, run by rank
//!    0's task and followed by the other ranks' tasks) and `call` (the
//!    job's own [`step`](CheckpointManager::step),
//!    [`create_checkpoint`](CheckpointManager::create_checkpoint) and
//!    final checkpoint). Rank 0 numbers the decisions of each stream from 1
//!    and raises the stream's signal with a window of its recent decisions:
//!    the last [`WINDOW`] saves, and the last [`WINDOW`] runs of skips (a
//!    run of consecutive skips for the same reason is one entry, so a rank
//!    that steps faster than the saves finish does not push the decisions
//!    out of the window). The `n`-th raise has sequence number `n`, so a
//!    rank waiting for decision `n` waits for sequence `n` and finds it in
//!    the window.
//! 3. A save decision carries an ordinal, counted by rank 0 across both
//!    streams; each rank runs its saves in ordinal order (`saving.rs`), so
//!    the collectives of the saves meet in the same order on every rank
//!    even when a rank receives a tick's decision after a call's.
//! 4. A skip is a skip on every rank, and no rank waits for it: the others
//!    only read the decision. A save is a save on every rank: all of them
//!    call [`DistributedCheckpoint::save`](crate::checkpoint::DistributedCheckpoint::save)
//!    with the same name, and a rank whose part fails fails it on every
//!    rank.
//! 5. A restore is agreed by a vote (a third signal, `vote`): each rank
//!    loads and verifies its states from the candidate, raises whether it
//!    could, and reads every other rank's vote; all restore, or none does.
//!
//! A rank that falls behind by more than the window (more than [`WINDOW`]
//! saves, or runs of skips), or that reads a
//! decision it did not expect (a skip where it asked for a checkpoint, a
//! vote on another checkpoint), fails with [`ManagerError::OutOfStep`]
//! rather than drifting.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::coordinator::{Coordinator, CoordinatorError};
use crate::storage::CheckpointStorage;

use super::config::OverlapPolicy;
use super::error::ManagerError;
use super::events::SkipReason;
use super::manager::CheckpointManager;
use super::names::{checkpoint_name, decision_key, validate_label};
use super::saving::PendingSave;

/// How many saves, and runs of skips, a decision signal carries (and how
/// many votes a vote signal carries).
pub(crate) const WINDOW: usize = 64;

/// Which stream a decision belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// The interval schedule.
    Tick,
    /// `step`, `create_checkpoint`, the final checkpoint.
    Call,
}

impl Stream {
    fn key(self) -> &'static str {
        match self {
            Stream::Tick => "tick",
            Stream::Call => "call",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Tick => 0,
            Stream::Call => 1,
        }
    }
}

/// Why rank 0 skipped, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum SkipCode {
    InFlight,
    QueueFull,
}

impl From<SkipCode> for SkipReason {
    fn from(code: SkipCode) -> Self {
        match code {
            SkipCode::InFlight => SkipReason::SaveInFlight,
            SkipCode::QueueFull => SkipReason::QueueFull,
        }
    }
}

/// What rank 0 decided.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Action {
    Save {
        /// Order among all saves of the manager, from 1.
        ordinal: u64,
        sequence: u64,
        name: String,
        step: Option<u64>,
        label: Option<String>,
    },
    Skip {
        step: Option<u64>,
        code: SkipCodeRepr,
    },
}

/// The skip code as it travels (kept opaque outside this file).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct SkipCodeRepr(SkipCode);

impl SkipCodeRepr {
    pub(crate) fn reason(self) -> SkipReason {
        self.0.into()
    }
}

/// One numbered message of a window.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Numbered<T> {
    index: u64,
    body: T,
}

/// Consecutive skips for the same reason, decisions `first..=last`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SkipRun {
    first: u64,
    last: u64,
    code: SkipCode,
}

/// The recent decisions of a stream, as its signal carries them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DecisionWindow {
    /// The last [`WINDOW`] save decisions, oldest first.
    saves: VecDeque<Numbered<Action>>,
    /// The last [`WINDOW`] runs of skips, oldest first.
    skips: VecDeque<SkipRun>,
}

/// Where a wanted decision stands in a window.
#[derive(Debug)]
enum Lookup {
    Found(Action),
    /// Not published yet.
    Later,
    /// Older than anything the window still holds.
    Gone,
}

impl DecisionWindow {
    /// Adds decision `index` (one more than the last one added).
    fn push(&mut self, index: u64, action: Action) {
        match action {
            Action::Save { .. } => push_window(&mut self.saves, index, action),
            Action::Skip { code, .. } => match self.skips.back_mut() {
                Some(run) if run.code == code.0 && run.last + 1 == index => run.last = index,
                _ => {
                    self.skips.push_back(SkipRun {
                        first: index,
                        last: index,
                        code: code.0,
                    });
                    while self.skips.len() > WINDOW {
                        self.skips.pop_front();
                    }
                }
            },
        }
    }

    /// Decision `want`; a skip found in a run carries `step` (the asking
    /// rank's own, since runs keep no steps).
    fn lookup(&self, want: u64, step: Option<u64>) -> Lookup {
        if let Some(save) = self.saves.iter().find(|d| d.index == want) {
            return Lookup::Found(save.body.clone());
        }
        if let Some(run) = self
            .skips
            .iter()
            .find(|run| (run.first..=run.last).contains(&want))
        {
            return Lookup::Found(Action::Skip {
                step,
                code: SkipCodeRepr(run.code),
            });
        }
        let newest = self
            .saves
            .back()
            .map(|d| d.index)
            .max(self.skips.back().map(|r| r.last))
            .unwrap_or(0);
        if want > newest {
            Lookup::Later
        } else {
            // Every decision up to the newest is a save or a skip; one
            // that is neither listed is older than the window.
            Lookup::Gone
        }
    }
}

/// A vote on a restore: the checkpoint, and why this rank cannot restore
/// it (none: it can).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Vote {
    checkpoint: String,
    refusal: Option<String>,
}

/// Rank 0's side.
#[derive(Debug, Default)]
struct Decider {
    next_ordinal: u64,
    next_sequence: Option<u64>,
    published: [u64; 2],
    windows: [DecisionWindow; 2],
}

/// The coordination state of one manager.
#[derive(Debug, Default)]
pub(crate) struct Coordination {
    token: tokio::sync::OnceCell<String>,
    decider: tokio::sync::Mutex<Decider>,
    /// How many decisions of each stream this rank has taken.
    consumed: [tokio::sync::Mutex<u64>; 2],
    votes: tokio::sync::Mutex<(u64, VecDeque<Numbered<Vote>>)>,
    /// One more than the highest sequence this manager saw committed.
    committed_next: AtomicU64,
}

impl Coordination {
    pub(crate) fn new() -> Self {
        Coordination::default()
    }
}

fn push_window<T>(window: &mut VecDeque<Numbered<T>>, index: u64, body: T) {
    window.push_back(Numbered { index, body });
    while window.len() > WINDOW {
        window.pop_front();
    }
}

impl<S: CheckpointStorage, C: Coordinator> CheckpointManager<S, C> {
    /// Counts one step of the job and, every
    /// [`every_n_steps`](super::CheckpointManagerBuilder::every_n_steps)
    /// steps, takes a checkpoint: rank 0 decides (save or skip, by the
    /// [`OverlapPolicy`]) and every rank follows. Returns the save in flight
    /// when one was started, after the states were snapshotted.
    ///
    /// A collective when a save is due: every rank calls `step` the same
    /// number of times.
    ///
    /// # Errors
    ///
    /// [`ManagerError::State`] when a state's snapshot fails (the
    /// checkpoint then fails on every rank), and
    /// [`ManagerError::Coordination`] or [`ManagerError::OutOfStep`] when the
    /// decision cannot be exchanged. A failure of the save itself is
    /// reported by the [`PendingSave`], the events and
    /// [`last_error`](Self::last_error).
    ///
    /// # Cancellation
    ///
    /// Dropping the future while a rank waits for rank 0's decision leaves
    /// that decision to its next call; once the snapshot is taken the save
    /// runs on its own task.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// use steadfast::manager::{CheckpointManager, JsonState};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).prefix("run").every_n_steps(1000).build()?;
    /// manager.register_state("progress", JsonState::new(0u64))?;
    /// for step in 1..=2000u64 {
    ///     if let Some(pending) = manager.step().await? {
    ///         assert_eq!(step % 1000, 0);
    ///         assert!(pending.name().ends_with(&format!("-step-{step}")));
    ///         // Without this wait, a save still in flight at step 2000
    ///         // would make that one skipped (the default OverlapPolicy).
    ///         pending.wait().await?;
    ///     }
    /// }
    /// let newest = manager.restore_latest().await?.expect("a checkpoint").point;
    /// assert_eq!(newest.name, "run/ckpt-0000000002-step-2000");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn step(&self) -> Result<Option<PendingSave>, ManagerError> {
        let step = self
            .inner
            .step
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            .saturating_add(1);
        let Some(n) = self.inner.config.every_n_steps else {
            return Ok(None);
        };
        if n == 0 || !step.is_multiple_of(n) {
            return Ok(None);
        }
        self.due(Stream::Call, None, false).await
    }

    /// Takes a checkpoint now, named with `label` when one is given (a key
    /// segment: letters, digits, `-`, `_`, `.`); a collective, called by
    /// every rank. It is never skipped: when a save is in flight it is
    /// queued behind it. Returns once the states are snapshotted.
    ///
    /// # Errors
    ///
    /// [`ManagerError::InvalidLabel`], and the errors of
    /// [`step`](Self::step).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// use steadfast::manager::{CheckpointManager, JsonState};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// # let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let manager = CheckpointManager::builder(ckpt).prefix("run").build()?;
    /// manager.register_state("s", JsonState::new("hello".to_string()))?;
    /// let pending = manager.create_checkpoint(Some("before-upgrade")).await?;
    /// assert_eq!(pending.name(), "run/ckpt-0000000001-before-upgrade");
    /// let info = pending.wait().await?;
    /// assert_eq!(info.sequence, Some(1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_checkpoint(
        &self,
        label: Option<&str>,
    ) -> Result<PendingSave, ManagerError> {
        if let Some(label) = label {
            validate_label(label)?;
        }
        match self.due(Stream::Call, label, true).await? {
            Some(pending) => Ok(pending),
            None => Err(ManagerError::OutOfStep {
                rank: self.inner.ckpt.rank(),
                reason: "rank 0 skipped a save this rank asked for with create_checkpoint \
                         (the ranks call the manager differently)"
                    .into(),
            }),
        }
    }

    /// One due save on `stream`: decided here (rank 0) or received, then
    /// carried out.
    pub(crate) async fn due(
        &self,
        stream: Stream,
        label: Option<&str>,
        force: bool,
    ) -> Result<Option<PendingSave>, ManagerError> {
        let action = if self.inner.ckpt.rank() == 0 {
            self.decide(stream, label, force).await?
        } else {
            self.follow(stream, self.decision_timeout()).await?
        };
        self.execute(action)
    }

    /// How long a rank waits for rank 0's decision: rank 0 may first wait
    /// for its save in flight ([`OverlapPolicy::Wait`]).
    fn decision_timeout(&self) -> Duration {
        self.inner.config.save_timeout.saturating_mul(3)
    }

    /// The token of this manager's signal keys (see the protocol).
    pub(crate) async fn token(&self) -> Result<&str, ManagerError> {
        let ckpt = &self.inner.ckpt;
        let token = self
            .inner
            .coordination
            .token
            .get_or_try_init(|| async {
                if ckpt.world_size() == 1 {
                    return Ok(String::new());
                }
                let mine = if ckpt.rank() == 0 {
                    format!("{:016x}", rand::random::<u64>()).into_bytes()
                } else {
                    Vec::new()
                };
                let all = ckpt
                    .coordinator()
                    .all_gather(mine, self.decision_timeout())
                    .await
                    .map_err(|source| ManagerError::Coordination {
                        what: "the manager's token".into(),
                        source,
                    })?;
                let first = all.into_iter().next().unwrap_or_default();
                String::from_utf8(first).map_err(|_| ManagerError::OutOfStep {
                    rank: ckpt.rank(),
                    reason: "rank 0 sent a token that is not text".into(),
                })
            })
            .await?;
        Ok(token.as_str())
    }

    async fn key(&self, what: &str) -> Result<String, ManagerError> {
        let token = self.token().await?;
        Ok(decision_key(&self.inner.config.prefix, token, what))
    }

    /// Rank 0: decides the next save of `stream` and publishes it.
    async fn decide(
        &self,
        stream: Stream,
        label: Option<&str>,
        force: bool,
    ) -> Result<Action, ManagerError> {
        let key = if self.inner.ckpt.world_size() > 1 {
            Some(self.key(stream.key()).await?)
        } else {
            None
        };
        let mut decider = self.inner.coordination.decider.lock().await;
        let step = self.step_for_save();
        let skip = if force {
            None
        } else {
            match self.inner.config.overlap {
                OverlapPolicy::Skip => {
                    (self.inner.saving.in_flight() > 0).then_some(SkipCode::InFlight)
                }
                OverlapPolicy::Queue => {
                    (self.inner.saving.in_flight() > 1).then_some(SkipCode::QueueFull)
                }
                OverlapPolicy::Wait => {
                    self.inner.saving.wait_idle().await;
                    None
                }
            }
        };
        let action = match skip {
            Some(code) => Action::Skip {
                step,
                code: SkipCodeRepr(code),
            },
            None => {
                let sequence = match decider.next_sequence {
                    Some(sequence) => sequence,
                    None => self.first_sequence().await,
                }
                .max(
                    self.inner
                        .coordination
                        .committed_next
                        .load(AtomicOrdering::SeqCst),
                );
                let ordinal = decider.next_ordinal.max(1);
                Action::Save {
                    ordinal,
                    sequence,
                    name: checkpoint_name(&self.inner.config.prefix, sequence, step, label),
                    step,
                    label: label.map(str::to_string),
                }
            }
        };
        if let Some(key) = key {
            let i = stream.index();
            let index = decider.published[i] + 1;
            let mut window = decider.windows[i].clone();
            window.push(index, action.clone());
            let payload = serde_json::to_vec(&window).map_err(|e| ManagerError::OutOfStep {
                rank: 0,
                reason: format!("encoding a decision: {e}"),
            })?;
            self.inner
                .ckpt
                .coordinator()
                .signal(&key, payload)
                .await
                .map_err(|source| ManagerError::Coordination {
                    what: format!("decision {index} of the {} stream", stream.key()),
                    source,
                })?;
            decider.published[i] = index;
            decider.windows[i] = window;
        }
        if let Action::Save {
            ordinal, sequence, ..
        } = &action
        {
            decider.next_ordinal = ordinal + 1;
            decider.next_sequence = Some(sequence + 1);
        }
        Ok(action)
    }

    /// The sequence of the first save: the highest committed in the
    /// storage, plus one.
    async fn first_sequence(&self) -> u64 {
        match self.inner.ckpt.list().await {
            Ok(infos) => infos
                .iter()
                .filter_map(|i| i.sequence)
                .max()
                .map_or(1, |s| s + 1),
            Err(e) => {
                // The save is still attempted (it will most likely fail the
                // same way, on every rank); the name then guesses 1.
                self.record_error(std::sync::Arc::new(e.into()));
                1
            }
        }
    }

    /// Rank 0, after a commit: the next name follows the recorded sequence.
    /// (Not under the decider's lock, which a decision holds while it waits
    /// for the save in flight.)
    pub(crate) fn committed_sequence(&self, sequence: Option<u64>) {
        if let Some(sequence) = sequence {
            self.inner
                .coordination
                .committed_next
                .fetch_max(sequence.saturating_add(1), AtomicOrdering::SeqCst);
        }
    }

    /// Another rank: waits (up to `timeout`) for rank 0's next decision of
    /// `stream`.
    pub(crate) async fn follow(
        &self,
        stream: Stream,
        timeout: Duration,
    ) -> Result<Action, ManagerError> {
        let key = self.key(stream.key()).await?;
        let mut consumed = self.inner.coordination.consumed[stream.index()]
            .lock()
            .await;
        let want = *consumed + 1;
        let rank = self.inner.ckpt.rank();
        let mut min_seq = want;
        loop {
            let signal = self
                .inner
                .ckpt
                .coordinator()
                .wait_for_rank(0, &key, min_seq, timeout)
                .await
                .map_err(|source| ManagerError::Coordination {
                    what: format!("decision {want} of the {} stream", stream.key()),
                    source,
                })?;
            let window: DecisionWindow =
                serde_json::from_slice(&signal.payload).map_err(|e| ManagerError::OutOfStep {
                    rank,
                    reason: format!("rank 0's decisions cannot be read: {e}"),
                })?;
            match window.lookup(want, self.step_for_save()) {
                Lookup::Found(action) => {
                    *consumed = want;
                    return Ok(action);
                }
                Lookup::Gone => {
                    return Err(ManagerError::OutOfStep {
                        rank,
                        reason: format!(
                            "decision {want} of the {} stream is gone (rank 0 is more than {WINDOW} saves or runs of skips ahead)",
                            stream.key()
                        ),
                    });
                }
                Lookup::Later => {}
            }
            min_seq = signal.seq + 1;
        }
    }

    /// Every rank: says whether it can restore `checkpoint` and hears the
    /// others; returns the other ranks that cannot, with their reasons.
    pub(crate) async fn vote(
        &self,
        checkpoint: &str,
        refusal: Option<String>,
    ) -> Result<Vec<(usize, String)>, ManagerError> {
        let ckpt = &self.inner.ckpt;
        if ckpt.world_size() == 1 {
            return Ok(Vec::new());
        }
        let rank = ckpt.rank();
        let key = self.key("vote").await?;
        let mut votes = self.inner.coordination.votes.lock().await;
        let index = votes.0 + 1;
        let mut window = votes.1.clone();
        push_window(
            &mut window,
            index,
            Vote {
                checkpoint: checkpoint.to_string(),
                refusal,
            },
        );
        let payload = serde_json::to_vec(&window).map_err(|e| ManagerError::OutOfStep {
            rank,
            reason: format!("encoding a vote: {e}"),
        })?;
        let coordination = |source: CoordinatorError| ManagerError::Coordination {
            what: format!("the vote on restoring {checkpoint:?}"),
            source,
        };
        ckpt.coordinator()
            .signal(&key, payload)
            .await
            .map_err(coordination)?;
        votes.0 = index;
        votes.1 = window;
        let timeout = self.decision_timeout();
        let mut refusals = Vec::new();
        for other in (0..ckpt.world_size()).filter(|r| *r != rank) {
            let signal = ckpt
                .coordinator()
                .wait_for_rank(other, &key, index, timeout)
                .await
                .map_err(coordination)?;
            let window: Vec<Numbered<Vote>> =
                serde_json::from_slice(&signal.payload).map_err(|e| ManagerError::OutOfStep {
                    rank,
                    reason: format!("rank {other}'s vote cannot be read: {e}"),
                })?;
            let Some(vote) = window.iter().find(|v| v.index == index) else {
                return Err(ManagerError::OutOfStep {
                    rank,
                    reason: format!("rank {other} has no vote {index}"),
                });
            };
            if vote.body.checkpoint != checkpoint {
                return Err(ManagerError::OutOfStep {
                    rank,
                    reason: format!(
                        "rank {other} voted on {:?} where this rank voted on {checkpoint:?}",
                        vote.body.checkpoint
                    ),
                });
            }
            if let Some(refusal) = &vote.body.refusal {
                refusals.push((other, refusal.clone()));
            }
        }
        Ok(refusals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_keeps_the_newest_decisions() {
        let mut window = VecDeque::new();
        for index in 1..=(WINDOW as u64 + 5) {
            push_window(&mut window, index, index * 10);
        }
        assert_eq!(window.len(), WINDOW);
        assert_eq!(window.front().map(|n| n.index), Some(6));
        assert_eq!(
            window.back().map(|n| n.body),
            Some((WINDOW as u64 + 5) * 10)
        );
    }

    fn skip(step: u64, code: SkipCode) -> Action {
        Action::Skip {
            step: Some(step),
            code: SkipCodeRepr(code),
        }
    }

    fn save(ordinal: u64) -> Action {
        Action::Save {
            ordinal,
            sequence: ordinal,
            name: format!("run/ckpt-{ordinal:010}"),
            step: None,
            label: None,
        }
    }

    #[test]
    fn runs_of_skips_keep_a_fast_rank_from_outrunning_the_window() {
        let mut window = DecisionWindow::default();
        let mut index = 0;
        // Far more decisions than the window holds: a save, then a long run
        // of skips while it is in flight, over and over.
        for ordinal in 1..=10 {
            index += 1;
            window.push(index, save(ordinal));
            for _ in 0..(3 * WINDOW) {
                index += 1;
                window.push(index, skip(index, SkipCode::InFlight));
            }
        }
        assert_eq!(window.skips.len(), 10);
        // The first decision of all is still there, as are the skips.
        assert!(matches!(
            window.lookup(1, None),
            Lookup::Found(Action::Save { ordinal: 1, .. })
        ));
        assert!(matches!(
            window.lookup(2, Some(7)),
            Lookup::Found(Action::Skip { step: Some(7), .. })
        ));
        assert!(matches!(window.lookup(index + 1, None), Lookup::Later));
        // A change of reason starts a new run.
        index += 1;
        window.push(index, skip(index, SkipCode::QueueFull));
        assert!(matches!(
            window.lookup(index, None),
            Lookup::Found(Action::Skip { code, .. }) if code.reason() == SkipReason::QueueFull
        ));
        // Past WINDOW saves, the oldest are gone, and so are the skips
        // before them once their runs drop out.
        for ordinal in 11..=(WINDOW as u64 + 80) {
            index += 1;
            window.push(index, save(ordinal));
            index += 1;
            window.push(index, skip(index, SkipCode::InFlight));
        }
        assert!(matches!(window.lookup(1, None), Lookup::Gone));
        assert!(matches!(window.lookup(2, None), Lookup::Gone));
        assert!(matches!(window.lookup(index, None), Lookup::Found(_)));
    }

    #[test]
    fn decisions_survive_their_encoding() {
        let mut window = VecDeque::new();
        push_window(
            &mut window,
            1,
            Action::Skip {
                step: Some(4),
                code: SkipCodeRepr(SkipCode::QueueFull),
            },
        );
        push_window(
            &mut window,
            2,
            Action::Save {
                ordinal: 3,
                sequence: 9,
                name: "run/ckpt-0000000009-x".into(),
                step: None,
                label: Some("x".into()),
            },
        );
        let bytes = serde_json::to_vec(&window).unwrap();
        let back: Vec<Numbered<Action>> = serde_json::from_slice(&bytes).unwrap();
        let mut decisions = DecisionWindow::default();
        decisions.push(1, back[0].body.clone());
        decisions.push(2, back[1].body.clone());
        let bytes = serde_json::to_vec(&decisions).unwrap();
        let decisions: DecisionWindow = serde_json::from_slice(&bytes).unwrap();
        assert!(matches!(
            decisions.lookup(1, Some(4)),
            Lookup::Found(Action::Skip { step: Some(4), code }) if code.reason() == SkipReason::QueueFull
        ));
        assert!(matches!(
            decisions.lookup(2, None),
            Lookup::Found(Action::Save { ordinal: 3, .. })
        ));
        assert!(matches!(
            back[0].body,
            Action::Skip { step: Some(4), code } if code.reason() == SkipReason::QueueFull
        ));
        assert!(
            matches!(&back[1].body, Action::Save { ordinal: 3, sequence: 9, name, .. } if name.ends_with("-x"))
        );
    }
}
