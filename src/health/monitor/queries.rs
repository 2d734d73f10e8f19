//! What a [`HealthMonitor`] says of its members: one member's status and
//! phi, the members in a status, a snapshot of all, and the stream of
//! changes.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use tokio::sync::broadcast;

use super::super::phi;
use super::super::registry::Slot;
use super::super::{AsMember, HealthSnapshot, HealthStatus, MemberHealth, MemberId, StatusChange};
use super::HealthMonitor;

impl HealthMonitor {
    /// A member's status, as the latest sweep or heartbeat found it; `None`
    /// for a member that is not known (never reported as Healthy).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{HealthMonitor, HealthStatus, MemberId};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let monitor = HealthMonitor::default();
    /// monitor.add_member(0usize);
    /// assert_eq!(monitor.status(0usize), Some(HealthStatus::Healthy));
    /// assert_eq!(monitor.status(1usize), None);
    /// # }
    /// ```
    pub fn status(&self, member: impl AsMember) -> Option<HealthStatus> {
        let registry = self.read();
        let slot = registry.get(member.as_member())?;
        Some(HealthStatus::decode(self.hot(slot).status.load(SeqCst)))
    }

    fn members_with(&self, status: HealthStatus) -> Vec<MemberId> {
        let code = status.encode();
        self.read()
            .slots
            .iter()
            .filter(|s| s.member.is_some() && self.hot(s).status.load(SeqCst) == code)
            .filter_map(|s| s.member.as_deref().cloned())
            .collect()
    }

    /// The members that are Healthy, in no particular order.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::MemberId;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let monitor = steadfast::health::HealthMonitor::default();
    /// monitor.add_member(4usize);
    /// assert_eq!(monitor.healthy(), vec![MemberId::Rank(4)]);
    /// # }
    /// ```
    pub fn healthy(&self) -> Vec<MemberId> {
        self.members_with(HealthStatus::Healthy)
    }

    /// The members that are Unresponsive, in no particular order.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let monitor = steadfast::health::HealthMonitor::default();
    /// monitor.add_member(4usize);
    /// assert!(monitor.unresponsive().is_empty());
    /// # }
    /// ```
    pub fn unresponsive(&self) -> Vec<MemberId> {
        self.members_with(HealthStatus::Unresponsive)
    }

    /// How many members are Unresponsive.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let monitor = steadfast::health::HealthMonitor::default();
    /// monitor.add_member(0usize);
    /// tokio::time::advance(Duration::from_secs(40)).await;
    /// monitor.check_now();
    /// assert_eq!(monitor.unresponsive_count(), 1);
    /// # }
    /// ```
    pub fn unresponsive_count(&self) -> usize {
        let code = HealthStatus::Unresponsive.encode();
        self.read()
            .slots
            .iter()
            .filter(|s| s.member.is_some() && self.hot(s).status.load(SeqCst) == code)
            .count()
    }

    /// The members that are Failed, in no particular order.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::health::MemberId;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let monitor = steadfast::health::HealthMonitor::default();
    /// monitor.add_member(0usize);
    /// tokio::time::advance(Duration::from_secs(61)).await;
    /// monitor.check_now();
    /// assert_eq!(monitor.failed(), vec![MemberId::Rank(0)]);
    /// # }
    /// ```
    pub fn failed(&self) -> Vec<MemberId> {
        self.members_with(HealthStatus::Failed)
    }

    pub(super) fn phi_of(&self, slot: &Slot, now: u64) -> Option<f64> {
        let state = slot.phi()?;
        let mean = f64::from_bits(state.mean.load(SeqCst));
        let std = f64::from_bits(state.std.load(SeqCst));
        let silent = now.saturating_sub(self.hot(slot).last.load(SeqCst));
        Some(phi::phi(silent as f64, mean, std))
    }

    /// The phi value of `member` now, with the phi-accrual policy; `None`
    /// for an unknown member or with the fixed-timeout policy.
    ///
    /// phi is `-log10(1 - CDF(t))`, `t` the time since the member's last
    /// heartbeat and `CDF` the normal distribution of its inter-arrival
    /// times (mean plus the acceptable pause; standard deviation at least
    /// the minimum). See [`health`](crate::health).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::health::{DetectionPolicy, HealthConfig, HealthMonitor, MemberId, PhiAccrualConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = HealthConfig::builder()
    ///     .detection(DetectionPolicy::PhiAccrual(PhiAccrualConfig::default()))
    ///     .build()?;
    /// let monitor = HealthMonitor::new(config);
    /// let rank = MemberId::Rank(0);
    /// monitor.add_member(rank.clone());
    /// for _ in 0..10 {
    ///     tokio::time::advance(Duration::from_secs(1)).await;
    ///     monitor.heartbeat(&rank)?;
    /// }
    /// let calm = monitor.phi(&rank).unwrap();
    /// tokio::time::advance(Duration::from_secs(6)).await;
    /// assert!(monitor.phi(&rank).unwrap() > calm);
    /// # Ok(())
    /// # }
    /// ```
    pub fn phi(&self, member: impl AsMember) -> Option<f64> {
        let now = self.now_nanos();
        let registry = self.read();
        self.phi_of(registry.get(member.as_member())?, now)
    }

    /// Every member's status, last heartbeat, silence and phi, now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let monitor = steadfast::health::HealthMonitor::default();
    /// monitor.add_member(0usize);
    /// tokio::time::advance(Duration::from_secs(3)).await;
    /// let snapshot = monitor.snapshot();
    /// assert_eq!(snapshot.members[0].silent_for, Duration::from_secs(3));
    /// # }
    /// ```
    pub fn snapshot(&self) -> HealthSnapshot {
        let now = self.now_nanos();
        let registry = self.read();
        let members = registry
            .slots
            .iter()
            .filter_map(|slot| {
                let member = slot.member.as_deref()?.clone();
                let hot = self.hot(slot);
                let last = hot.last.load(SeqCst);
                Some(MemberHealth {
                    member,
                    status: HealthStatus::decode(hot.status.load(SeqCst)),
                    last_heartbeat: self.instant_at(last),
                    silent_for: Duration::from_nanos(now.saturating_sub(last)),
                    phi: self.phi_of(slot, now),
                })
            })
            .collect();
        HealthSnapshot {
            at: self.instant_at(now),
            members,
        }
    }

    /// Calls `f` with every member and its status, under the read lock
    /// (`f` must not add or remove members).
    pub(crate) fn for_each_member(&self, mut f: impl FnMut(&MemberId, HealthStatus)) {
        let registry = self.read();
        for slot in &registry.slots {
            if let Some(member) = slot.member.as_deref() {
                f(
                    member,
                    HealthStatus::decode(self.hot(slot).status.load(SeqCst)),
                );
            }
        }
    }

    /// A stream of every status change from now on.
    ///
    /// A subscriber that falls more than `event_capacity` changes behind
    /// misses the oldest ones (`RecvError::Lagged`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::health::{HealthMonitor, HealthStatus, MemberId};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::health::HealthError> {
    /// let monitor = HealthMonitor::default();
    /// let mut changes = monitor.subscribe();
    /// monitor.add_member(0usize);
    /// tokio::time::advance(Duration::from_secs(61)).await;
    /// monitor.check_now();
    /// monitor.heartbeat(0usize)?;
    /// assert_eq!(changes.recv().await.unwrap().new, HealthStatus::Failed);
    /// assert_eq!(changes.recv().await.unwrap().new, HealthStatus::Healthy);
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe(&self) -> broadcast::Receiver<StatusChange> {
        self.inner.events.subscribe()
    }
}
