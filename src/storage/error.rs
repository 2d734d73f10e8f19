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
    /// A replicated write, delete or read ([`ReplicatedStorage`](super::ReplicatedStorage))
    /// reached fewer replicas than its consistency level needs: `needed`
    /// replicas had to answer (or acknowledge), `succeeded` did, and
    /// `failures` says which replicas failed and why.
    #[error(
        "{operation} of {key:?} reached {succeeded} of the {needed} replicas it needs{}",
        describe_failures(failures)
    )]
    QuorumNotReached {
        /// The operation (`"put"`, `"list"`, ...).
        operation: &'static str,
        /// The key (the prefix, for `list`).
        key: String,
        /// How many replicas had to succeed.
        needed: u32,
        /// How many did.
        succeeded: u32,
        /// The replicas that failed, each with its error (boxed, so that
        /// the error stays small).
        failures: Box<[ReplicaFailure]>,
    },
    /// Every replica that holds the key holds a copy that does not verify
    /// (short, damaged, or unreadable): no bytes are returned.
    #[error(
        "no replica holds a verified copy of {key:?}{}",
        describe_failures(failures)
    )]
    NoVerifiedCopy {
        /// The key.
        key: String,
        /// Each copy tried, with what was wrong with it.
        failures: Box<[ReplicaFailure]>,
    },
    /// One replica's copy does not match its footer (its length, digest or
    /// format): found by a replicated read, which then tries another copy.
    #[error("the copy of {key:?} on replica #{replica} is damaged: {reason}")]
    CorruptCopy {
        /// The key.
        key: String,
        /// The replica's index (its place in the order replicas were added).
        replica: usize,
        /// What does not match.
        reason: String,
    },
    /// `put_if_absent` on a [`ReplicatedStorage`](super::ReplicatedStorage)
    /// at `ConsistencyLevel::One`, which cannot keep create-if-absent
    /// across replicas (two writers could each win on a different replica),
    /// without the opt-in `allow_put_if_absent_at_one`.
    #[error(
        "put_if_absent of {key:?} refused: at consistency level `one` two writers could both \
         win on different replicas; use `quorum` or `all`, or opt in with \
         `allow_put_if_absent_at_one`"
    )]
    ConditionalWriteNeedsQuorum {
        /// The key.
        key: String,
    },
}

/// One replica's failure in a replicated operation: which replica, and its
/// error.
///
/// # Examples
///
/// ```
/// use steadfast::storage::{ReplicaFailure, StorageError};
///
/// let failure = ReplicaFailure {
///     replica: "#2 (rack-c)".into(),
///     error: Box::new(StorageError::NotFound { key: "k".into() }),
/// };
/// assert_eq!(failure.to_string(), "replica #2 (rack-c): no object under key \"k\"");
/// ```
#[derive(Debug)]
pub struct ReplicaFailure {
    /// The replica, as `#<index>` and its failure domain.
    pub replica: String,
    /// What it answered.
    pub error: Box<StorageError>,
}

impl std::fmt::Display for ReplicaFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "replica {}: {}", self.replica, self.error)
    }
}

fn describe_failures(failures: &[ReplicaFailure]) -> String {
    if failures.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = failures.iter().map(ToString::to_string).collect();
    format!(" ({})", parts.join("; "))
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
            StorageError::QuorumNotReached { failures, .. }
            | StorageError::NoVerifiedCopy { failures, .. } => {
                failures.iter().any(|f| f.error.is_transient())
            }
            _ => false,
        }
    }
}
