//! Crash-safe checkpoints: sharded saves committed by a manifest, verified
//! loads, listing, deletion and retention.
//!
//! A checkpoint is either complete and verified, or it does not exist.
//!
//! A checkpoint `NAME` is the storage prefix `NAME/`: one shard object per
//! rank and a manifest, `NAME/metadata.json`, written last by rank 0 with
//! [`put_if_absent`](crate::storage::CheckpointStorage::put_if_absent). The
//! manifest is the commit point: it lists every shard with its size and
//! SHA-256, and an index of named entries. A prefix without a manifest is
//! not a checkpoint: [`DistributedCheckpoint::list`] and
//! [`DistributedCheckpoint::load`] do not see it, and
//! [`DistributedCheckpoint::cleanup_on_start`] (the one call a job makes when
//! it starts) and [`DistributedCheckpoint::retain_last`] remove it once it is
//! older than [`CheckpointOptions::cleanup_grace`], with the storage's
//! temporary objects of interrupted writes. A failed save is rolled back on
//! every rank, found by listing, never by guessing names.
//!
//! Which checkpoint is newest is recorded, not read from a clock: each
//! manifest carries a commit sequence, one more than the highest committed
//! in the storage ([`DistributedCheckpoint::list`] gives the order).
//!
//! Nothing is trusted on load: the manifest carries its own checksum and is
//! validated (every shard key inside the prefix, every rank once, every entry
//! inside its shard), and a shard's size and digest are checked before any of
//! its bytes reach the caller. A mismatch is a [`CheckpointError::Corrupted`]
//! naming the shard.
//!
//! A save can compress its shard ([`SaveOptions::compression`]): the bytes
//! are cut into frames of [`CheckpointOptions::frame_size`] and each is
//! stored as an independent zstd frame, whose stored size, digest and
//! uncompressed size the manifest records ([`ShardCompression`]). A load
//! checks each frame before it decompresses it, into exactly the recorded
//! size. Each named entry carries the digest of its bytes, so that
//! [`DistributedCheckpoint::load_entry`] reads and verifies one entry alone
//! (its range of a raw shard, or the frames that hold it), through
//! [`CheckpointStorage::get_range`](crate::storage::CheckpointStorage::get_range).
//!
//! A save can also store its shard as content-defined chunks
//! ([`SaveOptions::chunking`]): each chunk is stored once under
//! `chunks/<digest>` (SHA-256 or BLAKE3, [`DigestAlgorithm`]), a save writes
//! only the chunks the storage lacks
//! ([`DistributedCheckpoint::save_with_stats`] says how many bytes), entries
//! reported unchanged ([`ShardData::with_unchanged_entry`]) are stored by
//! reference to a base checkpoint's chunks, and a load reads and verifies
//! only the chunks it needs. See the `chunks` section of
//! [`ChunkIndex`] and [`DistributedCheckpoint::collect_chunks`].
//!
//! - [`DistributedCheckpoint`]: save (entries or a stream), load (this rank's
//!   shard, or named entries at any world size), list, delete, retention,
//!   clean-up at start-up.
//! - [`Manifest`]: the layout of `metadata.json` and its checks.
//! - [`CheckpointRollbackManager`](crate::handler::CheckpointRollbackManager):
//!   one object saved under retry, with the
//!   previous version kept intact on failure.
//!
//! # Examples
//!
//! ```
//! use steadfast::checkpoint::{CheckpointOptions, DistributedCheckpoint, SaveOptions, ShardData};
//! use steadfast::coordinator::InMemoryCoordinator;
//! use steadfast::retry::RetryPolicy;
//! use steadfast::storage::MemoryStorage;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
//! let storage = MemoryStorage::new();
//! // Four ranks save one shard each.
//! let saves: Vec<_> = InMemoryCoordinator::new(4)
//!     .into_iter()
//!     .map(|rank| {
//!         let ckpt = DistributedCheckpoint::new(storage.clone(), rank, RetryPolicy::default(), CheckpointOptions::default());
//!         tokio::spawn(async move {
//!             let r = ckpt.rank();
//!             let shard = ShardData::new().with_entry(format!("layer.{r}"), vec![r as u8; 4]);
//!             ckpt.save("step-10", &shard, SaveOptions::new().step(10)).await
//!         })
//!     })
//!     .collect();
//! for save in saves {
//!     save.await.unwrap()?;
//! }
//! // A job of two ranks reads what it needs by entry name.
//! let rank = InMemoryCoordinator::new(2).remove(1);
//! let ckpt = DistributedCheckpoint::new(storage, rank, RetryPolicy::default(), CheckpointOptions::default());
//! assert_eq!(ckpt.load_entry("step-10", "layer.3").await?, vec![3; 4]);
//! # Ok(())
//! # }
//! ```

mod catalog;
mod chunks;
mod clock;
mod commit;
mod compress;
mod compression;
mod config;
mod decompress;
mod digest;
mod distributed;
mod error;
mod fencing;
mod frames;
mod hashing;
mod load;
mod manifest;
mod options;
mod outcome;
mod rollback;
mod save;
mod shard;
mod tally;
pub(crate) mod trace;
mod validate;

/// The `tracing` target of every event of this module.
const TARGET: &str = "steadfast::checkpoint";

pub(crate) use chunks::REUSE_FAILED;
pub use chunks::{
    chunk_key, ChunkCollectionReport, ChunkIndex, ChunkRef, ChunkStats, Chunking, ShardChunks,
    CHUNKS_PREFIX, CHUNK_INDEX_VERSION,
};
pub use clock::{ManualClock, SystemClock, WallClock};
pub use compression::Compression;
pub use config::{CheckpointOptions, CheckpointOptionsBuilder};
pub use digest::DigestAlgorithm;
pub use distributed::DistributedCheckpoint;
pub(crate) use error::describe;
pub use error::{CheckpointError, Result};
pub use fencing::{
    CommitFence, CommitRecord, CommitStamp, FenceError, MembershipFence, COMMIT_RECORD_PREFIX,
};
pub use frames::{FrameInfo, ShardCompression, MAX_FRAME_SIZE, ZSTD_CODEC};
pub use manifest::{
    manifest_key, sha256_hex, validate_name, CheckpointInfo, EntryLocation, Manifest, ShardInfo,
    FORMAT_VERSION, MANIFEST_FILE_NAME,
};
pub use options::{LoadOptions, LoadOptionsBuilder, SaveOptions, SaveOptionsBuilder};
pub(crate) use rollback::{delete_object, remove_checkpoint};
pub use rollback::{CleanupReport, RetentionReport, RollbackReport};
pub use shard::ShardData;
pub(crate) use trace::error_kind;
