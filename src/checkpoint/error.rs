//! [`CheckpointError`]: everything that can go wrong when saving, loading,
//! listing or deleting a checkpoint.
//!
//! Each variant carries the facts (which checkpoint, which shard, which ranks,
//! the expected and the actual digest) and, where there is one, the error that
//! caused it as its [`source`](std::error::Error::source).
//!
//! The module's internal failures live here too: a shard write or read
//! that failed (retried, then mapped to a [`CheckpointError`]), and a rank's
//! or rank 0's part of a save that failed (reported to every rank, then
//! returned by each as the same [`CheckpointError`]).

use std::time::Duration;

use crate::coordinator::CoordinatorError;
use crate::retry::Transient;
use crate::storage::StorageError;

use super::tally::FailureKind;

/// The result type of checkpoint operations.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{validate_name, CheckpointError, Result};
///
/// fn named(name: &str) -> Result<String> {
///     validate_name(name)?;
///     Ok(name.to_string())
/// }
/// assert!(matches!(named("a/../b"), Err(CheckpointError::InvalidName { .. })));
/// ```
pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;

/// What went wrong with a checkpoint.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::CheckpointError;
/// use steadfast::retry::Transient;
///
/// let err = CheckpointError::Corrupted {
///     name: "step-100".into(),
///     shard: "step-100/shard-00001-of-00002.bin".into(),
///     expected: "sha256 0a1b".into(),
///     actual: "sha256 ffee".into(),
/// };
/// assert!(err.to_string().contains("shard-00001-of-00002.bin"));
/// assert!(!err.is_transient());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A save failed on one or more ranks (or, for a single-object save, with
    /// no ranks at all) and was rolled back. Every rank of a distributed save
    /// returns this same error with the same `failed_ranks` and `reason`; the
    /// ranks that failed themselves also carry their own cause as `source`.
    ///
    /// One case is not rolled back: when writing the manifest failed and
    /// rank 0 could not read it back to see whether it was stored anyway,
    /// the reason says the outcome is unknown and every shard is kept. The
    /// checkpoint is then either committed and whole, or not visible and
    /// left for
    /// [`cleanup_uncommitted`](crate::checkpoint::DistributedCheckpoint::cleanup_uncommitted).
    #[error("saving checkpoint {name:?} failed (failed ranks: {failed_ranks:?}): {reason}")]
    SaveFailed {
        /// The checkpoint name (or, for a single-object save, the key).
        name: String,
        /// The ranks whose part of the save failed; empty for a single-object
        /// save.
        failed_ranks: Vec<usize>,
        /// What went wrong, rank by rank.
        reason: String,
        /// This rank's own cause, when this rank is one of those that failed.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A checkpoint could not be read (a storage failure after retries, or a
    /// request that does not fit the checkpoint, such as a world size that
    /// differs from the one that saved it).
    #[error("loading checkpoint {name:?} failed: {reason}")]
    LoadFailed {
        /// The checkpoint name.
        name: String,
        /// What went wrong.
        reason: String,
        /// The storage error, when the storage failed.
        #[source]
        source: Option<StorageError>,
    },
    /// A manifest is well-formed but describes something impossible: a shard
    /// key outside the checkpoint, a rank listed twice, an entry outside its
    /// shard. Also returned when a save is refused before it starts.
    #[error("checkpoint {name:?} is invalid: {reason}")]
    ValidationFailed {
        /// The checkpoint name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Stored bytes are not what the manifest promised: a size or a SHA-256
    /// digest differs, or the manifest itself is damaged.
    #[error("checkpoint {name:?} is corrupted: {shard:?} should have {expected}, has {actual}")]
    Corrupted {
        /// The checkpoint name.
        name: String,
        /// The key of the damaged object (a shard or the manifest).
        shard: String,
        /// What was expected (`"sha256 <hex>"`, `"1024 bytes"`, ...).
        expected: String,
        /// What was found.
        actual: String,
    },
    /// The manifest was written by a newer format than this build reads.
    #[error("checkpoint {name:?} has format version {found}; this build reads versions up to {supported}")]
    IncompatibleVersion {
        /// The checkpoint name.
        name: String,
        /// The version found in the manifest.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// Some ranks did not arrive at a collective step of a save in time; the
    /// save was rolled back.
    ///
    /// The exception is a rank that timed out waiting for rank 0's commit
    /// outcome and found no manifest in storage within the timeout either: it
    /// cannot know whether the commit will still land, so it keeps its shard
    /// and returns this error. [`DistributedCheckpoint::manifest`] tells later
    /// whether the checkpoint was committed; if not,
    /// [`DistributedCheckpoint::cleanup_uncommitted`] removes the leftovers.
    ///
    /// [`DistributedCheckpoint::manifest`]: crate::checkpoint::DistributedCheckpoint::manifest
    /// [`DistributedCheckpoint::cleanup_uncommitted`]: crate::checkpoint::DistributedCheckpoint::cleanup_uncommitted
    #[error("checkpoint {name:?}: ranks {missing_ranks:?} did not arrive within {after:?}")]
    Timeout {
        /// The checkpoint name.
        name: String,
        /// How long the ranks waited.
        after: Duration,
        /// The ranks that did not arrive.
        missing_ranks: Vec<usize>,
        /// The coordinator's error.
        #[source]
        source: CoordinatorError,
    },
    /// A storage operation failed.
    #[error("checkpoint storage operation failed: {0}")]
    Storage(#[source] StorageError),
    /// A coordinator operation failed.
    #[error("checkpoint coordination failed: {0}")]
    Coordinator(#[source] CoordinatorError),
    /// No committed checkpoint of that name.
    #[error("no committed checkpoint named {name:?}")]
    NotFound {
        /// The checkpoint name.
        name: String,
    },
    /// A committed checkpoint of that name exists already; it was left as it
    /// is.
    #[error("a checkpoint named {name:?} already exists")]
    AlreadyExists {
        /// The checkpoint name.
        name: String,
    },
    /// The checkpoint has no entry of that name.
    #[error("checkpoint {name:?} has no entry named {entry:?}")]
    EntryNotFound {
        /// The checkpoint name.
        name: String,
        /// The entry asked for.
        entry: String,
    },
    /// A chunk collection deleted nothing: a committed checkpoint's manifest
    /// or chunk index cannot be read or verified, so the chunks it refers to
    /// are unknown.
    #[error("collecting chunks refused: {reason}")]
    CollectionRefused {
        /// Which checkpoint, what could not be read, and why.
        reason: String,
    },
    /// The committer was fenced: the job moved to a newer epoch or
    /// leadership, or the committer lost its liveness, before it confirmed
    /// the commit. Its manifest was deleted (or is ignored) and the save
    /// failed on every rank.
    #[error("checkpoint {name:?} was not committed: {source}")]
    Fenced {
        /// The checkpoint name.
        name: String,
        /// What the fence said.
        #[source]
        source: super::FenceError,
    },
    /// The checkpoint's manifest is stored, but its commit was never
    /// confirmed through the job's fence: it was written by a fenced
    /// committer, or by one that died before confirming. The job does not
    /// read it.
    #[error("checkpoint {name:?} is stored but its commit was never confirmed")]
    Unconfirmed {
        /// The checkpoint name.
        name: String,
    },
    /// The checkpoint name is not a valid storage key, or is reserved.
    #[error("invalid checkpoint name {name:?}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it was refused.
        #[source]
        source: StorageError,
    },
}

impl CheckpointError {
    /// The ranks this error blames: the failed ranks of a
    /// [`SaveFailed`](CheckpointError::SaveFailed), the missing ranks of a
    /// [`Timeout`](CheckpointError::Timeout) or of a coordinator timeout;
    /// empty otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::CheckpointError;
    ///
    /// let err = CheckpointError::SaveFailed {
    ///     name: "step-7".into(),
    ///     failed_ranks: vec![2],
    ///     reason: "rank 2: disk full".into(),
    ///     source: None,
    /// };
    /// assert_eq!(err.ranks(), &[2]);
    /// ```
    pub fn ranks(&self) -> &[usize] {
        match self {
            CheckpointError::SaveFailed { failed_ranks, .. } => failed_ranks,
            CheckpointError::Timeout { missing_ranks, .. } => missing_ranks,
            CheckpointError::Coordinator(e) => e.missing_ranks(),
            _ => &[],
        }
    }
}

/// Storage and coordinator errors are transient as their cause is, and so is
/// a load that failed on a transient storage error; a timeout is transient
/// (the missing rank may come back). Everything else is permanent: a failed
/// save already used up its retries, and corrupted or invalid checkpoints do
/// not heal.
impl Transient for CheckpointError {
    fn is_transient(&self) -> bool {
        match self {
            CheckpointError::Storage(e) => e.is_transient(),
            CheckpointError::Coordinator(e) => e.is_transient(),
            CheckpointError::LoadFailed {
                source: Some(e), ..
            } => e.is_transient(),
            CheckpointError::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// `error` followed by those of its sources whose text it does not already
/// contain, joined by `": "`: one line that says everything.
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

impl From<StorageError> for CheckpointError {
    fn from(e: StorageError) -> Self {
        CheckpointError::Storage(e)
    }
}

impl From<CoordinatorError> for CheckpointError {
    fn from(e: CoordinatorError) -> Self {
        CheckpointError::Coordinator(e)
    }
}

/// An attempt to write a shard failed (internal: a save reports it inside
/// [`CheckpointError::SaveFailed`]).
#[derive(Debug, thiserror::Error)]
pub(super) enum WriteError {
    /// The storage failed.
    #[error("{0}")]
    Storage(#[source] StorageError),
    /// Reading the caller's stream failed.
    #[error("reading the shard's source failed: {0}")]
    Source(#[source] std::io::Error),
    /// Compressing a frame failed (zstd's own error, or its task did not
    /// finish).
    #[error("compressing a frame failed: {0}")]
    Compress(String),
    /// Writing a chunk failed, after its own retries.
    #[error("writing chunk {key:?} failed: {source}")]
    Chunk {
        /// The chunk's key.
        key: String,
        /// The storage's last error.
        #[source]
        source: StorageError,
    },
}

impl Transient for WriteError {
    fn is_transient(&self) -> bool {
        match self {
            WriteError::Storage(e) => e.is_transient(),
            WriteError::Source(e) => e.is_transient(),
            WriteError::Compress(_) | WriteError::Chunk { .. } => false,
        }
    }
}

/// An attempt to read a shard failed (internal: a load reports it as
/// [`CheckpointError::Corrupted`] or [`CheckpointError::LoadFailed`]).
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// The storage failed.
    #[error("{0}")]
    Storage(#[source] StorageError),
    /// The bytes are not what the manifest promised.
    #[error("expected {expected}, found {actual}")]
    Mismatch {
        /// What the manifest promised (`"sha256 <hex>"`, `"8 bytes"`).
        expected: String,
        /// What was found.
        actual: String,
    },
}

impl Transient for ReadError {
    fn is_transient(&self) -> bool {
        match self {
            ReadError::Storage(e) => e.is_transient(),
            ReadError::Mismatch { .. } => false,
        }
    }
}

/// A boxed cause, as [`CheckpointError::SaveFailed`] carries it.
pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a rank's part of a save failed, with the cause when there is one.
#[derive(Debug)]
pub(super) struct LocalFailure {
    /// What kind of failure (the others act on it).
    pub(super) kind: FailureKind,
    /// What went wrong, for the other ranks.
    pub(super) reason: String,
    /// The cause, which stays on this rank.
    pub(super) source: Option<BoxError>,
}

impl LocalFailure {
    /// A failure of kind [`FailureKind::Failed`].
    pub(super) fn failed(reason: String, source: Option<BoxError>) -> Self {
        LocalFailure {
            kind: FailureKind::Failed,
            reason,
            source,
        }
    }
}

/// Why rank 0's commit did not succeed, as all ranks will report it.
#[derive(Debug)]
pub(super) enum CommitFailure {
    /// Another manifest is stored under the name.
    AlreadyExists,
    /// No manifest of this save is stored: the save is rolled back.
    Failed {
        failed_ranks: Vec<usize>,
        reason: String,
        source: Option<BoxError>,
    },
    /// Writing the manifest failed, and whether it was stored anyway could
    /// not be found out: every shard stays, since a manifest may list it.
    Unknown {
        reason: String,
        source: Option<BoxError>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn sources_are_chained() {
        let err = CheckpointError::Storage(StorageError::NotFound { key: "a/b".into() });
        assert!(err.source().is_some());
        let err = CheckpointError::Timeout {
            name: "x".into(),
            after: Duration::from_secs(1),
            missing_ranks: vec![3],
            source: CoordinatorError::Timeout {
                operation: "all_gather",
                after: Duration::from_secs(1),
                missing: vec![3],
            },
        };
        assert_eq!(err.ranks(), &[3]);
        assert!(err.source().is_some());
        assert!(err.is_transient());
    }

    #[test]
    fn transient_follows_the_cause() {
        let transient = StorageError::Injected {
            operation: "put",
            key: "k".into(),
            transient: true,
        };
        assert!(CheckpointError::Storage(transient).is_transient());
        assert!(!CheckpointError::NotFound { name: "x".into() }.is_transient());
        assert!(!CheckpointError::SaveFailed {
            name: "x".into(),
            failed_ranks: vec![1],
            reason: "r".into(),
            source: None
        }
        .is_transient());
    }

    #[test]
    fn describe_follows_the_chain_once() {
        let err = StorageError::Io {
            key: "k".into(),
            operation: "put",
            source: std::io::Error::other("disk on fire"),
        };
        assert_eq!(
            describe(&err),
            "I/O error on \"k\" during put: disk on fire"
        );
        let wrapped = CheckpointError::Storage(err);
        // The wrapper's text already holds the storage error's.
        assert_eq!(
            describe(&wrapped),
            "checkpoint storage operation failed: I/O error on \"k\" during put: disk on fire"
        );
    }

    #[test]
    fn errors_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<CheckpointError>();
    }
}
