//! [`ManagerError`]: everything that can go wrong in the checkpoint manager,
//! and [`IntegrityRejection`], an integrity check's refusal of a restore.
//!
//! Each variant carries the facts (which checkpoint, which state, which
//! check) and, where there is one, the error that caused it as its
//! [`source`](std::error::Error::source).

use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::CheckpointError;
use crate::coordinator::CoordinatorError;
use crate::error::ConfigError;
use crate::retry::Transient;
use crate::storage::StorageError;

use super::stateful::StateError;

fn describe_skipped(skipped: &[(String, String)]) -> String {
    let parts: Vec<String> = skipped
        .iter()
        .map(|(name, why)| format!("{name}: {why}"))
        .collect();
    parts.join("; ")
}

/// An [`IntegrityCheck`](super::IntegrityCheck) refused the bytes of a state
/// about to be restored: which checkpoint, which state, which check, and
/// why.
///
/// # Examples
///
/// ```
/// use steadfast::manager::IntegrityRejection;
///
/// let rejection = IntegrityRejection {
///     checkpoint: "run/ckpt-0000000007".into(),
///     state: "model".into(),
///     check: "non_empty".into(),
///     reason: "the state is empty".into(),
/// };
/// assert_eq!(
///     rejection.to_string(),
///     "integrity check \"non_empty\" rejected state \"model\" of checkpoint \"run/ckpt-0000000007\": the state is empty"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "integrity check {check:?} rejected state {state:?} of checkpoint {checkpoint:?}: {reason}"
)]
pub struct IntegrityRejection {
    /// The checkpoint the state was read from.
    pub checkpoint: String,
    /// The state's registered name.
    pub state: String,
    /// The check's [`name`](super::IntegrityCheck::name).
    pub check: String,
    /// What the check said.
    pub reason: String,
}

/// What went wrong in the checkpoint manager.
///
/// # Examples
///
/// ```
/// use steadfast::manager::ManagerError;
/// use steadfast::retry::Transient;
///
/// let err = ManagerError::InvalidStateName {
///     name: "agent state".into(),
///     reason: "a state name holds letters, digits, '-', '_' and '.' only".into(),
/// };
/// assert!(err.to_string().contains("agent state"));
/// assert!(!err.is_transient());
///
/// let err: ManagerError = steadfast::ConfigError::new("checkpoint_interval", "must be greater than zero").into();
/// assert!(matches!(err, ManagerError::Config(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// A checkpoint operation (save, load, list, delete) failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A configuration value cannot work (a zero interval, a storage URL in a
    /// build without the `object-store` feature).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A state was registered under a name that is not a valid entry name.
    #[error("invalid state name {name:?}: {reason}")]
    InvalidStateName {
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// A [`Stateful`](super::Stateful) snapshot or restore failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A state of that name is already registered with this manager.
    #[error("a state named {name:?} is already registered")]
    DuplicateState {
        /// The name.
        name: String,
    },
    /// A checkpoint label is not a valid name segment.
    #[error("invalid checkpoint label {label:?}: {reason}")]
    InvalidLabel {
        /// The label as given.
        label: String,
        /// Why it was refused.
        reason: String,
    },
    /// A checkpoint holds no entry for a registered state.
    #[error(
        "checkpoint {checkpoint:?} holds no entry for state {state:?} (looked for {looked_for:?})"
    )]
    StateMissing {
        /// The checkpoint.
        checkpoint: String,
        /// The state's registered name.
        state: String,
        /// The entry names looked for.
        looked_for: Vec<String>,
    },
    /// Loading a checkpoint took longer than the manager's load timeout.
    #[error("loading checkpoint {checkpoint:?} took longer than the load timeout ({after:?})")]
    LoadTimeout {
        /// The checkpoint.
        checkpoint: String,
        /// The load timeout.
        after: Duration,
    },
    /// Exchanging a decision or a vote with the other ranks failed.
    #[error("coordinating {what} with the other ranks failed")]
    Coordination {
        /// What was being coordinated.
        what: String,
        /// The coordinator's error.
        #[source]
        source: CoordinatorError,
    },
    /// This rank no longer follows rank 0's decisions in order (it missed
    /// some, or the ranks call the manager differently).
    #[error("rank {rank} is out of step with rank 0: {reason}")]
    OutOfStep {
        /// This rank.
        rank: usize,
        /// What was found.
        reason: String,
    },
    /// A background save failed; `source` is the error its
    /// [`Failed`](super::CheckpointEvent::Failed) event carries.
    #[error("checkpoint {name:?} was not saved")]
    SaveFailed {
        /// The checkpoint's name.
        name: String,
        /// Why.
        #[source]
        source: Arc<ManagerError>,
    },
    /// A background save's task ended without an outcome (the runtime shut
    /// down while it ran).
    #[error("the save of checkpoint {name:?} was abandoned before it ended")]
    Abandoned {
        /// The checkpoint's name.
        name: String,
    },
    /// Another rank could not load or verify the checkpoint this rank
    /// loaded, so no rank restored it.
    #[error("checkpoint {checkpoint:?} cannot be restored on every rank: {reason}")]
    NotRestorableEverywhere {
        /// The checkpoint.
        checkpoint: String,
        /// Each failing rank and why.
        reason: String,
    },
    /// Every candidate checkpoint failed to load or verify; nothing was
    /// restored.
    #[error("no checkpoint could be restored ({} tried: {})", skipped.len(), describe_skipped(skipped))]
    NothingRestorable {
        /// Each checkpoint tried, newest first, and why it was skipped.
        skipped: Vec<(String, String)>,
    },
    /// An integrity check refused a state about to be restored; nothing was
    /// restored.
    #[error(transparent)]
    IntegrityRejected(#[from] IntegrityRejection),
    /// The storage named by a
    /// [`StorageLocation`](super::StorageLocation) could not be opened.
    #[error("cannot open checkpoint storage {location}")]
    StorageOpen {
        /// The path or URL, as configured.
        location: String,
        /// Why.
        #[source]
        source: StorageError,
    },
}

/// A checkpoint error is transient as its cause is, and so is a storage that
/// could not be opened; everything else (a bad configuration or name, a
/// rejected state) fails the same way when tried again.
impl Transient for ManagerError {
    fn is_transient(&self) -> bool {
        match self {
            ManagerError::Checkpoint(e) => e.is_transient(),
            ManagerError::StorageOpen { source, .. } => source.is_transient(),
            ManagerError::Coordination { source, .. } => source.is_transient(),
            ManagerError::SaveFailed { source, .. } => source.is_transient(),
            ManagerError::LoadTimeout { .. } => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn storage_open_keeps_its_source() {
        let err = ManagerError::StorageOpen {
            location: "/nowhere".into(),
            source: StorageError::NotFound { key: "x".into() },
        };
        assert_eq!(err.to_string(), "cannot open checkpoint storage /nowhere");
        assert!(err.source().is_some());
        assert!(!err.is_transient());
    }

    #[test]
    fn rejection_converts() {
        let err: ManagerError = IntegrityRejection {
            checkpoint: "c".into(),
            state: "s".into(),
            check: "k".into(),
            reason: "r".into(),
        }
        .into();
        assert!(matches!(err, ManagerError::IntegrityRejected(_)));
        assert!(err.to_string().contains("\"k\""));
    }

    #[test]
    fn errors_are_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<ManagerError>();
        assert_send_sync::<IntegrityRejection>();
    }
}
