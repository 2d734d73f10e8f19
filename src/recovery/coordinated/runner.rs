//! [`RecoveryCoordinator`]: the task every member of a job runs, which
//! notices failed ranks, elects the leader that plans, adopts the agreed
//! plan, runs the user's handlers and confirms the recovery with the other
//! ranks. The protocol is written down on [`RecoveryCoordinator`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::time::Instant;
use tracing::Instrument;

use crate::coordinator::{
    CasOutcome, CoordinatorError, EpochOutcome, EpochRecord, Leadership, Membership,
    MembershipEvent, Role,
};

use super::builder::{RecoveryCoordinatorBuilder, RecoveryHandle};
use super::config::RecoveryCoordinatorConfig;
use super::error::RecoveryError;
use super::events::{RecoveryContext, RecoveryEvent};
use super::plan::{make_plan, FailedRank, FailureCause, PlanInput, RecoveryPlan, PREDICTED_PREFIX};
use super::source::CheckpointSource;
use super::trace;
use super::TARGET;

/// An error a recovery handler returns.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

pub(super) type Handler =
    Arc<dyn Fn(RecoveryContext) -> BoxFuture<'static, Result<(), HandlerError>> + Send + Sync>;
pub(super) type LeaderHook = Arc<dyn Fn(Option<Leadership>, usize) + Send + Sync>;

pub(super) struct Registered {
    pub(super) kind: Option<FailureCause>,
    pub(super) handler: Handler,
}

pub(super) struct Inner<M> {
    pub(super) membership: M,
    pub(super) config: RecoveryCoordinatorConfig,
    pub(super) handlers: Vec<Registered>,
    pub(super) source: Option<Arc<dyn CheckpointSource>>,
    pub(super) on_leader: Option<LeaderHook>,
    pub(super) events: broadcast::Sender<RecoveryEvent>,
    /// Recoveries and detected failures, for the metrics.
    #[cfg(feature = "metrics")]
    pub(super) metrics: crate::metrics::RecoveryMetrics,
}

/// Coordinated recovery: on a failure, the surviving members agree on one
/// plan, through the coordinator, and all act on it.
///
/// Every member of the job, ranks and standbys, builds one on its
/// [`Membership`] handle and [`start`](Self::start)s it.
///
/// Built on the [`Membership`](crate::coordinator::Membership) companion of
/// the coordinator, so that it runs in one process on
/// [`InMemoryCoordinator`](crate::coordinator::InMemoryCoordinator) and
/// across machines on `EtcdCoordinator`. The coordinator's store (etcd's
/// Raft) is the only source of truth; nothing here votes or keeps a log of
/// its own.
///
/// # The protocol
///
/// Every member of the job (each rank, each standby) runs a
/// [`RecoveryCoordinator`]:
///
/// 1. **Detect.** A rank of the member's epoch fails: its member leaves
///    without shutting down (for etcd, its lease expired) or someone
///    declares it failed (the health monitor, an operator, a failure
///    predictor through [`RecoveryCoordinator::migrate`]). The same event
///    makes every collective waiting for that rank fail at once, so a save
///    in progress fails cleanly on every rank.
/// 2. **Answer.** Each surviving rank writes an answer record for the
///    epoch; the coordinator orders the answers (their versions), so the
///    first one names the fastest node.
/// 3. **Elect.** Every surviving rank campaigns; the current leader keeps
///    its leadership if it survived, otherwise exactly one survivor wins a
///    new term.
/// 4. **Plan.** The leader waits up to `answer_window` for the survivors'
///    answers and plans only with a quorum (`quorum_size`, itself
///    included): so the side of a partition without a quorum stops, says
///    so ([`RecoveryEvent::NoQuorum`]) and commits nothing. The plan names
///    the checkpoint to restore (the newest one that verifies), the new
///    membership and world size, and each rank's part (a standby taking a
///    dead rank's number; shards redistributed; everything to the fastest
///    node), following the configured [`RecoveryStrategyKind`](super::RecoveryStrategyKind).
/// 5. **Agree.** The leader proposes the plan as the job's next epoch, with
///    a compare-and-set on the current epoch: of two leaders of the same
///    epoch (a leadership that changed hands meanwhile) at most one plan
///    wins. Each plan's epoch is one more than the last.
/// 6. **Act.** Every member reads the same epoch record. A member the plan
///    includes enters the epoch (its rank and the world size become the
///    plan's), points its commit fence at the plan's leader, and runs the
///    registered handlers; a member the plan leaves out is fenced
///    ([`RecoveryEvent::Fenced`]). Plans that cannot be read, of an epoch
///    not newer than the member's, or proposed by a member that held no
///    rank are ignored and logged ([`RecoveryEvent::PlanIgnored`]).
/// 7. **Confirm.** The ranks of the new epoch exchange their outcomes in
///    that epoch's first collective. If every handler succeeded the
///    recovery is done ([`RecoveryEvent::Recovered`]). Otherwise (a handler
///    failed, or another rank failed during recovery) the next attempt
///    follows from step 2, up to `max_recovery_attempts`, within
///    `recovery_timeout`.
///
/// "Every survivor acts on the same plan or none does" holds in this
/// sense: the plan is committed (step 5) before anyone acts on it, every
/// member reads that one record, and a plan is only *done* once every rank
/// of its epoch confirmed it; one that is not done is superseded by the
/// next epoch, and a member still acting on it is fenced from every
/// collective and every commit of the newer epoch.
///
/// A member that was cut off (a partition, a pause) and comes back reads
/// the current epoch when it starts its task and enters it if it holds a
/// rank there; otherwise it is fenced.
///
/// # Examples
///
/// Three ranks and a standby in one process; rank 2 dies, the standby takes
/// its place:
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::{Coordinator, InMemoryCoordinator, Membership, Role};
/// use steadfast::recovery::{RecoveryCoordinator, RecoveryEvent};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ranks = InMemoryCoordinator::new(3);
/// let standby = ranks[0].add_standby("spare")?;
/// let mut handles = Vec::new();
/// let mut events = None;
/// for member in ranks.iter().cloned().chain([standby.clone()]) {
///     let recovery = RecoveryCoordinator::builder(member)
///         .on_failure(|ctx| async move {
///             // Restore ctx.plan.checkpoint's shards ctx.assignment.shards here.
///             Ok(())
///         })
///         .build();
///     events.get_or_insert_with(|| recovery.subscribe());
///     handles.push(recovery.start());
/// }
/// ranks[0].faults().kill(2);
/// let mut events = events.unwrap();
/// loop {
///     if let RecoveryEvent::Recovered { plan, .. } = events.recv().await? {
///         assert_eq!(plan.assignments[2].member, "spare");
///         break;
///     }
/// }
/// assert_eq!(standby.role(), Role::Rank(2));
/// for handle in handles {
///     handle.stop().await;
/// }
/// # Ok(())
/// # }
/// ```
pub struct RecoveryCoordinator<M> {
    pub(super) inner: Arc<Inner<M>>,
}

impl<M> Clone for RecoveryCoordinator<M> {
    fn clone(&self) -> Self {
        RecoveryCoordinator {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<M: Membership> fmt::Debug for RecoveryCoordinator<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCoordinator")
            .field("member", &self.inner.membership.member_id())
            .field("config", &self.inner.config)
            .field("handlers", &self.inner.handlers.len())
            .finish_non_exhaustive()
    }
}

/// What each member tells the others after running the handlers.
#[derive(Debug, Serialize, Deserialize)]
enum Outcome {
    Done,
    Failed(String),
}

/// The record key under which a surviving rank answers a recovery call.
fn answer_prefix(epoch: u64) -> String {
    format!("recovery/{epoch}/answers/")
}

impl<M: Membership> RecoveryCoordinator<M> {
    /// A builder for the member of `membership`.
    ///
    /// # Examples
    ///
    /// See [`RecoveryCoordinatorBuilder`].
    pub fn builder(membership: M) -> RecoveryCoordinatorBuilder<M> {
        RecoveryCoordinatorBuilder::new(membership)
    }

    /// Receives what the coordinator does from now on.
    ///
    /// # Examples
    ///
    /// See [`RecoveryCoordinator`].
    pub fn subscribe(&self) -> broadcast::Receiver<RecoveryEvent> {
        self.inner.events.subscribe()
    }

    /// The membership handle.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::{InMemoryCoordinator, Membership};
    /// use steadfast::recovery::RecoveryCoordinator;
    /// let recovery = RecoveryCoordinator::builder(InMemoryCoordinator::new(1).remove(0)).build();
    /// assert_eq!(recovery.membership().member_id(), "rank-0");
    /// ```
    pub fn membership(&self) -> &M {
        &self.inner.membership
    }

    /// Elects the job's first leader, before any failure: the lowest rank
    /// of the current epoch campaigns, the others wait for its leadership.
    /// Every rank then points its fence at it. Call it on every rank at
    /// start-up, after [`start`](Self::start) or before.
    ///
    /// # Errors
    ///
    /// [`RecoveryError::Coordinator`] with a timeout when no leader is
    /// elected within `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::recovery::RecoveryCoordinator;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::recovery::RecoveryError> {
    /// let ranks = InMemoryCoordinator::new(2);
    /// let first = RecoveryCoordinator::builder(ranks[0].clone()).build();
    /// let second = RecoveryCoordinator::builder(ranks[1].clone()).build();
    /// let (a, b) = tokio::join!(
    ///     first.establish_leader(Duration::from_secs(5)),
    ///     second.establish_leader(Duration::from_secs(5)),
    /// );
    /// assert_eq!(a?.member, "rank-0");
    /// assert_eq!(b?.member, "rank-0");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn establish_leader(&self, timeout: Duration) -> Result<Leadership, RecoveryError> {
        let membership = &self.inner.membership;
        let deadline = Instant::now() + timeout;
        let current = membership.current_epoch().await?;
        let leadership = if membership.role() == Role::Rank(0) {
            membership.campaign(timeout).await?
        } else {
            let mut watch = membership.watch_membership();
            loop {
                if let Some(leader) = membership.leader().await? {
                    break leader;
                }
                // Read again after each event of the watch, not only after
                // a leader change: a watch may take its first snapshot
                // after the read above (etcd's does, on a task of its own),
                // and a leader elected in between is then part of that
                // snapshot (its `Joined` events), never reported as a
                // change.
                let next = tokio::time::timeout_at(deadline, watch.next()).await;
                if !matches!(next, Ok(Some(_))) {
                    if let Some(leader) = membership.leader().await? {
                        break leader;
                    }
                    return Err(RecoveryError::Coordinator(CoordinatorError::Timeout {
                        operation: "establish_leader",
                        after: timeout,
                        missing: vec![0],
                    }));
                }
            }
        };
        self.point_fence_at(&current, Some(&leadership));
        Ok(leadership)
    }

    /// Hands `member` over for preemptive migration (a failure predictor's
    /// hook): its rank is declared failed with a reason starting with
    /// [`PREDICTED_PREFIX`], and the job recovers as from a
    /// [`FailureCause::Predicted`] failure.
    ///
    /// # Errors
    ///
    /// [`RecoveryError::InvalidPlan`] when `member` holds no rank in the
    /// current epoch; coordinator errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::recovery::RecoveryCoordinator;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let ranks = InMemoryCoordinator::new(2);
    /// let recovery = RecoveryCoordinator::builder(ranks[0].clone()).build();
    /// assert!(recovery.migrate("nobody", 0.9).await.is_err());
    /// assert!(recovery.migrate("rank-1", 0.9).await.is_ok());
    /// # }
    /// ```
    pub async fn migrate(&self, member: &str, probability: f64) -> Result<(), RecoveryError> {
        let membership = &self.inner.membership;
        let current = membership.current_epoch().await?;
        let rank = current
            .rank_of(member)
            .ok_or_else(|| RecoveryError::InvalidPlan {
                reason: format!("member {member:?} holds no rank in epoch {}", current.epoch),
            })?;
        membership
            .declare_failed(
                rank,
                &format!("{PREDICTED_PREFIX} failure predicted with probability {probability:.3}"),
            )
            .await?;
        Ok(())
    }

    /// Starts the recovery task of this member.
    ///
    /// # Examples
    ///
    /// See [`RecoveryCoordinator`].
    pub fn start(&self) -> RecoveryHandle {
        let this = self.clone();
        RecoveryHandle::new(tokio::spawn(async move { this.run().await }))
    }

    fn emit(&self, event: RecoveryEvent) {
        #[cfg(feature = "metrics")]
        match &event {
            RecoveryEvent::Recovered { took, .. } => self.inner.metrics.recovered(*took),
            RecoveryEvent::NotCarriedOut { .. } => self.inner.metrics.not_recovered(),
            RecoveryEvent::FailureDetected { .. } => self.inner.metrics.detected(),
            _ => {}
        }
        // No subscriber is not an error.
        let _ = self.inner.events.send(event);
    }

    fn point_fence_at(&self, epoch: &EpochRecord, leadership: Option<&Leadership>) {
        if let Some(hook) = &self.inner.on_leader {
            match leadership.and_then(|l| epoch.rank_of(&l.member)) {
                Some(rank) => hook(leadership.cloned(), rank),
                None => hook(None, 0),
            }
        }
    }

    async fn run(self) {
        let membership = &self.inner.membership;
        let mut watch = membership.watch_membership();
        let mut current = match membership.current_epoch().await {
            Ok(current) => current,
            Err(e) => {
                self.emit(RecoveryEvent::GaveUp {
                    reason: format!("reading the current epoch failed: {e}"),
                });
                return;
            }
        };
        if current.epoch > membership.epoch() {
            // This member was away (partitioned, paused): rejoin.
            let record = current.clone();
            if let Err(e) = self.adopt(&mut current, record, None).await {
                tracing::warn!(target: TARGET, error = %e, "rejoining the current epoch failed");
            }
        }
        let mut pending: BTreeMap<usize, FailedRank> = BTreeMap::new();
        let mut attempt: u32 = 1;
        // A plan was not carried out though no rank failed: plan again.
        let mut replan = false;
        let mut incident: Option<Instant> = None;
        // A rank that died before this task watched is not reported by the
        // watch: compare the epoch with the live members once.
        if membership.role().rank().is_some() {
            match membership.live_members().await {
                Ok(live) => {
                    for (rank, member) in current.ranks.iter().enumerate() {
                        if !live.iter().any(|m| &m.member == member) {
                            let failed = FailedRank {
                                rank,
                                member: member.clone(),
                                kind: FailureCause::Crashed,
                                reason: "not live when recovery started".into(),
                            };
                            self.detected(&current, &failed);
                            pending.insert(rank, failed);
                        }
                    }
                    if !pending.is_empty() {
                        incident = Some(Instant::now());
                        self.answer(&current).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(target: TARGET, error = %e, "listing the live members failed")
                }
            }
        }
        loop {
            let leading = async {
                if (pending.is_empty() && !replan) || membership.role().rank().is_none() {
                    return std::future::pending().await;
                }
                let span = trace::plan_span(current.epoch, attempt, pending.values());
                let led = self
                    .lead(&current, &pending, attempt)
                    .instrument(span.clone())
                    .await;
                if let Err(e) = &led {
                    span.record("outcome", trace::error_kind(e));
                }
                led
            };
            tokio::select! {
                event = watch.next() => {
                    let Some(event) = event else { return };
                    match event {
                        MembershipEvent::EpochChanged(record) => {
                            let started = incident.unwrap_or_else(Instant::now);
                            match self.adopt(&mut current, record, Some(started)).await {
                                Ok(Adopted::Recovered) => {
                                    pending.clear();
                                    replan = false;
                                    attempt = 1;
                                    incident = None;
                                }
                                Ok(Adopted::Retry { failed, next_attempt }) => {
                                    replan = failed.is_empty();
                                    pending = failed.into_iter().map(|f| (f.rank, f)).collect();
                                    attempt = next_attempt;
                                    if attempt > self.inner.config.max_recovery_attempts() {
                                        self.emit(RecoveryEvent::GaveUp {
                                            reason: RecoveryError::AttemptsExhausted {
                                                attempts: attempt - 1,
                                                last: "the plan was not carried out everywhere".into(),
                                            }.to_string(),
                                        });
                                        return;
                                    }
                                    self.answer(&current).await;
                                }
                                Ok(Adopted::Nothing) => {}
                                Err(e) => tracing::warn!(target: TARGET, error = %e, "adopting an epoch failed"),
                            }
                        }
                        MembershipEvent::LeaderChanged(leadership) => {
                            self.point_fence_at(&current, leadership.as_ref());
                        }
                        other => {
                            if let Some(failed) = failure_of(&other, &current) {
                                if pending.contains_key(&failed.rank) {
                                    continue;
                                }
                                self.detected(&current, &failed);
                                incident.get_or_insert_with(Instant::now);
                                let first = pending.is_empty();
                                pending.insert(failed.rank, failed);
                                if first && membership.role().rank().is_some() {
                                    self.answer(&current).await;
                                }
                            }
                        }
                    }
                }
                led = leading => {
                    match led {
                        Ok(()) => {}
                        Err(RecoveryError::NoQuorum { .. }) => {
                            // Wait for the membership to change, or try
                            // again after a window.
                            tokio::time::sleep(self.inner.config.answer_window()).await;
                        }
                        Err(e) => {
                            tracing::warn!(target: TARGET, error = %e, "leading the recovery failed");
                            tokio::time::sleep(self.inner.config.answer_window()).await;
                        }
                    }
                    if incident.is_some_and(|t| t.elapsed() > self.inner.config.recovery_timeout()) {
                        self.emit(RecoveryEvent::GaveUp {
                            reason: RecoveryError::TimedOut { after: self.inner.config.recovery_timeout() }.to_string(),
                        });
                        return;
                    }
                }
            }
        }
    }

    /// Tells the leader this rank is alive and ready to recover, in the
    /// order of answers (the first is the fastest node).
    async fn answer(&self, current: &EpochRecord) {
        let membership = &self.inner.membership;
        let key = format!("{}{}", answer_prefix(current.epoch), membership.member_id());
        match membership.compare_and_set(&key, 0, Vec::new()).await {
            Ok(CasOutcome::Written { .. } | CasOutcome::Conflict { .. }) => {}
            Err(e) => {
                tracing::warn!(target: TARGET, error = %e, "answering the recovery call failed")
            }
        }
    }

    /// Campaigns; once leader, gathers the answers, plans and proposes.
    async fn lead(
        &self,
        current: &EpochRecord,
        pending: &BTreeMap<usize, FailedRank>,
        attempt: u32,
    ) -> Result<(), RecoveryError> {
        let membership = &self.inner.membership;
        let config = &self.inner.config;
        // Answer again on every attempt: an answer that failed (this member
        // was cut off) is written once it can be.
        self.answer(current).await;
        let leadership = membership.campaign(config.recovery_timeout()).await?;
        // The answers, in the order they were written.
        let expected = current.world_size().saturating_sub(pending.len());
        let until = Instant::now() + config.answer_window();
        let answered = loop {
            let mut answers = membership
                .list_records(&answer_prefix(current.epoch))
                .await?;
            answers.sort_by_key(|(_, record)| record.version);
            let prefix = answer_prefix(current.epoch);
            let answered: Vec<String> = answers
                .into_iter()
                .filter_map(|(key, _)| key.strip_prefix(&prefix).map(str::to_string))
                .filter(|m| {
                    current
                        .rank_of(m)
                        .is_some_and(|r| !pending.contains_key(&r))
                })
                .collect();
            if answered.len() >= expected || Instant::now() >= until {
                break answered;
            }
            tokio::time::sleep(config.answer_window() / 8).await;
        };
        if answered.len() < config.quorum_size() {
            self.emit(RecoveryEvent::NoQuorum {
                epoch: current.epoch,
                answered: answered.len(),
                quorum: config.quorum_size(),
            });
            tracing::warn!(target: TARGET, epoch = current.epoch, answered = answered.len(), quorum = config.quorum_size(), "no quorum: not recovering");
            return Err(RecoveryError::NoQuorum {
                epoch: current.epoch,
                answered: answered.len(),
                quorum: config.quorum_size(),
            });
        }
        let mut standbys: Vec<String> = membership
            .live_members()
            .await?
            .into_iter()
            .filter(|m| m.role == Role::Standby && current.rank_of(&m.member).is_none())
            .map(|m| m.member)
            .collect();
        standbys.sort();
        let checkpoint = match &self.inner.source {
            Some(source) => match source.latest_verified().await {
                Ok(name) => name,
                Err(e) => {
                    return Err(RecoveryError::InvalidPlan {
                        reason: format!("finding a checkpoint to restore failed: {e}"),
                    })
                }
            },
            None => None,
        };
        let failed: Vec<FailedRank> = pending.values().cloned().collect();
        let plan = make_plan(PlanInput {
            current,
            failed: &failed,
            standbys: &standbys,
            answered: &answered,
            strategy: config.recovery_strategy(),
            leader: &leadership,
            checkpoint,
            attempt,
        })?;
        let record = plan.to_epoch_record()?;
        match membership.propose_epoch(current.epoch, &record).await? {
            EpochOutcome::Accepted => {
                tracing::Span::current().record("outcome", "proposed");
                tracing::info!(target: TARGET, epoch = plan.epoch, world_size = plan.world_size(), checkpoint = ?plan.checkpoint, "recovery plan accepted");
                self.emit(RecoveryEvent::PlanProposed(Arc::new(plan)));
            }
            EpochOutcome::Superseded { current } => {
                tracing::Span::current().record("outcome", "superseded");
                tracing::info!(target: TARGET, epoch = current.epoch, "another plan won");
            }
        }
        // Every member, this one too, adopts the epoch from its watch.
        std::future::pending::<()>().await;
        Ok(())
    }

    /// Adopts `record` if it is newer than this member's epoch: enters it,
    /// runs the handlers, confirms with the other ranks.
    async fn adopt(
        &self,
        current: &mut EpochRecord,
        record: EpochRecord,
        started: Option<Instant>,
    ) -> Result<Adopted, RecoveryError> {
        let membership = &self.inner.membership;
        if record.epoch <= membership.epoch() {
            return Ok(Adopted::Nothing);
        }
        let plan = match RecoveryPlan::from_epoch_record(&record) {
            Ok(plan) => plan,
            Err(e) => {
                self.ignore(record.epoch, e.to_string());
                return Ok(Adopted::Nothing);
            }
        };
        // The leader of a plan is a survivor: it holds a rank in the epoch
        // it proposes, and held one in the epoch before (when this member
        // knows that one).
        if let Some(plan) = &plan {
            let unknown = if record.rank_of(&plan.leader.member).is_none() {
                Some(record.epoch)
            } else if plan.previous_epoch == current.epoch
                && current.rank_of(&plan.leader.member).is_none()
            {
                Some(current.epoch)
            } else {
                None
            };
            if let Some(epoch) = unknown {
                self.ignore(
                    record.epoch,
                    format!(
                        "its plan was proposed by {:?}, which holds no rank in epoch {epoch}",
                        plan.leader.member
                    ),
                );
                return Ok(Adopted::Nothing);
            }
        }
        let was_rank = membership.role().rank().is_some();
        let span = plan.as_ref().map_or_else(tracing::Span::none, |plan| {
            trace::recovery_span(plan, membership.member_id())
        });
        match membership
            .enter_epoch(&record)
            .instrument(span.clone())
            .await
        {
            Ok(()) => {}
            Err(CoordinatorError::NotAMember { .. }) => {
                span.record("outcome", "not_a_member");
                *current = record;
                self.point_fence_at(current, plan.as_ref().map(|p| &p.leader));
                if was_rank {
                    tracing::warn!(target: TARGET, epoch = current.epoch, "the new epoch gives this member no rank");
                    self.emit(RecoveryEvent::Fenced {
                        epoch: current.epoch,
                    });
                }
                return Ok(Adopted::Nothing);
            }
            // Superseded meanwhile: the next epoch arrives through the watch.
            Err(CoordinatorError::Fenced { .. }) => {
                span.record("outcome", "superseded");
                return Ok(Adopted::Nothing);
            }
            Err(e) => {
                span.record("outcome", "coordinator");
                return Err(e.into());
            }
        }
        *current = record;
        let Some(plan) = plan else {
            self.point_fence_at(current, None);
            return Ok(Adopted::Nothing);
        };
        self.point_fence_at(current, Some(&plan.leader));
        let plan = Arc::new(plan);
        self.emit(RecoveryEvent::PlanAdopted(Arc::clone(&plan)));
        let acting = trace::act_span(&span);
        let outcome = self.run_handlers(&plan).instrument(acting.clone()).await;
        acting.record(
            "outcome",
            match outcome {
                Outcome::Done => "ok",
                Outcome::Failed(_) => "handler_failed",
            },
        );
        drop(acting);
        let bytes = serde_json::to_vec(&outcome).unwrap_or_default();
        match membership
            .all_gather(bytes, self.inner.config.recovery_timeout())
            .instrument(trace::confirm_span(&span))
            .await
        {
            Ok(all) => {
                let failures: Vec<String> = all
                    .iter()
                    .enumerate()
                    .filter_map(|(rank, bytes)| match serde_json::from_slice(bytes) {
                        Ok(Outcome::Done) => None,
                        Ok(Outcome::Failed(reason)) => Some(format!("rank {rank}: {reason}")),
                        Err(_) => Some(format!("rank {rank}: an unreadable outcome")),
                    })
                    .collect();
                if failures.is_empty() {
                    span.record("outcome", "recovered");
                    let took = started.map_or(Duration::ZERO, |t| t.elapsed());
                    tracing::info!(target: TARGET, epoch = plan.epoch, ?took, "recovered");
                    self.emit(RecoveryEvent::Recovered { plan, took });
                    Ok(Adopted::Recovered)
                } else {
                    span.record("outcome", "not_carried_out");
                    let reason = failures.join("; ");
                    self.emit(RecoveryEvent::NotCarriedOut {
                        epoch: plan.epoch,
                        reason,
                    });
                    // Its ranks are live: the next plan runs again with
                    // the same membership.
                    Ok(Adopted::Retry {
                        failed: Vec::new(),
                        next_attempt: plan.attempt.saturating_add(1),
                    })
                }
            }
            Err(CoordinatorError::RanksFailed { ranks, reason, .. }) => {
                span.record("outcome", "ranks_failed");
                // A failure during recovery: recover again, in this epoch.
                self.emit(RecoveryEvent::NotCarriedOut {
                    epoch: plan.epoch,
                    reason: format!("ranks {ranks:?} failed during recovery: {reason}"),
                });
                let failed = ranks
                    .iter()
                    .copied()
                    .filter_map(|rank| {
                        current.ranks.get(rank).map(|member| FailedRank {
                            rank,
                            member: member.clone(),
                            kind: FailureCause::Crashed,
                            reason: reason.to_string(),
                        })
                    })
                    .collect();
                Ok(Adopted::Retry {
                    failed,
                    next_attempt: plan.attempt.saturating_add(1),
                })
            }
            Err(CoordinatorError::Fenced { .. }) => {
                span.record("outcome", "fenced");
                Ok(Adopted::Nothing)
            }
            Err(e) => {
                span.record("outcome", "coordinator");
                self.emit(RecoveryEvent::NotCarriedOut {
                    epoch: plan.epoch,
                    reason: e.to_string(),
                });
                Err(e.into())
            }
        }
    }

    fn detected(&self, current: &EpochRecord, failed: &FailedRank) {
        tracing::warn!(target: TARGET, epoch = current.epoch, rank = failed.rank, member = %failed.member, reason = %failed.reason, "a rank failed");
        self.emit(RecoveryEvent::FailureDetected {
            epoch: current.epoch,
            rank: failed.rank,
            member: failed.member.clone(),
            kind: failed.kind,
            reason: failed.reason.clone(),
        });
    }

    fn ignore(&self, epoch: u64, reason: String) {
        tracing::warn!(target: TARGET, epoch, reason = %reason, "ignoring an epoch's plan");
        self.emit(RecoveryEvent::PlanIgnored { epoch, reason });
    }

    async fn run_handlers(&self, plan: &Arc<RecoveryPlan>) -> Outcome {
        let member = self.inner.membership.member_id().to_string();
        let Some(assignment) = plan.assignment_of(&member).cloned() else {
            return Outcome::Done;
        };
        for registered in &self.inner.handlers {
            let applies = registered
                .kind
                .is_none_or(|kind| plan.failed.iter().any(|f| f.kind == kind));
            if !applies {
                continue;
            }
            let ctx = RecoveryContext {
                plan: Arc::clone(plan),
                assignment: assignment.clone(),
                member: member.clone(),
            };
            if let Err(e) = (registered.handler)(ctx).await {
                let error = RecoveryError::HandlerFailed {
                    member: member.clone(),
                    epoch: plan.epoch,
                    reason: e.to_string(),
                };
                tracing::error!(target: TARGET, error = %error, "a recovery handler failed");
                return Outcome::Failed(error.to_string());
            }
        }
        Outcome::Done
    }
}

/// What adopting an epoch came to.
enum Adopted {
    /// Nothing to do (an old epoch, an ignored plan, not a member).
    Nothing,
    /// Every rank carried the plan out.
    Recovered,
    /// The plan was not carried out: recover these failures again.
    Retry {
        failed: Vec<FailedRank>,
        next_attempt: u32,
    },
}

/// The failed rank an event reports, if it is a rank of `current` held by
/// the member the event names.
fn failure_of(event: &MembershipEvent, current: &EpochRecord) -> Option<FailedRank> {
    match event {
        MembershipEvent::Left {
            member,
            role: Role::Rank(rank),
            graceful: false,
        } if current.ranks.get(*rank) == Some(member) => Some(FailedRank {
            rank: *rank,
            member: member.clone(),
            kind: FailureCause::Crashed,
            reason: "left without shutting down".into(),
        }),
        MembershipEvent::RankFailed {
            epoch,
            rank,
            reason,
        } if *epoch == current.epoch && *rank < current.world_size() => Some(FailedRank {
            rank: *rank,
            member: current.ranks[*rank].clone(),
            kind: FailureCause::of_declaration(reason),
            reason: reason.clone(),
        }),
        _ => None,
    }
}
