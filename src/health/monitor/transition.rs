//! Status transitions of the [`HealthMonitor`]: the status a member's
//! silence calls for ([`HealthMonitor::evaluate`]), the moves between
//! statuses made under the one `transition` lock (a sweep's
//! [`settle`](HealthMonitor::settle), a heartbeat's
//! [`recover`](HealthMonitor::recover), `mark_failed`), and what each move
//! emits: a [`StatusChange`] to subscribers, a [`Failure`] to failure
//! streams, and the bookkeeping of lost members from which a suspected
//! partition is found ([`Transitions`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use tokio::sync::mpsc;

use super::super::failure::{Failure, FailureEvidence};
use super::super::rank_table::Hot;
use super::super::registry::{Key, Slot};
use super::super::{HealthStatus, MemberId, MemberRef, StatusChange, SweepSummary};
use super::HealthMonitor;

/// What the `transition` lock guards besides the order of status changes:
/// the members that are not Healthy and since when, whether a suspected
/// partition is open, and the failure streams.
#[derive(Debug, Default)]
pub(super) struct Transitions {
    /// Every member that is not Healthy, with the time (nanoseconds since
    /// the base instant) at which it was found to leave Healthy.
    lost: HashMap<MemberId, u64>,
    /// Whether a member was lost since the partition rule was last checked.
    new_losses: bool,
    /// Whether a suspected partition was reported and has not closed yet.
    partition_open: bool,
    /// The senders of the live [`FailureStream`](super::super::FailureStream)s.
    pub(super) failures: Vec<mpsc::UnboundedSender<Failure>>,
}

impl Transitions {
    /// Sends `failure` to every live failure stream, forgetting the closed
    /// ones.
    fn send(&mut self, failure: &Failure) {
        self.failures.retain(|tx| tx.send(failure.clone()).is_ok());
    }

    /// Forgets a member that is Healthy again or was removed.
    pub(super) fn forget(&mut self, member: MemberRef<'_>) {
        self.lost.remove(&member as &dyn Key);
    }
}

/// One move of a member between statuses: from `old` to `new`, found at
/// `now` (nanoseconds since the base instant) after the silence since its
/// heartbeat at `last`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Move<'a> {
    pub(super) member: MemberRef<'a>,
    pub(super) old: HealthStatus,
    pub(super) new: HealthStatus,
    pub(super) now: u64,
    pub(super) last: u64,
}

/// The members to be lost together for a suspected partition: at least
/// two, and at least `fraction` of the `monitored` ones.
fn partition_quorum(fraction: f64, monitored: usize) -> usize {
    // fraction is in (0, 1] (validated), so the product is in [0, monitored].
    let share = (fraction * monitored as f64).ceil() as usize;
    share.max(2)
}

impl HealthMonitor {
    /// The status a slot's silence calls for at `now`; `last` is its
    /// latest heartbeat.
    pub(super) fn evaluate(&self, slot: &Slot, hot: &Hot, now: u64, last: u64) -> HealthStatus {
        let silent = now.saturating_sub(last);
        if hot.declared_failed.load(SeqCst) {
            return HealthStatus::Failed;
        }
        if let Some(history) = slot.missed() {
            let params = &self.inner.missed;
            let missed = params.missed(silent);
            if missed == 0 {
                return HealthStatus::Healthy;
            }
            if missed >= params.threshold
                || hot.status.load(SeqCst) == HealthStatus::Failed.encode()
            {
                // Failed stays Failed until the member heartbeats.
                return HealthStatus::Failed;
            }
            let earlier = history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .count(params, now);
            let within = earlier.saturating_add(params.in_window(last, missed, now));
            return if within >= params.threshold {
                HealthStatus::Failed
            } else {
                HealthStatus::Unresponsive
            };
        }
        if silent > self.inner.failed_after {
            return HealthStatus::Failed;
        }
        let unresponsive = match (slot.phi(), &self.inner.phi) {
            (Some(state), Some(params)) => {
                let mean = f64::from_bits(state.mean.load(SeqCst));
                let std = f64::from_bits(state.std.load(SeqCst));
                (silent as f64 - mean) / std >= params.z_threshold
            }
            _ => silent > self.inner.timeout,
        };
        if unresponsive {
            HealthStatus::Unresponsive
        } else {
            HealthStatus::Healthy
        }
    }

    /// What the monitor knows of a slot's member at `now`.
    fn evidence(&self, slot: &Slot, hot: &Hot, now: u64, last: u64) -> FailureEvidence {
        let params = &self.inner.missed;
        let silent = now.saturating_sub(last);
        let missed = params.missed(silent);
        let missed_in_window = slot.missed().map(|history| {
            let earlier = history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .count(params, now);
            earlier.saturating_add(params.in_window(last, missed, now))
        });
        FailureEvidence {
            at: self.instant_at(now),
            last_heartbeat: self.instant_at(last),
            silent_for: Duration::from_nanos(silent),
            missed_heartbeats: missed,
            missed_in_window,
            phi: self.phi_of(slot, now),
            declared: hot.declared_failed.load(SeqCst),
        }
    }

    /// Records a move of `slot`'s member under the transition lock
    /// (`transitions`): logs it, sends the [`StatusChange`], and, for a
    /// move into Failed, the [`Failure`]; keeps the lost members up to date
    /// (`monitored` members in all).
    pub(super) fn emit(
        &self,
        transitions: &mut Transitions,
        slot: &Slot,
        change: Move<'_>,
        monitored: usize,
    ) {
        let Move {
            member,
            old,
            new,
            now,
            last,
        } = change;
        let silent_for_ms = now.saturating_sub(last) / 1_000_000;
        #[cfg(feature = "metrics")]
        self.inner.metrics.moved(old, new);
        if new == HealthStatus::Healthy {
            tracing::info!(
                target: "steadfast::health",
                %member, %old, %new, silent_for_ms,
                "member recovered"
            );
            transitions.forget(member);
            self.close_partition(transitions, monitored);
        } else {
            tracing::warn!(
                target: "steadfast::health",
                %member, %old, %new, silent_for_ms,
                "member status changed"
            );
            if old == HealthStatus::Healthy || !transitions.lost.contains_key(&member as &dyn Key) {
                transitions.lost.insert(member.to_member_id(), now);
                transitions.new_losses = true;
            }
        }
        if self.inner.events.receiver_count() > 0 {
            let _ = self.inner.events.send(StatusChange {
                member: member.to_member_id(),
                old,
                new,
                at: self.instant_at(now),
            });
        }
        if new == HealthStatus::Failed && !transitions.failures.is_empty() {
            let hot = self.hot(slot);
            let failure =
                Failure::of_member(member.to_member_id(), self.evidence(slot, hot, now, last));
            transitions.send(&failure);
        }
    }

    /// Closes the open suspected partition once fewer members than its
    /// quorum are lost.
    pub(super) fn close_partition(&self, transitions: &mut Transitions, monitored: usize) {
        let quorum = partition_quorum(self.inner.config.partition_fraction(), monitored);
        if transitions.partition_open && transitions.lost.len() < quorum {
            transitions.partition_open = false;
            tracing::info!(
                target: "steadfast::health",
                lost = transitions.lost.len(),
                monitored,
                "suspected partition closed"
            );
        }
    }

    /// Reports a suspected partition if members were lost since the last
    /// check and the rule holds at `now`: at least two members, and at
    /// least `partition_fraction` of the `monitored` ones, left Healthy
    /// within one detection window before `now`, and no suspicion is open.
    pub(super) fn check_partition(
        &self,
        transitions: &mut Transitions,
        now: u64,
        monitored: usize,
    ) {
        if !std::mem::take(&mut transitions.new_losses) || transitions.partition_open {
            return;
        }
        let quorum = partition_quorum(self.inner.config.partition_fraction(), monitored);
        if transitions.lost.len() < quorum {
            return;
        }
        let start = now.saturating_sub(self.inner.missed.window);
        let mut members: Vec<(&MemberId, u64)> = transitions
            .lost
            .iter()
            .filter(|&(_, &at)| at >= start)
            .map(|(member, &at)| (member, at))
            .collect();
        if members.len() < quorum {
            return;
        }
        members.sort();
        let first_lost = members.iter().map(|&(_, at)| at).min().unwrap_or(now);
        let members: Vec<MemberId> = members.into_iter().map(|(m, _)| m.clone()).collect();
        transitions.partition_open = true;
        #[cfg(feature = "metrics")]
        self.inner.metrics.partition();
        tracing::warn!(
            target: "steadfast::health",
            lost = members.len(),
            monitored,
            "suspected partition: many members lost within one detection window"
        );
        if !transitions.failures.is_empty() {
            let failure = Failure::SuspectedPartition {
                members,
                monitored,
                first_lost: self.instant_at(first_lost),
                at: self.instant_at(now),
            };
            transitions.send(&failure);
        }
    }

    /// Makes a member that heartbeat at `now` Healthy again, if it is not,
    /// and emits the change; `previous` was its last heartbeat before.
    pub(super) fn recover(
        &self,
        slot: &Slot,
        member: MemberRef<'_>,
        hot: &Hot,
        now: u64,
        previous: u64,
        monitored: usize,
    ) {
        let mut transitions = self.lock_transition();
        hot.declared_failed.store(false, SeqCst);
        let old = HealthStatus::decode(hot.status.load(SeqCst));
        if old != HealthStatus::Healthy {
            hot.status.store(HealthStatus::Healthy.encode(), SeqCst);
            let change = Move {
                member,
                old,
                new: HealthStatus::Healthy,
                now,
                last: previous,
            };
            self.emit(&mut transitions, slot, change, monitored);
        }
    }

    /// Moves a slot to the status its silence calls for, under the
    /// transition lock; returns the status it ends in.
    pub(super) fn settle(
        &self,
        transitions: &mut Transitions,
        slot: &Slot,
        member: &MemberId,
        now: u64,
        monitored: usize,
        summary: &mut SweepSummary,
    ) -> HealthStatus {
        let hot = self.hot(slot);
        // At most twice: a heartbeat that lands between the status store and
        // the re-read of the time sends the member back to Healthy.
        let mut status = HealthStatus::decode(hot.status.load(SeqCst));
        for _ in 0..2 {
            let last = hot.last.load(SeqCst);
            let target = self.evaluate(slot, hot, now, last);
            status = HealthStatus::decode(hot.status.load(SeqCst));
            if target == status {
                return status;
            }
            hot.status.store(target.encode(), SeqCst);
            let change = Move {
                member: member.as_member_ref(),
                old: status,
                new: target,
                now,
                last,
            };
            self.emit(transitions, slot, change, monitored);
            summary.changes += 1;
            status = target;
            if hot.last.load(SeqCst) == last {
                break;
            }
        }
        status
    }
}
