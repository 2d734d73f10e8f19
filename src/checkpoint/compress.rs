//! Writing a compressed shard: [`FrameWriter`] cuts the shard's bytes into
//! frames of a fixed uncompressed size, compresses each as an independent
//! zstd frame, hashes the stored bytes of each frame and of the whole
//! object, and streams the frames to the storage, never holding the shard
//! whole.
//!
//! Compressing and hashing a frame is CPU work: it runs on tokio's blocking
//! pool, with one zstd context reused for every frame of the shard, while
//! the previous frame is added to the object's digest (on the blocking pool
//! too) and written, so that a compressed save keeps the storage busy and
//! its two digests of the stored bytes run on two threads. A save holds three frame buffers (the one being filled and
//! compressed, its compressed form, and the previous compressed frame being
//! written) and one zstd context: at the default frame size of 1 MiB and
//! level 1, about 3.7 MiB per rank (zstd allocates through Rust's allocator,
//! see Cargo.toml).

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};
use zstd::zstd_safe::{self, CCtx, CParameter};

use crate::storage::{CheckpointStorage, ObjectWriter, StorageError};

use super::error::WriteError;
use super::frames::{FrameInfo, ShardCompression};
use super::manifest::to_hex;
use super::TARGET;

/// Bytes hashed, then copied, at a time (as `HashingWriter` does).
const HASH_PIECE: usize = 64 * 1024;

/// What compresses frames: zstd's context, moved to the blocking pool for
/// each frame and back.
struct Engine {
    context: CCtx<'static>,
}

impl Engine {
    fn new(level: i32) -> Result<Engine, WriteError> {
        Ok(Engine {
            context: compression_context(level)?,
        })
    }

    /// Compresses `frame` into `out` (emptied first) and hashes the result.
    fn compress(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<FrameInfo, WriteError> {
        out.clear();
        out.reserve_exact(zstd_safe::compress_bound(frame.len()));
        self.context
            .compress2(out, frame)
            .map_err(|code| zstd_error("compressing a frame", code))?;
        Ok(FrameInfo::new(
            out.len() as u64,
            to_hex(&Sha256::digest(&out[..])),
            frame.len() as u64,
        ))
    }
}

/// A zstd compression context at `level`.
pub(super) fn compression_context(level: i32) -> Result<CCtx<'static>, WriteError> {
    let mut context = CCtx::try_create()
        .ok_or_else(|| WriteError::Compress("zstd could not allocate a context".into()))?;
    context
        .set_parameter(CParameter::CompressionLevel(level))
        .map_err(|code| zstd_error("setting the level", code))?;
    Ok(context)
}

pub(super) fn zstd_error(what: &str, code: zstd_safe::ErrorCode) -> WriteError {
    WriteError::Compress(format!("{what}: {}", zstd_safe::get_error_name(code)))
}

/// A compressed shard being written: see the module's docs.
pub(super) struct FrameWriter {
    inner: Box<dyn ObjectWriter>,
    /// The uncompressed bytes of the frame being filled.
    frame: Vec<u8>,
    frame_size: usize,
    /// An empty buffer for the next compressed frame.
    spare: Vec<u8>,
    /// The last compressed frame, not yet handed to the storage.
    ready: Option<Vec<u8>>,
    /// `None` only after a compression task failed to finish.
    engine: Option<Engine>,
    /// The digest of the stored object, of the frames handed to the storage
    /// so far; `None` only after a hashing task failed to finish.
    object: Option<Sha256>,
    layout: ShardCompression,
    stored: u64,
    /// The digest of the entry being written, if any.
    entry: Option<Sha256>,
}

/// What a finished compressed write reports: stored size and digest, and
/// the frames.
pub(super) struct FramesWritten {
    pub(super) size: u64,
    pub(super) sha256: String,
    pub(super) layout: ShardCompression,
}

impl FrameWriter {
    pub(super) async fn open<S: CheckpointStorage + ?Sized>(
        storage: &S,
        key: &str,
        frame_size: usize,
        level: i32,
    ) -> Result<Self, WriteError> {
        let frame_size = frame_size.max(1);
        let engine = Engine::new(level)?;
        Ok(FrameWriter {
            inner: storage.put_stream(key).await.map_err(WriteError::Storage)?,
            frame: Vec::new(),
            frame_size,
            spare: Vec::new(),
            ready: None,
            engine: Some(engine),
            object: Some(Sha256::new()),
            layout: ShardCompression::zstd(frame_size as u64),
            stored: 0,
            entry: None,
        })
    }

    /// Starts the digest of an entry: every byte written until
    /// [`end_entry`](Self::end_entry) is hashed into it.
    pub(super) fn begin_entry(&mut self) {
        self.entry = Some(Sha256::new());
    }

    /// The digest of the entry written since [`begin_entry`](Self::begin_entry).
    pub(super) fn end_entry(&mut self) -> String {
        to_hex(&self.entry.take().unwrap_or_default().finalize())
    }

    /// Appends uncompressed bytes from memory.
    pub(super) async fn write(&mut self, mut data: &[u8]) -> Result<(), WriteError> {
        while !data.is_empty() {
            self.frame
                .reserve_exact(self.frame_size.saturating_sub(self.frame.len()));
            let room = self.frame_size - self.frame.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            for piece in now.chunks(HASH_PIECE) {
                if let Some(entry) = self.entry.as_mut() {
                    entry.update(piece);
                }
                self.frame.extend_from_slice(piece);
            }
            data = rest;
            if self.frame.len() >= self.frame_size {
                self.flush_frame().await?;
            }
        }
        Ok(())
    }

    /// Reads uncompressed bytes from `reader` until it ends.
    pub(super) async fn write_from<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<(), WriteError> {
        loop {
            self.frame
                .reserve_exact(self.frame_size.saturating_sub(self.frame.len()));
            let room = self.frame_size - self.frame.len();
            let n = (&mut *reader)
                .take(room as u64)
                .read_buf(&mut self.frame)
                .await
                .map_err(WriteError::Source)?;
            if n == 0 {
                return Ok(());
            }
            if self.frame.len() >= self.frame_size {
                self.flush_frame().await?;
            }
        }
    }

    /// Adds a compressed frame to the object's digest (on the blocking pool)
    /// and hands it to the storage.
    async fn hash_and_write(
        inner: &mut Box<dyn ObjectWriter>,
        object: Option<Sha256>,
        frame: Vec<u8>,
    ) -> Result<(Sha256, Vec<u8>), WriteError> {
        let mut object = object.ok_or_else(|| {
            WriteError::Compress("an earlier frame's hashing did not finish".into())
        })?;
        let span = tracing::Span::current();
        let frame = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            object.update(&frame);
            (object, frame)
        })
        .await
        .map_err(|e| WriteError::Compress(format!("the hashing task did not finish: {e}")));
        let (object, frame) = frame?;
        let back = inner.write_buf(frame).await.map_err(WriteError::Storage)?;
        Ok((object, back))
    }

    /// Compresses the frame gathered (and hashes its stored bytes) on the
    /// blocking pool while the previous compressed frame is added to the
    /// object's digest and written, so that the two digests of the stored
    /// bytes run on two threads.
    async fn flush_frame(&mut self) -> Result<(), WriteError> {
        let frame = std::mem::take(&mut self.frame);
        let mut out = std::mem::take(&mut self.spare);
        let mut engine = self
            .engine
            .take()
            .ok_or_else(|| WriteError::Compress("an earlier frame's task did not finish".into()))?;
        // The blocking tasks work inside the caller's span (a save's write).
        let span = tracing::Span::current();
        let compressing = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let info = engine.compress(&frame, &mut out);
            (engine, frame, out, info)
        });
        let inner = &mut self.inner;
        let previous = self.ready.take();
        let object = &mut self.object;
        let writing = async move {
            match previous {
                Some(buffer) => {
                    let (digest, back) = Self::hash_and_write(inner, object.take(), buffer).await?;
                    *object = Some(digest);
                    Ok(Some(back))
                }
                None => Ok(None),
            }
        };
        let (compressed, written) = tokio::join!(compressing, writing);
        let (engine, mut frame, out, info) = compressed.map_err(|e| {
            WriteError::Compress(format!("the compression task did not finish: {e}"))
        })?;
        self.engine = Some(engine);
        frame.clear();
        self.frame = frame;
        if let Some(mut back) = written? {
            back.clear();
            self.spare = back;
        }
        let info = info?;
        self.stored += info.size;
        self.layout.push(info);
        self.ready = Some(out);
        Ok(())
    }

    /// Compresses what is left, writes every frame and commits the object.
    async fn commit(mut self, key: &str) -> Result<FramesWritten, WriteError> {
        if !self.frame.is_empty() {
            self.flush_frame().await?;
        }
        if let Some(last) = self.ready.take() {
            let (digest, _) =
                Self::hash_and_write(&mut self.inner, self.object.take(), last).await?;
            self.object = Some(digest);
        }
        let object = self.object.take().ok_or_else(|| {
            WriteError::Compress("an earlier frame's hashing did not finish".into())
        })?;
        let meta = self.inner.commit().await.map_err(WriteError::Storage)?;
        if meta.size != self.stored {
            return Err(WriteError::Storage(StorageError::LengthMismatch {
                key: key.to_string(),
                expected: self.stored,
                actual: meta.size,
            }));
        }
        Ok(FramesWritten {
            size: self.stored,
            sha256: to_hex(&object.finalize()),
            layout: self.layout,
        })
    }

    /// Commits after `written` succeeded, aborts otherwise.
    pub(super) async fn finish(
        self,
        key: &str,
        written: Result<(), WriteError>,
    ) -> Result<FramesWritten, WriteError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_1_context_for_a_frame_of_1_mib_stays_small() {
        let mut engine = Engine::new(1).unwrap();
        let frame = vec![7u8; 1 << 20];
        let mut out = Vec::new();
        let info = engine.compress(&frame, &mut out).unwrap();
        assert_eq!(info.uncompressed_size, 1 << 20);
        assert!(info.size < 1024, "{}", info.size);
        // The context, after a frame, is what the module's docs count.
        let context = engine.context.sizeof();
        assert!(context < 1 << 20, "{context} bytes");
    }
}
