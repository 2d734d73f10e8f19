//! [`LocalFsStorage`]: checkpoint objects as plain files under a root
//! directory, written atomically and durably. The embedded default.
//!
//! Writes go to a temporary file in the target's directory, which is flushed
//! and renamed into place, then the directory is flushed (the type's docs
//! say it in full). Paths are checked component by component with
//! `symlink_metadata`, so that no call follows a symbolic link out of the
//! root. All blocking file system work runs on tokio's blocking pool
//! ([`tokio::task::spawn_blocking`]) or through [`tokio::fs`]; a streamed
//! read checks that the file still has the size it had when opened.
//!
//! One file per part:
//! - `paths`: how a key maps to a path, the symbolic-link checks, and the
//!   names of temporary files;
//! - `atomic`: the atomic write (temporary file, `fsync`, rename or hard
//!   link), the delete, and directory flushes;
//! - `writer`: the streamed write, with its background flushes;
//! - `reader`: whole and streamed reads that check the size, and listing;
//! - `cleanup`: removal of leftover temporary files and empty directories.

mod atomic;
mod cleanup;
mod paths;
mod reader;
mod writer;

use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use self::atomic::{delete_object, write_object};
pub use self::cleanup::TempCleanupReport;
use self::paths::Target;
use self::reader::{list_objects, open_object, read_exact_size, read_range, SizeCheckedReader};
use super::{
    validate_key, validate_prefix, CheckpointStorage, ObjectMeta, ObjectStream, ObjectWriter,
    Result, StorageError,
};

const TARGET: &str = "steadfast::storage";

/// The default of [`LocalFsStorage::with_background_sync`]: a streamed write
/// starts flushing its file to disk after every 32 MiB.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use steadfast::storage::{LocalFsStorage, DEFAULT_BACKGROUND_SYNC};
///
/// assert_eq!(DEFAULT_BACKGROUND_SYNC, 32 * 1024 * 1024);
/// let dir = tempfile::tempdir()?;
/// // Flush twice as often as the default.
/// let storage = LocalFsStorage::new(dir.path())?
///     .with_background_sync(Some(DEFAULT_BACKGROUND_SYNC / 2));
/// assert_eq!(storage.background_sync(), Some(16 << 20));
/// # Ok(())
/// # }
/// ```
pub const DEFAULT_BACKGROUND_SYNC: u64 = 32 << 20;

/// A [`CheckpointStorage`] on the local file system: atomic, durable, and
/// confined to its root directory.
///
/// A key maps to a path under the root, one directory per segment
/// (`"run-7/shard-3.bin"` is `<root>/run-7/shard-3.bin`), and an object is a
/// plain file holding exactly its bytes, so other tools can read it. Clones
/// share the same root.
///
/// Every write goes to a temporary file in the same directory as its target,
/// named `.<file>.tmp-<pid>-<random>`. The file is written, flushed to disk
/// (`fsync`), then renamed over the target, and the directory is flushed so
/// that the rename itself survives a crash. A reader therefore sees the old
/// object or the new one, never a prefix. `put_if_absent` links the finished
/// temporary file to the target with [`std::fs::hard_link`], which fails
/// atomically when the target exists (so the file system must support hard
/// links). Directories created on the way are flushed through their parents;
/// a delete removes the directories it leaves empty. Temporary files are
/// never listed; a crash can leave some behind, which
/// [`LocalFsStorage::cleanup_temp_files`] (or the trait's
/// [`cleanup_temporary`](CheckpointStorage::cleanup_temporary)) removes. Keys whose segments look
/// like temporary file names are refused with [`StorageError::InvalidKey`].
///
/// No key reaches outside the root: keys are validated before any I/O, and
/// every path component that exists under the root is inspected with
/// [`std::fs::symlink_metadata`]; an operation whose path goes through a
/// symbolic link fails with [`StorageError::Io`] (kind `PermissionDenied`),
/// and `list` does not descend into symbolic links. The check runs at each
/// call: a process that can replace directories under the root while a call
/// runs could still race it, so the root must not be writable by parties the
/// storage does not trust.
///
/// `get` reads exactly the size the file has when opened and fails with
/// [`StorageError::LengthMismatch`] if the file shrinks or grows while it is
/// read; a streamed read fails with an [`std::io::Error`] of kind
/// `UnexpectedEof` or `InvalidData` in the same cases. A file truncated
/// between two calls is, to the file system, a shorter object: the sizes and
/// digests recorded by the checkpoint manifest are what catch it.
///
/// A streamed write ([`CheckpointStorage::put_stream`]) does not leave all
/// of its bytes for the `fsync` at commit: after every 32 MiB written it
/// starts an `fdatasync` of the temporary file on the blocking pool and goes
/// on writing, so that the disk writes the object while the caller produces
/// and hashes the rest, and the commit waits only for the tail
/// ([`LocalFsStorage::with_background_sync`] sets the interval). A
/// background flush that fails fails the write.
///
/// An object and a directory cannot have the same path, so a
/// `LocalFsStorage` cannot hold both `a` and `a/b`: the second write fails
/// with [`StorageError::Io`].
///
/// # Cancellation
///
/// File system work runs on the blocking pool and finishes even if the
/// future that started it is dropped: a `put` dropped while its file is
/// being renamed may still take effect. It is never half-done.
///
/// # Examples
///
/// ```
/// use steadfast::storage::{Bytes, CheckpointStorage, LocalFsStorage};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let storage = LocalFsStorage::new(dir.path().join("checkpoints"))?;
/// storage.put("run-1/shard-0.bin", Bytes::from_static(b"weights")).await?;
/// assert_eq!(storage.get("run-1/shard-0.bin").await?, &b"weights"[..]);
/// assert_eq!(
///     std::fs::read(storage.root().join("run-1").join("shard-0.bin"))?,
///     b"weights"
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LocalFsStorage {
    root: Arc<PathBuf>,
    /// Bytes a streamed write writes between background flushes; `None`
    /// flushes only at commit.
    background_sync: Option<u64>,
}

impl LocalFsStorage {
    /// A storage rooted at `root`, created (with its parents) if missing.
    /// The root is canonicalized, so that a symbolic link given as the root
    /// is resolved once, here.
    ///
    /// This does blocking I/O; call it at start-up, or inside
    /// [`tokio::task::spawn_blocking`].
    ///
    /// Fails with [`StorageError::Io`] (operation `"open"`, the key being the
    /// root path) when the directory cannot be created or resolved, or is not
    /// a directory.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let storage = steadfast::storage::LocalFsStorage::new(dir.path().join("a/b"))?;
    /// assert!(storage.root().is_dir());
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let fail = |source| StorageError::Io {
            key: root.display().to_string(),
            operation: "open",
            source,
        };
        fs::create_dir_all(root).map_err(fail)?;
        let root = fs::canonicalize(root).map_err(fail)?;
        if !fs::metadata(&root).map_err(fail)?.is_dir() {
            return Err(fail(io::Error::other(
                "the storage root is not a directory",
            )));
        }
        tracing::debug!(target: TARGET, storage = "local", root = %root.display(), "storage opened");
        Ok(LocalFsStorage {
            root: Arc::new(root),
            background_sync: Some(DEFAULT_BACKGROUND_SYNC),
        })
    }

    /// Sets how many bytes a streamed write writes between the flushes it
    /// starts in the background (default [`DEFAULT_BACKGROUND_SYNC`], 32
    /// MiB); `None` leaves every byte for the `fsync` at commit.
    ///
    /// A background flush (`fdatasync` of the temporary file) runs on the
    /// blocking pool while the write goes on; the next one waits for it, so
    /// at most one runs per write and a producer faster than the disk is
    /// held back instead of filling memory with dirty pages. Starting the
    /// disk early overlaps its work with whatever the caller does between
    /// writes (a checkpoint save hashes every chunk), which is what lets a
    /// save approach the speed of a plain write. The commit still flushes
    /// the whole file before it renames it, so durability does not depend on
    /// the interval. An interval of 0 is taken as `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use steadfast::storage::LocalFsStorage;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let storage = LocalFsStorage::new(dir.path())?.with_background_sync(Some(8 << 20));
    /// assert_eq!(storage.background_sync(), Some(8 << 20));
    /// let storage = storage.with_background_sync(None);
    /// assert_eq!(storage.background_sync(), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_background_sync(mut self, every: Option<u64>) -> Self {
        self.background_sync = every.filter(|&bytes| bytes > 0);
        self
    }

    /// How many bytes a streamed write writes between background flushes;
    /// `None` when it flushes only at commit.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use steadfast::storage::{LocalFsStorage, DEFAULT_BACKGROUND_SYNC};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let storage = LocalFsStorage::new(dir.path())?;
    /// assert_eq!(storage.background_sync(), Some(DEFAULT_BACKGROUND_SYNC));
    /// # Ok(())
    /// # }
    /// ```
    pub fn background_sync(&self) -> Option<u64> {
        self.background_sync
    }

    /// The root directory (canonical).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let storage = steadfast::storage::LocalFsStorage::new(dir.path())?;
    /// assert_eq!(storage.root(), dir.path().canonicalize()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[async_trait]
impl CheckpointStorage for LocalFsStorage {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(key)?;
        let target = Target::new(&self.root, key)?;
        let size = data.len();
        blocking(key, "put", move || write_object(&target, &data, false)).await?;
        tracing::debug!(target: TARGET, storage = "local", key, size, "object stored");
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(key)?;
        let target = Target::new(&self.root, key)?;
        let size = data.len();
        blocking(key, "put_if_absent", move || {
            write_object(&target, &data, true)
        })
        .await?;
        tracing::debug!(target: TARGET, storage = "local", key, size, "object stored if absent");
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        validate_key(key)?;
        let target = Target::new(&self.root, key)?;
        blocking(key, "get", move || {
            let (file, meta) = open_object(&target, "get")?;
            read_exact_size(file, meta.len(), &target.key, "get")
        })
        .await
        .map(Bytes::from)
    }

    async fn get_sized(&self, key: &str, size: u64) -> Result<Bytes> {
        validate_key(key)?;
        let target = Target::new(&self.root, key)?;
        blocking(key, "get", move || {
            let (file, meta) = open_object(&target, "get")?;
            if meta.len() != size {
                return Err(StorageError::LengthMismatch {
                    key: target.key.clone(),
                    expected: size,
                    actual: meta.len(),
                });
            }
            read_exact_size(file, size, &target.key, "get")
        })
        .await
        .map(Bytes::from)
    }

    /// One positioned read of the range on the blocking pool, after the
    /// file's size is checked.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        validate_key(key)?;
        let target = Target::new(&self.root, key)?;
        blocking(key, "get_range", move || {
            let (file, meta) = open_object(&target, "get_range")?;
            read_range(file, meta.len(), range, &target.key)
        })
        .await
        .map(Bytes::from)
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        let target = Target::new(&self.root, key)?;
        blocking(key, "head", move || {
            match target.inspect("head", false)? {
                Some(meta) if meta.is_file() => Ok(object_meta(&target.key, &meta)),
                _ => Err(not_found(&target.key)),
            }
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let target = Target::new(&self.root, key)?;
        let deleted = blocking(key, "delete", move || delete_object(&target)).await?;
        if deleted {
            tracing::debug!(target: TARGET, storage = "local", key, "object deleted");
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        let root = Arc::clone(&self.root);
        let owned = prefix.to_string();
        blocking(prefix, "list", move || list_objects(&root, &owned)).await
    }

    async fn put_stream(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(self.open_writer(key).await?))
    }

    async fn get_stream(&self, key: &str) -> Result<ObjectStream> {
        validate_key(key)?;
        let target = Target::new(&self.root, key)?;
        let (file, meta) = blocking(key, "get_stream", move || {
            let (file, meta) = open_object(&target, "get_stream")?;
            Ok((file, object_meta(&target.key, &meta)))
        })
        .await?;
        let reader = SizeCheckedReader {
            inner: tokio::fs::File::from_std(file),
            key: meta.key.clone(),
            expected: meta.size,
            read: 0,
            at_end: false,
        };
        Ok(ObjectStream {
            meta,
            reader: Box::pin(reader),
        })
    }

    /// Removes the temporary files older than `older_than` and the
    /// directories left empty, as [`LocalFsStorage::cleanup_temp_files`]
    /// does; returns how many temporary files it removed.
    async fn cleanup_temporary(&self, older_than: Duration) -> Result<u64> {
        let report = self.cleanup_temp_files(older_than).await?;
        Ok(report.removed.len() as u64)
    }
}

/// Runs blocking file system work on tokio's blocking pool.
async fn blocking<T, F>(key: &str, operation: &'static str, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => Err(StorageError::Io {
            key: key.to_string(),
            operation,
            source: io::Error::other(format!("the file system task did not finish: {join}")),
        }),
    }
}

fn io_error<'a>(
    key: &'a str,
    operation: &'static str,
) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        key: key.to_string(),
        operation,
        source,
    }
}

fn not_found(key: &str) -> StorageError {
    StorageError::NotFound {
        key: key.to_string(),
    }
}

fn object_meta(key: &str, meta: &fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key: key.to_string(),
        size: meta.len(),
        last_modified: meta.modified().ok(),
    }
}
