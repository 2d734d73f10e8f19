//! [`ObjectStoreStorage`]: checkpoint bytes in an object store (S3, GCS,
//! Azure Blob Storage, local files, memory) through the `object_store` crate
//! (feature `object-store`).
//!
//! How each operation maps onto the store is documented on
//! [`ObjectStoreStorage`].

use std::fmt;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, TryStreamExt};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    GetOptions, MultipartUpload, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use tokio::io::{AsyncRead, ReadBuf};

use super::{
    check_range, validate_key, validate_prefix, CheckpointStorage, ObjectMeta, ObjectStream,
    ObjectWriter, Result, StorageError,
};
use crate::error::ConfigError;
use crate::retry::is_transient_io_kind;

const TARGET: &str = "steadfast::storage";

/// The smallest part of a multipart upload that S3 accepts (all parts but
/// the last): 5 MiB.
///
/// # Examples
///
/// ```
/// assert_eq!(steadfast::storage::MIN_PART_SIZE, 5 * 1024 * 1024);
/// ```
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// A [`CheckpointStorage`] on any [`ObjectStore`]: S3, GCS, Azure, local
/// files or memory.
///
/// Build one on a store you configured ([`ObjectStoreStorage::new`]), or
/// from a URL ([`ObjectStoreStorage::from_url`]).
///
/// # How it works
///
/// Each [`CheckpointStorage`] operation maps onto one `object_store` call on
/// an `Arc<dyn ObjectStore>`, after the key has been checked with
/// [`validate_key`] (or the prefix with [`validate_prefix`]):
///
/// | trait | object store |
/// |---|---|
/// | `put` | a single PUT (atomic: readers see the old or the new object) |
/// | `put_if_absent` | a PUT with `PutMode::Create` (S3 `If-None-Match: *`), so that of two writers of a manifest exactly one wins |
/// | `get`, `head`, `delete` | GET, HEAD, DELETE (a missing object deletes fine); the body of a GET is handed on as the store's `Bytes`, not copied |
/// | `get_sized` | a GET whose reported size is checked before its body is read |
/// | `list(prefix)` | a listing of the directory that holds `prefix`, filtered by the whole prefix, sorted |
/// | `put_stream` | a multipart upload, buffered in parts of `part_size` (at least 5 MiB, the S3 minimum); an object smaller than one part is sent as a single PUT |
/// | `get_stream` | the streaming body of a GET, checked against the object's size |
///
/// A multipart upload is invisible until it is completed, which is exactly
/// the contract of [`ObjectWriter`]: nothing shows under the key before
/// `commit`. At most one part is held in memory, never the whole object. An
/// aborted writer aborts its upload; a writer dropped without `commit` or
/// `abort` aborts it in a background task (on S3, configure a lifecycle
/// rule that removes incomplete multipart uploads too: a process that dies
/// mid-upload cannot abort anything). For the same reason
/// [`cleanup_temporary`](CheckpointStorage::cleanup_temporary) keeps the
/// trait's default and returns `Ok(0)`: `object_store` offers no listing of
/// the multipart uploads left open, so only that lifecycle rule reclaims
/// them. The parts of an upload that was never completed are never visible
/// as an object.
///
/// Keys follow the rule of every storage ([`validate_key`]). On S3, GCS
/// and Azure every valid key works; `object_store`'s local file system
/// (`file://`) holds shorter names only: it stages a write in a file named
/// `<name>#<n>` and percent-encodes non-ASCII bytes, so a segment near the
/// 255-byte limit fails there with [`StorageError::Backend`].
///
/// Errors map to [`StorageError`]: `NotFound`, `AlreadyExists`,
/// `InvalidKey` for a path the store refuses, and `Backend` for the rest,
/// transient when the failure was a connection, a timeout or a transient I/O
/// error (the store's own HTTP client has already retried those by then).
///
/// # Default
///
/// - `part_size`: [`MIN_PART_SIZE`] (5 MiB)
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use object_store::memory::InMemory;
/// use steadfast::storage::{Bytes, CheckpointStorage, ObjectStoreStorage, StorageError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> steadfast::storage::Result<()> {
/// let storage = ObjectStoreStorage::new(Arc::new(InMemory::new()));
/// storage.put_if_absent("run-1/metadata.json", Bytes::from_static(b"{}")).await?;
/// let again = storage.put_if_absent("run-1/metadata.json", Bytes::from_static(b"{}")).await;
/// assert!(matches!(again, Err(StorageError::AlreadyExists { .. })));
/// assert_eq!(storage.list("run-1/").await?.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ObjectStoreStorage {
    store: Arc<dyn ObjectStore>,
    part_size: usize,
}

/// Shows the store by its `Display` (`AmazonS3(bucket)`), which carries no
/// credentials.
impl fmt::Debug for ObjectStoreStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreStorage")
            .field("store", &format_args!("{}", self.store))
            .field("part_size", &self.part_size)
            .finish()
    }
}

impl ObjectStoreStorage {
    /// A storage on `store`, with keys used as the store's paths.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use object_store::memory::InMemory;
    /// use steadfast::storage::ObjectStoreStorage;
    ///
    /// let storage = ObjectStoreStorage::new(Arc::new(InMemory::new()));
    /// assert_eq!(storage.part_size(), 5 * 1024 * 1024);
    /// ```
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        ObjectStoreStorage {
            store,
            part_size: MIN_PART_SIZE,
        }
    }

    /// A storage from a URL, with the store's options:
    ///
    /// - `s3://bucket/prefix` (also `s3a://`): Amazon S3 or a compatible
    ///   server. Options are `object_store`'s S3 keys, such as
    ///   `aws_access_key_id`, `aws_secret_access_key`, `aws_region`,
    ///   `aws_endpoint` (a compatible server) and `aws_allow_http`; pass
    ///   `std::env::vars()` to take them from `AWS_*` environment variables.
    /// - `file:///path/to/dir`: a local directory, created if missing, with
    ///   durable writes (`fsync`) and empty directories removed on delete.
    /// - `memory://`: a fresh in-memory store (tests).
    /// - `gs://bucket/prefix` and `az://container/prefix` when your build
    ///   enables `object_store`'s `gcp` or `azure` feature.
    ///
    /// A path after the bucket becomes a prefix under which every key lives.
    ///
    /// # Errors
    ///
    /// [`StorageError::Backend`] (not transient) when the URL does not parse,
    /// names a scheme this build does not support, or the store cannot be
    /// built from the options; [`StorageError::Io`] when a `file://`
    /// directory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{Bytes, CheckpointStorage, ObjectStoreStorage};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> steadfast::storage::Result<()> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let url = format!("file://{}/checkpoints", dir.path().display());
    /// let storage = ObjectStoreStorage::from_url(&url, std::iter::empty::<(&str, &str)>())?;
    /// storage.put("run-1/shard-0", Bytes::from_static(b"weights")).await?;
    /// assert!(dir.path().join("checkpoints/run-1/shard-0").exists());
    ///
    /// let s3 = ObjectStoreStorage::from_url(
    ///     "s3://my-bucket/jobs/train-42",
    ///     [("aws_region", "eu-west-1"), ("aws_access_key_id", "AKIA"), ("aws_secret_access_key", "x")],
    /// )?;
    /// assert!(ObjectStoreStorage::from_url("ftp://host/x", std::iter::empty::<(&str, &str)>()).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_url<I, K, V>(url: &str, options: I) -> Result<ObjectStoreStorage>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let refuse = |message: String, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
            StorageError::Backend {
                key: url.to_string(),
                message,
                transient: false,
                source,
            }
        };
        // `memory://` has an empty host, which `object_store` does not read
        // as its in-memory scheme; `memory:///` is the same store.
        let normalized = match url {
            "memory://" | "memory:" => "memory:///",
            other => other,
        };
        let parsed = url::Url::parse(normalized)
            .map_err(|e| refuse(format!("invalid storage URL: {e}"), Some(Box::new(e))))?;
        let store: Arc<dyn ObjectStore> = if parsed.scheme() == "file" {
            let dir = parsed.to_file_path().map_err(|()| {
                refuse(
                    "a file:// URL must name an absolute local path".to_string(),
                    None,
                )
            })?;
            std::fs::create_dir_all(&dir).map_err(|source| StorageError::Io {
                key: dir.display().to_string(),
                operation: "create directory",
                source,
            })?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| {
                    refuse(
                        format!("cannot use {}: {e}", dir.display()),
                        Some(Box::new(e)),
                    )
                })?
                .with_fsync(true)
                .with_automatic_cleanup(true);
            Arc::new(local)
        } else {
            let (store, path) = object_store::parse_url_opts(&parsed, options).map_err(|e| {
                refuse(
                    format!("cannot open an object store for this URL: {e}"),
                    Some(Box::new(e)),
                )
            })?;
            if path.is_root() {
                Arc::from(store)
            } else {
                Arc::new(PrefixStore::new(store, path))
            }
        };
        tracing::debug!(target: TARGET, storage = "object-store", url, store = %store, "opened");
        Ok(ObjectStoreStorage::new(store))
    }

    /// Sets the size of the parts of a streamed write (multipart upload).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `bytes` is below [`MIN_PART_SIZE`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use object_store::memory::InMemory;
    /// use steadfast::storage::ObjectStoreStorage;
    ///
    /// let storage = ObjectStoreStorage::new(Arc::new(InMemory::new()))
    ///     .with_part_size(16 * 1024 * 1024)?;
    /// assert_eq!(storage.part_size(), 16 * 1024 * 1024);
    /// assert!(ObjectStoreStorage::new(Arc::new(InMemory::new())).with_part_size(1024).is_err());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn with_part_size(mut self, bytes: usize) -> std::result::Result<Self, ConfigError> {
        if bytes < MIN_PART_SIZE {
            return Err(ConfigError::new(
                "part_size",
                format!(
                    "must be at least {MIN_PART_SIZE} bytes (5 MiB, the S3 minimum), got {bytes}"
                ),
            ));
        }
        self.part_size = bytes;
        Ok(self)
    }

    /// The size of the parts of a streamed write.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use steadfast::storage::{ObjectStoreStorage, MIN_PART_SIZE};
    /// let storage = ObjectStoreStorage::new(Arc::new(object_store::memory::InMemory::new()));
    /// assert_eq!(storage.part_size(), MIN_PART_SIZE);
    /// ```
    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// The object store underneath.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use steadfast::storage::ObjectStoreStorage;
    /// let storage = ObjectStoreStorage::new(Arc::new(object_store::memory::InMemory::new()));
    /// assert!(storage.store().to_string().contains("InMemory"));
    /// ```
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }
}

/// Validates `key` and turns it into the store's path.
fn path_of(key: &str) -> Result<Path> {
    validate_key(key)?;
    Path::parse(key).map_err(|_| StorageError::InvalidKey {
        key: key.to_string(),
        reason: "the object store refuses this path",
    })
}

fn meta_of(meta: object_store::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        key: meta.location.to_string(),
        size: meta.size,
        last_modified: Some(SystemTime::from(meta.last_modified)),
    }
}

/// Whether an object store error is worth retrying: a connection failure, a
/// timeout or an interrupted request, or a transient I/O error, found
/// anywhere in its source chain.
fn is_transient(err: &object_store::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(http) = e.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind as K;
            return matches!(
                http.kind(),
                K::Connect | K::Request | K::Timeout | K::Interrupted
            );
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return is_transient_io_kind(io.kind());
        }
        current = e.source();
    }
    false
}

/// Maps an object store error on `key` during `operation`.
fn map_error(key: &str, operation: &'static str, err: object_store::Error) -> StorageError {
    use object_store::Error as E;
    match err {
        E::NotFound { .. } => StorageError::NotFound {
            key: key.to_string(),
        },
        E::AlreadyExists { .. } => StorageError::AlreadyExists {
            key: key.to_string(),
        },
        E::InvalidPath { .. } => StorageError::InvalidKey {
            key: key.to_string(),
            reason: "the object store refuses this path",
        },
        other => {
            let transient = is_transient(&other);
            StorageError::Backend {
                key: key.to_string(),
                message: format!("{operation} failed: {other}"),
                transient,
                source: Some(Box::new(other)),
            }
        }
    }
}

impl ObjectStoreStorage {
    /// One GET, whose body comes back as the `Bytes` the store read (no copy
    /// here), after checking its size: against `expected` (when given)
    /// before the body is read, and against the size the GET reported once
    /// it is.
    async fn get_checked(
        &self,
        key: &str,
        operation: &'static str,
        expected: Option<u64>,
    ) -> Result<Bytes> {
        let path = path_of(key)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| map_error(key, operation, e))?;
        let reported = result.meta.size;
        if let Some(expected) = expected.filter(|&expected| expected != reported) {
            return Err(StorageError::LengthMismatch {
                key: key.to_string(),
                expected,
                actual: reported,
            });
        }
        let bytes = result
            .bytes()
            .await
            .map_err(|e| map_error(key, operation, e))?;
        if bytes.len() as u64 != reported {
            return Err(StorageError::LengthMismatch {
                key: key.to_string(),
                expected: expected.unwrap_or(reported),
                actual: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }
}

#[async_trait]
impl CheckpointStorage for ObjectStoreStorage {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let path = path_of(key)?;
        let size = data.len();
        self.store
            .put(&path, PutPayload::from(data))
            .await
            .map_err(|e| map_error(key, "put", e))?;
        tracing::debug!(target: TARGET, storage = "object-store", key, size, "put");
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<()> {
        let path = path_of(key)?;
        let size = data.len();
        let result = self
            .store
            .put_opts(
                &path,
                PutPayload::from(data),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match result {
            Ok(_) => {
                tracing::debug!(target: TARGET, storage = "object-store", key, size, "put_if_absent");
                Ok(())
            }
            // Some stores report a failed create as a failed precondition.
            Err(object_store::Error::Precondition { .. }) => Err(StorageError::AlreadyExists {
                key: key.to_string(),
            }),
            Err(e @ object_store::Error::NotImplemented { .. }) => Err(StorageError::Backend {
                key: key.to_string(),
                message: format!(
                    "put_if_absent needs conditional writes (PutMode::Create), which this object \
                     store does not offer as configured: {e}"
                ),
                transient: false,
                source: Some(Box::new(e)),
            }),
            Err(e) => Err(map_error(key, "put_if_absent", e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        self.get_checked(key, "get", None).await
    }

    /// Compares the size the GET reports with `size` before reading the
    /// body, so that an object of another size is never downloaded.
    async fn get_sized(&self, key: &str, size: u64) -> Result<Bytes> {
        self.get_checked(key, "get", Some(size)).await
    }

    /// A ranged GET; an empty range or one the store refuses is answered
    /// from the object's metadata (`head`), so that a range past the end is
    /// [`StorageError::RangeOutOfBounds`] on every store.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = path_of(key)?;
        let bounds = |size: u64| check_range(key, &range, size).map(drop);
        if range.start >= range.end {
            let meta = self.head(key).await?;
            bounds(meta.size)?;
            return Ok(Bytes::new());
        }
        let options = GetOptions::new().with_range(Some(range.clone()));
        let result = match self.store.get_opts(&path, options).await {
            Ok(result) => result,
            Err(e) => {
                let error = map_error(key, "get_range", e);
                if matches!(error, StorageError::NotFound { .. }) {
                    return Err(error);
                }
                // A range past the end: say so, with the object's size.
                let meta = self.head(key).await?;
                bounds(meta.size)?;
                return Err(error);
            }
        };
        bounds(result.meta.size)?;
        let bytes = result
            .bytes()
            .await
            .map_err(|e| map_error(key, "get_range", e))?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(StorageError::LengthMismatch {
                key: key.to_string(),
                expected: range.end - range.start,
                actual: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let path = path_of(key)?;
        let meta = self
            .store
            .head(&path)
            .await
            .map_err(|e| map_error(key, "head", e))?;
        Ok(meta_of(meta))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = path_of(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                tracing::debug!(target: TARGET, storage = "object-store", key, "delete");
                Ok(())
            }
            Err(e) => Err(map_error(key, "delete", e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        // Object stores list by whole path segments: list the directory that
        // holds the prefix, then keep the keys that start with all of it.
        let dir = match prefix.rfind('/') {
            Some(end) => &prefix[..end],
            None => "",
        };
        let dir_path = if dir.is_empty() {
            None
        } else {
            Some(Path::parse(dir).map_err(|_| StorageError::InvalidKey {
                key: prefix.to_string(),
                reason: "the object store refuses this path",
            })?)
        };
        let mut listed: Vec<ObjectMeta> = self
            .store
            .list(dir_path.as_ref())
            .map_err(|e| map_error(prefix, "list", e))
            .try_filter_map(|meta| {
                let keep = meta.location.as_ref().starts_with(prefix);
                futures::future::ready(Ok(keep.then(|| meta_of(meta))))
            })
            .try_collect()
            .await?;
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(listed)
    }

    async fn put_stream(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        let path = path_of(key)?;
        Ok(Box::new(MultipartWriter {
            store: Arc::clone(&self.store),
            path,
            key: key.to_string(),
            part_size: self.part_size,
            buffer: Vec::new(),
            upload: None,
            written: 0,
            parts: 0,
            state: WriterState::Open,
        }))
    }

    async fn get_stream(&self, key: &str) -> Result<ObjectStream> {
        let path = path_of(key)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| map_error(key, "get_stream", e))?;
        let meta = meta_of(result.meta.clone());
        let expected = result.meta.size;
        let reader = SizeCheckedStream {
            stream: result.into_stream(),
            current: Bytes::new(),
            key: key.to_string(),
            expected,
            read: 0,
            done: false,
        };
        Ok(ObjectStream {
            meta,
            reader: Box::pin(reader),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterState {
    Open,
    /// A write failed: the upload was aborted and the writer refuses more.
    Failed,
    /// Committed or aborted.
    Finished,
}

/// A streamed write: a multipart upload, started once a whole part is
/// buffered, or a single PUT at commit for an object smaller than a part.
struct MultipartWriter {
    store: Arc<dyn ObjectStore>,
    path: Path,
    key: String,
    part_size: usize,
    buffer: Vec<u8>,
    upload: Option<Box<dyn MultipartUpload>>,
    written: u64,
    parts: usize,
    state: WriterState,
}

impl MultipartWriter {
    fn check_open(&self, operation: &'static str) -> Result<()> {
        match self.state {
            WriterState::Open => Ok(()),
            WriterState::Failed => Err(StorageError::Backend {
                key: self.key.clone(),
                message: format!("{operation} on a streamed write that already failed"),
                transient: false,
                source: None,
            }),
            WriterState::Finished => Err(StorageError::Backend {
                key: self.key.clone(),
                message: format!("{operation} on a streamed write that is finished"),
                transient: false,
                source: None,
            }),
        }
    }

    /// Uploads `part` as the next part, starting the upload if needed.
    async fn send_part(&mut self, part: Vec<u8>) -> Result<()> {
        if self.upload.is_none() {
            let upload = self
                .store
                .put_multipart(&self.path)
                .await
                .map_err(|e| map_error(&self.key, "put_stream", e))?;
            tracing::debug!(
                target: TARGET,
                storage = "object-store",
                key = %self.key,
                "multipart upload started"
            );
            self.upload = Some(upload);
        }
        let Some(upload) = self.upload.as_mut() else {
            return Ok(());
        };
        let size = part.len();
        upload
            .put_part(PutPayload::from(part))
            .await
            .map_err(|e| map_error(&self.key, "put_stream", e))?;
        self.parts += 1;
        tracing::trace!(
            target: TARGET,
            storage = "object-store",
            key = %self.key,
            part = self.parts,
            size,
            "part uploaded"
        );
        Ok(())
    }

    /// Marks the write failed and aborts its upload.
    async fn fail(&mut self, err: StorageError) -> StorageError {
        self.state = WriterState::Failed;
        self.buffer = Vec::new();
        if let Some(mut upload) = self.upload.take()
            && let Err(abort) = upload.abort().await
        {
            tracing::warn!(
                target: TARGET,
                storage = "object-store",
                key = %self.key,
                error = %abort,
                "could not abort a failed multipart upload"
            );
        }
        tracing::warn!(
            target: TARGET,
            storage = "object-store",
            key = %self.key,
            error = %err,
            "streamed write failed; upload aborted"
        );
        err
    }
}

#[async_trait]
impl ObjectWriter for MultipartWriter {
    async fn write(&mut self, mut chunk: &[u8]) -> Result<()> {
        self.check_open("write")?;
        while !chunk.is_empty() {
            let room = self.part_size - self.buffer.len();
            let take = room.min(chunk.len());
            self.buffer.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            self.written += take as u64;
            if self.buffer.len() == self.part_size {
                let part = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.part_size));
                if let Err(e) = self.send_part(part).await {
                    return Err(self.fail(e).await);
                }
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<ObjectMeta> {
        self.check_open("commit")?;
        let rest = std::mem::take(&mut self.buffer);
        let committed = match self.upload.is_some() {
            false => self
                .store
                .put(&self.path, PutPayload::from(rest))
                .await
                .map(drop)
                .map_err(|e| map_error(&self.key, "put_stream", e)),
            true => {
                let sent = if rest.is_empty() {
                    Ok(())
                } else {
                    self.send_part(rest).await
                };
                match (sent, self.upload.as_mut()) {
                    (Ok(()), Some(upload)) => upload
                        .complete()
                        .await
                        .map(drop)
                        .map_err(|e| map_error(&self.key, "put_stream", e)),
                    (Ok(()), None) => Ok(()),
                    (Err(e), _) => Err(e),
                }
            }
        };
        match committed {
            Ok(()) => {
                self.state = WriterState::Finished;
                self.upload = None;
                tracing::debug!(
                    target: TARGET,
                    storage = "object-store",
                    key = %self.key,
                    size = self.written,
                    parts = self.parts,
                    "streamed write committed"
                );
                Ok(ObjectMeta {
                    key: self.key.clone(),
                    size: self.written,
                    last_modified: None,
                })
            }
            Err(e) => Err(self.fail(e).await),
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.state = WriterState::Finished;
        self.buffer = Vec::new();
        if let Some(mut upload) = self.upload.take() {
            upload
                .abort()
                .await
                .map_err(|e| map_error(&self.key, "abort", e))?;
        }
        tracing::debug!(
            target: TARGET,
            storage = "object-store",
            key = %self.key,
            "streamed write aborted"
        );
        Ok(())
    }
}

impl Drop for MultipartWriter {
    fn drop(&mut self) {
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        let key = std::mem::take(&mut self.key);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let result = upload.abort().await;
                    tracing::debug!(
                        target: TARGET,
                        storage = "object-store",
                        key,
                        aborted = result.is_ok(),
                        "streamed write dropped; upload aborted"
                    );
                });
            }
            Err(_) => tracing::warn!(
                target: TARGET,
                storage = "object-store",
                key,
                "streamed write dropped outside a runtime; its multipart upload stays until the \
                 store's lifecycle rules remove it"
            ),
        }
    }
}

/// The body of a GET as an [`AsyncRead`] that yields exactly `expected`
/// bytes: it fails with [`io::ErrorKind::UnexpectedEof`] if the body ends
/// early and with [`io::ErrorKind::InvalidData`] if it holds more.
struct SizeCheckedStream {
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    current: Bytes,
    key: String,
    expected: u64,
    read: u64,
    done: bool,
}

impl AsyncRead for SizeCheckedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.current.is_empty() {
                let n = buf.remaining().min(this.current.len());
                if this.read + n as u64 > this.expected {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "object {:?} is longer than the {} bytes it had when opened",
                            this.key, this.expected
                        ),
                    )));
                }
                let chunk = this.current.split_to(n);
                buf.put_slice(&chunk);
                this.read += n as u64;
                return Poll::Ready(Ok(()));
            }
            if this.done || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut this.stream).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(bytes))) => this.current = bytes,
                Poll::Ready(Some(Err(e))) => {
                    let transient = is_transient(&e);
                    let kind = if transient {
                        io::ErrorKind::Interrupted
                    } else {
                        io::ErrorKind::Other
                    };
                    return Poll::Ready(Err(io::Error::new(
                        kind,
                        map_error(&this.key, "get_stream", e),
                    )));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if this.read != this.expected {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "object {:?} ended after {} of the {} bytes it had when opened",
                                this.key, this.read, this.expected
                            ),
                        )));
                    }
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use tokio::io::AsyncReadExt;

    fn memory() -> ObjectStoreStorage {
        ObjectStoreStorage::new(Arc::new(InMemory::new()))
    }

    #[tokio::test]
    async fn conformance_on_in_memory() {
        crate::storage::conformance::run_all(&memory()).await;
    }

    #[tokio::test]
    async fn small_streamed_writes_are_one_put_and_large_ones_multipart() {
        let storage = memory();
        let mut writer = storage.put_stream("a/small").await.unwrap();
        writer.write(b"abc").await.unwrap();
        let meta = writer.commit().await.unwrap();
        assert_eq!(meta.size, 3);
        assert_eq!(storage.get("a/small").await.unwrap(), &b"abc"[..]);

        let size = MIN_PART_SIZE * 2 + 17;
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let mut writer = storage.put_stream("a/large").await.unwrap();
        for chunk in data.chunks(1 << 20) {
            writer.write(chunk).await.unwrap();
        }
        assert!(!storage.exists("a/large").await.unwrap());
        assert_eq!(writer.commit().await.unwrap().size, size as u64);
        assert_eq!(storage.get("a/large").await.unwrap(), data);
    }

    #[tokio::test]
    async fn stream_reader_checks_the_length() {
        let short = futures::stream::iter(vec![Ok(Bytes::from_static(b"abc"))]).boxed();
        let mut reader = SizeCheckedStream {
            stream: short,
            current: Bytes::new(),
            key: "k".into(),
            expected: 5,
            read: 0,
            done: false,
        };
        let mut out = Vec::new();
        let err = reader.read_to_end(&mut out).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

        let long = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"def")),
        ])
        .boxed();
        let mut reader = SizeCheckedStream {
            stream: long,
            current: Bytes::new(),
            key: "k".into(),
            expected: 4,
            read: 0,
            done: false,
        };
        let mut out = Vec::new();
        let err = reader.read_to_end(&mut out).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn errors_map_by_kind() {
        let not_found = object_store::Error::NotFound {
            path: "x".into(),
            source: "gone".into(),
        };
        assert!(matches!(
            map_error("k", "get", not_found),
            StorageError::NotFound { .. }
        ));
        let io_reset = object_store::Error::Generic {
            store: "test",
            source: Box::new(io::Error::from(io::ErrorKind::ConnectionReset)),
        };
        match map_error("k", "put", io_reset) {
            StorageError::Backend { transient, .. } => assert!(transient),
            other => panic!("unexpected {other:?}"),
        }
        let denied = object_store::Error::PermissionDenied {
            path: "x".into(),
            source: "no".into(),
        };
        match map_error("k", "put", denied) {
            StorageError::Backend { transient, .. } => assert!(!transient),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn memory_urls_open() {
        for url in ["memory://", "memory:///"] {
            ObjectStoreStorage::from_url(url, std::iter::empty::<(&str, &str)>()).unwrap();
        }
    }

    #[test]
    fn debug_shows_the_store() {
        let text = format!("{:?}", memory());
        assert!(
            text.contains("InMemory") && text.contains("part_size"),
            "{text}"
        );
    }

    #[test]
    fn storage_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ObjectStoreStorage>();
    }

    use futures::StreamExt;
}
