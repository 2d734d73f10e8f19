//! [`MemberEvent`]: a change in the membership of a job, as a coordinator
//! that tracks liveness reports it (the etcd coordinator's member watch),
//! and as the health monitor consumes it
//! (`HealthMonitor::follow_members`).

/// A change in the membership of a job.
///
/// A coordinator that tracks the liveness of its ranks reports them as a
/// stream (`EtcdCoordinator::watch_members`, feature `etcd`, yields them);
/// a health monitor follows such a stream
/// (`HealthMonitor::follow_members`). The events say nothing about how
/// liveness is tracked, so that any coordinator can produce them.
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::MemberEvent;
///
/// let event = MemberEvent::Left { rank: 2, graceful: false };
/// assert_eq!(event.rank(), 2);
/// assert!(event.is_failure());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberEvent {
    /// The rank is alive: it connected (or was there when the watch
    /// started). For etcd: its member key exists.
    Joined {
        /// The rank.
        rank: usize,
    },
    /// The rank is gone. For etcd: its member key is.
    Left {
        /// The rank.
        rank: usize,
        /// `true` when the rank left on purpose (for etcd:
        /// `EtcdCoordinator::shutdown`); `false` when it failed (for etcd:
        /// its lease expired: its process died, hung, or lost etcd for
        /// longer than the TTL).
        graceful: bool,
    },
}

impl MemberEvent {
    /// The rank the event is about.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::MemberEvent;
    /// assert_eq!(MemberEvent::Joined { rank: 1 }.rank(), 1);
    /// ```
    pub fn rank(&self) -> usize {
        match *self {
            MemberEvent::Joined { rank } | MemberEvent::Left { rank, .. } => rank,
        }
    }

    /// Whether the event says the rank failed: it left without shutting
    /// down.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::MemberEvent;
    /// assert!(!MemberEvent::Left { rank: 0, graceful: true }.is_failure());
    /// ```
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            MemberEvent::Left {
                graceful: false,
                ..
            }
        )
    }
}
