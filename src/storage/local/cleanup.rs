//! Clean-up for a [`LocalFsStorage`]: the temporary files that writes
//! interrupted by a crash leave behind, and the directories left empty.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::atomic::sync_dir;
use super::paths::is_temp_name;
use super::{blocking, LocalFsStorage, Result, StorageError, TARGET};

/// What [`LocalFsStorage::cleanup_temp_files`] did.
///
/// # Examples
///
/// ```
/// let report = steadfast::storage::TempCleanupReport::default();
/// assert!(report.removed.is_empty());
/// assert_eq!(report.kept, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TempCleanupReport {
    /// The temporary files removed (absolute paths).
    pub removed: Vec<PathBuf>,
    /// Their total size in bytes.
    pub bytes_removed: u64,
    /// How many temporary files were kept because they are more recent than
    /// the age asked for.
    pub kept: usize,
    /// How many empty directories were removed (never the root).
    pub dirs_removed: usize,
}

impl LocalFsStorage {
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
    /// Directories the cleanup empties are removed, and so are empty
    /// directories under the root that are at least `older_than` old, such
    /// as those a delete killed midway leaves; never the root itself. Symbolic links are not
    /// followed.
    ///
    /// The rule that keeps this safe beside concurrent writes: a directory
    /// is removed only while it is empty (`rmdir` refuses one that is not)
    /// and only if it was last modified at least `older_than` ago, when the
    /// walk reached it, or held nothing but leftovers the walk removed, so a
    /// directory a write has just created is left alone. A write whose (old, empty) directory disappears before it has
    /// created its temporary file there walks the path again from the root
    /// and creates it anew, fresh, so that the cleanup keeps it; once the
    /// temporary file exists the directory is not empty and stays. A `put`
    /// or `put_stream` therefore does not fail because of a cleanup with a
    /// non-zero age.
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
    pub async fn cleanup_temp_files(&self, older_than: Duration) -> Result<TempCleanupReport> {
        let root = Arc::clone(&self.root);
        let report = blocking("", "cleanup", move || cleanup(&root, older_than)).await?;
        tracing::debug!(
            target: TARGET,
            storage = "local",
            removed = report.removed.len(),
            bytes_removed = report.bytes_removed,
            kept = report.kept,
            dirs_removed = report.dirs_removed,
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
    pub async fn remove_all_temp_files(&self) -> Result<TempCleanupReport> {
        self.cleanup_temp_files(Duration::ZERO).await
    }
}

/// Removes `dir` and its parents up to (not including) `root` while they are
/// empty. Best effort: stops at the first directory that is not empty or
/// cannot be removed.
pub(super) fn remove_empty_dirs(root: &Path, dir: &Path) {
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

pub(super) fn cleanup(root: &Path, older_than: Duration) -> Result<TempCleanupReport> {
    let mut report = TempCleanupReport::default();
    let now = SystemTime::now();
    // The root itself is never removed.
    cleanup_dir(root, root, false, now, older_than, &mut report)?;
    Ok(report)
}

/// How long ago `meta`'s entry was last modified; zero when it is dated in
/// the future or has no modification time.
fn age(meta: &fs::Metadata, now: SystemTime) -> Duration {
    meta.modified()
        .ok()
        .and_then(|modified| now.duration_since(modified).ok())
        .unwrap_or(Duration::ZERO)
}

/// Cleans `dir` up, depth first, and removes it at the end if it is then
/// empty and either `removable` (old enough when the walk reached it: its age
/// is taken before its children are removed, which dates it anew) or emptied
/// by this walk; never the `root`. Returns whether it removed `dir`.
fn cleanup_dir(
    root: &Path,
    dir: &Path,
    removable: bool,
    now: SystemTime,
    older_than: Duration,
    report: &mut TempCleanupReport,
) -> Result<bool> {
    let fail = |e| StorageError::Io {
        key: dir.display().to_string(),
        operation: "cleanup",
        source: e,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(fail(e)),
    };
    // Whether this walk removed anything here: a directory it emptied is
    // removed whatever its age, as the leftovers in it were.
    let mut emptied_here = false;
    for entry in entries {
        let entry = entry.map_err(fail)?;
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fail(e)),
        };
        if file_type.is_dir() {
            let old_enough = match entry.metadata() {
                Ok(meta) => age(&meta, now) >= older_than,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(fail(e)),
            };
            if cleanup_dir(root, &entry.path(), old_enough, now, older_than, report)? {
                emptied_here = true;
            }
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
        let age = age(&meta, now);
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
                emptied_here = true;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e)),
        }
    }
    // Children first (this walk is depth-first), so that a directory
    // holding only empty ones is empty by now.
    if dir != root && (removable || emptied_here) && remove_if_empty(dir) {
        report.dirs_removed += 1;
        return Ok(true);
    }
    Ok(false)
}

/// Removes `dir` if it is empty, and flushes its parent. `remove_dir` refuses
/// a directory that is not empty, so one that a concurrent write has just
/// put a file in stays (the rule is in [`LocalFsStorage::cleanup_temp_files`]).
fn remove_if_empty(dir: &Path) -> bool {
    if fs::remove_dir(dir).is_err() {
        return false;
    }
    tracing::debug!(target: TARGET, storage = "local", dir = %dir.display(), "empty directory removed");
    if let Some(parent) = dir.parent()
        && let Err(e) = sync_dir(parent)
    {
        tracing::debug!(
            target: TARGET,
            storage = "local",
            dir = %parent.display(),
            error = %e,
            "could not flush a directory after removing an empty one"
        );
    }
    true
}
