//! The [`Membership`] implementation of [`EtcdCoordinator`]: the epoch
//! record (one key, written with a compare-and-set transaction), entering
//! an epoch, declared failures, live members, records with compare-and-set,
//! and fenced writes. Leader election is in `election.rs`, the membership
//! watch in `watch.rs`.

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};

use super::members::{MemberState, MemberValue};
use super::{parse_rank, suffix_of, EpochState, EtcdCoordinator, TARGET};
use crate::coordinator::{
    validate_record_key, validate_record_value, validate_signal_key, CasOutcome, CoordinatorError,
    EpochOutcome, EpochRecord, Leadership, LiveMember, Membership, MembershipWatch, Result, Role,
    Versioned,
};

/// One value of a transaction's read: value, mod revision, create
/// revision, lease.
type Read = Option<(Vec<u8>, i64, i64, i64)>;

/// The first key of each `Get` of a transaction's responses, in order.
fn reads(resp: &etcd_client::TxnResponse) -> Vec<Read> {
    resp.op_responses()
        .into_iter()
        .filter_map(|op| match op {
            TxnOpResponse::Get(get) => Some(get.kvs().first().map(|kv| {
                (
                    kv.value().to_vec(),
                    kv.mod_revision(),
                    kv.create_revision(),
                    kv.lease(),
                )
            })),
            _ => None,
        })
        .collect()
}

impl EtcdCoordinator {
    fn record_key(&self, key: &str) -> String {
        self.key(&format!("records/{key}"))
    }

    pub(super) fn leader_key(&self) -> String {
        self.key("leader")
    }

    /// The job's current epoch and the mod revision of its key (0 when the
    /// key is absent: epoch 0, the ranks as connected, `ranks/{rank}`).
    pub(super) async fn read_epoch(&self) -> Result<(EpochRecord, i64)> {
        let epoch_key = self.key("epoch");
        let ranks_dir = self.key("ranks/");
        let resp = self
            .call("read epoch", |mut c| {
                let txn = Txn::new().and_then([
                    TxnOp::get(epoch_key.clone(), None),
                    TxnOp::get(ranks_dir.clone(), Some(GetOptions::new().with_prefix())),
                ]);
                async move { c.txn(txn).await }
            })
            .await?;
        let mut ranks_by_number = Vec::new();
        for (i, op) in resp.op_responses().into_iter().enumerate() {
            let TxnOpResponse::Get(get) = op else {
                continue;
            };
            if i == 0 {
                if let Some(kv) = get.kvs().first() {
                    return Ok((EpochRecord::from_bytes(kv.value())?, kv.mod_revision()));
                }
            } else {
                for kv in get.kvs() {
                    if let Some(rank) = suffix_of(kv.key(), &ranks_dir).and_then(parse_rank) {
                        ranks_by_number
                            .push((rank, String::from_utf8_lossy(kv.value()).into_owned()));
                    }
                }
            }
        }
        let world_size = self.inner.config.world_size;
        let mut ranks = vec![None; world_size];
        for (rank, member) in ranks_by_number {
            if let Some(slot) = ranks.get_mut(rank) {
                *slot = Some(member);
            }
        }
        let missing: Vec<usize> = (0..world_size).filter(|&r| ranks[r].is_none()).collect();
        if !missing.is_empty() {
            return Err(CoordinatorError::Unavailable {
                message: format!(
                    "epoch 0 of job {:?} is the ranks as connected, and ranks {missing:?} have not connected yet",
                    self.inner.config.prefix
                ),
                source: None,
            });
        }
        Ok((
            EpochRecord::new(0, ranks.into_iter().flatten().collect()),
            0,
        ))
    }

    /// The `Fenced` error for a write of `state` that failed, from what the
    /// transaction read: the epoch key, this member's live key and, with a
    /// leadership, the leader key.
    fn fenced_write(
        &self,
        state: &EpochState,
        epoch: &Read,
        live: &Read,
        leader: Option<(&Leadership, &Read)>,
    ) -> CoordinatorError {
        if live
            .as_ref()
            .is_none_or(|(_, _, _, lease)| *lease != self.inner.lease_id)
        {
            return self.lease_lost();
        }
        if epoch.as_ref().map_or(0, |(_, rev, _, _)| *rev) != state.revision {
            return self.fenced_by_epoch(state, epoch.as_ref().map(|(v, _, _, _)| v.as_slice()));
        }
        if let Some((leadership, now)) = leader {
            let holder = match now {
                Some((value, _, created, _)) => format!(
                    "member {:?} leads in term {created}",
                    String::from_utf8_lossy(value)
                ),
                None => "nobody leads".to_string(),
            };
            return CoordinatorError::Fenced {
                epoch: state.epoch,
                reason: format!(
                    "the leadership of {:?} in term {} is over: {holder}",
                    leadership.member, leadership.term
                ),
            };
        }
        CoordinatorError::Fenced {
            epoch: state.epoch,
            reason: "the fenced write was refused".to_string(),
        }
    }
}

/// Epochs, failures, records and fenced writes through etcd; see the
/// protocols on [`EtcdCoordinator`].
#[async_trait]
impl Membership for EtcdCoordinator {
    fn member_id(&self) -> &str {
        &self.inner.member_id
    }

    fn epoch(&self) -> u64 {
        self.epoch_state().epoch
    }

    fn role(&self) -> Role {
        self.epoch_state().role
    }

    async fn current_epoch(&self) -> Result<EpochRecord> {
        self.check_usable()?;
        Ok(self.read_epoch().await?.0)
    }

    async fn propose_epoch(&self, expected: u64, next: &EpochRecord) -> Result<EpochOutcome> {
        next.validate()?;
        if next.epoch <= expected {
            return Err(CoordinatorError::InvalidArgument(format!(
                "a proposal after epoch {expected} must have a greater epoch, got {}",
                next.epoch
            )));
        }
        self.check_usable()?;
        let epoch_key = self.key("epoch");
        let stored = self
            .call("read epoch", |mut c| {
                let key = epoch_key.clone();
                async move { c.get(key, None).await }
            })
            .await?;
        let (current, revision) = match stored.kvs().first() {
            Some(kv) => (
                EpochRecord::from_bytes(kv.value())?.epoch,
                kv.mod_revision(),
            ),
            None => (0, 0),
        };
        if current != expected {
            return Ok(EpochOutcome::Superseded {
                current: self.read_epoch().await?.0,
            });
        }
        let value = next.to_bytes()?;
        let written = self
            .call("propose epoch", |mut c| {
                let txn = Txn::new()
                    .when([Compare::mod_revision(
                        epoch_key.clone(),
                        CompareOp::Equal,
                        revision,
                    )])
                    .and_then([TxnOp::put(epoch_key.clone(), value.clone(), None)]);
                async move { c.txn(txn).await }
            })
            .await?;
        if written.succeeded() {
            tracing::info!(
                target: TARGET,
                coordinator = "etcd",
                prefix = %self.inner.config.prefix,
                member = %self.inner.member_id,
                epoch = next.epoch,
                world_size = next.world_size(),
                "epoch proposed and accepted"
            );
            Ok(EpochOutcome::Accepted)
        } else {
            Ok(EpochOutcome::Superseded {
                current: self.read_epoch().await?.0,
            })
        }
    }

    async fn enter_epoch(&self, record: &EpochRecord) -> Result<()> {
        self.check_usable()?;
        let (current, revision) = self.read_epoch().await?;
        if current != *record {
            return Err(CoordinatorError::Fenced {
                epoch: self.epoch_state().epoch,
                reason: format!(
                    "epoch {} is not the job's current epoch (epoch {} is)",
                    record.epoch, current.epoch
                ),
            });
        }
        let role = current
            .rank_of(&self.inner.member_id)
            .map_or(Role::Standby, Role::Rank);
        {
            let mut state = self.epoch_state();
            *state = EpochState {
                epoch: current.epoch,
                revision,
                world_size: current.world_size(),
                ranks: Some(current.ranks),
                role,
                next_barrier: 0,
                next_gather: 0,
            };
        }
        tracing::info!(
            target: TARGET,
            coordinator = "etcd",
            prefix = %self.inner.config.prefix,
            member = %self.inner.member_id,
            epoch = record.epoch,
            ?role,
            "entered epoch"
        );
        match role {
            Role::Rank(_) => Ok(()),
            Role::Standby => Err(CoordinatorError::NotAMember {
                member: self.inner.member_id.clone(),
                epoch: record.epoch,
            }),
        }
    }

    async fn live_members(&self) -> Result<Vec<LiveMember>> {
        self.check_usable()?;
        let members_dir = self.key("members/");
        let standby_dir = self.key("standby/");
        let epoch_key = self.key("epoch");
        let resp = self
            .call("live members", |mut c| {
                let txn = Txn::new().and_then([
                    TxnOp::get(members_dir.clone(), Some(GetOptions::new().with_prefix())),
                    TxnOp::get(standby_dir.clone(), Some(GetOptions::new().with_prefix())),
                    TxnOp::get(epoch_key.clone(), None),
                ]);
                async move { c.txn(txn).await }
            })
            .await?;
        let gets: Vec<_> = resp
            .op_responses()
            .into_iter()
            .filter_map(|op| match op {
                TxnOpResponse::Get(get) => Some(get),
                _ => None,
            })
            .collect();
        let record = gets
            .get(2)
            .and_then(|get| get.kvs().first())
            .and_then(|kv| EpochRecord::from_bytes(kv.value()).ok());
        let mut live = Vec::new();
        for (i, dir) in [&members_dir, &standby_dir].into_iter().enumerate() {
            let Some(get) = gets.get(i) else { continue };
            for kv in get.kvs() {
                let Some(value) = MemberValue::parse(kv.value()) else {
                    continue;
                };
                if value.state != MemberState::Running {
                    continue;
                }
                let connected_as = suffix_of(kv.key(), dir).and_then(parse_rank);
                let role = match &record {
                    Some(record) => record
                        .rank_of(&value.member)
                        .map_or(Role::Standby, Role::Rank),
                    None if i == 0 => connected_as.map_or(Role::Standby, Role::Rank),
                    None => Role::Standby,
                };
                live.push(LiveMember {
                    member: value.member,
                    role,
                });
            }
        }
        Ok(live)
    }

    fn watch_membership(&self) -> MembershipWatch {
        self.membership_watch()
    }

    async fn declare_failed(&self, rank: usize, reason: &str) -> Result<()> {
        self.check_usable()?;
        let state = self.epoch_state().clone();
        if rank >= state.world_size {
            return Err(CoordinatorError::InvalidRank {
                rank,
                world_size: state.world_size,
            });
        }
        let key = self.key(&format!("failed/{}/{rank}", state.epoch));
        let epoch_key = self.key("epoch");
        let live_key = self.live_key();
        let value = reason.as_bytes().to_vec();
        validate_record_value(&format!("failed/{rank}"), &value)?;
        let resp = self
            .call("declare failed", |mut c| {
                let txn = Txn::new()
                    .when([self.epoch_compare(&state)])
                    .and_then([TxnOp::put(key.clone(), value.clone(), None)])
                    .or_else([
                        TxnOp::get(epoch_key.clone(), None),
                        TxnOp::get(live_key.clone(), None),
                    ]);
                async move { c.txn(txn).await }
            })
            .await?;
        if !resp.succeeded() {
            let read = reads(&resp);
            let stored = read.first().cloned().flatten();
            return Err(
                self.fenced_by_epoch(&state, stored.as_ref().map(|(v, _, _, _)| v.as_slice()))
            );
        }
        tracing::warn!(
            target: TARGET,
            coordinator = "etcd",
            prefix = %self.inner.config.prefix,
            member = %self.inner.member_id,
            epoch = state.epoch,
            failed_rank = rank,
            reason,
            "rank declared failed"
        );
        Ok(())
    }

    async fn read_record(&self, key: &str) -> Result<Option<Versioned>> {
        validate_record_key(key)?;
        self.check_usable()?;
        let etcd_key = self.record_key(key);
        let resp = self
            .call("read record", |mut c| {
                let key = etcd_key.clone();
                async move { c.get(key, None).await }
            })
            .await?;
        Ok(resp.kvs().first().map(|kv| Versioned {
            value: kv.value().to_vec(),
            version: kv.mod_revision().unsigned_abs(),
        }))
    }

    async fn list_records(&self, prefix: &str) -> Result<Vec<(String, Versioned)>> {
        if !prefix.is_empty() {
            validate_signal_key(prefix)?;
        }
        self.check_usable()?;
        let dir = self.key("records/");
        let start = format!("{dir}{prefix}");
        let resp = self
            .call("list records", |mut c| {
                let key = start.clone();
                async move { c.get(key, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        Ok(resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                let key = suffix_of(kv.key(), &dir)?.to_string();
                Some((
                    key,
                    Versioned {
                        value: kv.value().to_vec(),
                        version: kv.mod_revision().unsigned_abs(),
                    },
                ))
            })
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
        let expected = i64::try_from(expected).map_err(|_| {
            CoordinatorError::InvalidArgument(format!("version {expected} is out of range"))
        })?;
        self.check_usable()?;
        let etcd_key = self.record_key(key);
        let resp = self
            .call("compare and set", |mut c| {
                let txn = Txn::new()
                    .when([Compare::mod_revision(
                        etcd_key.clone(),
                        CompareOp::Equal,
                        expected,
                    )])
                    .and_then([TxnOp::put(etcd_key.clone(), value.clone(), None)])
                    .or_else([TxnOp::get(etcd_key.clone(), None)]);
                async move { c.txn(txn).await }
            })
            .await?;
        if resp.succeeded() {
            let version = resp.header().map(|h| h.revision()).unwrap_or(0);
            return Ok(CasOutcome::Written {
                version: version.unsigned_abs(),
            });
        }
        let current = reads(&resp)
            .into_iter()
            .next()
            .flatten()
            .map(|(value, rev, _, _)| Versioned {
                value,
                version: rev.unsigned_abs(),
            });
        Ok(CasOutcome::Conflict { current })
    }

    async fn put_fenced(
        &self,
        key: &str,
        value: Vec<u8>,
        leadership: Option<&Leadership>,
    ) -> Result<u64> {
        validate_record_key(key)?;
        validate_record_value(key, &value)?;
        if let Some(leadership) = leadership
            && leadership.member != self.inner.member_id
        {
            return Err(CoordinatorError::InvalidArgument(format!(
                "member {:?} cannot write under the leadership of {:?}",
                self.inner.member_id, leadership.member
            )));
        }
        self.check_usable()?;
        let state = self.epoch_state().clone();
        let etcd_key = self.record_key(key);
        let epoch_key = self.key("epoch");
        let live_key = self.live_key();
        let leader_key = self.leader_key();
        let term = match leadership {
            Some(l) => Some(i64::try_from(l.term).map_err(|_| {
                CoordinatorError::InvalidArgument(format!("term {} is out of range", l.term))
            })?),
            None => None,
        };
        let resp = self
            .call("put fenced", |mut c| {
                let mut compares = vec![self.epoch_compare(&state), self.liveness_compare()];
                if let Some(term) = term {
                    compares.push(Compare::create_revision(
                        leader_key.clone(),
                        CompareOp::Equal,
                        term,
                    ));
                    compares.push(Compare::value(
                        leader_key.clone(),
                        CompareOp::Equal,
                        self.inner.member_id.clone(),
                    ));
                }
                let txn = Txn::new()
                    .when(compares)
                    .and_then([TxnOp::put(etcd_key.clone(), value.clone(), None)])
                    .or_else([
                        TxnOp::get(epoch_key.clone(), None),
                        TxnOp::get(live_key.clone(), None),
                        TxnOp::get(leader_key.clone(), None),
                    ]);
                async move { c.txn(txn).await }
            })
            .await?;
        if resp.succeeded() {
            let version = resp.header().map(|h| h.revision()).unwrap_or(0);
            return Ok(version.unsigned_abs());
        }
        let read = reads(&resp);
        let get = |i: usize| read.get(i).cloned().flatten();
        let leader = get(2);
        let err = self.fenced_write(&state, &get(0), &get(1), leadership.map(|l| (l, &leader)));
        tracing::warn!(
            target: TARGET,
            coordinator = "etcd",
            prefix = %self.inner.config.prefix,
            member = %self.inner.member_id,
            key,
            error = %err,
            "fenced write refused"
        );
        Err(err)
    }

    async fn campaign(&self, timeout: Duration) -> Result<Leadership> {
        self.campaign_for(timeout).await
    }

    async fn leader(&self) -> Result<Option<Leadership>> {
        self.current_leader().await
    }

    async fn resign(&self, leadership: &Leadership) -> Result<()> {
        self.resign_leadership(leadership).await
    }
}

/// Puts that the coordinator makes outside a transaction carry this
/// member's lease; re-exported for the election.
pub(super) fn leased(lease: i64) -> Option<PutOptions> {
    Some(PutOptions::new().with_lease(lease))
}
