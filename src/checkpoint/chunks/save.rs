//! A rank's part of a chunked save: list `chunks/` once, store the shard's
//! chunks (new ones written, known ones skipped, unchanged entries reused
//! from the base checkpoint), then write the chunk index as the shard
//! object and report it. The rest of the save (the exchange of reports, the
//! commit, the rollback) is every save's, in `save.rs`.
//!
//! The chunk index is written last: a shard object exists only once every
//! chunk it lists is stored, so rank 0's check of the shard objects before
//! it commits also covers the chunks.

use std::future::Future;
use std::io;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::io::AsyncRead;

use crate::coordinator::Coordinator;
use crate::storage::CheckpointStorage;

use super::super::compression::Compression;
use super::super::distributed::DistributedCheckpoint;
use super::super::error::{describe, LocalFailure, WriteError};
use super::super::manifest::sha256_hex;
use super::super::options::SaveOptions;
use super::super::shard::ShardData;
use super::super::tally::{Written, WrittenEntry};
use super::super::TARGET;
use super::write::{stats_of, ChunkPlan, ChunkStats, ChunkStore, ChunkWriter};
use super::REUSE_FAILED;

/// Where a chunked save's bytes come from: named entries, or a stream
/// opened by `F` (once per attempt).
pub(in crate::checkpoint) enum ChunkSource<'s, F> {
    Entries(&'s ShardData),
    Stream(F),
}

/// The stream opener of a save of entries, which never opens one.
pub(in crate::checkpoint) type NoStream = fn() -> std::future::Ready<io::Result<tokio::io::Empty>>;

fn failed(what: String, error: impl std::error::Error + Send + Sync + 'static) -> LocalFailure {
    LocalFailure::failed(
        format!("{what}: {}", describe(&error)),
        Some(Box::new(error)),
    )
}

impl<S: CheckpointStorage, C: Coordinator> DistributedCheckpoint<S, C> {
    /// Stores this rank's shard as chunks and its chunk index under `key`;
    /// returns the report of what it wrote, and the counts.
    pub(in crate::checkpoint) async fn write_chunked<F, Fut, R>(
        &self,
        key: String,
        source: ChunkSource<'_, F>,
        options: &SaveOptions,
    ) -> Result<(Written, ChunkStats), LocalFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = io::Result<R>>,
        R: AsyncRead + Unpin,
    {
        let plan = ChunkPlan {
            chunking: options.chunking.unwrap_or_default(),
            digest: options.digest,
            level: match options.compression {
                Compression::None => None,
                Compression::Zstd { level } => Some(level),
            },
        };
        if let ChunkSource::Entries(shard) = &source {
            shard
                .check_names()
                .map_err(|reason| LocalFailure::failed(reason, None))?;
        }
        let store = ChunkStore::list(&self.storage, &self.retry)
            .await
            .map_err(|e| failed("listing chunks/".into(), e))?;
        let store = Mutex::new(store);
        let (index, entries) = match source {
            ChunkSource::Entries(shard) => self.write_entries(shard, options, plan, &store).await?,
            ChunkSource::Stream(open) => (self.write_stream(open, plan, &store).await?, Vec::new()),
        };
        let bytes = index
            .to_bytes()
            .map_err(|e| failed("encoding the chunk index".into(), e))?;
        let size = bytes.len() as u64;
        let sha256 = sha256_hex(&bytes);
        let bytes = Bytes::from(bytes);
        self.retry
            .retry(|| self.storage.put(&key, bytes.clone()))
            .await
            .map_err(|e| failed(format!("writing chunk index {key:?}"), e))?;
        let stats = stats_of(&index, &store);
        tracing::debug!(
            target: TARGET,
            key = %key,
            chunks = stats.chunks_total,
            written = stats.chunks_written,
            bytes_written = stats.bytes_written,
            "chunked shard written"
        );
        Ok((
            Written {
                key,
                size,
                sha256,
                compression: None,
                entries,
                chunks: Some(index.summary()),
            },
            stats,
        ))
    }

    /// Stores the entries one after the other: each cut on its own, or
    /// reused from the base when marked unchanged.
    async fn write_entries(
        &self,
        shard: &ShardData,
        options: &SaveOptions,
        plan: ChunkPlan,
        store: &Mutex<ChunkStore>,
    ) -> Result<(super::ChunkIndex, Vec<WrittenEntry>), LocalFailure> {
        let mut base = match (shard.first_unchanged(), &options.base) {
            (None, _) => None,
            (Some(entry), None) => {
                return Err(LocalFailure::failed(
                    format!("{REUSE_FAILED} {entry:?}: the save has no base checkpoint"),
                    None,
                ))
            }
            (Some(_), Some(name)) => Some(
                self.open_base(name)
                    .await
                    .map_err(|reason| LocalFailure::failed(reason, None))?,
            ),
        };
        let mut writer = ChunkWriter::new(&self.storage, &self.retry, plan, store);
        let mut entries = Vec::with_capacity(shard.len());
        let written: Result<(), LocalFailure> = async {
            for (position, (name, data)) in shard.entries().iter().enumerate() {
                let offset = writer.offset();
                match base.as_mut() {
                    Some(base) if shard.is_unchanged_at(position) => {
                        let reused = self
                            .base_entry(base, name, &plan)
                            .await
                            .map_err(|reason| LocalFailure::failed(reason, None))?;
                        writer.reuse(&reused.chunks).await.map_err(|why| {
                            LocalFailure::failed(format!("{REUSE_FAILED} {name:?}: {why}"), None)
                        })?;
                        entries.push(WrittenEntry {
                            name: name.clone(),
                            offset,
                            length: reused.length,
                            sha256: reused.sha256,
                        });
                    }
                    _ => {
                        writer
                            .write_entry(data)
                            .await
                            .map_err(|e| failed("writing chunks".into(), e))?;
                        entries.push(WrittenEntry {
                            name: name.clone(),
                            offset,
                            length: data.len() as u64,
                            sha256: None,
                        });
                    }
                }
            }
            Ok(())
        }
        .await;
        written?;
        let index = writer
            .finish()
            .await
            .map_err(|e| failed("writing chunks".into(), e))?;
        Ok((index, entries))
    }

    /// Stores a stream's bytes; a transient failure of the stream starts it
    /// over (chunks already written are not written again).
    async fn write_stream<F, Fut, R>(
        &self,
        mut open: F,
        plan: ChunkPlan,
        store: &Mutex<ChunkStore>,
    ) -> Result<super::ChunkIndex, LocalFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = io::Result<R>>,
        R: AsyncRead + Unpin,
    {
        let attempt = || {
            let opening = open();
            async move {
                let mut reader = opening.await.map_err(WriteError::Source)?;
                let mut writer = ChunkWriter::new(&self.storage, &self.retry, plan, store);
                writer.write_reader(&mut reader).await?;
                writer.finish().await
            }
        };
        self.retry
            .retry(attempt)
            .await
            .map_err(|e| failed("writing chunks".into(), e))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::checkpoint::{
        CheckpointError, CheckpointOptions, Chunking, DistributedCheckpoint, LoadOptions,
        SaveOptions, ShardData,
    };
    use crate::coordinator::InMemoryCoordinator;
    use crate::retry::RetryPolicy;
    use crate::storage::testing::Operation;
    use crate::storage::MemoryStorage;

    #[tokio::test(start_paused = true)]
    async fn a_chunked_save_waits_for_a_running_collection_and_holds_its_lock_until_it_ends() {
        let storage = MemoryStorage::new();
        let rank = InMemoryCoordinator::new(1).remove(0);
        let ckpt = DistributedCheckpoint::new(
            storage.clone(),
            rank,
            RetryPolicy::default(),
            CheckpointOptions::default(),
        );
        let shard = ShardData::new().with_entry("a", vec![7u8; 10_000]);
        let options = SaveOptions::new()
            .chunking(Chunking::with_average_size(4096).unwrap())
            .timeout(Duration::from_secs(5));
        let Ok(Ok((collection, _))) = ckpt.acquire_collection_lock(Duration::ZERO).await else {
            panic!("the collection lock was not taken");
        };
        // A save while a collection holds its lock gives up after its
        // timeout, having listed nothing and written nothing.
        storage.clear_calls();
        let err = ckpt
            .save("blocked", &shard, options.clone())
            .await
            .unwrap_err();
        match err {
            CheckpointError::SaveFailed { reason, .. } => {
                assert!(reason.contains("still deleting chunks"), "{reason}")
            }
            other => panic!("expected a failed save, got {other:?}"),
        }
        assert!(
            !storage.calls().iter().any(|c| c.key == "chunks/"
                || (c.operation == Operation::Put && !c.key.starts_with("chunks/locks/"))),
            "{:?}",
            storage.calls()
        );
        ckpt.release_lock(collection).await;
        // Once it is over, the save goes through, and leaves no lock.
        ckpt.save("free", &shard, options).await.unwrap();
        assert_eq!(
            ckpt.load("free", LoadOptions::default()).await.unwrap(),
            vec![7u8; 10_000]
        );
        assert!(!storage
            .keys()
            .iter()
            .any(|k| k.starts_with("chunks/locks/")));
    }
}
