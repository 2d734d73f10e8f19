//! Loading a checkpoint: reading and checking its manifest, loading this
//! rank's shard or named entries from any shard, and verifying every shard.
//!
//! Nothing is trusted: a shard's size and (unless turned off) its SHA-256
//! are checked before any of its bytes reach the caller.

use std::collections::BTreeMap;
use std::io;

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tracing::Instrument;

use crate::coordinator::{Coordinator, CoordinatorError};
use crate::retry::RetryError;
use crate::storage::{CheckpointStorage, StorageError};

use super::chunks::ChunkIndex;
#[cfg(doc)]
use super::config::CheckpointOptions;
use super::decompress::{read_compressed, read_entry};
use super::distributed::DistributedCheckpoint;
use super::error::{CheckpointError, ReadError, Result};
use super::fencing::{CommitRecord, FenceError};
use super::hashing::{check_digest, sha256_hex_off_runtime};
use super::manifest::{manifest_key, to_hex, validate_name, EntryLocation, Manifest, ShardInfo};
use super::options::LoadOptions;
use super::trace;
use super::TARGET;

/// How many times, at most, a manifest that does not read as a valid one is
/// read before it is judged unusable (fewer when two reads return the same
/// bytes: the stored manifest is invalid).
pub(super) const MANIFEST_READS: usize = 10;

/// What reading a stored manifest found.
#[derive(Debug)]
pub(super) enum ManifestRead {
    /// A valid manifest.
    Valid(Manifest),
    /// Read whole, never as a valid manifest: the same invalid bytes twice,
    /// or [`MANIFEST_READS`] different invalid ones.
    Unusable {
        /// Why the last read is not a valid manifest.
        error: CheckpointError,
        /// Whether the reads returned different bytes: the damage happened
        /// on the way, and the stored manifest may be valid.
        in_transit: bool,
    },
}

/// A storage error from an I/O error of a storage's reader: the storage's own
/// error when the reader wrapped one in the I/O error, an I/O error on `key`
/// otherwise.
fn storage_error_from_io(key: &str, operation: &'static str, e: io::Error) -> StorageError {
    let io = |source| StorageError::Io {
        key: key.to_string(),
        operation,
        source,
    };
    if !e.get_ref().is_some_and(|inner| inner.is::<StorageError>()) {
        return io(e);
    }
    let kind = e.kind();
    match e.into_inner().map(|inner| inner.downcast::<StorageError>()) {
        Some(Ok(storage)) => *storage,
        Some(Err(other)) => io(io::Error::new(kind, other)),
        None => io(io::Error::from(kind)),
    }
}

/// Whether `confirmation` confirms `manifest`: it exists and holds the
/// manifest's checksum.
pub(super) fn confirms(confirmation: Option<&CommitRecord>, manifest: &Manifest) -> bool {
    confirmation.is_some_and(|record| record.checksum == manifest.checksum)
}

/// A fence that could not be consulted, as a checkpoint error.
pub(super) fn fence_failure(error: FenceError) -> CheckpointError {
    match error {
        FenceError::Coordinator(e) => CheckpointError::Coordinator(e),
        other => CheckpointError::Coordinator(CoordinatorError::Backend {
            message: other.to_string(),
            source: Some(Box::new(other)),
        }),
    }
}

impl<S: CheckpointStorage, C: Coordinator> DistributedCheckpoint<S, C> {
    /// Reads, checks and returns the manifest of checkpoint `name`.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::NotFound`] when there is no manifest (no committed
    /// checkpoint), and the errors of [`Manifest::from_bytes`]; a manifest
    /// larger than [`CheckpointOptions::max_manifest_size`] is
    /// [`CheckpointError::Corrupted`]. Under a
    /// [fence](DistributedCheckpoint::with_fence), a manifest whose commit
    /// the fence does not confirm (with its checksum) is
    /// [`CheckpointError::Unconfirmed`], and a fence that cannot be
    /// consulted is [`CheckpointError::Coordinator`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointError, CheckpointOptions, DistributedCheckpoint};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// assert!(matches!(ckpt.manifest("nothing").await, Err(CheckpointError::NotFound { .. })));
    /// # }
    /// ```
    pub async fn manifest(&self, name: &str) -> Result<Manifest> {
        let manifest = self.stored_manifest(name).await?;
        if let Some(fence) = &self.fence {
            let confirmation = fence.confirmation(name).await.map_err(fence_failure)?;
            if !confirms(confirmation.as_ref(), &manifest) {
                return Err(CheckpointError::Unconfirmed {
                    name: name.to_string(),
                });
            }
        }
        Ok(manifest)
    }

    /// Reads and checks the manifest of checkpoint `name` as stored, whether
    /// or not a fence confirms it; see [`read_manifest`](Self::read_manifest).
    pub(super) async fn stored_manifest(&self, name: &str) -> Result<Manifest> {
        match self.read_manifest(name).await? {
            ManifestRead::Valid(manifest) => Ok(manifest),
            ManifestRead::Unusable { error, .. } => Err(error),
        }
    }

    /// Reads and checks the manifest of checkpoint `name` as stored. Bytes
    /// that are not a valid manifest (they do not parse, their checksum
    /// fails, or they name a newer format: a flipped bit or a short read
    /// does any of these) are read again, since damage on the way from the
    /// storage is transient: the first valid read wins. Two reads that
    /// return the same invalid bytes show the stored manifest itself is
    /// invalid; after [`MANIFEST_READS`] reads that are all invalid and all
    /// different, the manifest is unusable for now, damaged on the way.
    ///
    /// # Errors
    ///
    /// As [`manifest`](Self::manifest) for a manifest that cannot be read at
    /// all (missing, oversized, or the storage fails); a manifest read whole
    /// but never valid is [`ManifestRead::Unusable`].
    pub(super) async fn read_manifest(&self, name: &str) -> Result<ManifestRead> {
        validate_name(name)?;
        let mut seen: Vec<[u8; 32]> = Vec::new();
        loop {
            let bytes = self.read_manifest_bytes(name).await?;
            let error = match Manifest::from_bytes(name, &bytes) {
                Ok(manifest) => return Ok(ManifestRead::Valid(manifest)),
                Err(error) => error,
            };
            let digest: [u8; 32] = Sha256::digest(&bytes).into();
            if seen.contains(&digest) {
                return Ok(ManifestRead::Unusable {
                    error,
                    in_transit: false,
                });
            }
            seen.push(digest);
            if seen.len() >= MANIFEST_READS {
                return Ok(ManifestRead::Unusable {
                    error,
                    in_transit: true,
                });
            }
            tracing::debug!(target: TARGET, name, reads = seen.len(), error = %error, "a manifest read is not valid; reading it again");
        }
    }

    /// The bytes of the manifest of checkpoint `name`, read with retries on
    /// transient storage errors.
    async fn read_manifest_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let key = manifest_key(name);
        let limit = self.options.max_manifest_size();
        let read = self.retry.retry(|| self.read_limited(&key, limit)).await;
        match read {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(size)) => Err(CheckpointError::Corrupted {
                name: name.to_string(),
                shard: key,
                expected: format!("at most {limit} bytes"),
                actual: format!("{size} bytes"),
            }),
            Err(e) => match e.into_inner() {
                StorageError::NotFound { .. } => Err(CheckpointError::NotFound {
                    name: name.to_string(),
                }),
                source => Err(CheckpointError::LoadFailed {
                    name: name.to_string(),
                    reason: format!("reading the manifest {key:?} failed"),
                    source: Some(source),
                }),
            },
        }
    }

    /// Reads an object of at most `limit` bytes; `Err(size)` when larger.
    pub(super) async fn read_limited(
        &self,
        key: &str,
        limit: u64,
    ) -> Result<Result<Vec<u8>, u64>, StorageError> {
        let stream = self.storage.get_stream(key).await?;
        if stream.meta.size > limit {
            return Ok(Err(stream.meta.size));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(stream.meta.size).unwrap_or(0));
        stream
            .reader
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| storage_error_from_io(key, "get_stream", e))?;
        if bytes.len() as u64 > limit {
            return Ok(Err(bytes.len() as u64));
        }
        Ok(Ok(bytes))
    }

    /// Loads this rank's shard of checkpoint `name` (its uncompressed bytes),
    /// after checking its size and (with `options.verify`) its SHA-256
    /// digest: no byte is returned before the whole shard is verified. A
    /// compressed shard is read frame by frame: each frame's stored bytes
    /// are checked against the manifest before the frame is decompressed,
    /// into exactly the size the manifest records, never more. A chunked
    /// shard's chunk index is read and checked (size and SHA-256 against the
    /// manifest), then every chunk is read at its recorded size, checked
    /// against its address (with the digest the index records) before it is
    /// decompressed into exactly its recorded raw size: chunks are verified
    /// whatever `options.verify` says.
    ///
    /// # Errors
    ///
    /// - [`CheckpointError::NotFound`], [`CheckpointError::IncompatibleVersion`],
    ///   [`CheckpointError::ValidationFailed`], [`CheckpointError::Corrupted`]
    ///   from the manifest;
    /// - [`CheckpointError::Corrupted`] naming the shard, the expected and
    ///   the actual size or digest, when the shard is missing, truncated,
    ///   longer or altered;
    /// - [`CheckpointError::LoadFailed`] when the checkpoint was saved by a
    ///   different world size (with `options.strict`) or has no shard for
    ///   this rank, or when the storage fails after retries.
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the read; it writes nothing, and no byte of
    /// a shard that was not fully verified is ever handed out.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, LoadOptions, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let shard = ShardData::new().with_entry("a", b"xy".to_vec()).with_entry("b", b"z".to_vec());
    /// ckpt.save("c", &shard, SaveOptions::new()).await?;
    /// assert_eq!(ckpt.load("c", LoadOptions::default()).await?, b"xyz");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn load(&self, name: &str, options: LoadOptions) -> Result<Vec<u8>> {
        let span = trace::load_span(name, self.rank(), self.world_size(), false);
        let loaded = self
            .load_shard(name, options)
            .instrument(span.clone())
            .await;
        trace::record_outcome(&span, &loaded, |bytes| bytes.len() as u64);
        loaded
    }

    /// [`load`](Self::load), inside its span.
    async fn load_shard(&self, name: &str, options: LoadOptions) -> Result<Vec<u8>> {
        let manifest = self.manifest(name).await?;
        let rank = self.rank();
        let world_size = self.world_size();
        if options.strict && manifest.world_size != world_size {
            return Err(CheckpointError::LoadFailed {
                name: name.to_string(),
                reason: format!(
                    "the checkpoint was saved by {} ranks and this job has {world_size}; \
                     load named entries (load_entry, load_entries) to reshard, or load with strict: false",
                    manifest.world_size
                ),
                source: None,
            });
        }
        let Some(shard) = manifest.shard(rank) else {
            return Err(CheckpointError::LoadFailed {
                name: name.to_string(),
                reason: format!(
                    "the checkpoint has no shard for rank {rank} (it was saved by {} ranks)",
                    manifest.world_size
                ),
                source: None,
            });
        };
        self.read_shard(name, shard, options.verify, true).await
    }

    /// Loads one named entry of checkpoint `name`, whichever rank saved it:
    /// how a job restarts at a different world size.
    ///
    /// An entry that carries its own digest (format version 3) is read alone:
    /// its byte range, or in a compressed shard the frames that hold it
    /// (each checked before it is decompressed), and it is checked against
    /// its digest before it is returned; the shard's stored size is checked
    /// first. An entry without one (format versions 1 and 2) is read with its
    /// whole shard, verified (size and SHA-256) before the entry is returned.
    /// An entry of a chunked shard is read from the chunks that hold it
    /// alone, each verified against its address before it is decompressed
    /// (the shard's chunk index is read and checked first).
    ///
    /// # Errors
    ///
    /// [`CheckpointError::EntryNotFound`] when the checkpoint has no such
    /// entry, and the errors of [`load`](Self::load).
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the read; it writes nothing, and no byte
    /// that was not verified is ever handed out.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let shard = ShardData::new().with_entry("a", b"xy".to_vec()).with_entry("b", b"z".to_vec());
    /// ckpt.save("c", &shard, SaveOptions::new()).await?;
    /// assert_eq!(ckpt.load_entry("c", "b").await?, b"z");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn load_entry(&self, name: &str, entry: &str) -> Result<Vec<u8>> {
        let wanted = entry;
        let mut entries = self.load_entries(name, |e| e == wanted).await?;
        entries
            .remove(entry)
            .ok_or_else(|| CheckpointError::EntryNotFound {
                name: name.to_string(),
                entry: entry.to_string(),
            })
    }

    /// Loads every named entry of checkpoint `name` for which `filter`
    /// returns `true`, from whichever shards hold them. Each entry is read
    /// and verified as [`load_entry`](Self::load_entry) does: alone when it
    /// carries a digest; otherwise each shard needed is read once and
    /// verified as a whole before any of its entries is kept.
    ///
    /// # Errors
    ///
    /// The errors of [`load`](Self::load), except that the world size may
    /// differ.
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the read; it writes nothing, and no byte of
    /// a shard that was not fully verified is ever handed out.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let shard = ShardData::new().with_entry("layer.0", vec![0]).with_entry("layer.1", vec![1]).with_entry("step", vec![9]);
    /// ckpt.save("c", &shard, SaveOptions::new()).await?;
    /// let layers = ckpt.load_entries("c", |e| e.starts_with("layer.")).await?;
    /// assert_eq!(layers.len(), 2);
    /// assert_eq!(layers["layer.1"], vec![1]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn load_entries<P>(&self, name: &str, filter: P) -> Result<BTreeMap<String, Vec<u8>>>
    where
        P: FnMut(&str) -> bool,
    {
        let span = trace::load_span(name, self.rank(), self.world_size(), true);
        let loaded = self
            .load_named_entries(name, filter)
            .instrument(span.clone())
            .await;
        trace::record_outcome(&span, &loaded, |entries| {
            entries.values().map(|bytes| bytes.len() as u64).sum()
        });
        loaded
    }

    /// [`load_entries`](Self::load_entries), inside its span.
    async fn load_named_entries<P>(
        &self,
        name: &str,
        mut filter: P,
    ) -> Result<BTreeMap<String, Vec<u8>>>
    where
        P: FnMut(&str) -> bool,
    {
        let manifest = self.manifest(name).await?;
        let mut by_rank: BTreeMap<usize, Vec<(&String, u64, u64)>> = BTreeMap::new();
        let mut out = BTreeMap::new();
        let mut indexes: BTreeMap<usize, ChunkIndex> = BTreeMap::new();
        for (entry, at) in &manifest.entries {
            if !filter(entry) {
                continue;
            }
            // An entry of a chunked shard is read from its chunks alone,
            // each verified; the shard's index is read once.
            if let Some((shard, summary)) = manifest
                .shard(at.rank)
                .and_then(|s| s.chunks.as_ref().map(|c| (s, c)))
            {
                let index = match indexes.entry(at.rank) {
                    std::collections::btree_map::Entry::Occupied(known) => known.into_mut(),
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(self.chunk_index(name, shard, summary).await?)
                    }
                };
                let range = at.offset..at.offset.saturating_add(at.length);
                let bytes = self.read_chunks(name, index, range, true).await?;
                out.insert(entry.clone(), bytes);
                continue;
            }
            // An entry with its own digest is read and verified alone.
            if let (Some(digest), Some(shard)) = (&at.sha256, manifest.shard(at.rank)) {
                let bytes = self.read_entry(name, shard, entry, at, digest).await?;
                out.insert(entry.clone(), bytes);
                continue;
            }
            by_rank
                .entry(at.rank)
                .or_default()
                .push((entry, at.offset, at.length));
        }
        for (rank, entries) in by_rank {
            // The manifest was validated: every entry's rank has a shard and
            // every entry lies inside it.
            let Some(shard) = manifest.shard(rank) else {
                continue;
            };
            let bytes = self.read_shard(name, shard, true, true).await?;
            for (entry, offset, length) in entries {
                let range = usize::try_from(offset)
                    .ok()
                    .zip(usize::try_from(offset.saturating_add(length)).ok());
                let Some(slice) = range.and_then(|(start, end)| bytes.get(start..end)) else {
                    return Err(CheckpointError::Corrupted {
                        name: name.to_string(),
                        shard: shard.key.clone(),
                        expected: format!(
                            "entry {entry:?} at {offset}..{}",
                            offset.saturating_add(length)
                        ),
                        actual: format!("{} bytes", bytes.len()),
                    });
                };
                out.insert(entry.clone(), slice.to_vec());
            }
        }
        Ok(out)
    }

    /// Checks every shard of checkpoint `name` (size and SHA-256; for a
    /// compressed shard also every frame's digest, and that each frame
    /// decompresses to exactly its recorded size; for a chunked shard its
    /// chunk index and every chunk it lists, each against its address and
    /// raw size), reading them in pieces, frames or chunks without holding
    /// any whole in memory; returns the manifest.
    ///
    /// # Errors
    ///
    /// The first failure, as [`load`](Self::load) reports it.
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the reads; nothing is written.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// ckpt.save("c", &ShardData::new().with_entry("a", vec![1; 100]), SaveOptions::new()).await?;
    /// assert_eq!(ckpt.verify("c").await?.total_size(), 100);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn verify(&self, name: &str) -> Result<Manifest> {
        let manifest = self.manifest(name).await?;
        for shard in &manifest.shards {
            self.read_shard(name, shard, true, false).await?;
        }
        Ok(manifest)
    }

    /// Checks one shard of checkpoint `name` as [`verify`](Self::verify)
    /// checks each: `shard` as the checkpoint's [`manifest`](Self::manifest)
    /// records it. Checking the shards one by one reports every damaged
    /// shard rather than the first, and shows progress between them (the
    /// `steadfast verify` command does both).
    ///
    /// # Errors
    ///
    /// As [`verify`](Self::verify), for this shard alone: a
    /// [`CheckpointError::Corrupted`] names the damaged object (the shard,
    /// or for a chunked shard the chunk), the expected and the actual size
    /// or digest.
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the reads; nothing is written.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// # use steadfast::coordinator::InMemoryCoordinator;
    /// # use steadfast::retry::RetryPolicy;
    /// # use steadfast::storage::MemoryStorage;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// # let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// ckpt.save("c", &ShardData::new().with_entry("a", vec![1; 100]), SaveOptions::new()).await?;
    /// let manifest = ckpt.manifest("c").await?;
    /// for shard in &manifest.shards {
    ///     ckpt.verify_shard("c", shard).await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn verify_shard(&self, name: &str, shard: &ShardInfo) -> Result<()> {
        self.read_shard(name, shard, true, false).await.map(drop)
    }

    /// Reads entry `entry` alone, checked against its digest; retried on
    /// transient storage errors.
    async fn read_entry(
        &self,
        name: &str,
        shard: &ShardInfo,
        entry: &str,
        at: &EntryLocation,
        digest: &str,
    ) -> Result<Vec<u8>> {
        let result = self
            .retry
            .retry(|| read_entry(&self.storage, shard, at, digest))
            .await;
        result.map_err(|e| {
            let error = refused(name, shard, e);
            tracing::error!(target: TARGET, name, shard = %shard.key, entry, error = %error, "entry refused");
            error
        })
    }

    /// Reads a shard (keeping its uncompressed bytes when `keep`), checking
    /// its size and, when `verify`, its digests; retried on transient storage
    /// errors.
    async fn read_shard(
        &self,
        name: &str,
        shard: &ShardInfo,
        verify: bool,
        keep: bool,
    ) -> Result<Vec<u8>> {
        if let Some(summary) = &shard.chunks {
            // Every chunk is verified against its address, whatever
            // `verify` says: the address is what names the bytes.
            return self.read_chunked_shard(name, shard, summary, keep).await;
        }
        let result = self
            .retry
            .retry(|| self.read_shard_once(shard, verify, keep))
            .await;
        result.map_err(|e| {
            let error = refused(name, shard, e);
            tracing::error!(target: TARGET, name, shard = %shard.key, error = %error, "shard refused");
            error
        })
    }

    async fn read_shard_once(
        &self,
        shard: &ShardInfo,
        verify: bool,
        keep: bool,
    ) -> Result<Vec<u8>, ReadError> {
        if let Some(layout) = &shard.compression {
            return read_compressed(
                &self.storage,
                shard,
                layout,
                verify || !keep,
                keep,
                storage_error_from_io,
            )
            .await;
        }
        if !keep {
            return self.verify_streamed(shard).await.map(|()| Vec::new());
        }
        // One read of exactly the recorded size (a storage refuses an object
        // of another size before reading it), then the digest.
        let data = self
            .storage
            .get_sized(&shard.key, shard.size)
            .await
            .map(Vec::from)
            .map_err(ReadError::Storage)?;
        if !verify {
            return Ok(data);
        }
        let (data, actual) = sha256_hex_off_runtime(data).await.map_err(|e| {
            ReadError::Storage(StorageError::Io {
                key: shard.key.clone(),
                operation: "get",
                source: e,
            })
        })?;
        check_digest(shard, &actual)?;
        Ok(data)
    }

    /// Reads a shard in chunks and checks its size and digest, holding no
    /// more than one chunk in memory.
    async fn verify_streamed(&self, shard: &ShardInfo) -> Result<(), ReadError> {
        let stream = self
            .storage
            .get_stream(&shard.key)
            .await
            .map_err(ReadError::Storage)?;
        let sizes = |actual: u64| ReadError::Mismatch {
            expected: format!("{} bytes", shard.size),
            actual: format!("{actual} bytes"),
        };
        if stream.meta.size != shard.size {
            return Err(sizes(stream.meta.size));
        }
        let mut reader = stream.reader;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; self.options.chunk_size()];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buffer).await.map_err(|e| {
                ReadError::Storage(storage_error_from_io(&shard.key, "get_stream", e))
            })?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > shard.size {
                return Err(ReadError::Mismatch {
                    expected: format!("{} bytes", shard.size),
                    actual: format!("more than {} bytes", shard.size),
                });
            }
            hasher.update(&buffer[..n]);
        }
        if total != shard.size {
            return Err(sizes(total));
        }
        check_digest(shard, &to_hex(&hasher.finalize()))
    }
}

/// The error of a shard or entry refused after retries: a mismatch or a
/// missing or short object is [`CheckpointError::Corrupted`] naming the
/// shard, any other storage failure [`CheckpointError::LoadFailed`].
fn refused(name: &str, shard: &ShardInfo, e: RetryError<ReadError>) -> CheckpointError {
    let attempts = e.attempts();
    refused_object(
        name,
        "shard",
        &shard.key,
        shard.size,
        attempts,
        e.into_inner(),
    )
}

/// [`refused`] for any object of checkpoint `name` (`what`: "shard",
/// "chunk"), stored under `key` in `size` bytes.
pub(super) fn refused_object(
    name: &str,
    what: &str,
    key: &str,
    size: u64,
    attempts: u32,
    e: ReadError,
) -> CheckpointError {
    let corrupted = |expected: String, actual: String| CheckpointError::Corrupted {
        name: name.to_string(),
        shard: key.to_string(),
        expected,
        actual,
    };
    match e {
        ReadError::Mismatch { expected, actual } => corrupted(expected, actual),
        ReadError::Storage(StorageError::NotFound { .. }) => {
            corrupted(format!("{size} bytes"), "no object".into())
        }
        ReadError::Storage(StorageError::LengthMismatch {
            expected, actual, ..
        }) => corrupted(format!("{expected} bytes"), format!("{actual} bytes")),
        ReadError::Storage(StorageError::RangeOutOfBounds { size: found, .. }) => {
            corrupted(format!("{size} bytes"), format!("{found} bytes"))
        }
        ReadError::Storage(source) => CheckpointError::LoadFailed {
            name: name.to_string(),
            reason: format!(
                "reading {what} {key:?} failed after {attempts} attempt{}",
                if attempts == 1 { "" } else { "s" }
            ),
            source: Some(source),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_error_inside_an_io_error_is_unwrapped() {
        let wrapped = io::Error::new(
            io::ErrorKind::InvalidData,
            StorageError::LengthMismatch {
                key: "k".into(),
                expected: 4,
                actual: 3,
            },
        );
        assert!(matches!(
            storage_error_from_io("k", "get_stream", wrapped),
            StorageError::LengthMismatch { actual: 3, .. }
        ));
        let plain = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert!(matches!(
            storage_error_from_io("k", "get_stream", plain),
            StorageError::Io { ref source, .. } if source.kind() == io::ErrorKind::UnexpectedEof
        ));
    }
}
