//! [`DistributedCheckpoint`]: a sharded checkpoint saved by every rank of a
//! job and committed by rank 0's manifest.
//!
//! The save protocol is described on [`DistributedCheckpoint`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::io;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::coordinator::{Coordinator, CoordinatorError};
use crate::retry::{RetryError, RetryPolicy, Transient};
use crate::storage::{Bytes, CheckpointStorage, ObjectMeta, ObjectWriter, StorageError};

use super::error::{describe, CheckpointError, Result};
use super::manifest::{
    is_shard_file_name, manifest_key, shard_key, to_hex, unix_millis_now, validate_name,
    CheckpointInfo, Manifest, ShardInfo, MANIFEST_FILE_NAME,
};
use super::options::{CheckpointOptions, LoadOptions, SaveOptions};
use super::rollback::{
    delete_object, remove_checkpoint, sweep_uncommitted, CleanupReport, RetentionReport,
    RollbackReport,
};
use super::shard::ShardData;

const TARGET: &str = "steadfast::checkpoint";

/// Bounds of the pause between two reads of the manifest by a rank that
/// waits for a commit it did not hear.
const MANIFEST_POLL_MIN: Duration = Duration::from_millis(10);
const MANIFEST_POLL_MAX: Duration = Duration::from_secs(5);

/// How many shards rank 0 checks at once before it commits.
const SHARD_CHECKS_AT_ONCE: usize = 16;

/// Sharded checkpoints of a distributed job: each rank saves and loads its
/// own shard; rank 0 commits.
///
/// Build one per rank, with that rank's [`Coordinator`] handle and a storage
/// every rank can reach. Every rank must call [`save`](Self::save) (or
/// [`save_stream`](Self::save_stream)) with the same name and options, in the
/// same order as its other collective operations. Loading, listing and
/// deleting need no coordination.
///
/// # The save protocol
///
/// 1. Each rank checks that no checkpoint of that name is committed (rank 0
///    also checks that the name does not nest inside, or around, another
///    checkpoint), then writes its shard through
///    [`put_stream`](crate::storage::CheckpointStorage::put_stream) under the
///    retry policy, computing the SHA-256 in the same pass. The shard key
///    carries a random token, so that no save ever overwrites another save's
///    shard.
/// 2. The ranks exchange what they wrote, or why they failed
///    ([`all_gather`](crate::coordinator::Coordinator::all_gather)). Every rank
///    decides from the same gathered reports, so every rank reaches the same
///    decision: if any rank failed, all roll back and return the same error,
///    naming the failed ranks.
/// 3. Rank 0 checks that every shard is in storage with its size, and writes
///    the manifest with
///    [`put_if_absent`](crate::storage::CheckpointStorage::put_if_absent): the
///    commit point. An existing checkpoint of that name is never overwritten.
///    If checking the shards took longer than [`SaveOptions::timeout`], the
///    other ranks may have stopped waiting, so rank 0 does not write the
///    manifest and the save fails.
///    A write that fails may still have stored the manifest (the answer was
///    lost after the write landed), so rank 0 reads the key back before
///    calling the save failed: its own manifest there is a commit. If that
///    read fails too, the outcome is unknown: every rank returns
///    [`CheckpointError::SaveFailed`] saying so and keeps its shard, so that
///    the storage holds either a whole checkpoint or leftovers for
///    [`DistributedCheckpoint::cleanup_uncommitted`], never a manifest whose
///    shards were deleted.
/// 4. The ranks exchange the commit outcome, and all return it.
///
/// A rank that does not arrive at an exchange within
/// [`SaveOptions::timeout`] is named by the others'
/// [`CheckpointError::Timeout`]; they roll back. Rolling back deletes each
/// rank's own shard, and rank 0 also deletes every object found by listing
/// the checkpoint's prefix (unless a manifest is there). Only the objects
/// directly under `NAME/` are the checkpoint's: keys further down belong to
/// other names (a save of `NAME/x` in progress, say) and are never deleted.
///
/// Should the final exchange fail (a rank vanished at that very moment, or
/// rank 0's commit took longer than the timeout), a rank that did not hear
/// the outcome reads the manifest from storage, and when the exchange failed
/// because a rank was late, keeps reading it for up to
/// [`SaveOptions::timeout`] more while it is absent: if it is there and lists
/// this rank's shard, the save succeeded. Otherwise the outcome is unknown to
/// that rank; it returns the timeout and leaves its shard in place (never
/// deleting a shard that a manifest may reference), for
/// [`DistributedCheckpoint::cleanup_uncommitted`] to remove should no
/// manifest ever appear. Only a commit slower than twice the timeout can
/// leave rank 0 returning success while such a rank returns the timeout; the
/// checkpoint is then whole, since no rank deleted anything.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, LoadOptions, SaveOptions, ShardData};
/// use steadfast::coordinator::InMemoryCoordinator;
/// use steadfast::retry::RetryPolicy;
/// use steadfast::storage::MemoryStorage;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
/// let storage = MemoryStorage::new();
/// let mut tasks = Vec::new();
/// for coordinator in InMemoryCoordinator::new(2) {
///     let ckpt = DistributedCheckpoint::new(
///         storage.clone(),
///         coordinator,
///         RetryPolicy::default(),
///         CheckpointOptions::default(),
///     );
///     tasks.push(tokio::spawn(async move {
///         let rank = ckpt.rank();
///         let shard = ShardData::new().with_entry(format!("weights.{rank}"), vec![rank as u8; 8]);
///         ckpt.save("step-100", &shard, SaveOptions::new().step(100)).await?;
///         ckpt.load("step-100", LoadOptions::default()).await
///     }));
/// }
/// for (rank, task) in tasks.into_iter().enumerate() {
///     assert_eq!(task.await.unwrap()?, vec![rank as u8; 8]);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DistributedCheckpoint<S, C> {
    storage: S,
    coordinator: C,
    retry: RetryPolicy,
    options: CheckpointOptions,
}

/// What a rank tells the others after its write.
#[derive(Debug, Serialize, Deserialize)]
enum RankReport {
    Written {
        name: String,
        key: String,
        size: u64,
        sha256: String,
        /// Entry name, offset, length.
        entries: Vec<(String, u64, u64)>,
    },
    Failed {
        name: String,
        kind: FailureKind,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum FailureKind {
    /// A committed checkpoint of that name exists.
    AlreadyExists,
    /// Anything else.
    Failed,
}

/// What rank 0 tells the others after trying to commit.
#[derive(Debug, Serialize, Deserialize)]
enum CommitOutcome {
    Committed {
        created_at: u64,
    },
    AlreadyExists,
    Failed {
        failed_ranks: Vec<usize>,
        reason: String,
    },
    /// The manifest write failed and rank 0 could not find out whether it
    /// landed: nothing may be rolled back.
    Unknown {
        reason: String,
    },
}

/// A rank's own shard, written.
#[derive(Debug)]
struct Written {
    key: String,
    size: u64,
    sha256: String,
    entries: Vec<(String, u64, u64)>,
}

/// Why a rank's part of a save failed, with the cause when there is one.
#[derive(Debug)]
struct LocalFailure {
    kind: FailureKind,
    reason: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl LocalFailure {
    fn failed(reason: String, source: Option<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        LocalFailure {
            kind: FailureKind::Failed,
            reason,
            source,
        }
    }
}

/// Why rank 0's commit did not succeed, as all ranks will report it.
#[derive(Debug)]
enum CommitFailure {
    /// Another manifest is stored under the name.
    AlreadyExists,
    /// No manifest of this save is stored: the save is rolled back.
    Failed {
        failed_ranks: Vec<usize>,
        reason: String,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Writing the manifest failed, and whether it was stored anyway could
    /// not be found out: every shard stays, since a manifest may list it.
    Unknown {
        reason: String,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// An attempt to write a shard failed.
#[derive(Debug)]
enum WriteError {
    Storage(StorageError),
    /// Reading the caller's stream failed.
    Source(io::Error),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Storage(e) => write!(f, "{e}"),
            WriteError::Source(e) => write!(f, "reading the shard's source failed: {e}"),
        }
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WriteError::Storage(e) => Some(e),
            WriteError::Source(e) => Some(e),
        }
    }
}

impl Transient for WriteError {
    fn is_transient(&self) -> bool {
        match self {
            WriteError::Storage(e) => e.is_transient(),
            WriteError::Source(e) => e.is_transient(),
        }
    }
}

/// An attempt to read a shard failed.
#[derive(Debug)]
enum ReadError {
    Storage(StorageError),
    /// The bytes are not what the manifest promised.
    Mismatch {
        expected: String,
        actual: String,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Storage(e) => write!(f, "{e}"),
            ReadError::Mismatch { expected, actual } => {
                write!(f, "expected {expected}, found {actual}")
            }
        }
    }
}

impl Transient for ReadError {
    fn is_transient(&self) -> bool {
        match self {
            ReadError::Storage(e) => e.is_transient(),
            ReadError::Mismatch { .. } => false,
        }
    }
}

/// A storage error from an I/O error of a storage's reader: the storage's own
/// error when the reader wrapped one in the I/O error, an I/O error on `key`
/// otherwise.
fn storage_error_from_io(key: &str, operation: &'static str, e: io::Error) -> StorageError {
    let io = |source| StorageError::Io {
        key: key.to_string(),
        operation,
        source,
    };
    if !e.get_ref().is_some_and(|inner| inner.is::<StorageError>()) {
        return io(e);
    }
    let kind = e.kind();
    match e.into_inner().map(|inner| inner.downcast::<StorageError>()) {
        Some(Ok(storage)) => *storage,
        Some(Err(other)) => io(io::Error::new(kind, other)),
        None => io(io::Error::from(kind)),
    }
}

/// A storage stream being written, hashed as it goes.
///
/// Bytes gather in an owned buffer of the chunk size, which goes to the
/// storage whole ([`ObjectWriter::write_buf`]: the local file system writes
/// it on another thread without copying it again) while the next one fills.
/// Bytes from memory are hashed and copied in pieces small enough to stay in
/// the CPU's cache between the two; bytes from a reader are read straight
/// into the buffer and hashed there.
struct HashingWriter {
    inner: Box<dyn ObjectWriter>,
    hasher: Sha256,
    size: u64,
    buffer: Vec<u8>,
    chunk_size: usize,
}

/// Bytes hashed, then copied, at a time: small enough that the copy reads
/// them from the CPU's cache.
const HASH_PIECE: usize = 64 * 1024;

impl HashingWriter {
    async fn open<S: CheckpointStorage + ?Sized>(
        storage: &S,
        key: &str,
        chunk_size: usize,
    ) -> Result<Self, WriteError> {
        Ok(HashingWriter {
            inner: storage.put_stream(key).await.map_err(WriteError::Storage)?,
            hasher: Sha256::new(),
            size: 0,
            buffer: Vec::new(),
            chunk_size: chunk_size.max(1),
        })
    }

    /// Room for a whole chunk in the buffer.
    fn reserve(&mut self) {
        let wanted = self.chunk_size.saturating_sub(self.buffer.len());
        self.buffer.reserve_exact(wanted);
    }

    /// Appends bytes from memory: hashed, then copied into the buffer.
    async fn write(&mut self, mut data: &[u8]) -> Result<(), WriteError> {
        while !data.is_empty() {
            self.reserve();
            let room = self.chunk_size - self.buffer.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            for piece in now.chunks(HASH_PIECE) {
                self.hasher.update(piece);
                self.buffer.extend_from_slice(piece);
            }
            self.size += now.len() as u64;
            data = rest;
            if self.buffer.len() >= self.chunk_size {
                self.send().await?;
            }
        }
        Ok(())
    }

    /// Reads from `reader` into the buffer until it ends, hashing what each
    /// read brings while it is in the cache.
    async fn write_from<R: AsyncRead + Unpin>(&mut self, reader: &mut R) -> Result<(), WriteError> {
        loop {
            self.reserve();
            let filled = self.buffer.len();
            let room = self.chunk_size - filled;
            let n = (&mut *reader)
                .take(room as u64)
                .read_buf(&mut self.buffer)
                .await
                .map_err(WriteError::Source)?;
            if n == 0 {
                return Ok(());
            }
            self.hasher.update(&self.buffer[filled..]);
            self.size += n as u64;
            if self.buffer.len() >= self.chunk_size {
                self.send().await?;
            }
        }
    }

    /// Hands the buffer to the storage; takes back an empty one.
    async fn send(&mut self) -> Result<(), WriteError> {
        let full = std::mem::take(&mut self.buffer);
        self.buffer = self
            .inner
            .write_buf(full)
            .await
            .map_err(WriteError::Storage)?;
        self.buffer.clear();
        Ok(())
    }

    /// Sends what is buffered and commits the object; returns its size and
    /// digest.
    async fn commit(mut self, key: &str) -> Result<(u64, String), WriteError> {
        if !self.buffer.is_empty() {
            self.send().await?;
        }
        let meta = self.inner.commit().await.map_err(WriteError::Storage)?;
        if meta.size != self.size {
            return Err(WriteError::Storage(StorageError::LengthMismatch {
                key: key.to_string(),
                expected: self.size,
                actual: meta.size,
            }));
        }
        Ok((self.size, to_hex(&self.hasher.finalize())))
    }

    /// Commits after `written` succeeded, aborts otherwise.
    async fn finish(
        self,
        key: &str,
        written: Result<(), WriteError>,
    ) -> Result<(u64, String), WriteError> {
        match written {
            Ok(()) => self.commit(key).await,
            Err(e) => {
                if let Err(abort) = self.inner.abort().await {
                    tracing::warn!(target: TARGET, key, error = %abort, "aborting a failed shard write failed");
                }
                Err(e)
            }
        }
    }
}

/// Compares the digest of a shard's bytes with the one its manifest records.
fn check_digest(shard: &ShardInfo, actual: &str) -> Result<(), ReadError> {
    if actual == shard.sha256 {
        return Ok(());
    }
    Err(ReadError::Mismatch {
        expected: format!("sha256 {}", shard.sha256),
        actual: format!("sha256 {actual}"),
    })
}

/// Buffers at least this large are hashed on the blocking pool rather than
/// on the runtime's worker (1 MiB hashes in about a millisecond).
const HASH_OFF_RUNTIME_AT: usize = 1 << 20;

/// The lowercase hex SHA-256 of `data`, computed on tokio's blocking pool
/// when the buffer is large, so that hashing a multi-GiB shard does not
/// stall the tasks sharing the worker; returns the buffer with its digest.
async fn sha256_hex_off_runtime(data: Vec<u8>) -> io::Result<(Vec<u8>, String)> {
    if data.len() < HASH_OFF_RUNTIME_AT {
        let digest = to_hex(&Sha256::digest(&data));
        return Ok((data, digest));
    }
    tokio::task::spawn_blocking(move || {
        let digest = to_hex(&Sha256::digest(&data));
        (data, digest)
    })
    .await
    .map_err(|e| io::Error::other(format!("hashing a shard failed: {e}")))
}

fn sort_newest_first(infos: &mut [CheckpointInfo]) {
    infos.sort_by(|a, b| (b.created_at, b.step, &b.name).cmp(&(a.created_at, a.step, &a.name)));
}

impl<S: CheckpointStorage, C: Coordinator> DistributedCheckpoint<S, C> {
    /// A checkpoint handle for the rank of `coordinator`, on `storage`,
    /// retrying storage operations under `retry`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::MemoryStorage;
    ///
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert_eq!(ckpt.world_size(), 1);
    /// ```
    pub fn new(storage: S, coordinator: C, retry: RetryPolicy, options: CheckpointOptions) -> Self {
        DistributedCheckpoint {
            storage,
            coordinator,
            retry,
            options,
        }
    }

    /// The storage.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert!(ckpt.storage().is_empty());
    /// ```
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The coordinator.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::{Coordinator, InMemoryCoordinator};
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert_eq!(ckpt.coordinator().name(), "in-memory");
    /// ```
    pub fn coordinator(&self) -> &C {
        &self.coordinator
    }

    /// This rank's number.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// let rank = InMemoryCoordinator::new(3).remove(2);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert_eq!(ckpt.rank(), 2);
    /// ```
    pub fn rank(&self) -> usize {
        self.coordinator.rank()
    }

    /// How many ranks the job has.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// let rank = InMemoryCoordinator::new(3).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert_eq!(ckpt.world_size(), 3);
    /// ```
    pub fn world_size(&self) -> usize {
        self.coordinator.world_size()
    }

    /// Saves this rank's shard, made of named entries, as part of checkpoint
    /// `name`; every rank calls it. Returns the committed checkpoint's
    /// summary, the same on every rank.
    ///
    /// The shard's bytes are its entries one after the other; the manifest's
    /// index records where each entry is, for
    /// [`load_entry`](Self::load_entry). The write is retried as a whole under
    /// the retry policy. See [the save protocol](DistributedCheckpoint#the-save-protocol).
    ///
    /// # Errors
    ///
    /// The same error on every rank:
    /// - [`CheckpointError::AlreadyExists`] if a checkpoint of that name is
    ///   committed (it is left intact);
    /// - [`CheckpointError::SaveFailed`] naming the ranks that failed (a
    ///   storage error after retries, a duplicate or empty entry name), or
    ///   rank 0 when the outcome of the manifest write is unknown (then
    ///   nothing is rolled back; see the protocol);
    /// - [`CheckpointError::Timeout`] naming the ranks that did not arrive.
    ///
    /// A rank whose coordinator itself fails returns
    /// [`CheckpointError::Coordinator`] (and the others time out naming it);
    /// an invalid name is refused on each rank before anything is written
    /// ([`CheckpointError::InvalidName`]).
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the save where it is. A shard being written
    /// is discarded; a shard already written stays as an uncommitted object
    /// (no manifest refers to it, so no checkpoint is visible) until
    /// [`cleanup_uncommitted`](Self::cleanup_uncommitted) removes it. The other
    /// ranks time out and roll back.
    ///
    /// The one exception is rank 0 dropped while it writes the manifest: a
    /// write the storage has started may still complete (a file system
    /// write runs to its end on the blocking pool). The checkpoint is then
    /// committed and whole, and the other ranks, finding its manifest,
    /// return it as saved.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{CheckpointError, CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::MemoryStorage;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), CheckpointError> {
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let shard = ShardData::new().with_entry("w", vec![1, 2, 3]);
    /// let info = ckpt.save("step-1", &shard, SaveOptions::new().step(1)).await?;
    /// assert_eq!(info.total_size, 3);
    /// let again = ckpt.save("step-1", &shard, SaveOptions::new()).await.unwrap_err();
    /// assert!(matches!(again, CheckpointError::AlreadyExists { .. }));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn save(
        &self,
        name: &str,
        shard: &ShardData,
        options: SaveOptions,
    ) -> Result<CheckpointInfo> {
        self.save_with(name, &options, |key| async move {
            shard
                .check_names()
                .map_err(|reason| LocalFailure::failed(reason, None))?;
            let key_ref = &key;
            let (size, sha256) = self
                .write_with_retry(key_ref, || self.write_entries_once(key_ref, shard))
                .await?;
            Ok(Written {
                key,
                size,
                sha256,
                entries: shard.index(),
            })
        })
        .await
    }

    /// Saves this rank's shard from a byte stream as part of checkpoint
    /// `name`; every rank calls it. The shard has no named entries.
    ///
    /// `open` is called once per attempt and returns a fresh reader of the
    /// shard's bytes (open a file, start a download), so that a failed attempt
    /// can start over. The bytes are read and written in chunks of
    /// [`CheckpointOptions::chunk_size`] and hashed in the same pass: a
    /// shard is never held in memory as a whole. Otherwise it behaves as
    /// [`save`](Self::save).
    ///
    /// # Errors
    ///
    /// As [`save`](Self::save); an I/O error from `open` or from the reader
    /// fails this rank's write (it is retried when its kind is transient).
    ///
    /// # Cancellation
    ///
    /// As [`save`](Self::save).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, LoadOptions, SaveOptions};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::MemoryStorage;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let bytes = vec![7u8; 10_000];
    /// ckpt.save_stream("big", || {
    ///     let reader = std::io::Cursor::new(bytes.clone());
    ///     async move { Ok(reader) }
    /// }, SaveOptions::new()).await?;
    /// assert_eq!(ckpt.load("big", LoadOptions::default()).await?, bytes);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn save_stream<F, Fut, R>(
        &self,
        name: &str,
        mut open: F,
        options: SaveOptions,
    ) -> Result<CheckpointInfo>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = io::Result<R>>,
        R: AsyncRead + Unpin,
    {
        self.save_with(name, &options, |key| async move {
            let key_ref = &key;
            let (size, sha256) = self
                .write_with_retry(key_ref, || {
                    let opening = open();
                    async move {
                        let reader = opening.await.map_err(WriteError::Source)?;
                        self.write_reader_once(key_ref, reader).await
                    }
                })
                .await?;
            Ok(Written {
                key,
                size,
                sha256,
                entries: Vec::new(),
            })
        })
        .await
    }

    async fn write_entries_once(
        &self,
        key: &str,
        shard: &ShardData,
    ) -> Result<(u64, String), WriteError> {
        let mut writer = HashingWriter::open(&self.storage, key, self.options.chunk_size()).await?;
        let written = async {
            for (_, data) in shard.entries() {
                writer.write(data).await?;
            }
            Ok(())
        }
        .await;
        writer.finish(key, written).await
    }

    async fn write_reader_once<R: AsyncRead + Unpin>(
        &self,
        key: &str,
        mut reader: R,
    ) -> Result<(u64, String), WriteError> {
        let mut writer = HashingWriter::open(&self.storage, key, self.options.chunk_size()).await?;
        let written = writer.write_from(&mut reader).await;
        writer.finish(key, written).await
    }

    async fn write_with_retry<F, Fut>(
        &self,
        key: &str,
        attempt: F,
    ) -> Result<(u64, String), LocalFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(u64, String), WriteError>>,
    {
        let rank = self.rank();
        self.retry
            .retry(attempt)
            .notify(|attempt: u32, error: &WriteError, delay: Duration| {
                // The retry itself is logged (target "steadfast::retry");
                // this adds which rank and shard it was.
                tracing::debug!(
                    target: TARGET,
                    rank,
                    key,
                    attempt,
                    delay = ?delay,
                    error = %error,
                    "writing a shard failed; retrying"
                );
            })
            .await
            .map_err(|e| {
                LocalFailure::failed(
                    format!("writing shard {key:?}: {}", describe(&e)),
                    Some(Box::new(e)),
                )
            })
    }

    /// Refuses a save that would overwrite or nest with a committed
    /// checkpoint.
    async fn precheck(&self, name: &str) -> Result<(), LocalFailure> {
        let committed =
            |key: String| async move { self.retry.retry(|| self.storage.exists(&key)).await };
        match committed(manifest_key(name)).await {
            Ok(false) => {}
            Ok(true) => {
                return Err(LocalFailure {
                    kind: FailureKind::AlreadyExists,
                    reason: format!("checkpoint {name:?} already exists"),
                    source: None,
                })
            }
            Err(e) => {
                return Err(LocalFailure::failed(
                    format!("checking for an existing checkpoint: {}", describe(&e)),
                    Some(Box::new(e)),
                ))
            }
        }
        if self.rank() != 0 {
            return Ok(());
        }
        let segments: Vec<&str> = name.split('/').collect();
        for depth in 1..segments.len() {
            let ancestor = segments[..depth].join("/");
            match committed(manifest_key(&ancestor)).await {
                Ok(false) => {}
                Ok(true) => {
                    return Err(LocalFailure::failed(
                        format!("checkpoint {ancestor:?} is committed around this name; checkpoints do not nest"),
                        None,
                    ))
                }
                Err(e) => {
                    return Err(LocalFailure::failed(
                        format!("checking checkpoint {ancestor:?}: {}", describe(&e)),
                        Some(Box::new(e)),
                    ))
                }
            }
        }
        let prefix = format!("{name}/");
        match self.retry.retry(|| self.storage.list(&prefix)).await {
            Ok(objects) => {
                if let Some(inner) = objects
                    .iter()
                    .find(|o| o.key.ends_with(&format!("/{MANIFEST_FILE_NAME}")))
                {
                    return Err(LocalFailure::failed(
                        format!(
                            "{:?} is committed inside this name; checkpoints do not nest",
                            inner.key
                        ),
                        None,
                    ));
                }
                Ok(())
            }
            Err(e) => Err(LocalFailure::failed(
                format!("listing {prefix:?}: {}", describe(&e)),
                Some(Box::new(e)),
            )),
        }
    }

    async fn save_with<W, Fut>(
        &self,
        name: &str,
        options: &SaveOptions,
        write: W,
    ) -> Result<CheckpointInfo>
    where
        W: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<Written, LocalFailure>>,
    {
        validate_name(name)?;
        let rank = self.rank();
        let world_size = self.world_size();
        let key = shard_key(name, rank, world_size, rand::random::<u64>());
        tracing::info!(target: TARGET, name, rank, world_size, key = %key, "saving a checkpoint shard");

        let local = match self.precheck(name).await {
            Ok(()) => write(key.clone()).await,
            Err(failure) => Err(failure),
        };
        let report = match &local {
            Ok(w) => {
                tracing::info!(target: TARGET, name, rank, key = %w.key, size = w.size, sha256 = %w.sha256, "shard written");
                RankReport::Written {
                    name: name.to_string(),
                    key: w.key.clone(),
                    size: w.size,
                    sha256: w.sha256.clone(),
                    entries: w.entries.clone(),
                }
            }
            Err(f) => {
                tracing::error!(target: TARGET, name, rank, reason = %f.reason, "this rank's part of the save failed");
                RankReport::Failed {
                    name: name.to_string(),
                    kind: f.kind,
                    reason: f.reason.clone(),
                }
            }
        };
        // Serializing strings and integers cannot fail; an empty report would
        // read as a failure on the other ranks.
        let payload = serde_json::to_vec(&report).unwrap_or_default();
        let gathered = match self.coordinator.all_gather(payload, options.timeout).await {
            Ok(gathered) => gathered,
            Err(e) => {
                self.roll_back(name, &key, true).await;
                return Err(collective_error(name, options.timeout, e));
            }
        };

        // Every rank decides from the same gathered reports.
        let mut failures: Vec<(usize, FailureKind, String)> = Vec::new();
        let mut written: Vec<(usize, Written)> = Vec::new();
        // A faulty coordinator may return too few or too many reports: blame
        // the ranks whose reports are missing or extra, the same on every rank.
        for missing in gathered.len()..world_size {
            failures.push((
                missing,
                FailureKind::Failed,
                format!(
                    "no report (the coordinator returned {} reports for {world_size} ranks)",
                    gathered.len()
                ),
            ));
        }
        for (from, bytes) in gathered.iter().enumerate() {
            if from >= world_size {
                failures.push((
                    from,
                    FailureKind::Failed,
                    format!("a report from outside a world of {world_size} ranks"),
                ));
                continue;
            }
            match serde_json::from_slice::<RankReport>(bytes) {
                Ok(RankReport::Written { name: theirs, .. })
                | Ok(RankReport::Failed { name: theirs, .. })
                    if theirs != name =>
                {
                    failures.push((
                        from,
                        FailureKind::Failed,
                        format!("saving {theirs:?}, not {name:?}"),
                    ));
                }
                Ok(RankReport::Written {
                    key,
                    size,
                    sha256,
                    entries,
                    ..
                }) => written.push((
                    from,
                    Written {
                        key,
                        size,
                        sha256,
                        entries,
                    },
                )),
                Ok(RankReport::Failed { kind, reason, .. }) => failures.push((from, kind, reason)),
                Err(e) => failures.push((
                    from,
                    FailureKind::Failed,
                    format!("unreadable report ({e})"),
                )),
            }
        }
        let local_source = local.err().and_then(|f| f.source);
        if !failures.is_empty() {
            let already_exists = failures
                .iter()
                .any(|(_, kind, _)| *kind == FailureKind::AlreadyExists);
            self.roll_back(name, &key, !already_exists).await;
            if already_exists {
                return Err(CheckpointError::AlreadyExists {
                    name: name.to_string(),
                });
            }
            let failed_ranks: BTreeSet<usize> = failures.iter().map(|(r, _, _)| *r).collect();
            let reason = failures
                .iter()
                .map(|(r, _, why)| format!("rank {r}: {why}"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(CheckpointError::SaveFailed {
                name: name.to_string(),
                failed_ranks: failed_ranks.into_iter().collect(),
                reason,
                source: local_source,
            });
        }
        let my_shard = written
            .iter()
            .find(|(r, _)| *r == rank)
            .map(|(_, w)| (w.key.clone(), w.sha256.clone()));
        let mut manifest = match assemble_manifest(name, world_size, written, options) {
            Ok(m) => m,
            Err((failed_ranks, reason)) => {
                self.roll_back(name, &key, true).await;
                return Err(CheckpointError::SaveFailed {
                    name: name.to_string(),
                    failed_ranks,
                    reason,
                    source: None,
                });
            }
        };

        // Rank 0 commits; everyone hears the outcome.
        let mut commit_error = None;
        let outcome = if rank == 0 {
            // The others wait `timeout` for the outcome, and then as long
            // again for a manifest: the manifest write must start within
            // the first `timeout`, so that it has the second to land.
            let start_by = tokio::time::Instant::now().checked_add(options.timeout);
            Some(match self.commit(&mut manifest, start_by).await {
                Ok(()) => CommitOutcome::Committed {
                    created_at: manifest.created_at,
                },
                Err(CommitFailure::AlreadyExists) => CommitOutcome::AlreadyExists,
                Err(CommitFailure::Failed {
                    failed_ranks,
                    reason,
                    source,
                }) => {
                    commit_error = source;
                    CommitOutcome::Failed {
                        failed_ranks,
                        reason,
                    }
                }
                Err(CommitFailure::Unknown { reason, source }) => {
                    commit_error = source;
                    CommitOutcome::Unknown { reason }
                }
            })
        } else {
            None
        };
        let payload = outcome
            .as_ref()
            .map(|o| serde_json::to_vec(o).unwrap_or_default())
            .unwrap_or_default();
        let heard = match self.coordinator.all_gather(payload, options.timeout).await {
            Ok(all) => all
                .first()
                .and_then(|b| serde_json::from_slice::<CommitOutcome>(b).ok()),
            Err(e) => {
                if let Some(outcome) = outcome {
                    // Rank 0 knows the outcome: it decided it.
                    tracing::warn!(target: TARGET, name, error = %e, "the other ranks did not hear the commit outcome");
                    Some(outcome)
                } else {
                    return self
                        .resolve_from_storage(name, my_shard, &key, options.timeout, e)
                        .await;
                }
            }
        };
        match heard {
            Some(CommitOutcome::Committed { created_at }) => {
                manifest.created_at = created_at;
                tracing::info!(
                    target: TARGET,
                    name,
                    rank,
                    world_size,
                    step = ?manifest.step,
                    total_size = manifest.total_size(),
                    "checkpoint committed"
                );
                Ok(manifest.info())
            }
            Some(CommitOutcome::AlreadyExists) => {
                self.roll_back(name, &key, false).await;
                Err(CheckpointError::AlreadyExists {
                    name: name.to_string(),
                })
            }
            Some(CommitOutcome::Failed {
                failed_ranks,
                reason,
            }) => {
                self.roll_back(name, &key, true).await;
                Err(CheckpointError::SaveFailed {
                    name: name.to_string(),
                    failed_ranks,
                    reason,
                    source: commit_error,
                })
            }
            Some(CommitOutcome::Unknown { reason }) => {
                tracing::error!(
                    target: TARGET,
                    name,
                    rank,
                    key = %key,
                    reason = %reason,
                    "commit outcome unknown; leaving this rank's shard for cleanup_uncommitted"
                );
                Err(CheckpointError::SaveFailed {
                    name: name.to_string(),
                    failed_ranks: vec![0],
                    reason,
                    source: commit_error,
                })
            }
            None => {
                let e = CoordinatorError::Backend {
                    message: "rank 0's commit outcome was unreadable".into(),
                    source: None,
                };
                self.resolve_from_storage(name, my_shard, &key, options.timeout, e)
                    .await
            }
        }
    }

    /// Rank 0's commit: check every shard is stored with its size, then write
    /// the manifest if none exists.
    ///
    /// A failed write may still have stored the manifest (an answer lost
    /// after the write landed). Before reporting a failure, which makes every
    /// rank delete its shard, rank 0 reads the key back: its own manifest
    /// there means the commit happened; none means the save can be rolled
    /// back; a read that fails too leaves the outcome unknown.
    async fn commit(
        &self,
        manifest: &mut Manifest,
        start_by: Option<tokio::time::Instant>,
    ) -> Result<(), CommitFailure> {
        // The shards are checked a few at a time: a job of many ranks on a
        // storage with some latency must not spend its timeout here.
        for group in manifest.shards.chunks(SHARD_CHECKS_AT_ONCE) {
            let checks =
                futures::future::join_all(group.iter().map(|shard| self.check_shard(shard))).await;
            if let Some(failure) = checks.into_iter().find_map(Result::err) {
                return Err(failure);
            }
        }
        if start_by.is_some_and(|deadline| tokio::time::Instant::now() >= deadline) {
            return Err(CommitFailure::Failed {
                failed_ranks: vec![0],
                reason: "rank 0: checking the shards took longer than the timeout, \
                         so the other ranks may have stopped waiting; the manifest was not written"
                    .to_string(),
                source: None,
            });
        }
        manifest.created_at = unix_millis_now();
        let bytes = manifest.to_bytes().map_err(|e| CommitFailure::Failed {
            failed_ranks: vec![0],
            reason: format!("rank 0: {e}"),
            source: Some(Box::new(e)),
        })?;
        let key = manifest_key(&manifest.name);
        let mut first = true;
        let (key_ref, bytes_ref) = (&key, &bytes);
        let result = self
            .retry
            .retry(|| {
                let retrying = !std::mem::replace(&mut first, false);
                async move {
                    match self
                        .storage
                        .put_if_absent(key_ref, Bytes::from(bytes_ref.clone()))
                        .await
                    {
                        // An earlier attempt may have written the manifest and
                        // lost the answer: an identical manifest is ours.
                        Err(StorageError::AlreadyExists { .. }) if retrying => {
                            match self.read_limited(key_ref, bytes_ref.len() as u64).await? {
                                Ok(stored) if stored == *bytes_ref => Ok(()),
                                _ => Err(StorageError::AlreadyExists {
                                    key: key_ref.clone(),
                                }),
                            }
                        }
                        other => other,
                    }
                }
            })
            .await;
        let e = match result {
            Ok(()) => return Ok(()),
            Err(e) if matches!(e.inner(), StorageError::AlreadyExists { .. }) => {
                tracing::warn!(target: TARGET, name = %manifest.name, "a checkpoint of that name was committed meanwhile");
                return Err(CommitFailure::AlreadyExists);
            }
            Err(e) => e,
        };
        let reason = format!("rank 0: writing the manifest: {}", describe(&e));
        match self.stored_manifest_is(&key, &bytes).await {
            Ok(Some(true)) => {
                tracing::warn!(target: TARGET, name = %manifest.name, error = %e, "writing the manifest reported an error, but it is stored");
                Ok(())
            }
            Ok(Some(false)) => {
                tracing::warn!(target: TARGET, name = %manifest.name, "a checkpoint of that name was committed meanwhile");
                Err(CommitFailure::AlreadyExists)
            }
            Ok(None) => Err(CommitFailure::Failed {
                failed_ranks: vec![0],
                reason,
                source: Some(Box::new(e)),
            }),
            Err(check) => Err(CommitFailure::Unknown {
                reason: format!(
                    "{reason}; whether the manifest was stored anyway is unknown (reading it back failed: {}), \
                     so no shard was deleted",
                    describe(&check)
                ),
                source: Some(Box::new(e)),
            }),
        }
    }

    /// Checks that `shard` is in storage with the size its rank reported.
    async fn check_shard(&self, shard: &ShardInfo) -> Result<(), CommitFailure> {
        let found = self.retry.retry(|| self.storage.head(&shard.key)).await;
        let problem = match found {
            Ok(meta) if meta.size == shard.size => return Ok(()),
            Ok(meta) => format!(
                "shard {:?} has {} bytes in storage, {} were written",
                shard.key, meta.size, shard.size
            ),
            Err(e) => format!(
                "shard {:?} cannot be found in storage: {}",
                shard.key,
                describe(&e)
            ),
        };
        Err(CommitFailure::Failed {
            failed_ranks: vec![shard.rank],
            reason: format!("rank {}: {problem}", shard.rank),
            source: None,
        })
    }

    /// Whether the manifest stored under `key` is `bytes`: `None` when no
    /// object is there.
    async fn stored_manifest_is(
        &self,
        key: &str,
        bytes: &[u8],
    ) -> Result<Option<bool>, RetryError<StorageError>> {
        let read = self
            .retry
            .retry(|| self.read_limited(key, bytes.len() as u64))
            .await;
        match read {
            Ok(Ok(stored)) => Ok(Some(stored == bytes)),
            // Longer than ours: another manifest.
            Ok(Err(_)) => Ok(Some(false)),
            Err(e) if matches!(e.inner(), StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// After the commit outcome was not heard: the manifest in storage says
    /// whether the save succeeded.
    async fn resolve_from_storage(
        &self,
        name: &str,
        my_shard: Option<(String, String)>,
        key: &str,
        timeout: Duration,
        error: CoordinatorError,
    ) -> Result<CheckpointInfo> {
        let rank = self.rank();
        // The exchange failed because a rank was late: rank 0 may still be
        // writing the manifest (a slow storage), so wait for it as long as a
        // collective step may take. Any other failure says nothing about
        // rank 0's progress: look once.
        let late = matches!(
            error,
            CoordinatorError::Timeout { .. } | CoordinatorError::Broken { .. }
        );
        let deadline = if late {
            tokio::time::Instant::now().checked_add(timeout)
        } else {
            None
        };
        let pause = (timeout / 20).clamp(MANIFEST_POLL_MIN, MANIFEST_POLL_MAX);
        let found = loop {
            match self.manifest(name).await {
                Err(CheckpointError::NotFound { .. })
                    if deadline.is_some_and(|d| tokio::time::Instant::now() < d) =>
                {
                    tokio::time::sleep(pause).await;
                }
                other => break other,
            }
        };
        match found {
            Ok(manifest) => {
                let mine = manifest
                    .shard(rank)
                    .map(|s| (s.key.clone(), s.sha256.clone()));
                if mine.is_some() && mine == my_shard {
                    tracing::warn!(target: TARGET, name, rank, error = %error, "commit outcome not heard; the stored manifest confirms the commit");
                    return Ok(manifest.info());
                }
                // Someone else's checkpoint of that name: this rank's shard is
                // garbage.
                self.roll_back(name, key, false).await;
                Err(CheckpointError::AlreadyExists {
                    name: name.to_string(),
                })
            }
            Err(e) => {
                tracing::error!(
                    target: TARGET,
                    name,
                    rank,
                    key,
                    error = %error,
                    manifest = %e,
                    "commit outcome unknown; leaving this rank's shard for cleanup_uncommitted"
                );
                Err(collective_error(name, timeout, error))
            }
        }
    }

    /// Undoes this rank's part of a failed save: deletes its own shard, and on
    /// rank 0 (when `sweep`) every object directly under the prefix, unless a
    /// manifest is there.
    async fn roll_back(&self, name: &str, key: &str, sweep: bool) {
        let rank = self.rank();
        let mut report = RollbackReport::default();
        delete_object(&self.storage, &self.retry, key, &mut report).await;
        if sweep && rank == 0 {
            sweep_uncommitted(&self.storage, &self.retry, name, &mut report).await;
        }
        tracing::warn!(
            target: TARGET,
            name,
            rank,
            deleted = ?report.deleted,
            failed = report.failed.len(),
            "save rolled back"
        );
    }

    /// Reads, checks and returns the manifest of checkpoint `name`.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::NotFound`] when there is no manifest (no committed
    /// checkpoint), and the errors of [`Manifest::from_bytes`]; a manifest
    /// larger than [`CheckpointOptions::max_manifest_size`] is
    /// [`CheckpointError::Corrupted`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointError, CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert!(matches!(ckpt.manifest("nothing").await, Err(CheckpointError::NotFound { .. })));
    /// # }
    /// ```
    pub async fn manifest(&self, name: &str) -> Result<Manifest> {
        validate_name(name)?;
        let key = manifest_key(name);
        let limit = self.options.max_manifest_size();
        let read = self.retry.retry(|| self.read_limited(&key, limit)).await;
        match read {
            Ok(Ok(bytes)) => Manifest::from_bytes(name, &bytes),
            Ok(Err(size)) => Err(CheckpointError::Corrupted {
                name: name.to_string(),
                shard: key,
                expected: format!("at most {limit} bytes"),
                actual: format!("{size} bytes"),
            }),
            Err(e) => match e.into_inner() {
                StorageError::NotFound { .. } => Err(CheckpointError::NotFound {
                    name: name.to_string(),
                }),
                source => Err(CheckpointError::LoadFailed {
                    name: name.to_string(),
                    reason: format!("reading the manifest {key:?} failed"),
                    source: Some(source),
                }),
            },
        }
    }

    /// Reads an object of at most `limit` bytes; `Err(size)` when larger.
    async fn read_limited(
        &self,
        key: &str,
        limit: u64,
    ) -> Result<Result<Vec<u8>, u64>, StorageError> {
        let stream = self.storage.get_stream(key).await?;
        if stream.meta.size > limit {
            return Ok(Err(stream.meta.size));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(stream.meta.size).unwrap_or(0));
        stream
            .reader
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| storage_error_from_io(key, "get_stream", e))?;
        if bytes.len() as u64 > limit {
            return Ok(Err(bytes.len() as u64));
        }
        Ok(Ok(bytes))
    }

    /// Loads this rank's shard of checkpoint `name`, after checking its size
    /// and (with `options.verify`) its SHA-256 digest: no byte is returned
    /// before the whole shard is verified.
    ///
    /// # Errors
    ///
    /// - [`CheckpointError::NotFound`], [`CheckpointError::IncompatibleVersion`],
    ///   [`CheckpointError::ValidationFailed`], [`CheckpointError::Corrupted`]
    ///   from the manifest;
    /// - [`CheckpointError::Corrupted`] naming the shard, the expected and
    ///   the actual size or digest, when the shard is missing, truncated,
    ///   longer or altered;
    /// - [`CheckpointError::LoadFailed`] when the checkpoint was saved by a
    ///   different world size (with `options.strict`) or has no shard for
    ///   this rank, or when the storage fails after retries.
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the read; it writes nothing, and no byte of
    /// a shard that was not fully verified is ever handed out.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, LoadOptions, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let shard = ShardData::new().with_entry("a", b"xy".to_vec()).with_entry("b", b"z".to_vec());
    /// ckpt.save("c", &shard, SaveOptions::new()).await?;
    /// assert_eq!(ckpt.load("c", LoadOptions::default()).await?, b"xyz");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn load(&self, name: &str, options: LoadOptions) -> Result<Vec<u8>> {
        let manifest = self.manifest(name).await?;
        let rank = self.rank();
        let world_size = self.world_size();
        if options.strict && manifest.world_size != world_size {
            return Err(CheckpointError::LoadFailed {
                name: name.to_string(),
                reason: format!(
                    "the checkpoint was saved by {} ranks and this job has {world_size}; \
                     load named entries (load_entry, load_entries) to reshard, or load with strict: false",
                    manifest.world_size
                ),
                source: None,
            });
        }
        let Some(shard) = manifest.shard(rank) else {
            return Err(CheckpointError::LoadFailed {
                name: name.to_string(),
                reason: format!(
                    "the checkpoint has no shard for rank {rank} (it was saved by {} ranks)",
                    manifest.world_size
                ),
                source: None,
            });
        };
        self.read_shard(name, shard, options.verify, true).await
    }

    /// Loads one named entry of checkpoint `name`, whichever rank saved it:
    /// how a job restarts at a different world size. The whole shard holding
    /// the entry is verified (size and SHA-256) before the entry is returned.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::EntryNotFound`] when the checkpoint has no such
    /// entry, and the errors of [`load`](Self::load).
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the read; it writes nothing, and no byte of
    /// a shard that was not fully verified is ever handed out.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let shard = ShardData::new().with_entry("a", b"xy".to_vec()).with_entry("b", b"z".to_vec());
    /// ckpt.save("c", &shard, SaveOptions::new()).await?;
    /// assert_eq!(ckpt.load_entry("c", "b").await?, b"z");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn load_entry(&self, name: &str, entry: &str) -> Result<Vec<u8>> {
        let wanted = entry;
        let mut entries = self.load_entries(name, |e| e == wanted).await?;
        entries
            .remove(entry)
            .ok_or_else(|| CheckpointError::EntryNotFound {
                name: name.to_string(),
                entry: entry.to_string(),
            })
    }

    /// Loads every named entry of checkpoint `name` for which `filter`
    /// returns `true`, from whichever shards hold them. Each shard needed is
    /// read once and verified as a whole before any of its entries is kept.
    ///
    /// # Errors
    ///
    /// The errors of [`load`](Self::load), except that the world size may
    /// differ.
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the read; it writes nothing, and no byte of
    /// a shard that was not fully verified is ever handed out.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let shard = ShardData::new().with_entry("layer.0", vec![0]).with_entry("layer.1", vec![1]).with_entry("step", vec![9]);
    /// ckpt.save("c", &shard, SaveOptions::new()).await?;
    /// let layers = ckpt.load_entries("c", |e| e.starts_with("layer.")).await?;
    /// assert_eq!(layers.len(), 2);
    /// assert_eq!(layers["layer.1"], vec![1]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn load_entries<P>(
        &self,
        name: &str,
        mut filter: P,
    ) -> Result<BTreeMap<String, Vec<u8>>>
    where
        P: FnMut(&str) -> bool,
    {
        let manifest = self.manifest(name).await?;
        let mut by_rank: BTreeMap<usize, Vec<(&String, u64, u64)>> = BTreeMap::new();
        for (entry, at) in &manifest.entries {
            if filter(entry) {
                by_rank
                    .entry(at.rank)
                    .or_default()
                    .push((entry, at.offset, at.length));
            }
        }
        let mut out = BTreeMap::new();
        for (rank, entries) in by_rank {
            // The manifest was validated: every entry's rank has a shard and
            // every entry lies inside it.
            let Some(shard) = manifest.shard(rank) else {
                continue;
            };
            let bytes = self.read_shard(name, shard, true, true).await?;
            for (entry, offset, length) in entries {
                let range = usize::try_from(offset)
                    .ok()
                    .zip(usize::try_from(offset.saturating_add(length)).ok());
                let Some(slice) = range.and_then(|(start, end)| bytes.get(start..end)) else {
                    return Err(CheckpointError::Corrupted {
                        name: name.to_string(),
                        shard: shard.key.clone(),
                        expected: format!(
                            "entry {entry:?} at {offset}..{}",
                            offset.saturating_add(length)
                        ),
                        actual: format!("{} bytes", bytes.len()),
                    });
                };
                out.insert(entry.clone(), slice.to_vec());
            }
        }
        Ok(out)
    }

    /// Checks every shard of checkpoint `name` (size and SHA-256), reading
    /// them in chunks without holding any in memory; returns the manifest.
    ///
    /// # Errors
    ///
    /// The first failure, as [`load`](Self::load) reports it.
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the reads; nothing is written.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// ckpt.save("c", &ShardData::new().with_entry("a", vec![1; 100]), SaveOptions::new()).await?;
    /// assert_eq!(ckpt.verify("c").await?.total_size(), 100);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn verify(&self, name: &str) -> Result<Manifest> {
        let manifest = self.manifest(name).await?;
        for shard in &manifest.shards {
            self.read_shard(name, shard, true, false).await?;
        }
        Ok(manifest)
    }

    /// Reads a shard (keeping its bytes when `keep`), checking its size and,
    /// when `verify`, its digest; retried on transient storage errors.
    async fn read_shard(
        &self,
        name: &str,
        shard: &ShardInfo,
        verify: bool,
        keep: bool,
    ) -> Result<Vec<u8>> {
        let result = self
            .retry
            .retry(|| self.read_shard_once(shard, verify, keep))
            .await;
        let e = match result {
            Ok(bytes) => return Ok(bytes),
            Err(e) => e,
        };
        let attempts = e.attempts();
        let corrupted = |expected: String, actual: String| CheckpointError::Corrupted {
            name: name.to_string(),
            shard: shard.key.clone(),
            expected,
            actual,
        };
        let error = match e.into_inner() {
            ReadError::Mismatch { expected, actual } => corrupted(expected, actual),
            ReadError::Storage(StorageError::NotFound { .. }) => {
                corrupted(format!("{} bytes", shard.size), "no object".into())
            }
            ReadError::Storage(StorageError::LengthMismatch {
                expected, actual, ..
            }) => corrupted(format!("{expected} bytes"), format!("{actual} bytes")),
            ReadError::Storage(source) => CheckpointError::LoadFailed {
                name: name.to_string(),
                reason: format!(
                    "reading shard {:?} failed after {attempts} attempt{}",
                    shard.key,
                    if attempts == 1 { "" } else { "s" }
                ),
                source: Some(source),
            },
        };
        tracing::error!(target: TARGET, name, shard = %shard.key, error = %error, "shard refused");
        Err(error)
    }

    async fn read_shard_once(
        &self,
        shard: &ShardInfo,
        verify: bool,
        keep: bool,
    ) -> Result<Vec<u8>, ReadError> {
        if !keep {
            return self.verify_streamed(shard).await.map(|()| Vec::new());
        }
        // One read of exactly the recorded size (a storage refuses an object
        // of another size before reading it), then the digest.
        let data = self
            .storage
            .get_sized(&shard.key, shard.size)
            .await
            .map(Vec::from)
            .map_err(ReadError::Storage)?;
        if !verify {
            return Ok(data);
        }
        let (data, actual) = sha256_hex_off_runtime(data).await.map_err(|e| {
            ReadError::Storage(StorageError::Io {
                key: shard.key.clone(),
                operation: "get",
                source: e,
            })
        })?;
        check_digest(shard, &actual)?;
        Ok(data)
    }

    /// Reads a shard in chunks and checks its size and digest, holding no
    /// more than one chunk in memory.
    async fn verify_streamed(&self, shard: &ShardInfo) -> Result<(), ReadError> {
        let stream = self
            .storage
            .get_stream(&shard.key)
            .await
            .map_err(ReadError::Storage)?;
        let sizes = |actual: u64| ReadError::Mismatch {
            expected: format!("{} bytes", shard.size),
            actual: format!("{actual} bytes"),
        };
        if stream.meta.size != shard.size {
            return Err(sizes(stream.meta.size));
        }
        let mut reader = stream.reader;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; self.options.chunk_size()];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buffer).await.map_err(|e| {
                ReadError::Storage(storage_error_from_io(&shard.key, "get_stream", e))
            })?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > shard.size {
                return Err(ReadError::Mismatch {
                    expected: format!("{} bytes", shard.size),
                    actual: format!("more than {} bytes", shard.size),
                });
            }
            hasher.update(&buffer[..n]);
        }
        if total != shard.size {
            return Err(sizes(total));
        }
        check_digest(shard, &to_hex(&hasher.finalize()))
    }

    /// The committed checkpoints (those with a valid manifest), newest first:
    /// by commit time, then step, then name, all descending.
    ///
    /// A manifest that is damaged, invalid or of a newer format is skipped
    /// with a warning (its checkpoint is not a usable committed checkpoint);
    /// prefixes without a manifest are not checkpoints.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Storage`] when listing fails, and
    /// [`CheckpointError::LoadFailed`] when a manifest cannot be read because
    /// the storage fails (rather than omitting a checkpoint that may be
    /// fine).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// for step in [1, 2] {
    ///     ckpt.save(&format!("step-{step}"), &ShardData::new(), SaveOptions::new().step(step)).await?;
    /// }
    /// let names: Vec<_> = ckpt.list().await?.into_iter().map(|i| i.name).collect();
    /// assert_eq!(names, ["step-2", "step-1"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list(&self) -> Result<Vec<CheckpointInfo>> {
        let objects = self.list_all().await?;
        let suffix = format!("/{MANIFEST_FILE_NAME}");
        let mut infos = Vec::new();
        for object in &objects {
            let Some(name) = object.key.strip_suffix(&suffix) else {
                continue;
            };
            match self.manifest(name).await {
                Ok(manifest) => infos.push(manifest.info()),
                Err(e @ CheckpointError::LoadFailed { .. }) => return Err(e),
                Err(CheckpointError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(target: TARGET, name, error = %e, "skipping a checkpoint whose manifest is not usable");
                }
            }
        }
        sort_newest_first(&mut infos);
        Ok(infos)
    }

    async fn list_all(&self) -> Result<Vec<ObjectMeta>> {
        self.retry
            .retry(|| self.storage.list(""))
            .await
            .map_err(|e| CheckpointError::Storage(e.into_inner()))
    }

    /// The newest committed checkpoint, if any (the first of
    /// [`list`](Self::list)).
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert!(ckpt.latest().await?.is_none());
    /// ckpt.save("only", &ShardData::new(), SaveOptions::new()).await?;
    /// assert_eq!(ckpt.latest().await?.unwrap().name, "only");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn latest(&self) -> Result<Option<CheckpointInfo>> {
        Ok(self.list().await?.into_iter().next())
    }

    /// Deletes checkpoint `name`: the manifest first (the checkpoint stops
    /// being visible), then every object found by listing its prefix that
    /// lies directly under `NAME/` (keys further down belong to other names
    /// and are left alone). Needs no coordination; call it on one rank.
    ///
    /// Objects that cannot be deleted after retries are listed in the
    /// report's `failed` (and logged at error level).
    ///
    /// # Errors
    ///
    /// - [`CheckpointError::NotFound`] when nothing is stored under the name;
    /// - [`CheckpointError::Storage`] when the manifest cannot be deleted (the
    ///   checkpoint is then left whole, still visible and loadable).
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the deletes where they are. The manifest
    /// goes first, so the checkpoint is either still whole or no longer
    /// visible; shards left behind are removed by
    /// [`cleanup_uncommitted`](Self::cleanup_uncommitted) or by deleting the
    /// name again.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointError, CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// ckpt.save("old", &ShardData::new().with_entry("a", vec![1]), SaveOptions::new()).await?;
    /// let report = ckpt.delete("old").await?;
    /// assert_eq!(report.deleted.len(), 2);
    /// assert!(ckpt.storage().is_empty());
    /// assert!(matches!(ckpt.delete("old").await, Err(CheckpointError::NotFound { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete(&self, name: &str) -> Result<RollbackReport> {
        validate_name(name)?;
        let mut report = RollbackReport::default();
        let removal = remove_checkpoint(&self.storage, &self.retry, name, &mut report).await;
        if !removal.manifest_gone {
            let manifest = manifest_key(name);
            if let Some(at) = report.failed.iter().position(|(k, _)| *k == manifest) {
                let (_, error) = report.failed.swap_remove(at);
                return Err(CheckpointError::Storage(error));
            }
        }
        if removal.listed == 0 && report.is_complete() {
            return Err(CheckpointError::NotFound {
                name: name.to_string(),
            });
        }
        Ok(report)
    }

    /// Keeps the newest `keep` committed checkpoints and deletes the older
    /// ones (as [`delete`](Self::delete) does).
    ///
    /// `keep` is clamped to at least 1: retention never deletes the newest
    /// committed checkpoint. A prefix being written (no manifest yet) is not
    /// a committed checkpoint, so retention never touches it.
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list). Objects that cannot be deleted are in the
    /// report.
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops it between or inside removals; each
    /// checkpoint is left whole or invisible, as with [`delete`](Self::delete).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// for step in 1..=4 {
    ///     ckpt.save(&format!("step-{step}"), &ShardData::new(), SaveOptions::new().step(step)).await?;
    /// }
    /// let report = ckpt.retain_last(2).await?;
    /// assert_eq!(report.kept, ["step-4", "step-3"]);
    /// assert_eq!(report.removed, ["step-2", "step-1"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn retain_last(&self, keep: usize) -> Result<RetentionReport> {
        let keep = keep.max(1);
        let mut report = RetentionReport::default();
        for (i, info) in self.list().await?.into_iter().enumerate() {
            if i < keep {
                report.kept.push(info.name);
                continue;
            }
            let removal =
                remove_checkpoint(&self.storage, &self.retry, &info.name, &mut report.objects)
                    .await;
            if removal.manifest_gone {
                report.removed.push(info.name);
            }
        }
        tracing::info!(
            target: TARGET,
            kept = report.kept.len(),
            removed = report.removed.len(),
            failed = report.objects.failed.len(),
            "retention applied"
        );
        Ok(report)
    }

    /// Removes the leftovers of saves that never committed: every prefix that
    /// holds shard objects (`shard-*.bin`) but no manifest, and whose newest
    /// object was written more than `grace` ago.
    ///
    /// The age comes from the storage's
    /// [`last_modified`](crate::storage::ObjectMeta::last_modified) times,
    /// compared with the wall clock (the only clock such times can be compared
    /// with). A prefix whose times the storage does not record is removed only
    /// with a zero grace. Choose a grace longer than the longest save: a
    /// prefix written to within the grace may be a save in progress, and is
    /// left alone. A prefix that holds a manifest (even one that cannot be
    /// read: it may be a committed checkpoint worth inspecting), prefixes
    /// inside it, and prefixes with no shard objects are never touched.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Storage`] when listing fails. Objects that cannot be
    /// deleted are in the report.
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the deletes where they are; what is left is
    /// still uncommitted, and the next cleanup removes it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::storage::CheckpointStorage;
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// // A save that crashed before its commit left a shard behind.
    /// ckpt.storage().put("crashed/shard-00000-of-00001-0000000000000001.bin", vec![0; 8].into()).await?;
    /// let report = ckpt.cleanup_uncommitted(Duration::ZERO).await?;
    /// assert_eq!(report.removed, ["crashed"]);
    /// assert!(ckpt.storage().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn cleanup_uncommitted(&self, grace: Duration) -> Result<CleanupReport> {
        let objects = self.list_all().await?;
        let mut groups: BTreeMap<&str, Vec<&ObjectMeta>> = BTreeMap::new();
        for object in &objects {
            if let Some((prefix, _)) = object.key.rsplit_once('/') {
                groups.entry(prefix).or_default().push(object);
            }
        }
        let committed: Vec<&str> = groups
            .iter()
            .filter(|(_, objs)| objs.iter().any(|o| file_name(&o.key) == MANIFEST_FILE_NAME))
            .map(|(prefix, _)| *prefix)
            .collect();
        let now = SystemTime::now();
        let mut report = CleanupReport::default();
        for (prefix, objs) in &groups {
            let inside_committed = committed.iter().any(|c| {
                *prefix == *c
                    || prefix
                        .strip_prefix(c)
                        .is_some_and(|rest| rest.starts_with('/'))
            });
            if inside_committed || !objs.iter().any(|o| is_shard_file_name(file_name(&o.key))) {
                continue;
            }
            if !grace.is_zero() {
                let times: Option<Vec<SystemTime>> = objs.iter().map(|o| o.last_modified).collect();
                let old_enough = times
                    .and_then(|t| t.into_iter().max())
                    .is_some_and(|newest| {
                        now.duration_since(newest).unwrap_or(Duration::ZERO) >= grace
                    });
                if !old_enough {
                    report.recent.push(prefix.to_string());
                    continue;
                }
            }
            // A save may have committed since the listing.
            let manifest = manifest_key(prefix);
            match self.retry.retry(|| self.storage.exists(&manifest)).await {
                Ok(false) => {}
                Ok(true) => continue,
                Err(e) => {
                    report.objects.failed.push((manifest, e.into_inner()));
                    continue;
                }
            }
            for object in objs {
                delete_object(&self.storage, &self.retry, &object.key, &mut report.objects).await;
            }
            tracing::info!(target: TARGET, prefix, objects = objs.len(), "uncommitted checkpoint leftovers removed");
            report.removed.push(prefix.to_string());
        }
        Ok(report)
    }
}

fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// Maps a coordinator failure of a collective step: a timeout (or a round
/// broken by another rank's timeout) names the missing ranks.
fn collective_error(name: &str, after: Duration, e: CoordinatorError) -> CheckpointError {
    match e {
        CoordinatorError::Timeout { .. } | CoordinatorError::Broken { .. } => {
            CheckpointError::Timeout {
                name: name.to_string(),
                after,
                missing_ranks: e.missing_ranks().to_vec(),
                source: e,
            }
        }
        other => CheckpointError::Coordinator(other),
    }
}

/// Builds the manifest from every rank's report (the same on every rank),
/// or says which ranks are at fault.
fn assemble_manifest(
    name: &str,
    world_size: usize,
    mut written: Vec<(usize, Written)>,
    options: &SaveOptions,
) -> std::result::Result<Manifest, (Vec<usize>, String)> {
    written.sort_by_key(|(rank, _)| *rank);
    let mut manifest = Manifest::new(name, world_size);
    manifest.step = options.step;
    manifest.metadata = options.metadata.clone();
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (rank, w) in written {
        for (entry, offset, length) in &w.entries {
            if let Some(first) = owner.insert(entry.clone(), rank) {
                return Err((
                    if first == rank { vec![rank] } else { vec![first, rank] },
                    format!("entry {entry:?} is saved by rank {first} and rank {rank}; entry names must be unique"),
                ));
            }
            if offset.checked_add(*length).is_none_or(|end| end > w.size) {
                return Err((
                    vec![rank],
                    format!("rank {rank}: entry {entry:?} lies outside its shard"),
                ));
            }
            manifest.entries.insert(
                entry.clone(),
                super::manifest::EntryLocation {
                    rank,
                    offset: *offset,
                    length: *length,
                },
            );
        }
        manifest.shards.push(ShardInfo {
            rank,
            key: w.key,
            size: w.size,
            sha256: w.sha256,
        });
    }
    manifest.validate(name).map_err(|e| {
        (
            Vec::new(),
            format!("the assembled manifest is invalid: {e}"),
        )
    })?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::InMemoryCoordinator;
    use crate::storage::MemoryStorage;

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<DistributedCheckpoint<MemoryStorage, InMemoryCoordinator>>();
        check::<
            DistributedCheckpoint<
                std::sync::Arc<dyn CheckpointStorage>,
                std::sync::Arc<dyn Coordinator>,
            >,
        >();
    }

    #[test]
    fn save_futures_are_send() {
        fn check<T: Send>(_: T) {}
        let rank = InMemoryCoordinator::new(1).remove(0);
        let ckpt = DistributedCheckpoint::new(
            MemoryStorage::new(),
            rank,
            RetryPolicy::default(),
            CheckpointOptions::default(),
        );
        let shard = ShardData::new();
        check(ckpt.save("a", &shard, SaveOptions::new()));
        check(ckpt.save_stream(
            "a",
            || async { Ok(std::io::Cursor::new(vec![1u8])) },
            SaveOptions::new(),
        ));
        check(ckpt.load("a", LoadOptions::new()));
        check(ckpt.load_entries("a", |_| true));
        check(ckpt.list());
        check(ckpt.retain_last(1));
        check(ckpt.cleanup_uncommitted(Duration::ZERO));
    }

    #[test]
    fn a_storage_error_inside_an_io_error_is_unwrapped() {
        let wrapped = io::Error::new(
            io::ErrorKind::InvalidData,
            StorageError::LengthMismatch {
                key: "k".into(),
                expected: 4,
                actual: 3,
            },
        );
        assert!(matches!(
            storage_error_from_io("k", "get_stream", wrapped),
            StorageError::LengthMismatch { actual: 3, .. }
        ));
        let plain = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert!(matches!(
            storage_error_from_io("k", "get_stream", plain),
            StorageError::Io { ref source, .. } if source.kind() == io::ErrorKind::UnexpectedEof
        ));
    }

    #[test]
    fn duplicate_entries_across_ranks_blame_both() {
        let w = |key: &str| Written {
            key: key.into(),
            size: 1,
            sha256: super::super::manifest::sha256_hex(b"x"),
            entries: vec![("e".into(), 0, 1)],
        };
        let err = assemble_manifest(
            "c",
            2,
            vec![(1, w("c/shard-1.bin")), (0, w("c/shard-0.bin"))],
            &SaveOptions::new(),
        )
        .unwrap_err();
        assert_eq!(err.0, vec![0, 1]);
    }

    #[test]
    fn newest_first() {
        let info = |name: &str, at: u64, step| CheckpointInfo {
            name: name.into(),
            step,
            created_at: std::time::UNIX_EPOCH + Duration::from_millis(at),
            world_size: 1,
            total_size: 0,
        };
        let mut infos = vec![
            info("a", 1, Some(1)),
            info("b", 2, None),
            info("c", 2, Some(1)),
            info("d", 2, Some(1)),
        ];
        sort_newest_first(&mut infos);
        let names: Vec<_> = infos.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["d", "c", "b", "a"]);
    }
}
