//! The reads of a [`LocalFsStorage`](super::LocalFsStorage): whole objects
//! read in one pass that checks their size, ranges read in one positioned
//! read, streamed reads through a reader
//! that yields exactly the size the file had when opened, and listings that
//! skip temporary files and symbolic links.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::Path;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use super::paths::{is_temp_name, symlink_refused, Target};
use super::{
    io_error, not_found, object_meta, validate_key, ObjectMeta, Result, StorageError, TARGET,
};
use crate::storage::{allocate_exact, check_range};

/// Opens the object for reading: a regular file, reached without symbolic
/// links. Returns the file and its metadata at open.
pub(super) fn open_object(
    target: &Target,
    operation: &'static str,
) -> Result<(fs::File, fs::Metadata)> {
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

/// Reads the bytes `range` of a file of `size` bytes: one seek and one
/// read of exactly the range's length. A file that ends before the range
/// does (truncated since its size was taken) is a
/// [`StorageError::LengthMismatch`].
pub(super) fn read_range(
    mut file: fs::File,
    size: u64,
    range: Range<u64>,
    key: &str,
) -> Result<Vec<u8>> {
    const OPERATION: &str = "get_range";
    check_range(key, &range, size)?;
    let length = range.end - range.start;
    let mut data = allocate_exact(key, OPERATION, length)?;
    if length == 0 {
        return Ok(data);
    }
    file.seek(SeekFrom::Start(range.start))
        .map_err(io_error(key, OPERATION))?;
    file.take(length)
        .read_to_end(&mut data)
        .map_err(io_error(key, OPERATION))?;
    if data.len() as u64 != length {
        return Err(StorageError::LengthMismatch {
            key: key.to_string(),
            expected: size,
            actual: range.start + data.len() as u64,
        });
    }
    Ok(data)
}

/// Reads exactly `expected` bytes, and fails with
/// [`StorageError::LengthMismatch`] if the reader holds fewer or more (a file
/// truncated or grown since its size was taken).
pub(super) fn read_exact_size(
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

pub(super) fn list_objects(root: &Path, prefix: &str) -> Result<Vec<ObjectMeta>> {
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
pub(super) fn walk(
    dir: &Path,
    relative: &str,
    prefix: &str,
    found: &mut Vec<ObjectMeta>,
) -> Result<()> {
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

/// Yields exactly `expected` bytes of `inner`, failing with
/// [`io::ErrorKind::UnexpectedEof`] if it ends early and with
/// [`io::ErrorKind::InvalidData`] if it holds more.
pub(super) struct SizeCheckedReader<R> {
    pub(super) inner: R,
    pub(super) key: String,
    pub(super) expected: u64,
    pub(super) read: u64,
    /// Set once the end was reached and checked.
    pub(super) at_end: bool,
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
}
