//! The [`Membership`] implementation of an [`InMemoryCoordinator`]: epochs
//! as a compare-and-set under the job's lock, records versioned by a
//! job-wide revision, fenced writes, one leadership at a time, and the
//! membership event log that watches read.
//!
//! The job keeps one revision counter, as etcd does: every record write and
//! every new leadership takes the next value, so versions and terms only
//! grow and are never 0.
//!
//! A membership watch reads the job's event log from where it started: a
//! slow reader never blocks a writer and never misses an event (the log
//! holds a few events per membership change, for the life of the job: an
//! in-memory job is for tests and examples).

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Access, InMemoryCoordinator, Shared, Status};
use crate::coordinator::{
    deadline_after, validate_record_key, validate_record_value, validate_signal_key, CasOutcome,
    CoordinatorError, EpochOutcome, EpochRecord, Leadership, LiveMember, Membership,
    MembershipEvent, MembershipWatch, Result, Role, Versioned,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl InMemoryCoordinator {
    /// Switches this handle (and its clones) to `record`'s epoch; returns
    /// its role there.
    fn take_part_in(&self, record: &EpochRecord) -> Role {
        let world_size = record.world_size();
        let rank = record.rank_of(&self.handle.member);
        self.handle
            .rank
            .store(rank.unwrap_or(world_size), Ordering::Release);
        self.handle.world_size.store(world_size, Ordering::Release);
        self.handle.epoch.store(record.epoch, Ordering::Release);
        rank.map_or(Role::Standby, Role::Rank)
    }
}

/// What a membership watch has left to report, and where it reads the log.
struct WatchCursor {
    shared: Arc<Shared>,
    member: String,
    /// The first events: a `Joined` per live member, at the start.
    pending: std::collections::VecDeque<MembershipEvent>,
    /// The index of the next event of the log to report.
    next: usize,
    changes: watch::Receiver<u64>,
    /// Set once this member's own departure was reported: the watch ends.
    done: bool,
}

impl WatchCursor {
    async fn next_event(mut self) -> Option<(MembershipEvent, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((event, self));
            }
            if self.done {
                return None;
            }
            let found = {
                let state = self.shared.lock();
                match state.events.get(self.next) {
                    Some(event) => Some(event.clone()),
                    None => {
                        let live = state
                            .members
                            .get(&self.member)
                            .is_some_and(|m| m.status == Status::Live);
                        if !live {
                            return None;
                        }
                        None
                    }
                }
            };
            if let Some(event) = found {
                self.next += 1;
                if matches!(&event, MembershipEvent::Left { member, .. } if *member == self.member)
                {
                    self.done = true;
                }
                return Some((event, self));
            }
            if self.changes.changed().await.is_err() {
                return None;
            }
        }
    }
}

#[async_trait]
impl Membership for InMemoryCoordinator {
    fn member_id(&self) -> &str {
        &self.handle.member
    }

    fn epoch(&self) -> u64 {
        self.my_epoch()
    }

    fn role(&self) -> Role {
        let rank = self.my_rank();
        if rank < self.my_world_size() {
            Role::Rank(rank)
        } else {
            Role::Standby
        }
    }

    async fn current_epoch(&self) -> Result<EpochRecord> {
        let state = self.shared.lock();
        self.check_live(&state, Access::Read)?;
        Ok(state.epoch.clone())
    }

    async fn propose_epoch(&self, expected: u64, next: &EpochRecord) -> Result<EpochOutcome> {
        next.validate()?;
        if next.epoch <= expected {
            return Err(CoordinatorError::InvalidArgument(format!(
                "a proposed epoch must follow the one it replaces: epoch {} after {expected}",
                next.epoch
            )));
        }
        {
            let mut state = self.shared.lock();
            self.check_live(&state, Access::Act)?;
            if state.epoch.epoch != expected {
                return Ok(EpochOutcome::Superseded {
                    current: state.epoch.clone(),
                });
            }
            state.epoch = next.clone();
            state.failed.clear();
            // The rounds and signals of older epochs can never complete
            // (their handles are fenced): drop them.
            let epoch = next.epoch;
            state.rounds.retain(|(e, _, _), _| *e >= epoch);
            state.next_round.retain(|(e, _, _), _| *e >= epoch);
            state.signals.retain(|(e, _, _), _| *e >= epoch);
            state
                .events
                .push(MembershipEvent::EpochChanged(next.clone()));
        }
        tracing::info!(
            target: "steadfast::coordinator",
            coordinator = "in-memory",
            member = %self.handle.member,
            epoch = next.epoch,
            world_size = next.world_size(),
            "new epoch accepted"
        );
        self.shared.bump();
        Ok(EpochOutcome::Accepted)
    }

    async fn enter_epoch(&self, record: &EpochRecord) -> Result<()> {
        let role = {
            let mut state = self.shared.lock();
            self.check_live(&state, Access::Act)?;
            if state.epoch != *record {
                return Err(CoordinatorError::Fenced {
                    epoch: self.my_epoch(),
                    reason: format!(
                        "epoch {} is not the job's current epoch {} (or differs from it)",
                        record.epoch, state.epoch.epoch
                    ),
                });
            }
            let role = self.take_part_in(record);
            if let Some(member) = state.members.get_mut(&self.handle.member) {
                member.role = role;
            }
            role
        };
        self.shared.bump();
        match role {
            Role::Rank(_) => Ok(()),
            Role::Standby => Err(CoordinatorError::NotAMember {
                member: self.handle.member.clone(),
                epoch: record.epoch,
            }),
        }
    }

    async fn live_members(&self) -> Result<Vec<LiveMember>> {
        let state = self.shared.lock();
        self.check_live(&state, Access::Read)?;
        Ok(state
            .members
            .iter()
            .filter(|(_, m)| m.status == Status::Live)
            .map(|(id, m)| LiveMember {
                member: id.clone(),
                role: m.role,
            })
            .collect())
    }

    /// Follows the job's membership from its event log: never lags, never
    /// blocks a writer (see the module docs). A watch of a member that is
    /// gone is empty; a watch ends once it reported its own member's
    /// departure. A partitioned member's watch goes on.
    fn watch_membership(&self) -> MembershipWatch {
        let cursor = {
            let state = self.shared.lock();
            let live = state
                .members
                .get(&self.handle.member)
                .is_some_and(|m| m.status == Status::Live);
            let pending = if live {
                state
                    .members
                    .iter()
                    .filter(|(_, m)| m.status == Status::Live)
                    .map(|(id, m)| MembershipEvent::Joined {
                        member: id.clone(),
                        role: m.role,
                    })
                    .collect()
            } else {
                Default::default()
            };
            WatchCursor {
                shared: Arc::clone(&self.shared),
                member: self.handle.member.clone(),
                pending,
                next: state.events.len(),
                changes: self.shared.changed.subscribe(),
                done: !live,
            }
        };
        MembershipWatch::new(futures::stream::unfold(cursor, WatchCursor::next_event))
    }

    async fn declare_failed(&self, rank: usize, reason: &str) -> Result<()> {
        self.check_rank(rank)?;
        let added = {
            let mut state = self.shared.lock();
            self.check_live(&state, Access::Act)?;
            self.check_epoch(&state)?;
            let epoch = state.epoch.epoch;
            let added = !state.failed.contains_key(&rank);
            if added {
                state.failed.insert(rank, reason.to_string());
                state.events.push(MembershipEvent::RankFailed {
                    epoch,
                    rank,
                    reason: reason.to_string(),
                });
            }
            added
        };
        if added {
            tracing::warn!(
                target: "steadfast::coordinator",
                coordinator = "in-memory",
                member = %self.handle.member,
                rank,
                reason,
                "rank declared failed"
            );
            self.shared.bump();
        }
        Ok(())
    }

    async fn read_record(&self, key: &str) -> Result<Option<Versioned>> {
        validate_record_key(key)?;
        let state = self.shared.lock();
        self.check_live(&state, Access::Read)?;
        Ok(state.records.get(key).cloned())
    }

    async fn list_records(&self, prefix: &str) -> Result<Vec<(String, Versioned)>> {
        if !prefix.is_empty() {
            validate_signal_key(prefix)?;
        }
        let state = self.shared.lock();
        self.check_live(&state, Access::Read)?;
        Ok(state
            .records
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: u64,
        value: Vec<u8>,
    ) -> Result<CasOutcome> {
        validate_record_key(key)?;
        validate_record_value(key, &value)?;
        let outcome = {
            let mut state = self.shared.lock();
            self.check_live(&state, Access::Act)?;
            let current = state.records.get(key).map_or(0, |r| r.version);
            if current != expected {
                return Ok(CasOutcome::Conflict {
                    current: state.records.get(key).cloned(),
                });
            }
            let version = state.next_revision();
            state
                .records
                .insert(key.to_string(), Versioned { value, version });
            CasOutcome::Written { version }
        };
        self.shared.bump();
        Ok(outcome)
    }

    async fn put_fenced(
        &self,
        key: &str,
        value: Vec<u8>,
        leadership: Option<&Leadership>,
    ) -> Result<u64> {
        validate_record_key(key)?;
        validate_record_value(key, &value)?;
        let version = {
            let mut state = self.shared.lock();
            self.check_live(&state, Access::Act)?;
            self.check_epoch(&state)?;
            if let Some(leadership) = leadership {
                if leadership.member != self.handle.member {
                    return Err(CoordinatorError::Fenced {
                        epoch: self.my_epoch(),
                        reason: format!(
                            "the leadership of term {} is member {}'s, not {}'s",
                            leadership.term, leadership.member, self.handle.member
                        ),
                    });
                }
                if state.leader.as_ref() != Some(leadership) {
                    return Err(CoordinatorError::Fenced {
                        epoch: self.my_epoch(),
                        reason: format!(
                            "the leadership of term {} is no longer held",
                            leadership.term
                        ),
                    });
                }
            }
            let version = state.next_revision();
            state
                .records
                .insert(key.to_string(), Versioned { value, version });
            version
        };
        self.shared.bump();
        Ok(version)
    }

    async fn campaign(&self, timeout: Duration) -> Result<Leadership> {
        let deadline = deadline_after(timeout);
        let mut changes = self.shared.changed.subscribe();
        loop {
            {
                let mut state = self.shared.lock();
                self.check_live(&state, Access::Act)?;
                match &state.leader {
                    Some(leader) if leader.member == self.handle.member => {
                        return Ok(leader.clone());
                    }
                    Some(_) => {}
                    None => {
                        let leadership = Leadership {
                            member: self.handle.member.clone(),
                            term: state.next_revision(),
                        };
                        state.leader = Some(leadership.clone());
                        state
                            .events
                            .push(MembershipEvent::LeaderChanged(Some(leadership.clone())));
                        drop(state);
                        tracing::info!(
                            target: "steadfast::coordinator",
                            coordinator = "in-memory",
                            member = %leadership.member,
                            term = leadership.term,
                            "leadership won"
                        );
                        self.shared.bump();
                        return Ok(leadership);
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(CoordinatorError::Timeout {
                    operation: "campaign",
                    after: timeout,
                    missing: Vec::new(),
                });
            }
            // Woken when the leadership (or anything else) changes.
            let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
        }
    }

    async fn leader(&self) -> Result<Option<Leadership>> {
        let state = self.shared.lock();
        self.check_live(&state, Access::Read)?;
        Ok(state.leader.clone())
    }

    async fn resign(&self, leadership: &Leadership) -> Result<()> {
        {
            let mut state = self.shared.lock();
            self.check_live(&state, Access::Act)?;
            if state.leader.as_ref() != Some(leadership) {
                return Ok(());
            }
            state.leader = None;
            state.events.push(MembershipEvent::LeaderChanged(None));
        }
        self.shared.bump();
        Ok(())
    }
}
