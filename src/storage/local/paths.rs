//! How a key maps to a path under the root of a [`LocalFsStorage`](super::LocalFsStorage):
//! one directory per segment, every existing component inspected without
//! following symbolic links, and the names reserved for temporary files.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::atomic::sync_dir;
pub(super) use crate::storage::key::is_temp_name;

use super::{io_error, Result, StorageError};

/// How many times a write retries creating its temporary file when a
/// concurrent delete removed the (empty) directory it was about to use.
pub(super) const TEMP_CREATE_ATTEMPTS: usize = 8;

/// Longest part of the target's file name kept in a temporary file's name, so
/// that the temporary name stays within file system limits.
pub(super) const TEMP_STEM_MAX: usize = 100;

pub(super) fn symlink_refused(key: &str, operation: &'static str, path: &Path) -> StorageError {
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

pub(super) fn temp_name(file_name: &str) -> String {
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
pub(super) struct Target {
    pub(super) root: Arc<PathBuf>,
    pub(super) key: String,
    /// The directory holding the object.
    pub(super) dir: PathBuf,
    /// The object's path.
    pub(super) path: PathBuf,
    /// The last segment of the key.
    pub(super) file_name: String,
}

impl Target {
    /// Maps a validated key to its path, refusing segments the file system
    /// would not read as one plain name, and names reserved for temporary
    /// files.
    pub(super) fn new(root: &Arc<PathBuf>, key: &str) -> Result<Target> {
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
    pub(super) fn check_dirs(&self, operation: &'static str, create: bool) -> Result<bool> {
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
    pub(super) fn final_meta(&self, operation: &'static str) -> Result<Option<fs::Metadata>> {
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
    pub(super) fn inspect(
        &self,
        operation: &'static str,
        create: bool,
    ) -> Result<Option<fs::Metadata>> {
        if !self.check_dirs(operation, create)? {
            return Ok(None);
        }
        self.final_meta(operation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
