//! Errors of the health monitor: [`HealthError`].

use crate::health::MemberId;
use crate::retry::Transient;

/// What went wrong in a health-monitor call.
///
/// # Examples
///
/// ```
/// use steadfast::health::{HealthError, HealthMonitor, MemberId};
///
/// let monitor = HealthMonitor::default();
/// let err = monitor.heartbeat(7usize).unwrap_err();
/// assert!(matches!(err, HealthError::UnknownMember { ref member } if *member == MemberId::Rank(7)));
/// assert_eq!(err.to_string(), "heartbeat from rank 7, which is not a member of the monitor");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HealthError {
    /// A heartbeat came from a member that was never added (or was removed).
    #[error("heartbeat from {member}, which is not a member of the monitor")]
    UnknownMember {
        /// The member that is not known.
        member: MemberId,
    },
    /// A background task was asked for outside a tokio runtime.
    #[error("{task} needs a tokio runtime to run its background task")]
    NoRuntime {
        /// The task that could not start.
        task: &'static str,
        /// Why no runtime was found.
        #[source]
        source: tokio::runtime::TryCurrentError,
    },
}

/// No health error is transient: an unknown member stays unknown until it is
/// added, and a missing runtime does not appear by retrying.
impl Transient for HealthError {
    fn is_transient(&self) -> bool {
        false
    }
}
