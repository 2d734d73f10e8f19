//! Writing a chunked shard: [`ChunkWriter`] takes the shard's bytes one
//! entry (or one stream) at a time, cuts them with FastCDC, compresses and
//! hashes each chunk on the blocking pool, and writes only the chunks the
//! storage does not hold yet; [`ChunkStats`] says what a save wrote.
//!
//! What the storage holds is found once per save, by one listing of
//! `chunks/` (under retry): a chunk listed under its address with the
//! expected stored size is not written again; one listed with another size
//! (a torn or foreign object) is written again, `put` replacing it
//! atomically. The same chunk met twice in one save is written once.
//!
//! Memory stays bounded whatever the shard's size: at most
//! [`HASHING_AT_ONCE`] chunks are being compressed and hashed (their raw
//! and stored bytes), and at most [`PUTS_AT_ONCE`] stored chunks are being
//! written; the compressed shard is never held whole. Hashing several
//! chunks at once also spreads it over the blocking pool's threads.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use fastcdc::v2020::FastCDC;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt};
use zstd::zstd_safe::{self, CCtx};

use crate::retry::RetryPolicy;
use crate::storage::{CheckpointStorage, StorageError};

use super::super::compress::{compression_context, zstd_error};
use super::super::digest::DigestAlgorithm;
use super::super::error::WriteError;
use super::super::frames::ZSTD_CODEC;
use super::index::{ChunkIndex, ChunkRef, RAW_CODEC};
use super::options::Chunking;
use super::{chunk_digest_of, chunk_key, CHUNKS_PREFIX};

/// Chunks compressed and hashed at once, at most.
const HASHING_AT_ONCE: usize = 4;
/// Chunk writes in flight at once, at most.
const PUTS_AT_ONCE: usize = 8;

/// What a save stored, for a chunked save: how many chunks its shard is
/// made of and how many it wrote, and their bytes. A save that does not
/// chunk reports its shard as written whole (no chunks).
///
/// [`DistributedCheckpoint::save_with_stats`] returns it (this rank's
/// figures): an incremental save's `bytes_written` against a full save's is
/// what incremental checkpoints save.
///
/// [`DistributedCheckpoint::save_with_stats`]: crate::checkpoint::DistributedCheckpoint::save_with_stats
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::ChunkStats;
/// let stats = ChunkStats::default();
/// assert_eq!(stats.bytes_written, 0);
/// assert_eq!(stats.written_fraction(), 0.0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChunkStats {
    /// The chunks the shard is made of (its index's length).
    pub chunks_total: u64,
    /// The chunks this save wrote (the others were in the storage already,
    /// or repeated within the shard).
    pub chunks_written: u64,
    /// The shard's bytes, uncompressed.
    pub bytes_total: u64,
    /// The shard's bytes as stored (compressed, when the save compresses):
    /// what a save writing every chunk would write.
    pub bytes_stored_total: u64,
    /// The bytes this save wrote: its new chunks as stored (the chunk index
    /// and the manifest not counted), or the whole shard object of a save
    /// that does not chunk.
    pub bytes_written: u64,
}

impl ChunkStats {
    /// `bytes_written` over `bytes_stored_total` (0 for an empty shard).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::ChunkStats;
    /// let mut stats = ChunkStats::default();
    /// stats.bytes_stored_total = 200;
    /// stats.bytes_written = 50;
    /// assert_eq!(stats.written_fraction(), 0.25);
    /// ```
    pub fn written_fraction(&self) -> f64 {
        if self.bytes_stored_total == 0 {
            0.0
        } else {
            self.bytes_written as f64 / self.bytes_stored_total as f64
        }
    }
}

/// How a chunked save cuts and stores: the chunk sizes, the digest, and the
/// zstd level (`None`: stored raw).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkPlan {
    pub(crate) chunking: Chunking,
    pub(crate) digest: DigestAlgorithm,
    pub(crate) level: Option<i32>,
}

impl ChunkPlan {
    /// The codec name the chunks are stored with.
    pub(crate) fn codec(&self) -> &'static str {
        if self.level.is_some() {
            ZSTD_CODEC
        } else {
            RAW_CODEC
        }
    }
}

/// What one save knows about the chunks in the storage: the listing made
/// when it started, and the chunks it wrote (or is writing) itself.
#[derive(Debug, Default)]
pub(crate) struct ChunkStore {
    /// Digest → stored size, from the listing of `chunks/`.
    listed: HashMap<String, u64>,
    /// The digests this save writes (claimed before the write starts).
    claimed: HashSet<String>,
    /// The digests this save wrote.
    written: HashSet<String>,
    chunks_written: u64,
    bytes_written: u64,
}

impl ChunkStore {
    /// Lists `chunks/` once, under retry.
    pub(crate) async fn list<S: CheckpointStorage + ?Sized>(
        storage: &S,
        retry: &RetryPolicy,
    ) -> Result<ChunkStore, StorageError> {
        let prefix = format!("{CHUNKS_PREFIX}/");
        let objects = retry
            .retry(|| storage.list(&prefix))
            .await
            .map_err(|e| e.into_inner())?;
        let listed = objects
            .into_iter()
            .filter_map(|o| chunk_digest_of(&o.key).map(|d| (d.to_string(), o.size)))
            .collect();
        Ok(ChunkStore {
            listed,
            ..ChunkStore::default()
        })
    }

    /// Whether the storage held the chunk `chunk` when the save started.
    pub(crate) fn holds(&self, chunk: &ChunkRef) -> bool {
        self.listed.get(&chunk.digest) == Some(&chunk.size)
    }

    /// How many chunks listed.
    #[cfg(test)]
    pub(crate) fn listed_len(&self) -> usize {
        self.listed.len()
    }
}

fn lock(store: &Mutex<ChunkStore>) -> std::sync::MutexGuard<'_, ChunkStore> {
    // Every update is a single insert or sum: a panic cannot leave it torn.
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A chunk compressed and hashed, or reused as it is.
struct Hashed {
    chunk: ChunkRef,
    /// The stored bytes; `None` for a chunk reused from a base checkpoint.
    stored: Option<Bytes>,
}

type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, WriteError>> + Send + 'a>>;

/// zstd contexts shared by the hashing tasks of a save, so that each chunk
/// does not allocate its own.
#[derive(Clone, Default)]
struct Contexts(Arc<Mutex<Vec<CCtx<'static>>>>);

impl Contexts {
    fn take(&self, level: i32) -> Result<CCtx<'static>, WriteError> {
        let pooled = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match pooled {
            Some(context) => Ok(context),
            None => compression_context(level),
        }
    }

    fn give(&self, context: CCtx<'static>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(context);
    }
}

/// Compresses (when `level` is set) and hashes one chunk's raw bytes.
fn seal(
    raw: Vec<u8>,
    digest: DigestAlgorithm,
    level: Option<i32>,
    contexts: &Contexts,
) -> Result<Hashed, WriteError> {
    let raw_size = raw.len() as u64;
    let stored = match level {
        None => raw,
        Some(level) => {
            let mut context = contexts.take(level)?;
            let mut out = Vec::with_capacity(zstd_safe::compress_bound(raw.len()));
            let done = context
                .compress2(&mut out, &raw)
                .map_err(|code| zstd_error("compressing a chunk", code));
            contexts.give(context);
            done?;
            out
        }
    };
    let address = digest.hex(&stored);
    Ok(Hashed {
        chunk: ChunkRef::new(address, stored.len() as u64, raw_size),
        stored: Some(Bytes::from(stored)),
    })
}

/// Writes the chunks of one shard: see the module's docs.
pub(crate) struct ChunkWriter<'a, S: ?Sized> {
    storage: &'a S,
    retry: &'a RetryPolicy,
    plan: ChunkPlan,
    store: &'a Mutex<ChunkStore>,
    contexts: Contexts,
    index: ChunkIndex,
    hashing: FuturesOrdered<Pending<'a, Hashed>>,
    puts: FuturesUnordered<Pending<'a, ()>>,
    /// The shard's raw bytes so far.
    offset: u64,
}

impl<'a, S: CheckpointStorage + ?Sized> ChunkWriter<'a, S> {
    pub(crate) fn new(
        storage: &'a S,
        retry: &'a RetryPolicy,
        plan: ChunkPlan,
        store: &'a Mutex<ChunkStore>,
    ) -> Self {
        // A writer before this one (a failed attempt) may have claimed
        // chunks it never wrote.
        {
            let mut store = lock(store);
            store.claimed = store.written.clone();
        }
        ChunkWriter {
            storage,
            retry,
            plan,
            store,
            contexts: Contexts::default(),
            index: ChunkIndex::new(plan.digest, plan.codec()),
            hashing: FuturesOrdered::new(),
            puts: FuturesUnordered::new(),
            offset: 0,
        }
    }

    /// The shard's raw bytes so far (the offset of the next entry).
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Cuts `data` (one whole entry) into chunks and stores them.
    pub(crate) async fn write_entry(&mut self, data: &[u8]) -> Result<(), WriteError> {
        let c = self.plan.chunking;
        for cut in FastCDC::new(data, c.min_size(), c.average_size(), c.max_size()) {
            let piece = data
                .get(cut.offset..cut.offset + cut.length)
                .unwrap_or_default();
            self.push_raw(piece.to_vec()).await?;
        }
        Ok(())
    }

    /// Reads `reader` to its end, cutting what it gives into chunks (the
    /// same chunks as [`write_entry`](Self::write_entry) of the same bytes)
    /// and storing them; holds at most twice the largest chunk.
    pub(crate) async fn write_reader<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<(), WriteError> {
        let c = self.plan.chunking;
        let window = c.max_size() as usize * 2;
        let mut buffer: Vec<u8> = Vec::with_capacity(window);
        let mut ended = false;
        while !ended || !buffer.is_empty() {
            while !ended && buffer.len() < window {
                let room = (window - buffer.len()) as u64;
                let n = (&mut *reader)
                    .take(room)
                    .read_buf(&mut buffer)
                    .await
                    .map_err(WriteError::Source)?;
                ended = n == 0;
            }
            // A chunk's end depends only on the bytes from its start: every
            // chunk but the last of the window is the one a cut of the
            // whole stream makes; the last is kept for the next window
            // unless the stream has ended.
            let cuts: Vec<(usize, usize)> =
                FastCDC::new(&buffer, c.min_size(), c.average_size(), c.max_size())
                    .map(|cut| (cut.offset, cut.length))
                    .collect();
            let keep = if ended {
                cuts.len()
            } else {
                cuts.len().saturating_sub(1)
            };
            let mut used = 0;
            for &(offset, length) in &cuts[..keep] {
                let piece = buffer.get(offset..offset + length).unwrap_or_default();
                self.push_raw(piece.to_vec()).await?;
                used = offset + length;
            }
            buffer.drain(..used);
            if ended && keep == cuts.len() {
                buffer.clear();
            }
        }
        Ok(())
    }

    /// Adds chunks of a base checkpoint as they are, without reading them;
    /// each must be in the listing the save made (else the error names the
    /// first missing chunk).
    pub(crate) async fn reuse(&mut self, chunks: &[ChunkRef]) -> Result<(), String> {
        {
            let store = lock(self.store);
            if let Some(missing) = chunks.iter().find(|c| !store.holds(c)) {
                return Err(format!(
                    "chunk {:?} ({} bytes) is not in the storage",
                    missing.key(),
                    missing.size
                ));
            }
        }
        for chunk in chunks {
            let hashed = Hashed {
                chunk: chunk.clone(),
                stored: None,
            };
            self.offset = self.offset.saturating_add(chunk.raw_size);
            self.enqueue(Box::pin(futures::future::ready(Ok(hashed))))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn push_raw(&mut self, raw: Vec<u8>) -> Result<(), WriteError> {
        self.offset = self.offset.saturating_add(raw.len() as u64);
        let (digest, level, contexts) = (self.plan.digest, self.plan.level, self.contexts.clone());
        // The blocking task works inside the caller's span (a save's write).
        let span = tracing::Span::current();
        let task = tokio::task::spawn_blocking(move || {
            span.in_scope(|| seal(raw, digest, level, &contexts))
        });
        self.enqueue(Box::pin(async move {
            task.await.map_err(|e| {
                WriteError::Compress(format!("the chunk hashing task did not finish: {e}"))
            })?
        }))
        .await
    }

    /// Queues a chunk's hashing, taking the oldest's result first when
    /// [`HASHING_AT_ONCE`] are queued.
    async fn enqueue(&mut self, next: Pending<'a, Hashed>) -> Result<(), WriteError> {
        if self.hashing.len() >= HASHING_AT_ONCE
            && let Some(done) = self.hashing.next().await
        {
            self.store_chunk(done?).await?;
        }
        self.hashing.push_back(next);
        Ok(())
    }

    /// Records a hashed chunk in the index and writes it unless the storage
    /// holds it or this save writes it already.
    async fn store_chunk(&mut self, hashed: Hashed) -> Result<(), WriteError> {
        let Hashed { chunk, stored } = hashed;
        self.index.chunks.push(chunk.clone());
        let Some(bytes) = stored else {
            return Ok(());
        };
        {
            let mut store = lock(self.store);
            if store.holds(&chunk) || !store.claimed.insert(chunk.digest.clone()) {
                return Ok(());
            }
        }
        while self.puts.len() >= PUTS_AT_ONCE {
            if let Some(done) = self.puts.next().await {
                done?;
            }
        }
        let (storage, retry, store) = (self.storage, self.retry, self.store);
        self.puts.push(Box::pin(async move {
            let key = chunk_key(&chunk.digest);
            let put = retry
                .retry(|| storage.put(&key, bytes.clone()))
                .await
                .map_err(|e| e.into_inner());
            let mut store = lock(store);
            match put {
                Ok(()) => {
                    store.written.insert(chunk.digest.clone());
                    store.chunks_written += 1;
                    store.bytes_written += chunk.size;
                    Ok(())
                }
                Err(source) => {
                    store.claimed.remove(&chunk.digest);
                    Err(WriteError::Chunk { key, source })
                }
            }
        }));
        Ok(())
    }

    /// Waits for every chunk to be hashed and written; returns the index.
    pub(crate) async fn finish(mut self) -> Result<ChunkIndex, WriteError> {
        while let Some(done) = self.hashing.next().await {
            self.store_chunk(done?).await?;
        }
        while let Some(done) = self.puts.next().await {
            done?;
        }
        Ok(self.index)
    }
}

/// The statistics of a chunked save that wrote `index`, with what `store`
/// counted.
pub(crate) fn stats_of(index: &ChunkIndex, store: &Mutex<ChunkStore>) -> ChunkStats {
    let store = lock(store);
    ChunkStats {
        chunks_total: index.chunks.len() as u64,
        chunks_written: store.chunks_written,
        bytes_total: index.uncompressed_size(),
        bytes_stored_total: index
            .chunks
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.size)),
        bytes_written: store.bytes_written,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    fn plan(level: Option<i32>) -> ChunkPlan {
        ChunkPlan {
            chunking: Chunking::with_average_size(4096).unwrap(),
            digest: DigestAlgorithm::Sha256,
            level,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_is_cut_as_the_same_bytes_in_memory() {
        let data = noise(300_000, 7);
        let storage = MemoryStorage::new();
        let retry = RetryPolicy::default();
        let store = Mutex::new(ChunkStore::default());
        let mut whole = ChunkWriter::new(&storage, &retry, plan(None), &store);
        whole.write_entry(&data).await.unwrap();
        let whole = whole.finish().await.unwrap();
        let store2 = Mutex::new(ChunkStore::default());
        let mut streamed = ChunkWriter::new(&storage, &retry, plan(None), &store2);
        streamed
            .write_reader(&mut std::io::Cursor::new(data.clone()))
            .await
            .unwrap();
        let streamed = streamed.finish().await.unwrap();
        assert_eq!(whole, streamed);
        assert_eq!(whole.uncompressed_size(), data.len() as u64);
        assert!(whole.chunks.len() > 10);
        // Every chunk was written once, by the first writer.
        assert_eq!(lock(&store).chunks_written as usize, whole.chunks.len());
        assert_eq!(lock(&store2).chunks_written, whole.chunks.len() as u64);
    }

    #[tokio::test(start_paused = true)]
    async fn listed_chunks_are_not_written_again_and_repeats_once() {
        let storage = MemoryStorage::new();
        let retry = RetryPolicy::default();
        let data = noise(100_000, 3);
        let store = Mutex::new(ChunkStore::list(&storage, &retry).await.unwrap());
        let mut w = ChunkWriter::new(&storage, &retry, plan(Some(1)), &store);
        w.write_entry(&data).await.unwrap();
        w.write_entry(&data).await.unwrap();
        let index = w.finish().await.unwrap();
        let stats = stats_of(&index, &store);
        assert_eq!(stats.chunks_written * 2, stats.chunks_total);
        let listed = ChunkStore::list(&storage, &retry).await.unwrap();
        assert_eq!(listed.listed_len() as u64, stats.chunks_written);
        let store = Mutex::new(listed);
        let mut again = ChunkWriter::new(&storage, &retry, plan(Some(1)), &store);
        again.write_entry(&data).await.unwrap();
        let index = again.finish().await.unwrap();
        assert_eq!(stats_of(&index, &store).bytes_written, 0);
    }
}
