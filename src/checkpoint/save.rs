//! The save protocol (see [`DistributedCheckpoint`]): each rank checks the
//! name and writes its shard under retry, the ranks exchange what they
//! wrote, every rank tallies the same reports into the same decision, the
//! committer (rank 0, or the rank a fence names) commits (`commit.rs`), the
//! ranks hear the outcome (`outcome.rs`), and a failed save is rolled back.

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::io::AsyncRead;
use tracing::Instrument;

use crate::coordinator::Coordinator;
use crate::storage::CheckpointStorage;

use super::chunks::{ChunkSource, ChunkStats, NoStream};
use super::compress::FrameWriter;
use super::compression::Compression;
#[cfg(doc)]
use super::config::CheckpointOptions;
use super::distributed::DistributedCheckpoint;
use super::error::{describe, CheckpointError, LocalFailure, Result, WriteError};
use super::frames::ShardCompression;
use super::hashing::HashingWriter;
use super::manifest::{manifest_key, shard_key, validate_name, CheckpointInfo, MANIFEST_FILE_NAME};
use super::options::SaveOptions;
use super::outcome::{collective_error, CommitOutcome};
use super::rollback::{delete_object, sweep_uncommitted, RollbackReport};
use super::shard::ShardData;
use super::tally::{tally, FailureKind, Tally, Written, WrittenEntry};
use super::trace;
use super::TARGET;

/// A shard written to storage: its stored size and digest, its frames when
/// compressed, and the digest of each entry in order.
struct Stored {
    size: u64,
    sha256: String,
    compression: Option<ShardCompression>,
    /// `None` for the only entry of a compressed shard (see
    /// `write_entries_once`).
    entry_sha256: Vec<Option<String>>,
}

impl<S: CheckpointStorage, C: Coordinator> DistributedCheckpoint<S, C> {
    /// Saves this rank's shard, made of named entries, as part of checkpoint
    /// `name`; every rank calls it. Returns the committed checkpoint's
    /// summary, the same on every rank.
    ///
    /// The shard's bytes are its entries one after the other; the manifest's
    /// index records where each entry is and the SHA-256 of its bytes, for
    /// [`load_entry`](Self::load_entry), which reads and verifies one entry
    /// alone. With [`SaveOptions::compression`] the bytes are stored in
    /// independent zstd frames ([`CheckpointOptions::frame_size`] each),
    /// compressed on the blocking pool while the previous frame is written;
    /// the shard is streamed, never held twice. The write is retried as a
    /// whole under the retry policy. With [`SaveOptions::chunking`] the
    /// shard is stored as content-defined chunks instead, of which only
    /// those the storage lacks are written (see
    /// [`save_with_stats`](Self::save_with_stats), which also says how many
    /// bytes that was). See [the save protocol](DistributedCheckpoint#the-save-protocol).
    ///
    /// # Errors
    ///
    /// The same error on every rank:
    /// - [`CheckpointError::AlreadyExists`] if a checkpoint of that name is
    ///   committed (it is left intact);
    /// - [`CheckpointError::SaveFailed`] naming the ranks that failed (a
    ///   storage error after retries, a duplicate or empty entry name), or
    ///   the committer when the outcome of the manifest write is unknown (then
    ///   nothing is rolled back; see the protocol);
    /// - [`CheckpointError::Timeout`] naming the ranks that did not arrive.
    ///
    /// A rank whose coordinator itself fails returns
    /// [`CheckpointError::Coordinator`] (and the others time out naming it);
    /// an invalid name is refused on each rank before anything is written
    /// ([`CheckpointError::InvalidName`]).
    ///
    /// # Cancellation
    ///
    /// Dropping the future stops the save where it is. A shard being written
    /// is discarded; a shard already written stays as an uncommitted object
    /// (no manifest refers to it, so no checkpoint is visible) until
    /// [`cleanup_uncommitted`](Self::cleanup_uncommitted) removes it. The other
    /// ranks time out and roll back.
    ///
    /// The one exception is the committer dropped while it writes the manifest: a
    /// write the storage has started may still complete (a file system
    /// write runs to its end on the blocking pool). The checkpoint is then
    /// committed and whole, and the other ranks, finding its manifest,
    /// return it as saved.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{CheckpointError, CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::MemoryStorage;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), CheckpointError> {
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let shard = ShardData::new().with_entry("w", vec![1, 2, 3]);
    /// let info = ckpt.save("step-1", &shard, SaveOptions::new().step(1)).await?;
    /// assert_eq!(info.total_size, 3);
    /// let again = ckpt.save("step-1", &shard, SaveOptions::new()).await.unwrap_err();
    /// assert!(matches!(again, CheckpointError::AlreadyExists { .. }));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn save(
        &self,
        name: &str,
        shard: &ShardData,
        options: SaveOptions,
    ) -> Result<CheckpointInfo> {
        self.save_with_stats(name, shard, options)
            .await
            .map(|(info, _)| info)
    }

    /// [`save`](Self::save), also returning what this rank stored: with
    /// [`SaveOptions::chunking`], how many chunks its shard is made of and
    /// how many (and how many bytes) it wrote, the others being in the
    /// storage already; without, its shard object as written whole.
    ///
    /// # Errors
    ///
    /// As [`save`](Self::save). A chunked save also fails on this rank when
    /// listing `chunks/` or writing a chunk fails after retries, and when an
    /// entry marked unchanged ([`ShardData::with_unchanged_entry`]) cannot
    /// be reused from [`SaveOptions::base`] (the reason says why; saving the
    /// entry's bytes instead always works). A save that does not chunk
    /// refuses entries marked unchanged.
    ///
    /// # Cancellation
    ///
    /// As [`save`](Self::save); chunks already written stay in `chunks/`
    /// until a collection of chunks removes those no checkpoint refers to.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{CheckpointOptions, Chunking, DistributedCheckpoint, LoadOptions, SaveOptions, ShardData};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::MemoryStorage;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let options = SaveOptions::new().chunking(Chunking::with_average_size(4096).unwrap());
    /// let weights: Vec<u8> = (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    /// let shard = ShardData::new().with_entry("w", weights.clone());
    /// let (_, first) = ckpt.save_with_stats("step-1", &shard, options.clone()).await?;
    /// assert_eq!(first.bytes_written, first.bytes_stored_total);
    /// // The same bytes again: every chunk is in the storage already.
    /// let (_, second) = ckpt.save_with_stats("step-2", &shard, options).await?;
    /// assert_eq!(second.chunks_written, 0);
    /// assert_eq!(ckpt.load("step-2", LoadOptions::default()).await?, weights);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn save_with_stats(
        &self,
        name: &str,
        shard: &ShardData,
        options: SaveOptions,
    ) -> Result<(CheckpointInfo, ChunkStats)> {
        if options.chunking.is_some() {
            return self
                .save_chunked(name, ChunkSource::<NoStream>::Entries(shard), &options)
                .await;
        }
        let compression = options.compression;
        let stats = std::sync::Mutex::new(ChunkStats::default());
        let stats_ref = &stats;
        let info = self
            .save_with(name, &options, |key| async move {
                shard
                    .check_names()
                    .map_err(|reason| LocalFailure::failed(reason, None))?;
                if let Some(entry) = shard.first_unchanged() {
                    return Err(LocalFailure::failed(
                        format!("entry {entry:?} is marked unchanged, which only a chunked save with a base can store"),
                        None,
                    ));
                }
                let key_ref = &key;
                let stored = self
                    .write_with_retry(key_ref, || {
                        self.write_entries_once(key_ref, shard, compression)
                    })
                    .await?;
                let entries = shard
                    .index()
                    .into_iter()
                    .zip(stored.entry_sha256)
                    .map(|((name, offset, length), sha256)| WrittenEntry {
                        name,
                        offset,
                        length,
                        sha256,
                    })
                    .collect();
                if let Ok(mut stats) = stats_ref.lock() {
                    *stats = whole_object_stats(shard.total_size(), stored.size);
                }
                Ok(Written {
                    key,
                    size: stored.size,
                    sha256: stored.sha256,
                    compression: stored.compression,
                    entries,
                    chunks: None,
                })
            })
            .await?;
        let stats = stats.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok((info, stats))
    }

    /// A chunked save, from its listing of `chunks/` to the commit outcome:
    /// this rank takes a save lock (`chunks/locks.rs`: it waits while a
    /// chunk collection runs, and keeps a collection from deleting the
    /// chunks it finds and relies on), writes the chunks its shard needs and
    /// its chunk index (`write_chunked`, in `chunks/save.rs`), checks that
    /// its lock is still fresh right before it reports, and goes through the
    /// rest of every save ([`save_with`](Self::save_with)) holding the lock
    /// until the commit outcome is known.
    async fn save_chunked<F, Fut, R>(
        &self,
        name: &str,
        source: ChunkSource<'_, F>,
        options: &SaveOptions,
    ) -> Result<(CheckpointInfo, ChunkStats)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = io::Result<R>>,
        R: AsyncRead + Unpin,
    {
        // Taken before anything is listed; a lock that cannot be taken
        // fails this rank's part, reported like any other failure.
        let lock = self.acquire_save_lock(options.timeout).await;
        if let Ok(held) = &lock {
            tracing::debug!(target: TARGET, name, rank = self.rank(), lock = %held.key(), "chunk save lock taken");
        }
        let stats = std::sync::Mutex::new(ChunkStats::default());
        let (stats_ref, lock_ref) = (&stats, &lock);
        let saving = self.save_with(name, options, |key| async move {
            let held = lock_ref
                .as_ref()
                .map_err(|reason| LocalFailure::failed(reason.clone(), None))?;
            let (written, counted) = self.write_chunked(key, source, options).await?;
            if let Ok(mut stats) = stats_ref.lock() {
                *stats = counted;
            }
            // This rank's report is sent right after this returns: a lock
            // that went stale may have let a collection delete a chunk this
            // save found present.
            self.ensure_fresh(held)
                .map_err(|reason| LocalFailure::failed(reason, None))?;
            Ok(written)
        });
        let saved = match &lock {
            Ok(held) => self.hold_lock(held, saving).await,
            Err(_) => saving.await,
        };
        if let Ok(held) = lock {
            self.release_lock(held).await;
        }
        let info = saved?;
        let stats = stats.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok((info, stats))
    }

    /// Saves this rank's shard from a byte stream as part of checkpoint
    /// `name`; every rank calls it. The shard has no named entries.
    ///
    /// `open` is called once per attempt and returns a fresh reader of the
    /// shard's bytes (open a file, start a download), so that a failed attempt
    /// can start over. The bytes are read and written in chunks of
    /// [`CheckpointOptions::chunk_size`] and hashed in the same pass: a
    /// shard is never held in memory as a whole. With
    /// [`SaveOptions::chunking`], the stream is cut into the same chunks as
    /// its bytes saved as one entry would be (holding at most twice the
    /// largest chunk), and only the chunks the storage lacks are written; a
    /// transient failure of the reader opens it again, and the chunks
    /// already written are not written again. Otherwise it behaves as
    /// [`save`](Self::save).
    ///
    /// # Errors
    ///
    /// As [`save`](Self::save); an I/O error from `open` or from the reader
    /// fails this rank's write (it is retried when its kind is transient).
    ///
    /// # Cancellation
    ///
    /// As [`save`](Self::save).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, LoadOptions, SaveOptions};
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::retry::RetryPolicy;
    /// use steadfast::storage::MemoryStorage;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let ckpt = DistributedCheckpoint::new(MemoryStorage::new(), rank, RetryPolicy::default(), CheckpointOptions::default());
    /// let bytes = vec![7u8; 10_000];
    /// ckpt.save_stream("big", || {
    ///     let reader = std::io::Cursor::new(bytes.clone());
    ///     async move { Ok(reader) }
    /// }, SaveOptions::new()).await?;
    /// assert_eq!(ckpt.load("big", LoadOptions::default()).await?, bytes);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn save_stream<F, Fut, R>(
        &self,
        name: &str,
        mut open: F,
        options: SaveOptions,
    ) -> Result<CheckpointInfo>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = io::Result<R>>,
        R: AsyncRead + Unpin,
    {
        if options.chunking.is_some() {
            return self
                .save_chunked(name, ChunkSource::Stream(open), &options)
                .await
                .map(|(info, _)| info);
        }
        let compression = options.compression;
        self.save_with(name, &options, |key| async move {
            let key_ref = &key;
            let stored = self
                .write_with_retry(key_ref, || {
                    let opening = open();
                    async move {
                        let reader = opening.await.map_err(WriteError::Source)?;
                        self.write_reader_once(key_ref, reader, compression).await
                    }
                })
                .await?;
            Ok(Written {
                key,
                size: stored.size,
                sha256: stored.sha256,
                compression: stored.compression,
                entries: Vec::new(),
                chunks: None,
            })
        })
        .await
    }

    /// Writes the entries one after the other, raw or in compressed
    /// frames, with the digest of each entry.
    async fn write_entries_once(
        &self,
        key: &str,
        shard: &ShardData,
        compression: Compression,
    ) -> Result<Stored, WriteError> {
        let mut entry_sha256 = Vec::with_capacity(shard.len());
        match compression {
            Compression::None => {
                let mut writer =
                    HashingWriter::open(&self.storage, key, self.options.chunk_size()).await?;
                // An only entry is the whole shard: its digest is the
                // shard's, and its bytes are hashed once.
                let only = shard.len() == 1;
                let written = async {
                    for (_, data) in shard.entries() {
                        if only {
                            writer.write(data).await?;
                        } else {
                            writer.begin_entry();
                            writer.write(data).await?;
                            entry_sha256.push(Some(writer.end_entry()));
                        }
                    }
                    Ok(())
                }
                .await;
                let (size, sha256) = writer.finish(key, written).await?;
                if only {
                    entry_sha256.push(Some(sha256.clone()));
                }
                Ok(Stored {
                    size,
                    sha256,
                    compression: None,
                    entry_sha256,
                })
            }
            Compression::Zstd { level } => {
                let mut writer =
                    FrameWriter::open(&self.storage, key, self.options.frame_size(), level).await?;
                // An only entry is the whole shard, which its frames' and
                // its own digests verify: it gets no digest of its own (a
                // load of it reads the shard, verified), and its bytes are
                // not hashed a third time.
                let only = shard.len() == 1;
                let written = async {
                    for (_, data) in shard.entries() {
                        if only {
                            writer.write(data).await?;
                            entry_sha256.push(None);
                        } else {
                            writer.begin_entry();
                            writer.write(data).await?;
                            entry_sha256.push(Some(writer.end_entry()));
                        }
                    }
                    Ok(())
                }
                .await;
                let frames = writer.finish(key, written).await?;
                Ok(Stored {
                    size: frames.size,
                    sha256: frames.sha256,
                    compression: Some(frames.layout),
                    entry_sha256,
                })
            }
        }
    }

    async fn write_reader_once<R: AsyncRead + Unpin>(
        &self,
        key: &str,
        mut reader: R,
        compression: Compression,
    ) -> Result<Stored, WriteError> {
        match compression {
            Compression::None => {
                let mut writer =
                    HashingWriter::open(&self.storage, key, self.options.chunk_size()).await?;
                let written = writer.write_from(&mut reader).await;
                let (size, sha256) = writer.finish(key, written).await?;
                Ok(Stored {
                    size,
                    sha256,
                    compression: None,
                    entry_sha256: Vec::new(),
                })
            }
            Compression::Zstd { level } => {
                let mut writer =
                    FrameWriter::open(&self.storage, key, self.options.frame_size(), level).await?;
                let written = writer.write_from(&mut reader).await;
                let frames = writer.finish(key, written).await?;
                Ok(Stored {
                    size: frames.size,
                    sha256: frames.sha256,
                    compression: Some(frames.layout),
                    entry_sha256: Vec::new(),
                })
            }
        }
    }

    async fn write_with_retry<F, Fut>(&self, key: &str, attempt: F) -> Result<Stored, LocalFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Stored, WriteError>>,
    {
        let rank = self.rank();
        self.retry
            .retry(attempt)
            .notify(|attempt: u32, error: &WriteError, delay: Duration| {
                // The retry itself is logged (target "steadfast::retry");
                // this adds which rank and shard it was.
                tracing::debug!(
                    target: TARGET,
                    rank,
                    key,
                    attempt,
                    delay = ?delay,
                    error = %error,
                    "writing a shard failed; retrying"
                );
            })
            .await
            .map_err(|e| {
                LocalFailure::failed(
                    format!("writing shard {key:?}: {}", describe(&e)),
                    Some(Box::new(e)),
                )
            })
    }

    /// Refuses a save that would overwrite or nest with a committed
    /// checkpoint.
    async fn precheck(&self, name: &str) -> Result<(), LocalFailure> {
        let committed =
            |key: String| async move { self.retry.retry(|| self.storage.exists(&key)).await };
        match committed(manifest_key(name)).await {
            Ok(false) => {}
            Ok(true) => {
                return Err(LocalFailure {
                    kind: FailureKind::AlreadyExists,
                    reason: format!("checkpoint {name:?} already exists"),
                    source: None,
                })
            }
            Err(e) => {
                return Err(LocalFailure::failed(
                    format!("checking for an existing checkpoint: {}", describe(&e)),
                    Some(Box::new(e)),
                ))
            }
        }
        if self.rank() != 0 {
            return Ok(());
        }
        let segments: Vec<&str> = name.split('/').collect();
        for depth in 1..segments.len() {
            let ancestor = segments[..depth].join("/");
            match committed(manifest_key(&ancestor)).await {
                Ok(false) => {}
                Ok(true) => {
                    return Err(LocalFailure::failed(
                        format!("checkpoint {ancestor:?} is committed around this name; checkpoints do not nest"),
                        None,
                    ))
                }
                Err(e) => {
                    return Err(LocalFailure::failed(
                        format!("checking checkpoint {ancestor:?}: {}", describe(&e)),
                        Some(Box::new(e)),
                    ))
                }
            }
        }
        let prefix = format!("{name}/");
        match self.retry.retry(|| self.storage.list(&prefix)).await {
            Ok(objects) => {
                if let Some(inner) = objects
                    .iter()
                    .find(|o| o.key.ends_with(&format!("/{MANIFEST_FILE_NAME}")))
                {
                    return Err(LocalFailure::failed(
                        format!(
                            "{:?} is committed inside this name; checkpoints do not nest",
                            inner.key
                        ),
                        None,
                    ));
                }
                Ok(())
            }
            Err(e) => Err(LocalFailure::failed(
                format!("listing {prefix:?}: {}", describe(&e)),
                Some(Box::new(e)),
            )),
        }
    }

    /// The save protocol in its `steadfast.checkpoint.save` span, which
    /// records the outcome, timed and counted for the `metrics` feature; see
    /// [`save_steps`](Self::save_steps).
    async fn save_with<W, Fut>(
        &self,
        name: &str,
        options: &SaveOptions,
        write: W,
    ) -> Result<CheckpointInfo>
    where
        W: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<Written, LocalFailure>>,
    {
        #[cfg(feature = "metrics")]
        let started = tokio::time::Instant::now();
        let span = trace::save_span(name, self.rank(), self.world_size(), options.step);
        let saved = self
            .save_steps(name, options, write)
            .instrument(span.clone())
            .await;
        trace::record_outcome(&span, &saved, |info| info.total_size);
        #[cfg(feature = "metrics")]
        self.metrics.saved(started.elapsed(), saved.is_ok());
        saved
    }

    /// The save protocol, step by step; `write` writes this rank's shard to
    /// the key it is given.
    async fn save_steps<W, Fut>(
        &self,
        name: &str,
        options: &SaveOptions,
        write: W,
    ) -> Result<CheckpointInfo>
    where
        W: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<Written, LocalFailure>>,
    {
        validate_name(name)?;
        let rank = self.rank();
        let world_size = self.world_size();
        let key = shard_key(name, rank, world_size, rand::random::<u64>());
        tracing::info!(target: TARGET, name, rank, world_size, key = %key, "saving a checkpoint shard");

        // 1. Check the name, write this rank's shard.
        let writing = trace::write_span(rank);
        let local = async {
            match self.precheck(name).await {
                Ok(()) => write(key.clone()).await,
                Err(failure) => Err(failure),
            }
        }
        .instrument(writing.clone())
        .await;
        trace::record_written(&writing, &local);
        // 2. Exchange what each rank wrote; every rank tallies the same
        // reports into the same decision.
        let gathered = match self
            .exchange_reports(name, &local, options.timeout)
            .instrument(trace::gather_span(rank, world_size))
            .await
        {
            Ok(gathered) => gathered,
            Err(e) => {
                self.roll_back(name, &key, true).await;
                return Err(collective_error(name, options.timeout, e));
            }
        };
        let local_source = local.err().and_then(|f| f.source);
        let mut manifest = match tally(name, world_size, &gathered, options) {
            Tally::Commit(manifest) => manifest,
            Tally::AlreadyExists => {
                self.roll_back(name, &key, false).await;
                return Err(CheckpointError::AlreadyExists {
                    name: name.to_string(),
                });
            }
            Tally::Failed {
                failed_ranks,
                reason,
                reported,
            } => {
                self.roll_back(name, &key, true).await;
                return Err(CheckpointError::SaveFailed {
                    name: name.to_string(),
                    failed_ranks,
                    reason,
                    source: if reported { local_source } else { None },
                });
            }
        };
        let my_shard = manifest
            .shard(rank)
            .map(|s| (s.key.clone(), s.sha256.clone()));

        // 3. The committer commits; 4. everyone hears the outcome.
        let committer = self.committer();
        let committing = trace::commit_span(rank, committer);
        committing.record("fenced", self.fence.is_some());
        let (outcome, commit_error) = if rank == committer {
            let (outcome, error) = self
                .decide_commit(&mut manifest, options.timeout)
                .instrument(committing.clone())
                .await;
            (Some(outcome), error)
        } else {
            (None, None)
        };
        let heard = match self
            .hear_outcome(name, committer, outcome, options.timeout)
            .instrument(committing.clone())
            .await
        {
            Ok(heard) => heard,
            Err(e) => {
                return self
                    .resolve_from_storage(name, my_shard, &key, options.timeout, e)
                    .instrument(committing)
                    .await
            }
        };
        drop(committing);
        match heard {
            CommitOutcome::Committed {
                created_at,
                sequence,
            } => {
                manifest.created_at = created_at;
                manifest.sequence = sequence;
                tracing::info!(
                    target: TARGET,
                    name,
                    rank,
                    world_size,
                    step = ?manifest.step,
                    sequence = ?manifest.sequence,
                    total_size = manifest.total_size(),
                    "checkpoint committed"
                );
                Ok(manifest.info())
            }
            CommitOutcome::AlreadyExists => {
                self.roll_back(name, &key, false).await;
                Err(CheckpointError::AlreadyExists {
                    name: name.to_string(),
                })
            }
            CommitOutcome::Failed {
                failed_ranks,
                reason,
            } => {
                self.roll_back(name, &key, true).await;
                Err(CheckpointError::SaveFailed {
                    name: name.to_string(),
                    failed_ranks,
                    reason,
                    source: commit_error,
                })
            }
            CommitOutcome::Unknown { reason } => {
                tracing::error!(
                    target: TARGET,
                    name,
                    rank,
                    key = %key,
                    reason = %reason,
                    "commit outcome unknown; leaving this rank's shard for cleanup_uncommitted"
                );
                Err(CheckpointError::SaveFailed {
                    name: name.to_string(),
                    failed_ranks: vec![committer],
                    reason,
                    source: commit_error,
                })
            }
        }
    }

    /// Undoes this rank's part of a failed save: deletes its own shard, and on
    /// the committer (when `sweep`) every object directly under the prefix, unless a
    /// manifest is there.
    pub(super) async fn roll_back(&self, name: &str, key: &str, sweep: bool) {
        let rank = self.rank();
        let span = trace::rollback_span(name, rank, sweep);
        let mut report = RollbackReport::default();
        delete_object(&self.storage, &self.retry, key, &mut report)
            .instrument(span.clone())
            .await;
        if sweep && rank == self.committer() {
            sweep_uncommitted(&self.storage, &self.retry, name, &mut report)
                .instrument(span.clone())
                .await;
        }
        trace::record_rollback(&span, &report);
        // No await below: the guard does not make the future `!Send`.
        let _entered = span.enter();
        tracing::warn!(
            target: TARGET,
            name,
            rank,
            deleted = ?report.deleted,
            failed = report.failed.len(),
            "save rolled back"
        );
    }
}

/// What a save that does not chunk stored: its whole shard object.
fn whole_object_stats(raw: u64, stored: u64) -> ChunkStats {
    ChunkStats {
        bytes_total: raw,
        bytes_stored_total: stored,
        bytes_written: stored,
        ..ChunkStats::default()
    }
}
