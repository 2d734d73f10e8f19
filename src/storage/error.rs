//! The errors of storage operations: [`StorageError`], and the [`Result`]
//! type that every storage method returns.

use std::io;

use crate::retry::Transient;

/// The result type of storage operations.
///
/// # Examples
///
/// ```
/// use steadfast::storage::{Result, StorageError};
///
/// fn check(key: &str) -> Result<()> {
///     steadfast::storage::validate_key(key)
/// }
/// assert!(matches!(check("../x"), Err(StorageError::InvalidKey { .. })));
/// ```
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// What went wrong in a storage operation.
///
/// # Examples
///
/// ```
/// use steadfast::storage::StorageError;
/// use steadfast::retry::Transient;
///
/// let err = StorageError::NotFound { key: "a/b".into() };
/// assert!(!err.is_transient());
/// assert_eq!(err.to_string(), "no object under key \"a/b\"");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The key (or list prefix) was refused before any I/O.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// No object under the key.
    #[error("no object under key {key:?}")]
    NotFound {
        /// The key.
        key: String,
    },
    /// `put_if_absent` found an object already there.
    #[error("an object already exists under key {key:?}")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// A ranged read ([`get_range`](super::CheckpointStorage::get_range))
    /// asked for bytes the object does not have: a range that ends past the
    /// object's end, or that ends before it starts.
    #[error("range {start}..{end} is outside object {key:?} of {size} bytes")]
    RangeOutOfBounds {
        /// The key.
        key: String,
        /// The first byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// The object's size.
        size: u64,
    },
    /// An object's length differs from what its metadata says (a truncated
    /// or growing file).
    #[error("object {key:?} has {actual} bytes where {expected} were expected")]
    LengthMismatch {
        /// The key.
        key: String,
        /// The length expected.
        expected: u64,
        /// The length found.
        actual: u64,
    },
    /// An I/O error on the object under `key`.
    #[error("I/O error on {key:?} during {operation}")]
    Io {
        /// The key.
        key: String,
        /// The operation (`"put"`, `"get"`, ...).
        operation: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A fault injected by a test storage.
    #[error("injected fault in {operation} of {key:?}{}", if *.transient { " (transient)" } else { "" })]
    Injected {
        /// The operation the fault hit.
        operation: &'static str,
        /// The key.
        key: String,
        /// Whether a retry may succeed.
        transient: bool,
    },
    /// An error of a storage backend (an object store, say).
    #[error("storage backend error on {key:?}: {message}")]
    Backend {
        /// The key, or the prefix.
        key: String,
        /// What went wrong.
        message: String,
        /// Whether a retry may succeed.
        transient: bool,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// I/O errors are transient by kind (see the [`Transient`] implementation for
/// [`io::Error`]); injected and backend errors say whether they are; invalid
/// keys, missing objects, existing objects and length mismatches are not.
impl Transient for StorageError {
    fn is_transient(&self) -> bool {
        match self {
            StorageError::Io { source, .. } => source.is_transient(),
            StorageError::Injected { transient, .. } | StorageError::Backend { transient, .. } => {
                *transient
            }
            _ => false,
        }
    }
}
