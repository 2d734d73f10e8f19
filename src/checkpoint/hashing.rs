//! Hashing shards: the writer that hashes a shard while it streams it to
//! the storage, the comparison of a digest with the one a manifest records,
//! and the hashing of a large buffer off the runtime's workers.

use std::io;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::storage::{CheckpointStorage, ObjectWriter, StorageError};

use super::error::{ReadError, WriteError};
use super::manifest::{to_hex, ShardInfo};
use super::TARGET;

/// A storage stream being written, hashed as it goes.
///
/// Bytes gather in an owned buffer of the chunk size, which goes to the
/// storage whole ([`ObjectWriter::write_buf`]: the local file system writes
/// it on another thread without copying it again) while the next one fills.
/// Bytes from memory are hashed and copied in pieces small enough to stay in
/// the CPU's cache between the two; bytes from a reader are read straight
/// into the buffer and hashed there.
pub(super) struct HashingWriter {
    inner: Box<dyn ObjectWriter>,
    hasher: Sha256,
    size: u64,
    buffer: Vec<u8>,
    chunk_size: usize,
    /// The digest of the entry being written, if any.
    entry: Option<Sha256>,
}

/// Bytes hashed, then copied, at a time: small enough that the copy reads
/// them from the CPU's cache.
const HASH_PIECE: usize = 64 * 1024;

impl HashingWriter {
    pub(super) async fn open<S: CheckpointStorage + ?Sized>(
        storage: &S,
        key: &str,
        chunk_size: usize,
    ) -> Result<Self, WriteError> {
        Ok(HashingWriter {
            inner: storage.put_stream(key).await.map_err(WriteError::Storage)?,
            hasher: Sha256::new(),
            size: 0,
            buffer: Vec::new(),
            chunk_size: chunk_size.max(1),
            entry: None,
        })
    }

    /// Starts the digest of an entry: every byte written until
    /// [`end_entry`](Self::end_entry) is hashed into it too.
    pub(super) fn begin_entry(&mut self) {
        self.entry = Some(Sha256::new());
    }

    /// The digest of the entry written since [`begin_entry`](Self::begin_entry).
    pub(super) fn end_entry(&mut self) -> String {
        to_hex(&self.entry.take().unwrap_or_default().finalize())
    }

    /// Room for a whole chunk in the buffer.
    fn reserve(&mut self) {
        let wanted = self.chunk_size.saturating_sub(self.buffer.len());
        self.buffer.reserve_exact(wanted);
    }

    /// Appends bytes from memory: hashed, then copied into the buffer.
    pub(super) async fn write(&mut self, mut data: &[u8]) -> Result<(), WriteError> {
        while !data.is_empty() {
            self.reserve();
            let room = self.chunk_size - self.buffer.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            for piece in now.chunks(HASH_PIECE) {
                self.hasher.update(piece);
                if let Some(entry) = self.entry.as_mut() {
                    entry.update(piece);
                }
                self.buffer.extend_from_slice(piece);
            }
            self.size += now.len() as u64;
            data = rest;
            if self.buffer.len() >= self.chunk_size {
                self.send().await?;
            }
        }
        Ok(())
    }

    /// Reads from `reader` into the buffer until it ends, hashing what each
    /// read brings while it is in the cache.
    pub(super) async fn write_from<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<(), WriteError> {
        loop {
            self.reserve();
            let filled = self.buffer.len();
            let room = self.chunk_size - filled;
            let n = (&mut *reader)
                .take(room as u64)
                .read_buf(&mut self.buffer)
                .await
                .map_err(WriteError::Source)?;
            if n == 0 {
                return Ok(());
            }
            self.hasher.update(&self.buffer[filled..]);
            self.size += n as u64;
            if self.buffer.len() >= self.chunk_size {
                self.send().await?;
            }
        }
    }

    /// Hands the buffer to the storage; takes back an empty one.
    async fn send(&mut self) -> Result<(), WriteError> {
        let full = std::mem::take(&mut self.buffer);
        self.buffer = self
            .inner
            .write_buf(full)
            .await
            .map_err(WriteError::Storage)?;
        self.buffer.clear();
        Ok(())
    }

    /// Sends what is buffered and commits the object; returns its size and
    /// digest.
    async fn commit(mut self, key: &str) -> Result<(u64, String), WriteError> {
        if !self.buffer.is_empty() {
            self.send().await?;
        }
        let meta = self.inner.commit().await.map_err(WriteError::Storage)?;
        if meta.size != self.size {
            return Err(WriteError::Storage(StorageError::LengthMismatch {
                key: key.to_string(),
                expected: self.size,
                actual: meta.size,
            }));
        }
        Ok((self.size, to_hex(&self.hasher.finalize())))
    }

    /// Commits after `written` succeeded, aborts otherwise.
    pub(super) async fn finish(
        self,
        key: &str,
        written: Result<(), WriteError>,
    ) -> Result<(u64, String), WriteError> {
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

/// Compares the digest of a shard's bytes with the one its manifest records.
pub(super) fn check_digest(shard: &ShardInfo, actual: &str) -> Result<(), ReadError> {
    if actual == shard.sha256 {
        return Ok(());
    }
    Err(ReadError::Mismatch {
        expected: format!("sha256 {}", shard.sha256),
        actual: format!("sha256 {actual}"),
    })
}

/// Buffers at least this large are hashed on the blocking pool rather than
/// on the runtime's worker (1 MiB hashes in about a millisecond).
const HASH_OFF_RUNTIME_AT: usize = 1 << 20;

/// The lowercase hex SHA-256 of `data`, computed on tokio's blocking pool
/// when the buffer is large, so that hashing a multi-GiB shard does not
/// stall the tasks sharing the worker; returns the buffer with its digest.
pub(super) async fn sha256_hex_off_runtime(data: Vec<u8>) -> io::Result<(Vec<u8>, String)> {
    if data.len() < HASH_OFF_RUNTIME_AT {
        let digest = to_hex(&Sha256::digest(&data));
        return Ok((data, digest));
    }
    // The blocking task works inside the caller's span (a save's write).
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let digest = to_hex(&Sha256::digest(&data));
        (data, digest)
    })
    .await
    .map_err(|e| io::Error::other(format!("hashing a shard failed: {e}")))
}
