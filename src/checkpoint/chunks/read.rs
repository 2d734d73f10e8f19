//! Reading a chunked shard: its chunk index (checked against the
//! manifest's size and SHA-256, then against the manifest's summary), then
//! the chunks a load needs, each read at exactly its recorded size, checked
//! against its address with the index's digest before it is decompressed
//! into exactly its recorded raw size. No byte reaches the caller before
//! every chunk it comes from is verified.
//!
//! A whole load (or a verification) reads every chunk; a load of some
//! entries reads only the chunks that overlap them. A few chunks are read
//! at once, in order, so that memory stays bounded by a few chunks beyond
//! the bytes returned.

use std::ops::Range;

use bytes::Bytes;
use futures::stream::FuturesOrdered;
use futures::StreamExt;

use crate::coordinator::Coordinator;
use crate::storage::CheckpointStorage;

use super::super::decompress::{decompress_bounded, decompression_context, off_runtime};
use super::super::distributed::DistributedCheckpoint;
use super::super::error::{CheckpointError, ReadError, Result};
use super::super::frames::ZSTD_CODEC;
use super::super::load::refused_object;
use super::super::manifest::{sha256_hex, ShardInfo};
use super::index::{ChunkIndex, ChunkRef, ShardChunks};

/// Chunks read at once, at most.
const READS_AT_ONCE: usize = 4;

/// The most a load reserves ahead of the bytes it has verified.
const RESERVE_AHEAD: u64 = 64 << 20;

impl<S: CheckpointStorage, C: Coordinator> DistributedCheckpoint<S, C> {
    /// Reads the chunk index of `shard` of checkpoint `name`: exactly its
    /// recorded size, its SHA-256 checked, then checked against `summary`.
    pub(in crate::checkpoint) async fn chunk_index(
        &self,
        name: &str,
        shard: &ShardInfo,
        summary: &ShardChunks,
    ) -> Result<ChunkIndex> {
        let key = shard.key.as_str();
        let bytes = self
            .retry
            .retry(|| self.storage.get_sized(key, shard.size))
            .await
            .map_err(|e| {
                let attempts = e.attempts();
                let error = ReadError::Storage(e.into_inner());
                refused_object(name, "shard", key, shard.size, attempts, error)
            })?;
        let actual = sha256_hex(&bytes);
        if actual != shard.sha256 {
            return Err(CheckpointError::Corrupted {
                name: name.to_string(),
                shard: key.to_string(),
                expected: format!("sha256 {}", shard.sha256),
                actual: format!("sha256 {actual}"),
            });
        }
        ChunkIndex::from_bytes(name, key, &bytes, summary)
    }

    /// Reads and verifies a chunked shard whole (its index, then every
    /// chunk); returns its raw bytes when `keep`.
    pub(in crate::checkpoint) async fn read_chunked_shard(
        &self,
        name: &str,
        shard: &ShardInfo,
        summary: &ShardChunks,
        keep: bool,
    ) -> Result<Vec<u8>> {
        let index = self.chunk_index(name, shard, summary).await?;
        let all = 0..index.uncompressed_size();
        self.read_chunks(name, &index, all, keep).await
    }

    /// Reads the chunks of `index` that overlap `range` of the shard's raw
    /// bytes, each verified before it is decompressed; returns the bytes of
    /// `range` when `keep` (nothing otherwise).
    pub(in crate::checkpoint) async fn read_chunks(
        &self,
        name: &str,
        index: &ChunkIndex,
        range: Range<u64>,
        keep: bool,
    ) -> Result<Vec<u8>> {
        let mut needed = Vec::new();
        let mut start = 0u64;
        for chunk in &index.chunks {
            let end = start.saturating_add(chunk.raw_size);
            if start < range.end && end > range.start {
                needed.push((start, chunk));
            }
            start = end;
        }
        let wanted = range.end.saturating_sub(range.start);
        let mut out = Vec::new();
        if keep {
            out.try_reserve_exact(usize::try_from(wanted.min(RESERVE_AHEAD)).unwrap_or(0))
                .map_err(|e| CheckpointError::LoadFailed {
                    name: name.to_string(),
                    reason: format!("no memory for {wanted} bytes: {e}"),
                    source: None,
                })?;
        }
        let zstd = index.codec == ZSTD_CODEC;
        // A few chunks read at once, taken in order. (A plain queue of the
        // same future type: a stream combinator's closure would make the
        // future of a save lose `Send` for every lifetime.)
        let mut pending = needed.into_iter();
        let mut reads = FuturesOrdered::new();
        loop {
            while reads.len() < READS_AT_ONCE {
                let Some((start, chunk)) = pending.next() else {
                    break;
                };
                reads.push_back(self.read_chunk(name, index, chunk, zstd, start));
            }
            let Some(read) = reads.next().await else {
                break;
            };
            let (start, raw) = read?;
            if !keep {
                continue;
            }
            // The part of the chunk inside `range`.
            let from = range.start.saturating_sub(start);
            let to = (range.end.saturating_sub(start)).min(raw.len() as u64);
            let piece = usize::try_from(from)
                .ok()
                .zip(usize::try_from(to).ok())
                .and_then(|(from, to)| raw.get(from..to))
                .unwrap_or_default();
            out.try_reserve(piece.len())
                .map_err(|e| CheckpointError::LoadFailed {
                    name: name.to_string(),
                    reason: format!("no memory for {} more bytes: {e}", piece.len()),
                    source: None,
                })?;
            out.extend_from_slice(piece);
        }
        if keep && out.len() as u64 != wanted {
            return Err(CheckpointError::Corrupted {
                name: name.to_string(),
                shard: "chunks".into(),
                expected: format!("{wanted} bytes from the chunks"),
                actual: format!("{} bytes", out.len()),
            });
        }
        Ok(out)
    }

    /// Reads one chunk at exactly its stored size, checks it against its
    /// address, and decompresses it into exactly its raw size.
    async fn read_chunk(
        &self,
        name: &str,
        index: &ChunkIndex,
        chunk: &ChunkRef,
        zstd: bool,
        start: u64,
    ) -> Result<(u64, Bytes)> {
        let key = chunk.key();
        let refuse = |attempts: u32, e: ReadError| {
            let error = refused_object(name, "chunk", &key, chunk.size, attempts, e);
            tracing::error!(target: super::super::TARGET, name, chunk = %key, error = %error, "chunk refused");
            error
        };
        let stored = self
            .retry
            .retry(|| self.storage.get_sized(&key, chunk.size))
            .await
            .map_err(|e| {
                let attempts = e.attempts();
                refuse(attempts, ReadError::Storage(e.into_inner()))
            })?;
        let (algorithm, expected, raw_size) = (index.digest, chunk.digest.clone(), chunk.raw_size);
        let opened =
            off_runtime(&key, move || {
                let actual = algorithm.hex(&stored);
                if actual != expected {
                    return Err(ReadError::Mismatch {
                        expected: format!("{algorithm} {expected}"),
                        actual: format!("{algorithm} {actual}"),
                    });
                }
                if !zstd {
                    return Ok(stored);
                }
                // The index was checked: a chunk holds at most 16 MiB.
                let wanted = usize::try_from(raw_size).unwrap_or(usize::MAX);
                let mut context = decompression_context()?;
                let mut out = Vec::new();
                let produced = decompress_bounded(&mut context, &stored, &mut out, wanted)
                    .map_err(|reason| ReadError::Mismatch {
                        expected: format!("a chunk decompressing to {wanted} bytes"),
                        actual: reason,
                    })?;
                if produced != wanted {
                    return Err(ReadError::Mismatch {
                        expected: format!("a chunk decompressing to {wanted} bytes"),
                        actual: format!("{produced} bytes"),
                    });
                }
                Ok(Bytes::from(out))
            })
            .await;
        opened
            .and_then(|r| r)
            .map(|raw| (start, raw))
            .map_err(|e| refuse(1, e))
    }
}
