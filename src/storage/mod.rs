//! Where checkpoint bytes live: the [`CheckpointStorage`] trait.
//!
//! A storage is a flat map from keys (`"run-7/shard-00003.bin"`) to byte
//! objects. Every write is atomic: a reader sees all of an object or none of
//! it, never a prefix. Large objects stream in and out
//! ([`CheckpointStorage::put_stream`], [`CheckpointStorage::get_stream`]) so
//! that a multi-GiB shard is never held twice in memory.
//!
//! Keys are validated before any I/O by [`validate_key`]: a key is one or
//! more `/`-separated segments, none empty, `.` or `..`, with no backslash, no
//! NUL byte and no leading `/`.
//!
//! Implementations:
//! - [`MemoryStorage`]: in memory, the mock that tests use, with fault
//!   injection ([`testing::StorageFaults`]) and a record of the calls it
//!   received ([`testing::Call`]).
//! - [`LocalFsStorage`]: plain files under a root directory, written
//!   atomically and durably (temporary file, `fsync`, rename, directory
//!   `fsync`): the embedded default.
//! - `ObjectStoreStorage` (feature `object-store`): S3, GCS, Azure or any
//!   `object_store::ObjectStore`; large objects through multipart upload,
//!   `put_if_absent` through a conditional create.
//! - [`ReplicatedStorage`]: a copy of every object on each of N other
//!   storages, quorum writes ([`ConsistencyLevel`]), reads that verify
//!   every copy, read repair and a scrub.
//!
//! The `conformance` module (feature `testing`) checks that an
//! implementation (yours too) keeps the contract of the trait; the
//! [`testing`] module holds the types with which a test drives a
//! [`MemoryStorage`]: its fault rules and its record of calls.
//!
//! The trait is object-safe: `Arc<dyn CheckpointStorage>` works wherever a
//! storage is expected.

#[cfg(any(test, feature = "testing"))]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod conformance;
mod error;
mod key;
mod local;
mod memory;
#[cfg(feature = "object-store")]
mod object_store;
mod replicated;
pub mod testing;

#[cfg(feature = "object-store")]
pub use self::object_store::{ObjectStoreStorage, MIN_PART_SIZE};
/// The buffer that [`CheckpointStorage::put`] takes and
/// [`CheckpointStorage::get`] returns, re-exported from the `bytes` crate so
/// that callers need not depend on it: a `Vec<u8>` converts into it without
/// a copy (`vec.into()`), and clones share the same bytes.
pub use bytes::Bytes;
pub use error::{ReplicaFailure, Result, StorageError};
pub use key::{validate_key, validate_prefix};
pub use local::{LocalFsStorage, TempCleanupReport, DEFAULT_BACKGROUND_SYNC};
pub use memory::MemoryStorage;
pub use replicated::{
    ConsistencyLevel, KeyRepair, RepairOutcome, RepairReport, RepairStats, Replica,
    ReplicatedStorage, ReplicatedStorageBuilder,
};

use std::fmt::Debug;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt};

/// What a storage knows about one stored object.
///
/// # Examples
///
/// ```
/// use steadfast::storage::ObjectMeta;
///
/// let meta = ObjectMeta { key: "ckpt/metadata.json".into(), size: 512, last_modified: None };
/// assert_eq!(meta.size, 512);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, if the storage records it.
    pub last_modified: Option<SystemTime>,
}

/// A byte stream read from a storage.
///
/// # Examples
///
/// ```
/// use steadfast::storage::ObjectReader;
/// use tokio::io::AsyncReadExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let mut reader: ObjectReader = Box::pin(std::io::Cursor::new(b"bytes".to_vec()));
/// let mut out = Vec::new();
/// reader.read_to_end(&mut out).await?;
/// assert_eq!(out, b"bytes");
/// # Ok(())
/// # }
/// ```
pub type ObjectReader = Pin<Box<dyn AsyncRead + Send>>;

/// An object opened for streaming reads: its metadata and its bytes.
///
/// The reader yields exactly `meta.size` bytes; a storage whose object turns
/// out shorter or longer while being read fails the read with an error rather
/// than returning a different number of bytes.
///
/// # Examples
///
/// ```
/// use steadfast::storage::{CheckpointStorage, MemoryStorage};
/// use tokio::io::AsyncReadExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let storage = MemoryStorage::new();
/// storage.put("run/shard-0", vec![7; 1000].into()).await?;
/// let mut stream = storage.get_stream("run/shard-0").await?;
/// assert_eq!(stream.meta.size, 1000);
/// let mut bytes = Vec::new();
/// stream.reader.read_to_end(&mut bytes).await?;
/// assert_eq!(bytes, vec![7; 1000]);
/// # Ok(())
/// # }
/// ```
pub struct ObjectStream {
    /// The object's metadata.
    pub meta: ObjectMeta,
    /// Its bytes.
    pub reader: ObjectReader,
}

impl Debug for ObjectStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStream")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// A streaming write in progress, made by [`CheckpointStorage::put_stream`].
///
/// Nothing is visible under the key until [`commit`](ObjectWriter::commit)
/// returns. [`abort`](ObjectWriter::abort), or dropping the writer, discards
/// what was written (a storage may leave a temporary object behind for its
/// cleanup to remove, never a visible one).
///
/// A `write` or `write_buf` whose future is dropped before it completes may
/// or may not have appended its bytes: abort the writer rather than go on.
/// ([`LocalFsStorage`] refuses to commit after such a write, with
/// [`StorageError::LengthMismatch`]: its commit compares the file's size
/// with the bytes it accepted.)
///
/// # Examples
///
/// ```
/// use steadfast::storage::{CheckpointStorage, MemoryStorage};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> steadfast::storage::Result<()> {
/// let storage = MemoryStorage::new();
/// let mut writer = storage.put_stream("run/shard-0").await?;
/// writer.write(b"first half, ").await?;
/// assert!(!storage.exists("run/shard-0").await?); // not visible yet
/// writer.write(b"second half").await?;
/// let meta = writer.commit().await?;
/// assert_eq!(meta.size, 23);
///
/// let mut discarded = storage.put_stream("run/shard-1").await?;
/// discarded.write(b"never seen").await?;
/// discarded.abort().await?;
/// assert!(!storage.exists("run/shard-1").await?);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait ObjectWriter: Send {
    /// Appends bytes to the object being written.
    async fn write(&mut self, chunk: &[u8]) -> Result<()>;

    /// Appends a chunk the writer may keep, and returns an empty buffer for
    /// the caller to fill next (often one of its earlier chunks, emptied).
    ///
    /// A writer that hands bytes to another thread takes the chunk as it is
    /// instead of copying it ([`LocalFsStorage`] gives it to the blocking
    /// task that writes the file), so a caller that produces bytes in owned
    /// buffers saves a copy of every byte. The provided implementation
    /// copies through [`write`](Self::write) and returns the chunk emptied.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{CheckpointStorage, MemoryStorage};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> steadfast::storage::Result<()> {
    /// let storage = MemoryStorage::new();
    /// let mut writer = storage.put_stream("run/shard-0").await?;
    /// let mut buffer = Vec::with_capacity(4096);
    /// for byte in 0..4u8 {
    ///     buffer.extend_from_slice(&[byte; 1000]);
    ///     buffer = writer.write_buf(buffer).await?;
    ///     assert!(buffer.is_empty());
    /// }
    /// assert_eq!(writer.commit().await?.size, 4000);
    /// # Ok(())
    /// # }
    /// ```
    async fn write_buf(&mut self, mut chunk: Vec<u8>) -> Result<Vec<u8>> {
        self.write(&chunk).await?;
        chunk.clear();
        Ok(chunk)
    }

    /// Makes the object visible under its key, atomically and durably.
    async fn commit(self: Box<Self>) -> Result<ObjectMeta>;

    /// Discards the write.
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// Where checkpoint bytes live.
///
/// Implementations validate every key with [`validate_key`] (and every list
/// prefix with [`validate_prefix`]) before doing any I/O.
///
/// # Examples
///
/// ```
/// use steadfast::storage::{Bytes, CheckpointStorage, MemoryStorage};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> steadfast::storage::Result<()> {
/// let storage = MemoryStorage::new();
/// storage.put("run/shard-0", Bytes::from_static(b"weights")).await?;
/// assert_eq!(storage.get("run/shard-0").await?, &b"weights"[..]);
/// assert!(storage.put("../escape", vec![].into()).await.is_err());
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait CheckpointStorage: Send + Sync + Debug + 'static {
    /// Stores `data` under `key`, replacing any previous object, atomically.
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;

    /// Stores `data` under `key` only if no object exists there; fails with
    /// [`StorageError::AlreadyExists`] otherwise. The check and the write are
    /// one atomic step, so two writers cannot both succeed.
    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<()>;

    /// Returns the whole object stored under `key`.
    async fn get(&self, key: &str) -> Result<Bytes>;

    /// Returns the metadata of the object under `key`, or
    /// [`StorageError::NotFound`].
    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// Deletes the object under `key`. Deleting a key that does not exist
    /// succeeds (deletes are idempotent).
    async fn delete(&self, key: &str) -> Result<()>;

    /// Lists the objects whose keys start with `prefix`, sorted by key.
    /// Temporary objects of writes in progress are never listed.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Starts a streaming write to `key`.
    async fn put_stream(&self, key: &str) -> Result<Box<dyn ObjectWriter>>;

    /// Opens the object under `key` for a streaming read.
    async fn get_stream(&self, key: &str) -> Result<ObjectStream>;

    /// Returns the whole object under `key` if it holds exactly `size`
    /// bytes: how a checkpoint reads a shard whose size its manifest
    /// records. An object of another size fails with
    /// [`StorageError::LengthMismatch`] before its bytes are read, so a
    /// damaged object far larger than expected is never loaded into memory.
    ///
    /// The provided implementation opens a [`get_stream`](Self::get_stream),
    /// compares its size, and reads it into a buffer of exactly `size`
    /// bytes. A storage that can do better overrides it
    /// ([`LocalFsStorage`] reads the file in one pass on the blocking pool).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{CheckpointStorage, MemoryStorage, StorageError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> steadfast::storage::Result<()> {
    /// let storage = MemoryStorage::new();
    /// storage.put("run/shard-0", vec![1, 2, 3].into()).await?;
    /// assert_eq!(storage.get_sized("run/shard-0", 3).await?, vec![1, 2, 3]);
    /// assert!(matches!(
    ///     storage.get_sized("run/shard-0", 2).await,
    ///     Err(StorageError::LengthMismatch { expected: 2, actual: 3, .. })
    /// ));
    /// # Ok(())
    /// # }
    /// ```
    async fn get_sized(&self, key: &str, size: u64) -> Result<Bytes> {
        let stream = self.get_stream(key).await?;
        let mismatch = |actual| StorageError::LengthMismatch {
            key: key.to_string(),
            expected: size,
            actual,
        };
        if stream.meta.size != size {
            return Err(mismatch(stream.meta.size));
        }
        let mut data = allocate_exact(key, "get_stream", size)?;
        stream
            .reader
            .take(size.saturating_add(1))
            .read_to_end(&mut data)
            .await
            .map_err(|source| StorageError::Io {
                key: key.to_string(),
                operation: "get_stream",
                source,
            })?;
        if data.len() as u64 != size {
            return Err(mismatch(data.len() as u64));
        }
        Ok(Bytes::from(data))
    }

    /// Removes temporary objects of interrupted writes older than
    /// `older_than`, returns how many it removed; the default returns
    /// `Ok(0)` for storages that leave none.
    ///
    /// A write that a crash interrupts can leave a temporary object behind
    /// (never a visible one). A committed object is never removed, nor is a
    /// temporary object younger than `older_than`: pick an age well above
    /// the longest write, so that writes still in progress keep theirs.
    /// [`LocalFsStorage`] removes its temporary files and the directories
    /// left empty ([`LocalFsStorage::cleanup_temp_files`] says what it
    /// removed); [`MemoryStorage`] leaves nothing behind; an object store
    /// keeps the default, since `object_store` cannot list the multipart
    /// uploads a crash left open: let the bucket's lifecycle rule abort
    /// them (S3's `AbortIncompleteMultipartUpload`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::storage::{CheckpointStorage, MemoryStorage};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> steadfast::storage::Result<()> {
    /// let storage = MemoryStorage::new();
    /// storage.put("run/shard-0", vec![1].into()).await?;
    /// assert_eq!(storage.cleanup_temporary(Duration::from_secs(3600)).await?, 0);
    /// assert!(storage.exists("run/shard-0").await?);
    /// # Ok(())
    /// # }
    /// ```
    async fn cleanup_temporary(&self, older_than: Duration) -> Result<u64> {
        let _ = older_than;
        Ok(0)
    }

    /// Returns the bytes `range` of the object under `key`: how a checkpoint
    /// reads one entry (or the frames that hold it) without the rest of the
    /// shard.
    ///
    /// An empty range (`start == end`) at or before the object's end reads
    /// nothing and returns no bytes, once the object is found.
    ///
    /// The provided implementation reads the whole object with
    /// [`get`](Self::get) and slices it. A storage that can read a part
    /// overrides it ([`LocalFsStorage`] reads the range in one positioned
    /// read on the blocking pool; `ObjectStoreStorage` sends a ranged GET).
    ///
    /// # Errors
    ///
    /// [`StorageError::NotFound`] when there is no object;
    /// [`StorageError::RangeOutOfBounds`] when `range` ends past the
    /// object's end or before its start.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{CheckpointStorage, MemoryStorage, StorageError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> steadfast::storage::Result<()> {
    /// let storage = MemoryStorage::new();
    /// storage.put("run/shard-0", vec![1, 2, 3, 4].into()).await?;
    /// assert_eq!(storage.get_range("run/shard-0", 1..3).await?, vec![2, 3]);
    /// assert!(matches!(
    ///     storage.get_range("run/shard-0", 2..5).await,
    ///     Err(StorageError::RangeOutOfBounds { size: 4, .. })
    /// ));
    /// # Ok(())
    /// # }
    /// ```
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let data = self.get(key).await?;
        let (start, end) = check_range(key, &range, data.len() as u64)?;
        Ok(data.slice(start..end))
    }

    /// Whether an object exists under `key`.
    async fn exists(&self, key: &str) -> Result<bool> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(StorageError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

macro_rules! forward_storage {
    ($ty:ty) => {
        #[async_trait]
        impl<T: CheckpointStorage + ?Sized> CheckpointStorage for $ty {
            async fn put(&self, key: &str, data: Bytes) -> Result<()> {
                (**self).put(key, data).await
            }
            async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<()> {
                (**self).put_if_absent(key, data).await
            }
            async fn get(&self, key: &str) -> Result<Bytes> {
                (**self).get(key).await
            }
            async fn head(&self, key: &str) -> Result<ObjectMeta> {
                (**self).head(key).await
            }
            async fn delete(&self, key: &str) -> Result<()> {
                (**self).delete(key).await
            }
            async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
                (**self).list(prefix).await
            }
            async fn put_stream(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
                (**self).put_stream(key).await
            }
            async fn get_stream(&self, key: &str) -> Result<ObjectStream> {
                (**self).get_stream(key).await
            }
            async fn get_sized(&self, key: &str, size: u64) -> Result<Bytes> {
                (**self).get_sized(key, size).await
            }
            async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
                (**self).get_range(key, range).await
            }
            async fn exists(&self, key: &str) -> Result<bool> {
                (**self).exists(key).await
            }
            async fn cleanup_temporary(&self, older_than: Duration) -> Result<u64> {
                (**self).cleanup_temporary(older_than).await
            }
        }
    };
}

/// Checks that `range` lies inside an object of `size` bytes; returns its
/// bounds as indices into the object's bytes.
pub(crate) fn check_range(key: &str, range: &Range<u64>, size: u64) -> Result<(usize, usize)> {
    let out = || StorageError::RangeOutOfBounds {
        key: key.to_string(),
        start: range.start,
        end: range.end,
        size,
    };
    if range.start > range.end || range.end > size {
        return Err(out());
    }
    let start = usize::try_from(range.start).map_err(|_| out())?;
    let end = usize::try_from(range.end).map_err(|_| out())?;
    Ok((start, end))
}

/// An empty buffer with room for exactly `size` bytes, or an
/// [`io::ErrorKind::OutOfMemory`] error naming the key when the memory
/// cannot be had.
pub(crate) fn allocate_exact(key: &str, operation: &'static str, size: u64) -> Result<Vec<u8>> {
    let out_of_memory = |message: String| StorageError::Io {
        key: key.to_string(),
        operation,
        source: io::Error::new(io::ErrorKind::OutOfMemory, message),
    };
    let capacity = usize::try_from(size)
        .map_err(|_| out_of_memory(format!("an object of {size} bytes does not fit in memory")))?;
    let mut data = Vec::new();
    data.try_reserve_exact(capacity)
        .map_err(|e| out_of_memory(format!("reserving {size} bytes: {e}")))?;
    Ok(data)
}

forward_storage!(Arc<T>);
forward_storage!(Box<T>);
