//! The chunk index of a chunked shard ([`ChunkIndex`], stored as the shard
//! object) and its summary in the manifest ([`ShardChunks`]), with their
//! checks.
//!
//! Nothing recorded is trusted: an index is read only after its size and
//! SHA-256 match the manifest, and is then checked against the manifest's
//! summary (the same digest algorithm, codec and chunk count, raw sizes that
//! add up to the shard's size) and on its own (every address a digest, no
//! chunk larger than a chunk can be), so that a hostile index can neither
//! send a reader outside `chunks/` nor make it allocate more than one chunk
//! beyond what it has verified.

use serde::{Deserialize, Serialize};

use super::super::digest::DigestAlgorithm;
use super::super::error::{CheckpointError, Result};
use super::super::frames::ZSTD_CODEC;
use super::super::manifest::is_sha256_hex;
use super::options::Chunking;

/// The chunk index format version this build writes and reads.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{ChunkIndex, DigestAlgorithm, CHUNK_INDEX_VERSION};
/// assert_eq!(ChunkIndex::new(DigestAlgorithm::Sha256, "none").format_version, CHUNK_INDEX_VERSION);
/// ```
pub const CHUNK_INDEX_VERSION: u32 = 1;

/// The codec name of chunks stored raw.
pub(crate) const RAW_CODEC: &str = "none";

/// The largest raw chunk an index may record: the largest chunk
/// [`Chunking`] cuts.
const MAX_RAW_CHUNK: u64 = Chunking::MAX_AVERAGE_SIZE as u64 * 4;

/// One chunk of a chunked shard: its address and sizes.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{chunk_key, ChunkRef, DigestAlgorithm};
/// let chunk = ChunkRef::new(DigestAlgorithm::Sha256.hex(b"abc"), 3, 3);
/// assert_eq!(chunk.key(), chunk_key(&chunk.digest));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChunkRef {
    /// The digest of the chunk's stored bytes, lowercase hex: its address.
    pub digest: String,
    /// Its stored size in bytes (compressed, when the codec compresses).
    pub size: u64,
    /// Its size once decompressed: the number of the shard's bytes it holds.
    pub raw_size: u64,
}

impl ChunkRef {
    /// A chunk of `size` stored bytes holding `raw_size` of the shard's
    /// bytes, addressed by `digest`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::ChunkRef;
    /// assert_eq!(ChunkRef::new("00".repeat(32), 10, 40).raw_size, 40);
    /// ```
    pub fn new(digest: impl Into<String>, size: u64, raw_size: u64) -> Self {
        ChunkRef {
            digest: digest.into(),
            size,
            raw_size,
        }
    }

    /// The chunk's storage key, `chunks/<digest>`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::ChunkRef;
    /// assert_eq!(ChunkRef::new("ab".repeat(32), 1, 1).key(), format!("chunks/{}", "ab".repeat(32)));
    /// ```
    pub fn key(&self) -> String {
        super::chunk_key(&self.digest)
    }
}

/// The summary of a chunked shard that the manifest records
/// ([`ShardInfo::chunks`](crate::checkpoint::ShardInfo::chunks)); the list
/// itself is the shard object, a [`ChunkIndex`].
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{DigestAlgorithm, ShardChunks};
/// let summary = ShardChunks::new(DigestAlgorithm::Blake3, "zstd", 3, 3 << 20);
/// assert_eq!(summary.chunk_count, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShardChunks {
    /// The digest that addresses the chunks.
    pub digest: DigestAlgorithm,
    /// How each chunk is stored: `"none"` (raw) or `"zstd"` (one zstd frame).
    pub codec: String,
    /// How many chunks the index lists.
    pub chunk_count: u64,
    /// The shard's size: the sum of the chunks' raw sizes.
    pub uncompressed_size: u64,
}

impl ShardChunks {
    /// A summary of `chunk_count` chunks holding `uncompressed_size` bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{DigestAlgorithm, ShardChunks};
    /// assert_eq!(ShardChunks::new(DigestAlgorithm::Sha256, "none", 0, 0).codec, "none");
    /// ```
    pub fn new(
        digest: DigestAlgorithm,
        codec: impl Into<String>,
        chunk_count: u64,
        uncompressed_size: u64,
    ) -> Self {
        ShardChunks {
            digest,
            codec: codec.into(),
            chunk_count,
            uncompressed_size,
        }
    }

    /// Checks what a summary alone can tell: a codec this build reads.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        check_codec(&self.codec)
    }
}

fn check_codec(codec: &str) -> std::result::Result<(), String> {
    if codec == RAW_CODEC || codec == ZSTD_CODEC {
        Ok(())
    } else {
        Err(format!(
            "unknown chunk codec {codec:?}: this build reads \"{RAW_CODEC}\" and \"{ZSTD_CODEC}\""
        ))
    }
}

/// The chunk index of a chunked shard: its chunks in order. It is the shard
/// object, stored as JSON.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{ChunkIndex, ChunkRef, DigestAlgorithm};
///
/// # fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
/// let mut index = ChunkIndex::new(DigestAlgorithm::Sha256, "none");
/// index.chunks.push(ChunkRef::new(DigestAlgorithm::Sha256.hex(b"abc"), 3, 3));
/// let summary = index.summary();
/// let bytes = index.to_bytes()?;
/// let read = ChunkIndex::from_bytes("step-1", "step-1/shard-0.bin", &bytes, &summary)?;
/// assert_eq!(read, index);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChunkIndex {
    /// The index format version ([`CHUNK_INDEX_VERSION`]).
    pub format_version: u32,
    /// The digest that addresses the chunks.
    pub digest: DigestAlgorithm,
    /// How each chunk is stored: `"none"` or `"zstd"`.
    pub codec: String,
    /// The chunks, in the order of the shard's bytes.
    pub chunks: Vec<ChunkRef>,
}

impl ChunkIndex {
    /// An empty index of the current format.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{ChunkIndex, DigestAlgorithm};
    /// assert!(ChunkIndex::new(DigestAlgorithm::Blake3, "zstd").chunks.is_empty());
    /// ```
    pub fn new(digest: DigestAlgorithm, codec: impl Into<String>) -> Self {
        ChunkIndex {
            format_version: CHUNK_INDEX_VERSION,
            digest,
            codec: codec.into(),
            chunks: Vec::new(),
        }
    }

    /// The shard's size: the sum of the raw sizes.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{ChunkIndex, ChunkRef, DigestAlgorithm};
    /// let mut index = ChunkIndex::new(DigestAlgorithm::Sha256, "zstd");
    /// index.chunks.push(ChunkRef::new("00".repeat(32), 5, 50));
    /// assert_eq!(index.uncompressed_size(), 50);
    /// ```
    pub fn uncompressed_size(&self) -> u64 {
        self.chunks
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.raw_size))
    }

    /// The summary the manifest records for this index.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{ChunkIndex, DigestAlgorithm};
    /// assert_eq!(ChunkIndex::new(DigestAlgorithm::Sha256, "none").summary().chunk_count, 0);
    /// ```
    pub fn summary(&self) -> ShardChunks {
        ShardChunks::new(
            self.digest,
            self.codec.clone(),
            self.chunks.len() as u64,
            self.uncompressed_size(),
        )
    }

    /// Encodes the index as it is stored (compact JSON).
    ///
    /// # Errors
    ///
    /// [`CheckpointError::ValidationFailed`] if it cannot be serialized.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{ChunkIndex, DigestAlgorithm};
    /// let bytes = ChunkIndex::new(DigestAlgorithm::Sha256, "none").to_bytes().unwrap();
    /// assert!(bytes.starts_with(b"{"));
    /// ```
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| CheckpointError::ValidationFailed {
            name: String::new(),
            reason: format!("a chunk index cannot be encoded: {e}"),
        })
    }

    /// Decodes the index stored under `key` for checkpoint `name` (bytes the
    /// caller has checked against the manifest's size and SHA-256) and
    /// checks it against the manifest's `summary`.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Corrupted`] (naming `key`) for bytes that are not
    /// an index, and [`CheckpointError::ValidationFailed`] for an index that
    /// disagrees with the summary, addresses a chunk by something other than
    /// a digest, records a chunk larger than a chunk can be, or whose raw
    /// sizes do not add up.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{CheckpointError, ChunkIndex, DigestAlgorithm, ShardChunks};
    /// let summary = ShardChunks::new(DigestAlgorithm::Sha256, "none", 0, 0);
    /// let err = ChunkIndex::from_bytes("c", "c/shard.bin", b"[]", &summary).unwrap_err();
    /// assert!(matches!(err, CheckpointError::Corrupted { .. }));
    /// ```
    pub fn from_bytes(name: &str, key: &str, bytes: &[u8], summary: &ShardChunks) -> Result<Self> {
        let index: ChunkIndex =
            serde_json::from_slice(bytes).map_err(|e| CheckpointError::Corrupted {
                name: name.to_string(),
                shard: key.to_string(),
                expected: "a JSON chunk index".into(),
                actual: format!("unreadable bytes ({e})"),
            })?;
        index
            .check(summary)
            .map_err(|reason| CheckpointError::ValidationFailed {
                name: name.to_string(),
                reason: format!("chunk index {key:?}: {reason}"),
            })?;
        Ok(index)
    }

    fn check(&self, summary: &ShardChunks) -> std::result::Result<(), String> {
        if self.format_version != CHUNK_INDEX_VERSION {
            return Err(format!(
                "format version {} (this build reads {CHUNK_INDEX_VERSION})",
                self.format_version
            ));
        }
        check_codec(&self.codec)?;
        if self.digest != summary.digest || self.codec != summary.codec {
            return Err(format!(
                "chunks addressed by {} and stored {:?}, the manifest says {} and {:?}",
                self.digest, self.codec, summary.digest, summary.codec
            ));
        }
        if self.chunks.len() as u64 != summary.chunk_count {
            return Err(format!(
                "{} chunks, the manifest says {}",
                self.chunks.len(),
                summary.chunk_count
            ));
        }
        let mut total = 0u64;
        for (i, chunk) in self.chunks.iter().enumerate() {
            if !is_sha256_hex(&chunk.digest) {
                return Err(format!(
                    "chunk {i} is addressed by {:?}, not a digest (its key would be outside chunks/)",
                    chunk.digest
                ));
            }
            if chunk.raw_size == 0 || chunk.raw_size > MAX_RAW_CHUNK {
                return Err(format!(
                    "chunk {i} holds {} bytes (a chunk holds 1..={MAX_RAW_CHUNK})",
                    chunk.raw_size
                ));
            }
            let max_stored = if self.codec == RAW_CODEC {
                chunk.raw_size
            } else {
                zstd::zstd_safe::compress_bound(chunk.raw_size as usize) as u64
            };
            let min_stored = if self.codec == RAW_CODEC {
                chunk.raw_size
            } else {
                1
            };
            if !(min_stored..=max_stored).contains(&chunk.size) {
                return Err(format!(
                    "chunk {i} is stored in {} bytes, which cannot hold {} bytes with codec {:?}",
                    chunk.size, chunk.raw_size, self.codec
                ));
            }
            total = total
                .checked_add(chunk.raw_size)
                .ok_or("the chunk sizes overflow")?;
        }
        if total != summary.uncompressed_size {
            return Err(format!(
                "the chunks hold {total} bytes, the manifest says {}",
                summary.uncompressed_size
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(codec: &str) -> ChunkIndex {
        let mut index = ChunkIndex::new(DigestAlgorithm::Sha256, codec);
        index
            .chunks
            .push(ChunkRef::new(DigestAlgorithm::Sha256.hex(b"a"), 4, 4));
        index
            .chunks
            .push(ChunkRef::new(DigestAlgorithm::Sha256.hex(b"b"), 6, 6));
        index
    }

    fn refused(index: &ChunkIndex, summary: &ShardChunks) -> String {
        match ChunkIndex::from_bytes("c", "c/s.bin", &index.to_bytes().unwrap(), summary) {
            Err(CheckpointError::ValidationFailed { reason, .. }) => reason,
            other => panic!("expected a validation failure, got {other:?}"),
        }
    }

    #[test]
    fn round_trips() {
        let good = index("none");
        let read =
            ChunkIndex::from_bytes("c", "c/s.bin", &good.to_bytes().unwrap(), &good.summary())
                .unwrap();
        assert_eq!(read, good);
        assert_eq!(read.uncompressed_size(), 10);
    }

    #[test]
    fn bad_indexes_are_refused_with_the_reason() {
        let good = index("none");
        let summary = good.summary();
        let with = |f: &dyn Fn(&mut ChunkIndex)| {
            let mut i = good.clone();
            f(&mut i);
            refused(&i, &summary)
        };
        assert!(
            with(&|i| i.chunks[0].digest = "../../etc/passwd".into()).contains("outside chunks/")
        );
        assert!(with(&|i| i.chunks[1].raw_size = 7).contains("stored in 6 bytes"));
        assert!(with(&|i| i.chunks.pop().map(drop).unwrap_or(())).contains("1 chunks"));
        assert!(with(&|i| i.codec = "lz4".into()).contains("unknown chunk codec"));
        assert!(with(&|i| i.digest = DigestAlgorithm::Blake3).contains("addressed by blake3"));
        assert!(with(&|i| i.format_version = 2).contains("format version 2"));
        let mut short = summary.clone();
        short.uncompressed_size = 9;
        assert!(refused(&good, &short).contains("hold 10 bytes"));
        let mut empty = good.clone();
        empty.chunks[0] = ChunkRef::new(DigestAlgorithm::Sha256.hex(b""), 0, 0);
        assert!(refused(&empty, &empty.summary()).contains("holds 0 bytes"));
        let mut zstd = index("zstd");
        zstd.chunks[0].size = 1 << 20;
        assert!(refused(&zstd, &zstd.summary()).contains("cannot hold"));
    }
}
