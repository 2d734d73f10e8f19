//! [`CoordinatorError`]: what went wrong in a coordinator operation, with the
//! facts (which operation, after how long, which ranks did not arrive).

use std::time::Duration;

use crate::retry::Transient;

/// The result type of coordinator operations.
pub type Result<T, E = CoordinatorError> = std::result::Result<T, E>;

/// What went wrong in a coordinator operation.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::CoordinatorError;
///
/// let err = CoordinatorError::Timeout {
///     operation: "barrier",
///     after: Duration::from_secs(5),
///     missing: vec![2, 3],
/// };
/// assert_eq!(err.missing_ranks(), &[2, 3]);
/// assert!(err.to_string().contains("[2, 3]"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// The operation did not complete in time; `missing` lists the ranks that
    /// did not arrive (empty when the operation waited on no specific rank).
    #[error("{operation} timed out after {after:?}; ranks that did not arrive: {missing:?}")]
    Timeout {
        /// The operation that timed out (`"barrier"`, `"all_gather"`, ...).
        operation: &'static str,
        /// How long it waited.
        after: Duration,
        /// The ranks that did not arrive.
        missing: Vec<usize>,
    },
    /// A round of a collective failed for another rank (it timed out there),
    /// so it cannot complete here either.
    #[error("{operation} round {round} is broken; ranks that did not arrive: {missing:?}")]
    Broken {
        /// The collective operation.
        operation: &'static str,
        /// The round (generation) of the collective.
        round: u64,
        /// The ranks that did not arrive in that round.
        missing: Vec<usize>,
    },
    /// A rank number outside `0..world_size`.
    #[error("rank {rank} is out of range for a world of {world_size} ranks")]
    InvalidRank {
        /// The rank asked for.
        rank: usize,
        /// The world size.
        world_size: usize,
    },
    /// An argument was refused (an empty signal key, say).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The coordination service could not be reached or answered with a
    /// transient failure; retrying may succeed.
    #[error("coordinator unavailable: {message}")]
    Unavailable {
        /// What the backend said.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Ranks of the current epoch failed (their process died, their lease
    /// expired, or someone declared them failed) while a collective waited
    /// for them: the collective cannot complete, on any rank.
    #[error("{operation} cannot complete: ranks {ranks:?} failed ({reason})")]
    RanksFailed {
        /// The collective operation.
        operation: &'static str,
        /// The ranks that failed (boxed, as `reason`, to keep the error
        /// small).
        ranks: Box<[usize]>,
        /// What is known of the failure.
        reason: Box<str>,
    },
    /// This handle may no longer act for the job: its epoch is not the
    /// job's current one, it lost its liveness (for etcd, its lease), or it
    /// no longer holds the leadership it wrote under. Nothing was written.
    #[error("fenced in epoch {epoch}: {reason}")]
    Fenced {
        /// The epoch this handle acted under.
        epoch: u64,
        /// Which check failed.
        reason: String,
    },
    /// This member holds no rank in the epoch (it is a standby, or the
    /// epoch left it out).
    #[error("member {member:?} holds no rank in epoch {epoch}")]
    NotAMember {
        /// The member id.
        member: String,
        /// The epoch.
        epoch: u64,
    },
    /// A permanent failure of the backend.
    #[error("coordinator backend error: {message}")]
    Backend {
        /// What went wrong.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl CoordinatorError {
    /// The ranks that did not arrive, for a timeout or a broken round, or
    /// that failed, for [`CoordinatorError::RanksFailed`]; empty otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::CoordinatorError;
    /// let err = CoordinatorError::InvalidRank { rank: 9, world_size: 4 };
    /// assert!(err.missing_ranks().is_empty());
    /// ```
    pub fn missing_ranks(&self) -> &[usize] {
        match self {
            CoordinatorError::Timeout { missing, .. }
            | CoordinatorError::Broken { missing, .. } => missing,
            CoordinatorError::RanksFailed { ranks, .. } => &ranks[..],
            _ => &[],
        }
    }

    /// A transient "unavailable" error with a message, for implementations
    /// and fault injection.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::CoordinatorError;
    /// use steadfast::retry::Transient;
    /// assert!(CoordinatorError::unavailable("connection reset").is_transient());
    /// ```
    pub fn unavailable(message: impl Into<String>) -> Self {
        CoordinatorError::Unavailable {
            message: message.into(),
            source: None,
        }
    }
}

/// Timeouts, broken rounds and unavailability are transient; invalid ranks,
/// invalid arguments, backend errors, failed ranks (the round cannot
/// complete in this epoch), fencing and a missing rank are not.
impl Transient for CoordinatorError {
    fn is_transient(&self) -> bool {
        matches!(
            self,
            CoordinatorError::Timeout { .. }
                | CoordinatorError::Broken { .. }
                | CoordinatorError::Unavailable { .. }
        )
    }
}

/// A coordinator call that had not returned a grace period after its own
/// timeout, and was abandoned by [`bound_call`](super::bound_call).
///
/// A coordinator that honours its timeout never causes it: it returns
/// [`CoordinatorError::Timeout`] first, naming the missing ranks. Callers
/// map it to their own error ([`FaultTolerant`](super::FaultTolerant) to a
/// [`CoordinatorError::Timeout`] with no ranks named,
/// [`TimeoutHandler`](crate::timeout::TimeoutHandler) to
/// [`TimeoutError::Elapsed`](crate::timeout::TimeoutError::Elapsed)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::Abandoned;
///
/// let err = Abandoned { operation: "barrier", after: Duration::from_secs(6) };
/// assert_eq!(err.to_string(), "barrier did not return within 6s (its timeout and grace); abandoned");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{operation} did not return within {after:?} (its timeout and grace); abandoned")]
pub struct Abandoned {
    /// The operation (`"barrier"`, `"all_gather"`, ...).
    pub operation: &'static str,
    /// How long it was waited for: its timeout plus the grace.
    pub after: Duration,
}
