//! The atomic write of a [`LocalFsStorage`](super::LocalFsStorage): a
//! temporary file in the target's directory, flushed, renamed (or hard-linked
//! for `put_if_absent`) into place, then the directory flushed; and the
//! delete, which flushes the directory it removed the object from.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::cleanup::remove_empty_dirs;
use super::paths::{temp_name, Target, TEMP_CREATE_ATTEMPTS};
use super::{io_error, object_meta, ObjectMeta, Result, StorageError, TARGET};

/// Flushes a directory, so that the entries just created, renamed or removed
/// in it survive a crash.
///
/// A directory that no longer exists needs no flushing: a concurrent delete
/// removed it once it was empty, and flushed its parent.
#[cfg(unix)]
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    match fs::File::open(dir) {
        Ok(handle) => handle.sync_all(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Directories cannot be opened for flushing on this platform; renames are
/// made durable by the file system itself.
#[cfg(not(unix))]
pub(super) fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Creates the temporary file for a write to `target`, creating its
/// directories. Retries when a concurrent delete removed a directory that had
/// just become empty.
pub(super) fn create_temp(
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
pub(super) fn remove_temp_quietly(temp: &Path) {
    if let Err(e) = fs::remove_file(temp)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(
            target: TARGET,
            storage = "local",
            path = %temp.display(),
            error = %e,
            "could not remove a temporary file; cleanup_temp_files will"
        );
    }
}

/// Moves a finished, flushed temporary file into place: a rename, or a hard
/// link that fails if the target exists. Then flushes the directory.
pub(super) fn publish(
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

pub(super) fn write_object(
    target: &Target,
    data: &[u8],
    only_if_absent: bool,
) -> Result<ObjectMeta> {
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

/// Deletes the object and the directories this leaves empty. Returns whether
/// an object was removed.
///
/// When the object is already gone but its directories are there, the empty
/// ones are removed all the same: a delete killed between removing the file
/// and removing its directories leaves them behind, and retrying the
/// (idempotent) delete reclaims them.
pub(super) fn delete_object(target: &Target) -> Result<bool> {
    let operation = "delete";
    if !target.check_dirs(operation, false)? {
        return Ok(false);
    }
    match target.final_meta(operation)? {
        Some(meta) if meta.is_file() => {}
        // A directory, not an object: nothing to delete.
        Some(_) => return Ok(false),
        None => {
            remove_empty_dirs(&target.root, &target.dir);
            return Ok(false);
        }
    }
    match fs::remove_file(&target.path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            remove_empty_dirs(&target.root, &target.dir);
            return Ok(false);
        }
        Err(e) => return Err(io_error(&target.key, operation)(e)),
    }
    sync_dir(&target.dir).map_err(io_error(&target.key, operation))?;
    remove_empty_dirs(&target.root, &target.dir);
    Ok(true)
}
