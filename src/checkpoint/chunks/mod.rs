//! Content-defined chunks: incremental checkpoints that write only what
//! changed, and the collection of chunks no checkpoint needs any more.
//!
//! # Layout
//!
//! A chunked shard (a save with [`SaveOptions::chunking`]) is cut into
//! chunks by content (FastCDC, [`Chunking::average_size`] on average), each
//! entry on its own, so that an entry's bytes are a whole number of chunks.
//! Each chunk is stored once, under the address `chunks/<digest>`, the digest
//! ([`DigestAlgorithm`]) of its bytes as stored (compressed, when the save
//! compresses), so that a chunk is verified before it is decompressed. The
//! prefix `chunks/` is reserved: no checkpoint name may start with it.
//!
//! The shard object of a chunked shard is its chunk index ([`ChunkIndex`]):
//! the chunks in order, each with its stored and raw size. The manifest
//! records the index object's key, size and SHA-256, like any shard's, and a
//! summary of it ([`ShardChunks`]): the manifest commits the index, and the
//! index commits the chunks. Keeping the list out of the manifest keeps the
//! reports the ranks exchange through the coordinator small, whatever the
//! shard's size.
//!
//! # Writing only what changed
//!
//! A save lists `chunks/` once and writes only the chunks the storage does
//! not hold: a change rewrites the chunks around it, so a 1 GiB state with
//! 1% changed in 16 places writes about 4% of its bytes at 1 MiB chunks and
//! 1.25% at 64 KiB (`BENCHMARKS.md`). An
//! entry the caller reports unchanged since a base checkpoint is stored by
//! reference to the base's chunks, without reading or hashing its bytes.
//!
//! # Collection
//!
//! Chunks that no committed checkpoint refers to are removed by
//! [`DistributedCheckpoint::collect_chunks`], under the protocol written down
//! in that method's documentation: saves and collections take locks in the
//! storage, so that a collection never deletes a chunk a save in progress
//! found present and decided not to write again.
//!
//! [`SaveOptions::chunking`]: super::SaveOptions::chunking
//! [`DistributedCheckpoint::collect_chunks`]: super::DistributedCheckpoint::collect_chunks

mod gc;
#[cfg(test)]
mod gc_tests;
mod index;
mod locks;
mod options;
mod read;
mod reuse;
mod save;
mod write;

pub use gc::ChunkCollectionReport;
pub use index::{ChunkIndex, ChunkRef, ShardChunks, CHUNK_INDEX_VERSION};
pub use options::Chunking;
pub(crate) use reuse::REUSE_FAILED;
pub(in crate::checkpoint) use save::{ChunkSource, NoStream};
pub use write::ChunkStats;

#[cfg(doc)]
use super::DigestAlgorithm;

/// The first segment of every chunk's key; no checkpoint name may start
/// with it.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{chunk_key, CHUNKS_PREFIX};
/// assert!(chunk_key(&"ab".repeat(32)).starts_with(CHUNKS_PREFIX));
/// ```
pub const CHUNKS_PREFIX: &str = "chunks";

/// The storage key of the chunk whose digest is `digest` (lowercase hex):
/// `chunks/<digest>`.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::chunk_key;
/// let digest = "0f".repeat(32);
/// assert_eq!(chunk_key(&digest), format!("chunks/{digest}"));
/// ```
pub fn chunk_key(digest: &str) -> String {
    format!("{CHUNKS_PREFIX}/{digest}")
}

/// The digest of a key that names a chunk (`chunks/` then 64 lowercase hex
/// digits), or `None` for any other key.
pub(crate) fn chunk_digest_of(key: &str) -> Option<&str> {
    key.strip_prefix(CHUNKS_PREFIX)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|digest| super::manifest::is_sha256_hex(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_round_trip_and_nothing_else_is_one() {
        let digest = "a1".repeat(32);
        assert_eq!(chunk_digest_of(&chunk_key(&digest)), Some(digest.as_str()));
        for other in [
            "chunks/locks/gc",
            "chunks/AB",
            "chunk/aa",
            "run/chunks/aa",
            "chunks/",
        ] {
            assert_eq!(chunk_digest_of(other), None, "{other}");
        }
    }
}
