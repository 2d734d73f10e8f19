//! [`ManagerError`]: everything that can go wrong in the checkpoint manager,
//! and [`IntegrityRejection`], an integrity check's refusal of a restore.
//!
//! Each variant carries the facts (which checkpoint, which state, which
//! check) and, where there is one, the error that caused it as its
//! [`source`](std::error::Error::source).

use crate::checkpoint::CheckpointError;
use crate::error::ConfigError;
use crate::retry::Transient;
use crate::storage::StorageError;

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
    // The manager's `State(#[from] StateError)` variant (a `Stateful`
    // snapshot or restore that failed) belongs here; `StateError` is defined
    // with `Stateful`.
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
