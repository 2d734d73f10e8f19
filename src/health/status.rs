//! The plain data of health monitoring: a member's [`HealthStatus`], the
//! [`StatusChange`] events sent to subscribers, and what a
//! [`HealthMonitor`](super::HealthMonitor) reports ([`HealthSnapshot`],
//! [`MemberHealth`], [`SweepSummary`]). Nothing here holds state or locks.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::MemberId;

/// The health of a member, from best to worst.
///
/// A member that is not known to a monitor has no status:
/// [`HealthMonitor::status`](super::HealthMonitor::status) returns `None` for it, never `Healthy`.
///
/// # Examples
///
/// ```
/// use steadfast::health::HealthStatus;
///
/// assert!(HealthStatus::Healthy < HealthStatus::Unresponsive);
/// assert!(HealthStatus::Unresponsive < HealthStatus::Failed);
/// assert_eq!(HealthStatus::Failed.to_string(), "failed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Heartbeats arrive in time.
    Healthy,
    /// Silent for longer than the heartbeat timeout (or phi at or above its
    /// threshold; or, with missed heartbeats, a heartbeat missing).
    Unresponsive,
    /// Silent for longer than twice the heartbeat timeout (or, with missed
    /// heartbeats, `failure_threshold` missed in a row or within the
    /// detection window), or declared failed.
    Failed,
}

impl HealthStatus {
    /// The status as stored in a member's hot state.
    pub(super) fn encode(self) -> u8 {
        match self {
            HealthStatus::Healthy => 0,
            HealthStatus::Unresponsive => 1,
            HealthStatus::Failed => 2,
        }
    }

    /// The status stored by [`encode`](Self::encode); an unknown value
    /// reads as Failed, the safe side.
    pub(super) fn decode(value: u8) -> HealthStatus {
        match value {
            0 => HealthStatus::Healthy,
            1 => HealthStatus::Unresponsive,
            _ => HealthStatus::Failed,
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unresponsive => "unresponsive",
            HealthStatus::Failed => "failed",
        })
    }
}

/// A member's status changed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::health::{HealthMonitor, HealthStatus, MemberId};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let monitor = HealthMonitor::default();
/// let mut changes = monitor.subscribe();
/// monitor.add_member(0usize);
/// tokio::time::advance(Duration::from_secs(31)).await;
/// monitor.check_now();
/// let change = changes.recv().await.unwrap();
/// assert_eq!(change.member, MemberId::Rank(0));
/// assert_eq!((change.old, change.new), (HealthStatus::Healthy, HealthStatus::Unresponsive));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    /// The member.
    pub member: MemberId,
    /// Its status before.
    pub old: HealthStatus,
    /// Its status now.
    pub new: HealthStatus,
    /// When the change was found (the sweep's or the heartbeat's time).
    pub at: Instant,
}

/// One member in a [`HealthSnapshot`].
///
/// # Examples
///
/// ```
/// use steadfast::health::{HealthMonitor, HealthStatus};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let monitor = HealthMonitor::default();
/// monitor.add_member("db");
/// let snapshot = monitor.snapshot();
/// assert_eq!(snapshot.members[0].status, HealthStatus::Healthy);
/// assert_eq!(snapshot.members[0].phi, None); // fixed-timeout policy
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MemberHealth {
    /// The member.
    pub member: MemberId,
    /// Its status, as the latest sweep or heartbeat found it.
    pub status: HealthStatus,
    /// Its latest heartbeat (its registration, before the first one).
    pub last_heartbeat: Instant,
    /// How long it has been silent, at the snapshot's time.
    pub silent_for: Duration,
    /// Its phi value, with the phi-accrual policy.
    pub phi: Option<f64>,
}

/// Every member's health at one instant; see [`HealthMonitor::snapshot`](super::HealthMonitor::snapshot).
///
/// # Examples
///
/// ```
/// use steadfast::health::{HealthMonitor, HealthStatus};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let monitor = HealthMonitor::default();
/// monitor.add_member(0usize);
/// monitor.add_member(1usize);
/// assert_eq!(monitor.snapshot().count(HealthStatus::Healthy), 2);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSnapshot {
    /// When it was taken.
    pub at: Instant,
    /// Every member, in no particular order.
    pub members: Vec<MemberHealth>,
}

impl HealthSnapshot {
    /// How many members have `status`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{HealthMonitor, HealthStatus};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let snapshot = HealthMonitor::default().snapshot();
    /// assert_eq!(snapshot.count(HealthStatus::Failed), 0);
    /// # }
    /// ```
    pub fn count(&self, status: HealthStatus) -> usize {
        self.members.iter().filter(|m| m.status == status).count()
    }
}

/// What a sweep ([`HealthMonitor::check_now`](super::HealthMonitor::check_now)) found.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::health::HealthMonitor;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let monitor = HealthMonitor::default();
/// monitor.add_member(0usize);
/// tokio::time::advance(Duration::from_secs(61)).await;
/// let summary = monitor.check_now();
/// assert_eq!((summary.members, summary.failed, summary.changes), (1, 1, 1));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepSummary {
    /// Members checked.
    pub members: usize,
    /// Members found Healthy.
    pub healthy: usize,
    /// Members found Unresponsive.
    pub unresponsive: usize,
    /// Members found Failed.
    pub failed: usize,
    /// Status changes made (and emitted) by this sweep.
    pub changes: usize,
}
