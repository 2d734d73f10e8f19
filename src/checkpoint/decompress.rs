//! Reading compressed shards and single entries: each frame's stored bytes
//! are verified against the manifest before the frame is decompressed, and a
//! frame is decompressed into exactly the uncompressed size the manifest
//! records, never more (a bounded one-shot decompression: zstd is given a
//! buffer of that size and fails rather than grow it). Memory is reserved
//! frame by frame as frames verify, so a hostile manifest or frame cannot
//! make a reader allocate more than one frame (at most
//! [`MAX_FRAME_SIZE`](super::MAX_FRAME_SIZE)) beyond the bytes it has
//! verified.
//!
//! An entry with a digest (format version 3) is read alone: once the shard's
//! stored size is checked (`head`), the byte range of a raw shard, or the
//! frames that overlap it in a compressed shard (through
//! [`CheckpointStorage::get_range`]), checked against its own digest before
//! it is returned.
//!
//! Decompressing and hashing run on tokio's blocking pool; a whole load
//! reads the next frame while the current one is checked and decompressed.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use zstd::zstd_safe::{self, DCtx};

use crate::storage::{CheckpointStorage, ObjectReader, StorageError};

use super::error::ReadError;
use super::frames::{FrameInfo, ShardCompression};
use super::hashing::{check_digest, sha256_hex_off_runtime};
use super::manifest::{to_hex, EntryLocation, ShardInfo};

/// Runs `f` on the blocking pool; a task that does not finish is an I/O
/// error on `key`.
pub(super) async fn off_runtime<T, F>(key: &str, f: F) -> Result<T, ReadError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ReadError::Storage(StorageError::Io {
            key: key.to_string(),
            operation: "get",
            source: std::io::Error::other(format!("decompressing did not finish: {e}")),
        })
    })
}

pub(super) fn decompression_context() -> Result<DCtx<'static>, ReadError> {
    DCtx::try_create().ok_or_else(|| ReadError::Mismatch {
        expected: "a zstd decompression context".into(),
        actual: "no memory for one".into(),
    })
}

/// Makes room in `out` for `wanted` more bytes, growing it by at least
/// what it holds already (so that a shard of many frames is not copied once
/// per frame) but never past `total` (what the frames still to come add up
/// to): what is allocated stays within twice what was verified.
pub(super) fn grow(out: &mut Vec<u8>, wanted: usize, total: u64) -> Result<(), ReadError> {
    if out.capacity() - out.len() >= wanted {
        return Ok(());
    }
    let cap = usize::try_from(total).unwrap_or(usize::MAX).max(wanted);
    let more = out.len().max(wanted).min(cap);
    out.try_reserve_exact(more)
        .map_err(|e| ReadError::Mismatch {
            expected: format!("room for {more} more bytes"),
            actual: format!("{e}"),
        })
}

/// Checks frame `index`'s stored bytes (when `verify`) and appends its
/// decompressed bytes to `out`: exactly `frame.uncompressed_size` of them,
/// or an error.
fn open_frame(
    context: &mut DCtx<'static>,
    index: usize,
    frame: &FrameInfo,
    stored: &[u8],
    verify: bool,
    out: &mut Vec<u8>,
) -> Result<(), ReadError> {
    if stored.len() as u64 != frame.size {
        return Err(ReadError::Mismatch {
            expected: format!("frame {index} of {} bytes", frame.size),
            actual: format!("{} bytes", stored.len()),
        });
    }
    if verify {
        let actual = to_hex(&Sha256::digest(stored));
        if actual != frame.sha256 {
            return Err(ReadError::Mismatch {
                expected: format!("frame {index} sha256 {}", frame.sha256),
                actual: format!("sha256 {actual}"),
            });
        }
    }
    // The manifest was validated: a frame holds at most MAX_FRAME_SIZE.
    let wanted = usize::try_from(frame.uncompressed_size).map_err(|_| ReadError::Mismatch {
        expected: format!("frame {index} of at most {} bytes", usize::MAX),
        actual: format!("{} bytes", frame.uncompressed_size),
    })?;
    let start = out.len();
    out.try_reserve_exact(wanted)
        .map_err(|e| ReadError::Mismatch {
            expected: format!("room for frame {index} ({wanted} bytes)"),
            actual: format!("{e}"),
        })?;
    let produced =
        decompress_bounded(context, stored, out, wanted).map_err(|reason| ReadError::Mismatch {
            expected: format!("frame {index} decompressing to {wanted} bytes"),
            actual: reason,
        })?;
    if produced != wanted {
        out.truncate(start);
        return Err(ReadError::Mismatch {
            expected: format!("frame {index} decompressing to {wanted} bytes"),
            actual: format!("{produced} bytes"),
        });
    }
    Ok(())
}

/// Decompresses `stored` onto the end of `out`, producing at most `room`
/// bytes; returns how many it produced, or zstd's error (a frame that would
/// produce more fails: "Destination buffer is too small").
pub(super) fn decompress_bounded(
    context: &mut DCtx<'static>,
    stored: &[u8],
    out: &mut Vec<u8>,
    room: usize,
) -> Result<usize, String> {
    let start = out.len();
    let limit = start.saturating_add(room);
    // A slice of exactly `room` bytes after `start`: zstd writes into it and
    // never past it.
    out.resize(limit, 0);
    match out
        .get_mut(start..limit)
        .map(|window| context.decompress(window, stored))
    {
        Some(Ok(produced)) => {
            out.truncate(start + produced.min(room));
            Ok(produced)
        }
        Some(Err(code)) => {
            out.truncate(start);
            Err(zstd_safe::get_error_name(code).to_string())
        }
        None => {
            out.truncate(start);
            Err("no room".into())
        }
    }
}

/// Reads a compressed shard as a stream, frame by frame: each frame's
/// stored bytes read exactly, checked (when `verify`), decompressed into
/// exactly its recorded size (kept when `keep`), and the whole object's
/// digest checked at the end (when `verify`). Returns the uncompressed
/// bytes (empty unless `keep`).
pub(super) async fn read_compressed<S: CheckpointStorage + ?Sized>(
    storage: &S,
    shard: &ShardInfo,
    layout: &ShardCompression,
    verify: bool,
    keep: bool,
    storage_error_from_io: fn(&str, &'static str, std::io::Error) -> StorageError,
) -> Result<Vec<u8>, ReadError> {
    let stream = storage
        .get_stream(&shard.key)
        .await
        .map_err(ReadError::Storage)?;
    if stream.meta.size != shard.size {
        return Err(ReadError::Mismatch {
            expected: format!("{} bytes", shard.size),
            actual: format!("{} bytes", stream.meta.size),
        });
    }
    let mut reader = stream.reader;
    let key = shard.key.as_str();
    let frames = &layout.frames;
    let mut read = 0u64;
    let mut next = match frames.first() {
        Some(first) => {
            let read_first = ReadFrame {
                reader: &mut reader,
                shard,
                read: &mut read,
                storage_error_from_io,
            };
            Some(read_first.read(first, Vec::new()).await?)
        }
        None => None,
    };
    let mut state = Some((decompression_context()?, Sha256::new(), Vec::new()));
    let mut spare = Vec::new();
    for (index, frame) in frames.iter().enumerate() {
        // Frame `index` is checked and decompressed on the blocking pool
        // while the next one is read.
        let buffer = next.take().unwrap_or_default();
        let (mut ctx, mut hasher, mut bytes) = match state.take() {
            Some(state) => state,
            None => (decompression_context()?, Sha256::new(), Vec::new()),
        };
        let info = frame.clone();
        let rest = layout.uncompressed_size.saturating_sub(bytes.len() as u64);
        let processing = off_runtime(key, move || {
            if verify {
                hasher.update(&buffer);
            }
            if !keep {
                bytes.clear();
            }
            let wanted = usize::try_from(info.uncompressed_size).unwrap_or(usize::MAX);
            let opened = if keep {
                grow(&mut bytes, wanted, rest)
            } else {
                Ok(())
            }
            .and_then(|()| open_frame(&mut ctx, index, &info, &buffer, verify, &mut bytes));
            (ctx, hasher, bytes, buffer, opened)
        });
        let following = frames.get(index + 1);
        let reusable = std::mem::take(&mut spare);
        let reading = ReadFrame {
            reader: &mut reader,
            shard,
            read: &mut read,
            storage_error_from_io,
        };
        let reading = async move {
            match following {
                Some(frame) => reading.read(frame, reusable).await.map(Some),
                None => Ok(None),
            }
        };
        let (processed, read_next) = tokio::join!(processing, reading);
        let (ctx, hasher, bytes, buffer, opened) = processed?;
        opened?;
        next = read_next?;
        spare = buffer;
        state = Some((ctx, hasher, bytes));
    }
    let (object, out) = match state {
        Some((_, hasher, bytes)) => (hasher, bytes),
        None => (Sha256::new(), Vec::new()),
    };
    // Nothing may follow the last frame.
    let mut probe = [0u8; 1];
    let extra = reader
        .read(&mut probe)
        .await
        .map_err(|e| ReadError::Storage(storage_error_from_io(&shard.key, "get_stream", e)))?;
    if extra != 0 {
        return Err(ReadError::Mismatch {
            expected: format!("{} bytes", shard.size),
            actual: format!("more than {} bytes", shard.size),
        });
    }
    if verify {
        check_digest(shard, &to_hex(&object.finalize()))?;
    }
    Ok(if keep { out } else { Vec::new() })
}

/// Reads the stored bytes of one frame after another from a shard's
/// stream.
struct ReadFrame<'a> {
    reader: &'a mut ObjectReader,
    shard: &'a ShardInfo,
    /// The stored bytes read so far.
    read: &'a mut u64,
    storage_error_from_io: fn(&str, &'static str, std::io::Error) -> StorageError,
}

impl ReadFrame<'_> {
    /// Reads exactly `frame.size` bytes into `buffer` (emptied first); a
    /// stream that ends sooner is a mismatch of the shard's size.
    async fn read(self, frame: &FrameInfo, mut buffer: Vec<u8>) -> Result<Vec<u8>, ReadError> {
        buffer.clear();
        // The manifest was validated: a stored frame is at most zstd's bound
        // of MAX_FRAME_SIZE.
        (&mut *self.reader)
            .take(frame.size)
            .read_to_end(&mut buffer)
            .await
            .map_err(|e| {
                ReadError::Storage((self.storage_error_from_io)(
                    &self.shard.key,
                    "get_stream",
                    e,
                ))
            })?;
        *self.read += buffer.len() as u64;
        if buffer.len() as u64 != frame.size {
            return Err(ReadError::Mismatch {
                expected: format!("{} bytes", self.shard.size),
                actual: format!("{} bytes", self.read),
            });
        }
        Ok(buffer)
    }
}

/// Reads one entry that has a digest: only its bytes (raw shard) or the
/// frames that hold them (compressed shard), each frame verified before it
/// is decompressed, and the entry checked against its digest.
pub(super) async fn read_entry<S: CheckpointStorage + ?Sized>(
    storage: &S,
    shard: &ShardInfo,
    at: &EntryLocation,
    digest: &str,
) -> Result<Vec<u8>, ReadError> {
    // The object's size first, as a whole read checks it: a shard
    // truncated, grown or replaced is refused before any of its bytes are
    // read.
    let meta = storage.head(&shard.key).await.map_err(ReadError::Storage)?;
    if meta.size != shard.size {
        return Err(ReadError::Mismatch {
            expected: format!("{} bytes", shard.size),
            actual: format!("{} bytes", meta.size),
        });
    }
    let end = at.offset.saturating_add(at.length);
    let bytes = match &shard.compression {
        // Nothing to read.
        _ if at.length == 0 => Vec::new(),
        None => {
            let bytes = storage
                .get_range(&shard.key, at.offset..end)
                .await
                .map_err(ReadError::Storage)?;
            Vec::from(bytes)
        }
        Some(layout) => {
            let span = layout.span(at.offset..end);
            let stored: Bytes = if span.frames.is_empty() {
                Bytes::new()
            } else {
                storage
                    .get_range(&shard.key, span.stored.clone())
                    .await
                    .map_err(ReadError::Storage)?
            };
            let frames: Vec<FrameInfo> = layout.frames[span.frames.clone()].to_vec();
            let first = span.frames.start;
            let skip = at.offset - span.uncompressed_start;
            let length = at.length;
            off_runtime(&shard.key, move || {
                let mut context = decompression_context()?;
                let mut out = Vec::new();
                let mut from = 0usize;
                let mut rest = frames
                    .iter()
                    .fold(0u64, |sum, f| sum.saturating_add(f.uncompressed_size));
                for (i, frame) in frames.iter().enumerate() {
                    let to = from.saturating_add(usize::try_from(frame.size).unwrap_or(usize::MAX));
                    let piece = stored.get(from..to).unwrap_or_default();
                    let wanted = usize::try_from(frame.uncompressed_size).unwrap_or(usize::MAX);
                    grow(&mut out, wanted, rest)?;
                    open_frame(&mut context, first + i, frame, piece, true, &mut out)?;
                    rest = rest.saturating_sub(frame.uncompressed_size);
                    from = to;
                }
                let start = usize::try_from(skip).unwrap_or(usize::MAX);
                let stop = start.saturating_add(usize::try_from(length).unwrap_or(usize::MAX));
                out.get(start..stop)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| ReadError::Mismatch {
                        expected: format!("{length} bytes at {}", at_text(skip, length)),
                        actual: format!("{} bytes decompressed", out.len()),
                    })
            })
            .await??
        }
    };
    if bytes.len() as u64 != at.length {
        return Err(ReadError::Mismatch {
            expected: format!("an entry of {} bytes", at.length),
            actual: format!("{} bytes", bytes.len()),
        });
    }
    let (bytes, actual) = sha256_hex_off_runtime(bytes).await.map_err(|e| {
        ReadError::Storage(StorageError::Io {
            key: shard.key.clone(),
            operation: "get_range",
            source: e,
        })
    })?;
    if actual != digest {
        return Err(ReadError::Mismatch {
            expected: format!("sha256 {digest}"),
            actual: format!("sha256 {actual}"),
        });
    }
    Ok(bytes)
}

fn at_text(skip: u64, length: u64) -> String {
    format!("{skip}..{}", skip.saturating_add(length))
}
