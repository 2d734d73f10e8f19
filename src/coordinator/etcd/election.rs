//! Leader election for an [`EtcdCoordinator`]: one lease-backed key,
//! `{prefix}/leader`, created in a transaction only while it is absent;
//! the term is its create revision, and a campaign that loses waits on a
//! watch of the key until it is free.

use std::time::Duration;

use etcd_client::{Compare, CompareOp, Txn, TxnOp};

use super::membership::leased;
use super::{EtcdCoordinator, View, TARGET};
use crate::coordinator::{deadline_after, CoordinatorError, Leadership, Result};

impl EtcdCoordinator {
    pub(super) async fn campaign_for(&self, timeout: Duration) -> Result<Leadership> {
        self.check_usable()?;
        let deadline = deadline_after(timeout);
        let leader_key = self.leader_key();
        let live_key = self.live_key();
        let member = self.inner.member_id.clone();
        let lease = self.inner.lease_id;
        loop {
            let attempt = self.call("campaign", |mut c| {
                let txn = Txn::new()
                    .when([
                        Compare::create_revision(leader_key.clone(), CompareOp::Equal, 0),
                        self.liveness_compare(),
                    ])
                    .and_then([TxnOp::put(
                        leader_key.clone(),
                        member.clone(),
                        leased(lease),
                    )])
                    .or_else([
                        TxnOp::get(leader_key.clone(), None),
                        TxnOp::get(live_key.clone(), None),
                    ]);
                async move { c.txn(txn).await }
            });
            let resp = match tokio::time::timeout_at(deadline, attempt).await {
                Ok(resp) => resp?,
                Err(_) => return Err(self.campaign_timed_out(timeout)),
            };
            if resp.succeeded() {
                let term = resp
                    .header()
                    .map(|h| h.revision())
                    .unwrap_or(0)
                    .unsigned_abs();
                tracing::info!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %self.inner.config.prefix,
                    member = %member,
                    term,
                    "won the leadership"
                );
                return Ok(Leadership { member, term });
            }
            let mut holder = None;
            let mut alive = false;
            for (i, op) in resp.op_responses().into_iter().enumerate() {
                if let etcd_client::TxnOpResponse::Get(get) = op {
                    let kv = get.kvs().first();
                    if i == 0 {
                        holder =
                            kv.map(|kv| (kv.value().to_vec(), kv.create_revision(), kv.lease()));
                    } else {
                        alive = kv.is_some_and(|kv| kv.lease() == lease);
                    }
                }
            }
            if !alive {
                return Err(self.lease_lost());
            }
            if let Some((value, created, holder_lease)) = &holder
                && value.as_slice() == member.as_bytes()
                && *holder_lease == lease
            {
                return Ok(Leadership {
                    member,
                    term: created.unsigned_abs(),
                });
            }
            // Someone else leads: wait until the key is gone (resigned, or
            // its lease expired), then try again.
            let mut view = View::new();
            let freed = self
                .follow(
                    "campaign",
                    &leader_key,
                    false,
                    deadline,
                    &mut view,
                    |view| view.is_empty().then_some(()),
                )
                .await?;
            if freed.is_none() {
                return Err(self.campaign_timed_out(timeout));
            }
        }
    }

    fn campaign_timed_out(&self, timeout: Duration) -> CoordinatorError {
        CoordinatorError::Timeout {
            operation: "campaign",
            after: timeout,
            missing: Vec::new(),
        }
    }

    pub(super) async fn current_leader(&self) -> Result<Option<Leadership>> {
        self.check_usable()?;
        let leader_key = self.leader_key();
        let resp = self
            .call("leader", |mut c| {
                let key = leader_key.clone();
                async move { c.get(key, None).await }
            })
            .await?;
        Ok(resp.kvs().first().map(|kv| Leadership {
            member: String::from_utf8_lossy(kv.value()).into_owned(),
            term: kv.create_revision().unsigned_abs(),
        }))
    }

    pub(super) async fn resign_leadership(&self, leadership: &Leadership) -> Result<()> {
        self.check_usable()?;
        let leader_key = self.leader_key();
        let term = i64::try_from(leadership.term).map_err(|_| {
            CoordinatorError::InvalidArgument(format!("term {} is out of range", leadership.term))
        })?;
        let resp = self
            .call("resign", |mut c| {
                let txn = Txn::new()
                    .when([
                        Compare::create_revision(leader_key.clone(), CompareOp::Equal, term),
                        Compare::value(
                            leader_key.clone(),
                            CompareOp::Equal,
                            leadership.member.clone(),
                        ),
                    ])
                    .and_then([TxnOp::delete(leader_key.clone(), None)]);
                async move { c.txn(txn).await }
            })
            .await?;
        tracing::info!(
            target: TARGET,
            coordinator = "etcd",
            prefix = %self.inner.config.prefix,
            member = %leadership.member,
            term = leadership.term,
            resigned = resp.succeeded(),
            "resigned the leadership"
        );
        Ok(())
    }
}
