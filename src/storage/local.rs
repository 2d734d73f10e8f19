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

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::io::{AsyncRead, ReadBuf};

use super::{
    allocate_exact, validate_key, validate_prefix, CheckpointStorage, ObjectMeta, ObjectStream,
    ObjectWriter, Result, StorageError,
};

const TARGET: &str = "steadfast::storage";

/// Bytes a streamed write gathers before handing them to the file; owned
/// chunks at least this large go to the file as they are.
const STREAM_BUFFER: usize = 256 * 1024;

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

/// How many times a write retries creating its temporary file when a
/// concurrent delete removed the (empty) directory it was about to use.
const TEMP_CREATE_ATTEMPTS: usize = 8;

/// Longest part of the target's file name kept in a temporary file's name, so
/// that the temporary name stays within file system limits.
const TEMP_STEM_MAX: usize = 100;

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
/// [`LocalFsStorage::cleanup_temp_files`] removes. Keys whose segments look
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
/// use steadfast::storage::{CheckpointStorage, LocalFsStorage};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let storage = LocalFsStorage::new(dir.path().join("checkpoints"))?;
/// storage.put("run-1/shard-0.bin", b"weights".to_vec()).await?;
/// assert_eq!(storage.get("run-1/shard-0.bin").await?, b"weights");
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

/// What [`LocalFsStorage::cleanup_temp_files`] did.
///
/// # Examples
///
/// ```
/// let report = steadfast::storage::CleanupReport::default();
/// assert!(report.removed.is_empty());
/// assert_eq!(report.kept, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// The temporary files removed (absolute paths).
    pub removed: Vec<PathBuf>,
    /// Their total size in bytes.
    pub bytes_removed: u64,
    /// How many temporary files were kept because they are more recent than
    /// the age asked for.
    pub kept: usize,
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

    /// Opens a streamed write to a new temporary file.
    async fn open_writer(&self, key: &str) -> Result<LocalWriter> {
        validate_key(key)?;
        let target = Target::new(&self.root, key)?;
        let (target, temp, file) = blocking(key, "put_stream", move || {
            let (temp, file) = create_temp(&target, "put_stream", false)?;
            Ok((target, temp, file))
        })
        .await?;
        tracing::debug!(target: TARGET, storage = "local", key, "streamed write started");
        Ok(LocalWriter {
            target: Arc::new(target),
            temp: Some(temp),
            file: Some(Arc::new(file)),
            staging: Vec::new(),
            in_flight: None,
            written: 0,
            broken: false,
            background: self.background_sync.map(|every| BackgroundSync {
                every,
                unsynced: 0,
                running: None,
            }),
        })
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

    /// Removes the temporary files that are at least `older_than` old: the
    /// leftovers of writes interrupted by a crash. Run it at start-up, or
    /// periodically with an age well above the longest write, so that the
    /// temporary files of writes still in progress are kept.
    ///
    /// A file's age is measured against its modification time, which the
    /// operating system sets from the wall clock, possibly in an earlier run
    /// of the process. It can only be compared with
    /// [`SystemTime::now`], not with tokio's clock: this is the one place the
    /// crate reads the wall clock. A file dated in the future counts as new.
    ///
    /// Directories emptied by the cleanup are removed. Symbolic links are
    /// not followed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::storage::LocalFsStorage;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let storage = LocalFsStorage::new(dir.path())?;
    /// std::fs::write(dir.path().join(".shard.tmp-4242-00000000deadbeef"), b"partial")?;
    /// let report = storage.cleanup_temp_files(Duration::from_secs(3600)).await?;
    /// assert_eq!(report.kept, 1); // written just now
    /// let report = storage.cleanup_temp_files(Duration::ZERO).await?;
    /// assert_eq!(report.removed.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn cleanup_temp_files(&self, older_than: Duration) -> Result<CleanupReport> {
        let root = Arc::clone(&self.root);
        let report = blocking("", "cleanup", move || cleanup(&root, older_than)).await?;
        tracing::debug!(
            target: TARGET,
            storage = "local",
            removed = report.removed.len(),
            bytes_removed = report.bytes_removed,
            kept = report.kept,
            "temporary files cleaned up"
        );
        Ok(report)
    }

    /// Removes every temporary file, whatever its age. Meant for tests and
    /// for start-up when no other process uses the root: a write still in
    /// progress loses its temporary file, and its commit fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let storage = steadfast::storage::LocalFsStorage::new(dir.path())?;
    /// assert!(storage.remove_all_temp_files().await?.removed.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn remove_all_temp_files(&self) -> Result<CleanupReport> {
        self.cleanup_temp_files(Duration::ZERO).await
    }
}

#[async_trait]
impl CheckpointStorage for LocalFsStorage {
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<()> {
        validate_key(key)?;
        let target = Target::new(&self.root, key)?;
        let size = data.len();
        blocking(key, "put", move || write_object(&target, &data, false)).await?;
        tracing::debug!(target: TARGET, storage = "local", key, size, "object stored");
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<()> {
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

    async fn get(&self, key: &str) -> Result<Vec<u8>> {
        validate_key(key)?;
        let target = Target::new(&self.root, key)?;
        blocking(key, "get", move || {
            let (file, meta) = open_object(&target, "get")?;
            read_exact_size(file, meta.len(), &target.key, "get")
        })
        .await
    }

    async fn get_sized(&self, key: &str, size: u64) -> Result<Vec<u8>> {
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

fn symlink_refused(key: &str, operation: &'static str, path: &Path) -> StorageError {
    StorageError::Io {
        key: key.to_string(),
        operation,
        source: io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing to follow the symbolic link {} under the storage root",
                path.display()
            ),
        ),
    }
}

fn object_meta(key: &str, meta: &fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key: key.to_string(),
        size: meta.len(),
        last_modified: meta.modified().ok(),
    }
}

/// Flushes a directory, so that the entries just created, renamed or removed
/// in it survive a crash.
///
/// A directory that no longer exists needs no flushing: a concurrent delete
/// removed it once it was empty, and flushed its parent.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    match fs::File::open(dir) {
        Ok(handle) => handle.sync_all(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Directories cannot be opened for flushing on this platform; renames are
/// made durable by the file system itself.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Whether a file name is that of a temporary file of this storage:
/// `.<anything>.tmp-<decimal pid>-<16 lowercase hex digits>`.
fn is_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    let Some(at) = rest.rfind(".tmp-") else {
        return false;
    };
    let Some((pid, random)) = rest[at + ".tmp-".len()..].split_once('-') else {
        return false;
    };
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && random.len() == 16
        && random
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn temp_name(file_name: &str) -> String {
    let mut end = file_name.len().min(TEMP_STEM_MAX);
    while !file_name.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        ".{}.tmp-{}-{:016x}",
        &file_name[..end],
        std::process::id(),
        rand::random::<u64>()
    )
}

/// Where a key lives under the root. Built without I/O.
#[derive(Debug)]
struct Target {
    root: Arc<PathBuf>,
    key: String,
    /// The directory holding the object.
    dir: PathBuf,
    /// The object's path.
    path: PathBuf,
    /// The last segment of the key.
    file_name: String,
}

impl Target {
    /// Maps a validated key to its path, refusing segments the file system
    /// would not read as one plain name, and names reserved for temporary
    /// files.
    fn new(root: &Arc<PathBuf>, key: &str) -> Result<Target> {
        let refuse = |reason| StorageError::InvalidKey {
            key: key.to_string(),
            reason,
        };
        let mut dir = root.as_ref().clone();
        let mut segments = key.split('/').peekable();
        while let Some(segment) = segments.next() {
            let mut components = Path::new(segment).components();
            let plain = matches!(
                (components.next(), components.next()),
                (Some(Component::Normal(name)), None) if name == segment
            );
            if !plain {
                return Err(refuse(
                    "a segment is not a plain file name on this platform",
                ));
            }
            if is_temp_name(segment) {
                return Err(refuse(
                    "the name is reserved for the temporary files of writes in progress",
                ));
            }
            if segments.peek().is_none() {
                return Ok(Target {
                    root: Arc::clone(root),
                    key: key.to_string(),
                    path: dir.join(segment),
                    dir,
                    file_name: segment.to_string(),
                });
            }
            dir.push(segment);
        }
        Err(refuse("the key is empty"))
    }

    /// Walks the directories from the root down to the object's directory
    /// without following symbolic links, creating missing ones when `create`
    /// is set. Returns whether they all exist (as real directories).
    fn check_dirs(&self, operation: &'static str, create: bool) -> Result<bool> {
        let fail = |source| StorageError::Io {
            key: self.key.clone(),
            operation,
            source,
        };
        let Ok(relative) = self.dir.strip_prefix(self.root.as_ref()) else {
            return Err(fail(io::Error::other("the key's path is outside the root")));
        };
        'walk: for _ in 0..TEMP_CREATE_ATTEMPTS {
            let mut current = self.root.as_ref().clone();
            for component in relative.components() {
                let parent = current.clone();
                current.push(component);
                let meta = match fs::symlink_metadata(&current) {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        match fs::create_dir(&current) {
                            Ok(()) => {
                                sync_dir(&parent).map_err(fail)?;
                                continue;
                            }
                            // Created concurrently: inspect what is there now.
                            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                                match fs::symlink_metadata(&current) {
                                    Ok(meta) => meta,
                                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue 'walk,
                                    Err(e) => return Err(fail(e)),
                                }
                            }
                            // A concurrent delete removed the parent once it
                            // was empty: walk again from the root.
                            Err(e) if e.kind() == io::ErrorKind::NotFound => continue 'walk,
                            Err(e) => return Err(fail(e)),
                        }
                    }
                    Err(e) => return Err(fail(e)),
                };
                if meta.file_type().is_symlink() {
                    return Err(symlink_refused(&self.key, operation, &current));
                }
                if !meta.is_dir() {
                    if create {
                        return Err(fail(io::Error::other(format!(
                            "{} is an object, not a directory",
                            current.display()
                        ))));
                    }
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        Err(fail(io::Error::other(
            "the key's directories kept disappearing while being created",
        )))
    }

    /// The metadata of the object's path itself, without following a
    /// symbolic link (refused). `None` when nothing is there.
    fn final_meta(&self, operation: &'static str) -> Result<Option<fs::Metadata>> {
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                Err(symlink_refused(&self.key, operation, &self.path))
            }
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&self.key, operation)(e)),
        }
    }

    /// Checks the whole path (directories and the object's own entry) and
    /// returns what is at the object's path, if anything.
    fn inspect(&self, operation: &'static str, create: bool) -> Result<Option<fs::Metadata>> {
        if !self.check_dirs(operation, create)? {
            return Ok(None);
        }
        self.final_meta(operation)
    }
}

/// Creates the temporary file for a write to `target`, creating its
/// directories. Retries when a concurrent delete removed a directory that had
/// just become empty.
fn create_temp(
    target: &Target,
    operation: &'static str,
    refuse_existing: bool,
) -> Result<(PathBuf, fs::File)> {
    let mut last_error = None;
    for _ in 0..TEMP_CREATE_ATTEMPTS {
        match target.inspect(operation, true)? {
            Some(meta) if meta.is_dir() => {
                return Err(io_error(&target.key, operation)(io::Error::other(format!(
                    "{} is a directory",
                    target.path.display()
                ))))
            }
            Some(_) if refuse_existing => {
                return Err(StorageError::AlreadyExists {
                    key: target.key.clone(),
                })
            }
            _ => {}
        }
        let temp = target.dir.join(temp_name(&target.file_name));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
        {
            Ok(file) => return Ok((temp, file)),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::AlreadyExists =>
            {
                last_error = Some(e);
            }
            Err(e) => return Err(io_error(&target.key, operation)(e)),
        }
    }
    let source = last_error.unwrap_or_else(|| io::Error::other("no temporary file could be made"));
    Err(io_error(&target.key, operation)(source))
}

/// Removes a temporary file, ignoring a file already gone. Used on error
/// paths, where the first error is the one to report.
fn remove_temp_quietly(temp: &Path) {
    if let Err(e) = fs::remove_file(temp) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(
                target: TARGET,
                storage = "local",
                path = %temp.display(),
                error = %e,
                "could not remove a temporary file; cleanup_temp_files will"
            );
        }
    }
}

/// Moves a finished, flushed temporary file into place: a rename, or a hard
/// link that fails if the target exists. Then flushes the directory.
fn publish(
    target: &Target,
    temp: &Path,
    only_if_absent: bool,
    operation: &'static str,
) -> Result<()> {
    let fail = io_error(&target.key, operation);
    if only_if_absent {
        match fs::hard_link(temp, &target.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StorageError::AlreadyExists {
                    key: target.key.clone(),
                })
            }
            Err(e) => return Err(fail(e)),
        }
        // The object is in place; a temporary name left behind is only
        // clutter for the cleanup, not a failure of the write.
        remove_temp_quietly(temp);
    } else {
        fs::rename(temp, &target.path).map_err(fail)?;
    }
    sync_dir(&target.dir).map_err(io_error(&target.key, operation))
}

fn write_object(target: &Target, data: &[u8], only_if_absent: bool) -> Result<ObjectMeta> {
    let operation = if only_if_absent {
        "put_if_absent"
    } else {
        "put"
    };
    let (temp, mut file) = create_temp(target, operation, only_if_absent)?;
    let result = (|| {
        let fail = io_error(&target.key, operation);
        file.write_all(data).map_err(fail)?;
        file.sync_all().map_err(io_error(&target.key, operation))?;
        let meta = file.metadata().map_err(io_error(&target.key, operation))?;
        drop(file);
        publish(target, &temp, only_if_absent, operation)?;
        Ok(object_meta(&target.key, &meta))
    })();
    if result.is_err() {
        remove_temp_quietly(&temp);
    }
    result
}

/// Opens the object for reading: a regular file, reached without symbolic
/// links. Returns the file and its metadata at open.
fn open_object(target: &Target, operation: &'static str) -> Result<(fs::File, fs::Metadata)> {
    match target.inspect(operation, false)? {
        Some(meta) if meta.is_file() => {}
        _ => return Err(not_found(&target.key)),
    }
    let file = match fs::File::open(&target.path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(&target.key)),
        Err(e) => return Err(io_error(&target.key, operation)(e)),
    };
    let meta = file.metadata().map_err(io_error(&target.key, operation))?;
    if !meta.is_file() {
        return Err(not_found(&target.key));
    }
    Ok((file, meta))
}

/// Reads exactly `expected` bytes, and fails with
/// [`StorageError::LengthMismatch`] if the reader holds fewer or more (a file
/// truncated or grown since its size was taken).
fn read_exact_size(
    mut reader: impl Read,
    expected: u64,
    key: &str,
    operation: &'static str,
) -> Result<Vec<u8>> {
    let mut data = allocate_exact(key, operation, expected)?;
    (&mut reader)
        .take(expected.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(io_error(key, operation))?;
    let mut actual = data.len() as u64;
    if actual > expected {
        // Count the rest, to say how long the object has become.
        actual += io::copy(&mut reader, &mut io::sink()).map_err(io_error(key, operation))?;
    }
    if actual != expected {
        return Err(StorageError::LengthMismatch {
            key: key.to_string(),
            expected,
            actual,
        });
    }
    Ok(data)
}

/// Deletes the object and the directories this leaves empty. Returns whether
/// an object was removed.
fn delete_object(target: &Target) -> Result<bool> {
    let operation = "delete";
    match target.inspect(operation, false)? {
        Some(meta) if meta.is_file() => {}
        // Nothing there, or a directory (not an object): nothing to delete.
        _ => return Ok(false),
    }
    match fs::remove_file(&target.path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_error(&target.key, operation)(e)),
    }
    sync_dir(&target.dir).map_err(io_error(&target.key, operation))?;
    remove_empty_dirs(&target.root, &target.dir);
    Ok(true)
}

/// Removes `dir` and its parents up to (not including) `root` while they are
/// empty. Best effort: stops at the first directory that is not empty or
/// cannot be removed.
fn remove_empty_dirs(root: &Path, dir: &Path) {
    let mut current = dir;
    while current != root && current.starts_with(root) {
        if fs::remove_dir(current).is_err() {
            return;
        }
        let Some(parent) = current.parent() else {
            return;
        };
        if let Err(e) = sync_dir(parent) {
            tracing::debug!(
                target: TARGET,
                storage = "local",
                dir = %parent.display(),
                error = %e,
                "could not flush a directory after removing an empty one"
            );
        }
        current = parent;
    }
}

fn list_objects(root: &Path, prefix: &str) -> Result<Vec<ObjectMeta>> {
    let operation = "list";
    // Start at the deepest directory the prefix names in full.
    let dir_key = prefix.rfind('/').map_or("", |at| &prefix[..at]);
    let mut start = root.to_path_buf();
    let mut relative = String::new();
    if !dir_key.is_empty() {
        for segment in dir_key.split('/') {
            if is_temp_name(segment) {
                return Ok(Vec::new());
            }
            start.push(segment);
            match fs::symlink_metadata(&start) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(symlink_refused(prefix, operation, &start))
                }
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Ok(Vec::new()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(io_error(prefix, operation)(e)),
            }
        }
        relative = format!("{dir_key}/");
    }
    let mut found = Vec::new();
    walk(&start, &relative, prefix, &mut found)?;
    found.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(found)
}

/// Collects the objects under `dir` (whose keys start with `relative`) that
/// match `prefix`. Symbolic links and temporary files are skipped; so are
/// files whose names are not valid keys, which no call could address.
fn walk(dir: &Path, relative: &str, prefix: &str, found: &mut Vec<ObjectMeta>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // Removed since it was seen: a concurrent delete emptied it.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(prefix, "list")(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_error(prefix, "list"))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if is_temp_name(&name) {
            continue;
        }
        let key = format!("{relative}{name}");
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(prefix, "list")(e)),
        };
        if file_type.is_symlink() {
            tracing::debug!(target: TARGET, storage = "local", key, "symbolic link not listed");
        } else if file_type.is_dir() {
            let below = format!("{key}/");
            if below.starts_with(prefix) || prefix.starts_with(&below) {
                walk(&entry.path(), &below, prefix, found)?;
            }
        } else if file_type.is_file() && key.starts_with(prefix) && validate_key(&key).is_ok() {
            match entry.metadata() {
                Ok(meta) => found.push(object_meta(&key, &meta)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(prefix, "list")(e)),
            }
        }
    }
    Ok(())
}

fn cleanup(root: &Path, older_than: Duration) -> Result<CleanupReport> {
    let mut report = CleanupReport::default();
    let now = SystemTime::now();
    cleanup_dir(root, root, now, older_than, &mut report)?;
    Ok(report)
}

fn cleanup_dir(
    root: &Path,
    dir: &Path,
    now: SystemTime,
    older_than: Duration,
    report: &mut CleanupReport,
) -> Result<()> {
    let fail = |e| StorageError::Io {
        key: dir.display().to_string(),
        operation: "cleanup",
        source: e,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(fail(e)),
    };
    let mut removed_here = false;
    for entry in entries {
        let entry = entry.map_err(fail)?;
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fail(e)),
        };
        if file_type.is_dir() {
            cleanup_dir(root, &entry.path(), now, older_than, report)?;
            continue;
        }
        let is_temp = entry.file_name().to_str().is_some_and(is_temp_name);
        if !file_type.is_file() || !is_temp {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fail(e)),
        };
        let age = meta
            .modified()
            .ok()
            .and_then(|modified| now.duration_since(modified).ok())
            .unwrap_or(Duration::ZERO);
        if age < older_than {
            report.kept += 1;
            continue;
        }
        let path = entry.path();
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::debug!(
                    target: TARGET,
                    storage = "local",
                    path = %path.display(),
                    age_secs = age.as_secs(),
                    "stale temporary file removed"
                );
                report.bytes_removed += meta.len();
                report.removed.push(path);
                removed_here = true;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e)),
        }
    }
    if removed_here {
        remove_empty_dirs(root, dir);
    }
    Ok(())
}

/// A streamed write to a temporary file, renamed into place on commit.
///
/// Small writes gather in `staging`; a full staging buffer, or an owned
/// chunk of at least [`STREAM_BUFFER`] bytes ([`ObjectWriter::write_buf`]),
/// goes to a blocking task that writes it to the file while the caller goes
/// on. One such write runs at a time: the next waits for it, takes back its
/// buffer for reuse, and surfaces its error.
struct LocalWriter {
    target: Arc<Target>,
    /// The temporary file's path; `None` once committed or aborted.
    temp: Option<PathBuf>,
    /// The temporary file, shared with the blocking tasks that write and
    /// flush it; `None` once committed or aborted.
    file: Option<Arc<fs::File>>,
    /// Bytes accepted but not yet handed to a blocking write.
    staging: Vec<u8>,
    /// The blocking write in progress; it gives its buffer back.
    in_flight: Option<tokio::task::JoinHandle<io::Result<Vec<u8>>>>,
    /// Bytes accepted so far.
    written: u64,
    /// Set when a blocking write failed: the file has a hole, so every
    /// later call fails.
    broken: bool,
    /// The flushes started while writing; `None` when the storage flushes
    /// only at commit.
    background: Option<BackgroundSync>,
}

/// The background flushes of one streamed write
/// ([`LocalFsStorage::with_background_sync`]).
struct BackgroundSync {
    /// Bytes between two flushes.
    every: u64,
    /// Bytes handed to the file since the last flush started.
    unsynced: u64,
    /// The flush in progress, if any.
    running: Option<tokio::task::JoinHandle<io::Result<()>>>,
}

impl BackgroundSync {
    /// Counts `written` more bytes handed to `file`; once `every` have built
    /// up, waits for the flush in progress and starts the next one.
    async fn wrote(&mut self, written: usize, file: &Arc<fs::File>) -> io::Result<()> {
        self.unsynced = self.unsynced.saturating_add(written as u64);
        if self.unsynced < self.every {
            return Ok(());
        }
        self.wait().await?;
        self.unsynced = 0;
        let file = Arc::clone(file);
        self.running = Some(tokio::task::spawn_blocking(move || file.sync_data()));
        Ok(())
    }

    /// Waits for the flush in progress, if any, and returns its outcome.
    async fn wait(&mut self) -> io::Result<()> {
        // Taken only once finished, as `finish_write` does.
        let Some(running) = self.running.as_mut() else {
            return Ok(());
        };
        let outcome = running
            .await
            .unwrap_or_else(|e| Err(io::Error::other(format!("a background flush failed: {e}"))));
        self.running = None;
        outcome
    }
}

/// The outcome of a blocking task, a panic or cancellation of which is an
/// I/O error of the write.
fn joined<T>(result: std::result::Result<io::Result<T>, tokio::task::JoinError>) -> io::Result<T> {
    result.unwrap_or_else(|e| Err(io::Error::other(format!("a file write failed: {e}"))))
}

impl LocalWriter {
    fn fail(&self) -> impl FnOnce(io::Error) -> StorageError + '_ {
        io_error(&self.target.key, "put_stream")
    }

    /// The file, or the error of a write that cannot go on.
    fn open_file(&self) -> Result<Arc<fs::File>> {
        match &self.file {
            Some(_) if self.broken => Err(self.fail()(io::Error::other(
                "an earlier write to the file failed",
            ))),
            Some(file) => Ok(Arc::clone(file)),
            None => Err(self.fail()(io::Error::other(
                "the write was already finished",
            ))),
        }
    }

    /// Waits for the blocking write in progress, if any; returns its
    /// buffer, emptied. A failed write breaks the writer.
    async fn settle(&mut self) -> io::Result<Option<Vec<u8>>> {
        match finish_write(&mut self.in_flight).await {
            Ok(buffer) => Ok(buffer.map(|mut buffer| {
                buffer.clear();
                buffer
            })),
            Err(e) => {
                self.broken = true;
                Err(e)
            }
        }
    }

    /// Hands `buffer` to a blocking write, after the one in progress;
    /// returns that one's buffer, emptied, or a new one.
    async fn dispatch(&mut self, buffer: Vec<u8>) -> Result<Vec<u8>> {
        let file = self.open_file()?;
        let spare = match self.settle().await {
            Ok(spare) => spare.unwrap_or_default(),
            Err(e) => return Err(self.fail()(e)),
        };
        let len = buffer.len();
        let writer = Arc::clone(&file);
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            (&*writer).write_all(&buffer).map(|()| buffer)
        }));
        if let Some(background) = self.background.as_mut() {
            if let Err(e) = background.wrote(len, &file).await {
                self.broken = true;
                return Err(self.fail()(e));
            }
        }
        Ok(spare)
    }

    /// Hands the staged bytes to a blocking write, if there are any.
    async fn dispatch_staging(&mut self) -> Result<()> {
        if self.staging.is_empty() {
            return Ok(());
        }
        let staged = std::mem::take(&mut self.staging);
        self.staging = self.dispatch(staged).await?;
        Ok(())
    }

    /// Waits for every task that holds the file. Returns the first error.
    async fn quiesce(&mut self) -> io::Result<()> {
        finish_tasks(&mut self.in_flight, &mut self.background).await
    }
}

/// Waits for a blocking write, if one is in progress, and returns its
/// buffer. The task is awaited in place and taken only once finished: a
/// caller that drops this future leaves it tracked, so that the next call
/// still waits for it and two writes never run at once.
async fn finish_write(
    in_flight: &mut Option<tokio::task::JoinHandle<io::Result<Vec<u8>>>>,
) -> io::Result<Option<Vec<u8>>> {
    let Some(task) = in_flight.as_mut() else {
        return Ok(None);
    };
    let outcome = joined(task.await);
    *in_flight = None;
    outcome.map(Some)
}

/// Waits for every task that holds a streamed write's file: the write in
/// progress and the background flush. Returns the first error.
async fn finish_tasks(
    in_flight: &mut Option<tokio::task::JoinHandle<io::Result<Vec<u8>>>>,
    background: &mut Option<BackgroundSync>,
) -> io::Result<()> {
    let written = finish_write(in_flight).await.map(drop);
    let flushed = match background {
        Some(background) => background.wait().await,
        None => Ok(()),
    };
    written.and(flushed)
}

#[async_trait]
impl ObjectWriter for LocalWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.open_file()?;
        self.staging.extend_from_slice(chunk);
        self.written += chunk.len() as u64;
        if self.staging.len() >= STREAM_BUFFER {
            self.dispatch_staging().await?;
        }
        Ok(())
    }

    async fn write_buf(&mut self, mut chunk: Vec<u8>) -> Result<Vec<u8>> {
        if chunk.len() < STREAM_BUFFER || !self.staging.is_empty() {
            // Small, or behind staged bytes that must go first: copied.
            self.write(&chunk).await?;
            chunk.clear();
            return Ok(chunk);
        }
        self.open_file()?;
        self.written += chunk.len() as u64;
        self.dispatch(chunk).await
    }

    async fn commit(mut self: Box<Self>) -> Result<ObjectMeta> {
        // A writer that cannot go on still removes its temporary file.
        let usable = self.open_file().map(drop);
        let staged = match usable {
            Ok(()) => self.dispatch_staging().await,
            Err(_) => Ok(()),
        };
        // A background flush that failed fails the write: the error is
        // reported once by the kernel, so the final fsync might not see it.
        let settled = self.quiesce().await.map_err(|e| self.fail()(e));
        self.background = None;
        let (Some(file), Some(temp)) = (self.file.take(), self.temp.take()) else {
            return Err(self.fail()(io::Error::other(
                "the write was already finished",
            )));
        };
        let target = Arc::clone(&self.target);
        let written = self.written;
        let ready = usable.and(staged).and(settled);
        let key = target.key.clone();
        let result = blocking(&key, "put_stream", move || {
            if let Err(e) = ready {
                drop(file);
                remove_temp_quietly(&temp);
                return Err(e);
            }
            let result = (|| {
                file.sync_all()
                    .map_err(io_error(&target.key, "put_stream"))?;
                let meta = file
                    .metadata()
                    .map_err(io_error(&target.key, "put_stream"))?;
                drop(file);
                if meta.len() != written {
                    return Err(StorageError::LengthMismatch {
                        key: target.key.clone(),
                        expected: written,
                        actual: meta.len(),
                    });
                }
                // Time has passed since the write began: check the path again.
                if let Some(existing) = target.inspect("put_stream", false)? {
                    if existing.is_dir() {
                        return Err(io_error(&target.key, "put_stream")(io::Error::other(
                            format!("{} is a directory", target.path.display()),
                        )));
                    }
                }
                publish(&target, &temp, false, "put_stream")?;
                Ok(object_meta(&target.key, &meta))
            })();
            if result.is_err() {
                remove_temp_quietly(&temp);
            }
            result
        })
        .await?;
        tracing::debug!(target: TARGET, storage = "local", key, size = written, "streamed write committed");
        Ok(result)
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        // Their outcomes no longer matter; waiting for them closes the last
        // handles on the file before the file is removed.
        let _ = self.quiesce().await;
        self.background = None;
        drop(self.file.take());
        if let Some(temp) = self.temp.take() {
            let key = self.target.key.clone();
            blocking(
                &self.target.key,
                "put_stream",
                move || match fs::remove_file(&temp) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io_error(&key, "put_stream")(e)),
                },
            )
            .await?;
            tracing::debug!(target: TARGET, storage = "local", key = %self.target.key, "streamed write aborted");
        }
        Ok(())
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        drop(self.file.take());
        let Some(temp) = self.temp.take() else {
            return;
        };
        tracing::debug!(
            target: TARGET,
            storage = "local",
            key = %self.target.key,
            "streamed write dropped without commit"
        );
        let mut in_flight = self.in_flight.take();
        let mut background = self.background.take();
        // Inside a runtime, the removal goes to the blocking pool, after
        // the tasks that still hold the file open; outside one, there is no
        // executor to block, so it runs here.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    let _ = finish_tasks(&mut in_flight, &mut background).await;
                    drop((in_flight, background));
                    let _ = tokio::task::spawn_blocking(move || remove_temp_quietly(&temp)).await;
                });
            }
            Err(_) => {
                drop((in_flight, background));
                remove_temp_quietly(&temp);
            }
        }
    }
}

/// Yields exactly `expected` bytes of `inner`, failing with
/// [`io::ErrorKind::UnexpectedEof`] if it ends early and with
/// [`io::ErrorKind::InvalidData`] if it holds more.
struct SizeCheckedReader<R> {
    inner: R,
    key: String,
    expected: u64,
    read: u64,
    /// Set once the end was reached and checked.
    at_end: bool,
}

impl<R: AsyncRead + Unpin> AsyncRead for SizeCheckedReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at_end || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let remaining = this.expected - this.read;
        if remaining == 0 {
            // Every byte was read: make sure the object ends here.
            let mut probe = [0u8; 1];
            let mut probe = ReadBuf::new(&mut probe);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut probe))?;
            if probe.filled().is_empty() {
                this.at_end = true;
                return Poll::Ready(Ok(()));
            }
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "object {:?} is longer than the {} bytes it had when opened",
                    this.key, this.expected
                ),
            )));
        }
        let n = if buf.remaining() as u64 <= remaining {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            buf.filled().len() - before
        } else {
            // The caller's buffer is larger than what is left: never read
            // past the expected end into it.
            let mut scratch = [0u8; 8192];
            let limit = usize::try_from(remaining).map_or(scratch.len(), |r| r.min(scratch.len()));
            let mut limited = ReadBuf::new(&mut scratch[..limit]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
            buf.put_slice(limited.filled());
            limited.filled().len()
        };
        if n == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "object {:?} ended after {} of the {} bytes it had when opened",
                    this.key, this.read, this.expected
                ),
            )));
        }
        this.read += n as u64;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn temp_names_are_recognised() {
        let name = temp_name("shard-0.bin");
        assert!(is_temp_name(&name), "{name}");
        assert!(is_temp_name(".x.tmp-1-0123456789abcdef"));
        for not_temp in [
            "shard-0.bin",
            ".hidden",
            "x.tmp-1-0123456789abcdef",
            ".x.tmp--0123456789abcdef",
            ".x.tmp-1-0123456789ABCDEF",
            ".x.tmp-1-0123456789abcde",
            ".x.tmp-a-0123456789abcdef",
        ] {
            assert!(!is_temp_name(not_temp), "{not_temp}");
        }
        let long = "é".repeat(200);
        let name = temp_name(&long);
        assert!(is_temp_name(&name));
        assert!(name.len() < 255);
    }

    #[test]
    fn keys_with_temp_names_are_refused() {
        let root = Arc::new(PathBuf::from("/nonexistent-root"));
        for key in [
            ".a.tmp-12-0123456789abcdef",
            "d/.a.tmp-12-0123456789abcdef/x",
        ] {
            assert!(matches!(
                Target::new(&root, key),
                Err(StorageError::InvalidKey { .. })
            ));
        }
        let target = Target::new(&root, "a/b/c").unwrap();
        assert_eq!(target.dir, Path::new("/nonexistent-root/a/b"));
        assert_eq!(target.path, Path::new("/nonexistent-root/a/b/c"));
    }

    #[test]
    fn a_file_shorter_or_longer_than_its_size_is_a_length_mismatch() {
        let data = vec![7u8; 100];
        assert_eq!(read_exact_size(&data[..], 100, "k", "get").unwrap(), data);
        match read_exact_size(&data[..60], 100, "k", "get") {
            Err(StorageError::LengthMismatch {
                expected: 100,
                actual: 60,
                ..
            }) => {}
            other => panic!("expected a length mismatch, got {other:?}"),
        }
        match read_exact_size(&data[..], 40, "k", "get") {
            Err(StorageError::LengthMismatch {
                expected: 40,
                actual: 100,
                ..
            }) => {}
            other => panic!("expected a length mismatch, got {other:?}"),
        }
    }

    #[test]
    fn a_file_truncated_after_its_size_was_taken_is_a_length_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obj");
        fs::write(&path, vec![1u8; 4096]).unwrap();
        let file = fs::File::open(&path).unwrap();
        let size = file.metadata().unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(1000)
            .unwrap();
        assert!(matches!(
            read_exact_size(file, size, "obj", "get"),
            Err(StorageError::LengthMismatch {
                expected: 4096,
                actual: 1000,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn the_size_checked_reader_yields_exactly_the_size() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let reader = |bytes: &[u8], expected| SizeCheckedReader {
            inner: std::io::Cursor::new(bytes.to_vec()),
            key: "k".into(),
            expected,
            read: 0,
            at_end: false,
        };
        let mut out = Vec::new();
        reader(&data, 10_000).read_to_end(&mut out).await.unwrap();
        assert_eq!(out, data);

        let err = reader(&data[..9_000], 10_000)
            .read_to_end(&mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

        let err = reader(&data, 9_999)
            .read_to_end(&mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        let mut out = Vec::new();
        reader(&[], 0).read_to_end(&mut out).await.unwrap();
        assert!(out.is_empty());
    }

    /// A writer whose background flush in progress will fail, as an
    /// `fdatasync` that hit a disk error would.
    async fn writer_with_a_failing_flush(storage: &LocalFsStorage, key: &str) -> LocalWriter {
        let mut writer = storage.open_writer(key).await.unwrap();
        let background = writer
            .background
            .as_mut()
            .expect("background flushes are on");
        background.running = Some(tokio::task::spawn_blocking(|| {
            Err(io::Error::other("injected disk error"))
        }));
        writer
    }

    fn temp_files(root: &Path) -> Vec<String> {
        fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| is_temp_name(name))
            .collect()
    }

    #[tokio::test]
    async fn a_failed_background_flush_fails_the_commit_and_keeps_the_previous_object() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalFsStorage::new(dir.path()).unwrap();
        storage.put("obj", b"previous".to_vec()).await.unwrap();
        let mut writer = writer_with_a_failing_flush(&storage, "obj").await;
        writer.write(b"new bytes").await.unwrap();
        match Box::new(writer).commit().await {
            Err(StorageError::Io {
                key,
                operation: "put_stream",
                source,
            }) => {
                assert_eq!(key, "obj");
                assert_eq!(source.to_string(), "injected disk error");
            }
            other => panic!("expected the flush's error, got {other:?}"),
        }
        assert_eq!(storage.get("obj").await.unwrap(), b"previous");
        assert!(temp_files(storage.root()).is_empty());
    }

    #[tokio::test]
    async fn a_failed_background_flush_fails_the_write_that_starts_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalFsStorage::new(dir.path())
            .unwrap()
            .with_background_sync(Some(10));
        let mut writer = writer_with_a_failing_flush(&storage, "obj").await;
        // Staged, not yet handed to the file: no flush to start.
        writer.write(&[1; 9]).await.unwrap();
        let err = writer.write(&[1; STREAM_BUFFER]).await.unwrap_err();
        assert!(
            matches!(&err, StorageError::Io { operation: "put_stream", source, .. }
                if source.to_string() == "injected disk error"),
            "{err:?}"
        );
        // The file may now miss bytes: the writer refuses to go on.
        assert!(writer.write(&[1]).await.is_err());
        assert!(Box::new(writer).abort().await.is_ok());
        assert!(temp_files(storage.root()).is_empty());
    }

    #[tokio::test]
    async fn a_failed_file_write_fails_the_next_call_and_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalFsStorage::new(dir.path()).unwrap();
        storage.put("obj", b"previous".to_vec()).await.unwrap();
        for commit_next in [false, true] {
            let mut writer = storage.open_writer("obj").await.unwrap();
            writer.in_flight = Some(tokio::task::spawn_blocking(|| {
                Err(io::Error::other("injected write error"))
            }));
            let err = if commit_next {
                Box::new(writer).commit().await.unwrap_err()
            } else {
                let err = writer.write_buf(vec![0; STREAM_BUFFER]).await.unwrap_err();
                assert!(writer.write(&[0]).await.is_err());
                assert!(Box::new(writer).commit().await.is_err());
                err
            };
            assert!(
                matches!(&err, StorageError::Io { operation: "put_stream", source, .. }
                    if source.to_string() == "injected write error"),
                "{err:?}"
            );
            assert_eq!(storage.get("obj").await.unwrap(), b"previous");
            assert!(temp_files(storage.root()).is_empty());
        }
    }

    #[tokio::test]
    async fn owned_chunks_go_to_the_file_as_they_are_and_small_ones_are_staged() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalFsStorage::new(dir.path()).unwrap();
        let mut writer = storage.open_writer("obj").await.unwrap();
        let small = writer.write_buf(vec![1; 100]).await.unwrap();
        assert!(small.is_empty());
        assert_eq!(writer.staging.len(), 100);
        assert!(writer.in_flight.is_none());
        // Behind staged bytes, a large chunk is staged too (order is kept).
        writer.write_buf(vec![2; STREAM_BUFFER]).await.unwrap();
        assert!(writer.staging.is_empty());
        assert!(writer.in_flight.is_some());
        let big = vec![3; STREAM_BUFFER + 1];
        let pointer = big.as_ptr();
        let returned = writer.write_buf(big).await.unwrap();
        assert!(returned.is_empty());
        assert_ne!(returned.as_ptr(), pointer, "the chunk itself was kept");
        let meta = Box::new(writer).commit().await.unwrap();
        assert_eq!(meta.size, 100 + 2 * STREAM_BUFFER as u64 + 1);
        let bytes = storage.get("obj").await.unwrap();
        assert!(bytes[..100].iter().all(|&b| b == 1));
        assert!(bytes[100..100 + STREAM_BUFFER].iter().all(|&b| b == 2));
        assert!(bytes[100 + STREAM_BUFFER..].iter().all(|&b| b == 3));
    }

    #[tokio::test]
    async fn flushes_start_once_the_interval_has_built_up() {
        let dir = tempfile::tempdir().unwrap();
        let every = STREAM_BUFFER as u64 + 1000;
        let storage = LocalFsStorage::new(dir.path())
            .unwrap()
            .with_background_sync(Some(every));
        let mut writer = storage.open_writer("obj").await.unwrap();
        writer.write(&[1; STREAM_BUFFER]).await.unwrap();
        let background = writer.background.as_ref().unwrap();
        assert!(background.running.is_none());
        assert_eq!(background.unsynced, STREAM_BUFFER as u64);
        writer.write(&[1; STREAM_BUFFER]).await.unwrap();
        let background = writer.background.as_ref().unwrap();
        assert!(background.running.is_some());
        assert_eq!(background.unsynced, 0);
        let meta = Box::new(writer).commit().await.unwrap();
        assert_eq!(meta.size, 2 * STREAM_BUFFER as u64);

        let storage = storage.with_background_sync(None);
        let mut writer = storage.open_writer("obj").await.unwrap();
        writer.write(&[1; 2 * STREAM_BUFFER]).await.unwrap();
        assert!(writer.background.is_none());
        Box::new(writer).abort().await.unwrap();
    }

    #[tokio::test]
    async fn a_write_dropped_while_it_waits_fails_the_commit_and_never_overlaps() {
        use futures::FutureExt;

        let dir = tempfile::tempdir().unwrap();
        let storage = LocalFsStorage::new(dir.path()).unwrap();
        let mut writer = storage.open_writer("obj").await.unwrap();
        // A write in progress that finishes only when released.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        writer.in_flight = Some(tokio::task::spawn_blocking(move || {
            let _ = hold.recv();
            Ok(Vec::new())
        }));
        // The next write waits for it; polled once, then dropped.
        assert!(writer
            .write_buf(vec![7; STREAM_BUFFER])
            .now_or_never()
            .is_none());
        assert!(
            writer.in_flight.is_some(),
            "the write in progress is still tracked, so no second one starts beside it"
        );
        release.send(()).unwrap();
        match Box::new(writer).commit().await {
            Err(StorageError::LengthMismatch {
                expected, actual, ..
            }) => assert_eq!((expected, actual), (STREAM_BUFFER as u64, 0)),
            other => panic!("expected a length mismatch, got {other:?}"),
        }
        assert!(temp_files(storage.root()).is_empty());
        assert!(!storage.exists("obj").await.unwrap());
    }
}
