//! The layout of a checkpoint in storage and its manifest, `metadata.json`.
//!
//! A checkpoint `NAME` (a valid storage key of one or more segments) is the
//! prefix `NAME/`. It holds one shard object per rank, named
//! `NAME/shard-<rank>-of-<world size>-<token>.bin` (the token is a random
//! number chosen by each rank for each save, so that two saves never write to
//! the same key), and the manifest `NAME/metadata.json`, written last: the
//! manifest is the commit point. A prefix without a manifest is not a
//! checkpoint.
//!
//! The manifest lists every shard with its size and SHA-256 digest (and, for
//! a compressed shard, its codec and frames: see `frames.rs`), an index
//! of named entries (which shard holds each entry, at which offset, how many
//! bytes, the digest of its bytes), the step, the commit sequence and the user's metadata. It carries its own SHA-256
//! checksum, computed over its canonical (compact JSON) form without the
//! checksum field, so that a damaged manifest cannot send a reader to the
//! wrong bytes.
//!
//! Reading a manifest ([`Manifest::from_bytes`]) checks, in this order: that
//! it parses as JSON with a `format_version`, that the version is one this
//! build reads, that it parses fully, that its checksum matches, and that it
//! describes a possible checkpoint ([`Manifest::validate`], in
//! `validate.rs`). Every failure is
//! an error, never a panic.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::chunks::{ShardChunks, CHUNKS_PREFIX};
use super::error::{CheckpointError, Result};
use super::fencing::CommitStamp;
use super::frames::ShardCompression;
#[cfg(doc)]
use super::frames::MAX_FRAME_SIZE;
use crate::storage::{validate_key, StorageError};

/// The name of the manifest object inside a checkpoint's prefix.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{manifest_key, MANIFEST_FILE_NAME};
/// assert_eq!(manifest_key("step-3"), format!("step-3/{MANIFEST_FILE_NAME}"));
/// ```
pub const MANIFEST_FILE_NAME: &str = "metadata.json";

/// The manifest format version this build writes, and the newest it reads.
///
/// Every older version stays readable:
/// - 1: the first format;
/// - 2: adds the commit [`sequence`](Manifest::sequence), which orders
///   checkpoints (a version 1 manifest has none);
/// - 3: adds compressed shards ([`ShardInfo::compression`]: the codec and
///   the frames) and a digest per named entry ([`EntryLocation::sha256`]),
///   so that one entry can be loaded and verified alone;
/// - 4: adds chunked shards ([`ShardInfo::chunks`]), whose object is a
///   chunk index and whose bytes are content-addressed chunks under
///   `chunks/`;
/// - 5: adds the [`commit`](Manifest::commit) stamp (epoch, leader, term)
///   of a checkpoint committed under a fence.
///
/// A manifest of a newer version is refused with
/// [`CheckpointError::IncompatibleVersion`], never guessed at.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{Manifest, FORMAT_VERSION};
/// assert_eq!(Manifest::new("c", 1).format_version, FORMAT_VERSION);
/// ```
pub const FORMAT_VERSION: u32 = 5;

/// The storage key of the manifest of checkpoint `name`: `NAME/metadata.json`.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::manifest_key;
/// assert_eq!(manifest_key("run-1/step-10"), "run-1/step-10/metadata.json");
/// ```
pub fn manifest_key(name: &str) -> String {
    format!("{name}/{MANIFEST_FILE_NAME}")
}

/// Checks that `name` can name a checkpoint: a valid storage key (see
/// [`validate_key`]) whose first segment is not `chunks` (the prefix of the
/// chunks of chunked checkpoints) and whose last segment is not
/// `metadata.json`.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::validate_name;
/// assert!(validate_name("run-1/step-10").is_ok());
/// assert!(validate_name("../escape").is_err());
/// assert!(validate_name("run/metadata.json").is_err());
/// assert!(validate_name("chunks/step-1").is_err());
/// assert!(validate_name("run/chunks").is_ok());
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    check_name(name).map_err(|source| CheckpointError::InvalidName {
        name: name.to_string(),
        source,
    })
}

/// [`validate_name`] with the storage's error type.
pub(crate) fn check_name(name: &str) -> std::result::Result<(), StorageError> {
    validate_key(name)?;
    if name.split('/').next() == Some(CHUNKS_PREFIX) {
        return Err(StorageError::InvalidKey {
            key: name.to_string(),
            reason: "the prefix `chunks/` holds the chunks of chunked checkpoints",
        });
    }
    if name.rsplit('/').next() == Some(MANIFEST_FILE_NAME) {
        return Err(StorageError::InvalidKey {
            key: name.to_string(),
            reason: "the last segment of a checkpoint name must not be `metadata.json`",
        });
    }
    Ok(())
}

/// The key of a shard written by `rank` of `world_size` for a save whose
/// random token is `token`.
pub(crate) fn shard_key(name: &str, rank: usize, world_size: usize, token: u64) -> String {
    format!("{name}/shard-{rank:05}-of-{world_size:05}-{token:016x}.bin")
}

/// Whether the last segment of a key looks like a shard object
/// (`shard-*.bin`).
pub(crate) fn is_shard_file_name(file_name: &str) -> bool {
    file_name.starts_with("shard-") && file_name.ends_with(".bin")
}

/// Lowercase hexadecimal of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The lowercase hex SHA-256 of `bytes`.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::sha256_hex;
/// assert_eq!(
///     sha256_hex(b""),
///     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// ```
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

pub(super) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One shard of a checkpoint, as the manifest records it.
///
/// `size` and `sha256` are those of the stored object, compressed or not;
/// a compressed shard (format version 3) also records its codec and frames
/// in [`compression`](Self::compression).
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{sha256_hex, ShardInfo};
///
/// let shard = ShardInfo::new(0, "step-1/shard-00000-of-00001-00000000000000aa.bin", 3, sha256_hex(b"abc"));
/// assert_eq!(shard.size, 3);
/// assert_eq!(shard.uncompressed_size(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShardInfo {
    /// The rank that wrote the shard.
    pub rank: usize,
    /// The shard's storage key, inside the checkpoint's prefix.
    pub key: String,
    /// The stored object's size in bytes.
    pub size: u64,
    /// The stored object's SHA-256 digest, lowercase hex.
    pub sha256: String,
    /// How the shard is compressed: `None` for a shard stored raw (every
    /// shard before format version 3). Not written when `None`, so that an
    /// older manifest keeps its checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<ShardCompression>,
    /// For a chunked shard (format version 4), a summary of its chunk
    /// index: the shard object (`key`, `size`, `sha256`) is then the
    /// [`ChunkIndex`](super::ChunkIndex) that lists its chunks. Not written
    /// when `None`, so that an older manifest keeps its checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<ShardChunks>,
}

impl ShardInfo {
    /// A shard stored raw: `size` bytes of digest `sha256`, written by
    /// `rank` under `key`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{sha256_hex, ShardInfo};
    /// let shard = ShardInfo::new(1, "c/shard-1.bin", 0, sha256_hex(b""));
    /// assert!(shard.compression.is_none());
    /// ```
    pub fn new(rank: usize, key: impl Into<String>, size: u64, sha256: impl Into<String>) -> Self {
        ShardInfo {
            rank,
            key: key.into(),
            size,
            sha256: sha256.into(),
            compression: None,
            chunks: None,
        }
    }

    /// The shard stored compressed as `layout` says.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{sha256_hex, ShardCompression, ShardInfo};
    /// let shard = ShardInfo::new(0, "c/shard-0.bin", 0, sha256_hex(b""))
    ///     .with_compression(ShardCompression::zstd(1 << 20));
    /// assert_eq!(shard.compression.unwrap().codec, "zstd");
    /// ```
    pub fn with_compression(mut self, layout: ShardCompression) -> Self {
        self.compression = Some(layout);
        self
    }

    /// The size of the shard's bytes once decompressed: its stored size for
    /// a shard stored raw.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{sha256_hex, ShardInfo};
    /// assert_eq!(ShardInfo::new(0, "c/s.bin", 5, sha256_hex(b"hello")).uncompressed_size(), 5);
    /// ```
    pub fn uncompressed_size(&self) -> u64 {
        if let Some(chunks) = &self.chunks {
            return chunks.uncompressed_size;
        }
        self.compression
            .as_ref()
            .map_or(self.size, |c| c.uncompressed_size)
    }

    /// The shard stored as chunks, its object being the chunk index that
    /// `summary` describes.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{sha256_hex, DigestAlgorithm, ShardChunks, ShardInfo};
    /// let shard = ShardInfo::new(0, "c/shard-0.bin", 2, sha256_hex(b"{}"))
    ///     .with_chunks(ShardChunks::new(DigestAlgorithm::Sha256, "none", 1, 4096));
    /// assert_eq!(shard.uncompressed_size(), 4096);
    /// ```
    pub fn with_chunks(mut self, summary: ShardChunks) -> Self {
        self.chunks = Some(summary);
        self
    }
}

/// Where a named entry lives: which rank's shard, at which offset, how long,
/// and (format version 3) the digest of its bytes.
///
/// Offsets and lengths count the shard's uncompressed bytes.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::EntryLocation;
/// let at = EntryLocation::new(1, 128, 64);
/// assert_eq!(at.end(), Some(192));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EntryLocation {
    /// The rank whose shard holds the entry.
    pub rank: usize,
    /// The entry's first byte within the shard's uncompressed bytes.
    pub offset: u64,
    /// The entry's length in bytes.
    pub length: u64,
    /// The SHA-256 of the entry's (uncompressed) bytes, lowercase hex: with
    /// it, the entry is read and verified alone. `None` in a manifest before
    /// format version 3 (the whole shard is then verified to read an entry),
    /// and not written when `None`, so that an older manifest keeps its
    /// checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl EntryLocation {
    /// An entry of `length` bytes at `offset` in the shard of `rank`, with
    /// no digest.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::EntryLocation;
    /// assert_eq!(EntryLocation::new(0, 4, 2).sha256, None);
    /// ```
    pub fn new(rank: usize, offset: u64, length: u64) -> Self {
        EntryLocation {
            rank,
            offset,
            length,
            sha256: None,
        }
    }

    /// The entry with the digest of its bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{sha256_hex, EntryLocation};
    /// let at = EntryLocation::new(0, 0, 2).with_sha256(sha256_hex(b"ab"));
    /// assert!(at.sha256.is_some());
    /// ```
    pub fn with_sha256(mut self, sha256: impl Into<String>) -> Self {
        self.sha256 = Some(sha256.into());
        self
    }

    /// One past the entry's last byte, or `None` if that overflows.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::EntryLocation;
    /// assert_eq!(EntryLocation::new(0, u64::MAX, 1).end(), None);
    /// ```
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.length)
    }
}

/// The manifest of a committed checkpoint, stored as `NAME/metadata.json`.
///
/// `sequence` orders the checkpoints of a storage: the committing rank
/// records one more than the highest sequence committed in the storage when
/// it commits (see
/// [`DistributedCheckpoint::list`](crate::checkpoint::DistributedCheckpoint::list)).
/// `created_at` is the wall-clock time of the commit in milliseconds since
/// the Unix epoch: a timestamp for people, from [`SystemTime`]. It never
/// decides which checkpoint is newest, since a wall clock can step back or
/// differ between hosts.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::{sha256_hex, Manifest, ShardInfo};
///
/// # fn main() -> Result<(), steadfast::checkpoint::CheckpointError> {
/// let mut manifest = Manifest::new("step-5", 1);
/// manifest.step = Some(5);
/// manifest.shards.push(ShardInfo::new(
///     0,
///     "step-5/shard-00000-of-00001-0000000000000001.bin",
///     5,
///     sha256_hex(b"hello"),
/// ));
/// let bytes = manifest.to_bytes()?;
/// let read = Manifest::from_bytes("step-5", &bytes)?;
/// assert_eq!(read.step, Some(5));
/// assert_eq!(read.total_size(), 5);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Manifest {
    /// The format version ([`FORMAT_VERSION`] when written by this build).
    pub format_version: u32,
    /// The checkpoint's name.
    pub name: String,
    /// The training step (or any sequence number) the checkpoint belongs to:
    /// metadata, which does not order checkpoints (after a restore to an
    /// earlier step, the work saved since is newer).
    #[serde(default)]
    pub step: Option<u64>,
    /// The commit sequence: one more than the highest sequence committed in
    /// the storage when this checkpoint was committed. `None` in a manifest
    /// of format version 1, written before sequences existed (and in one
    /// built by hand without it); such checkpoints sort before every
    /// checkpoint that has one. Not written at all when `None`, so that a
    /// version 1 manifest keeps its checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// When the checkpoint was committed, in milliseconds since the Unix
    /// epoch (wall clock).
    pub created_at: u64,
    /// How many ranks saved it (one shard each).
    pub world_size: usize,
    /// The shards, one per rank, in rank order.
    pub shards: Vec<ShardInfo>,
    /// Named entries: entry name → where its bytes are.
    #[serde(default)]
    pub entries: BTreeMap<String, EntryLocation>,
    /// The user's metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Under which epoch and leadership the checkpoint was committed, when
    /// it was committed under a fence
    /// ([`DistributedCheckpoint::with_fence`](super::DistributedCheckpoint::with_fence));
    /// not written otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitStamp>,
    /// The SHA-256 of the manifest's canonical form without this field,
    /// lowercase hex; filled in by [`Manifest::to_bytes`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checksum: String,
}

/// Only the version, read first so that a manifest of a newer format is
/// reported as such rather than as unreadable.
#[derive(Deserialize)]
struct VersionProbe {
    format_version: u32,
}

impl Manifest {
    /// An empty manifest of the current format for checkpoint `name` saved by
    /// `world_size` ranks, created now (wall clock), with no shards yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{Manifest, FORMAT_VERSION};
    /// let m = Manifest::new("ckpt", 4);
    /// assert_eq!(m.format_version, FORMAT_VERSION);
    /// assert!(m.shards.is_empty());
    /// ```
    pub fn new(name: impl Into<String>, world_size: usize) -> Self {
        Manifest {
            format_version: FORMAT_VERSION,
            name: name.into(),
            step: None,
            sequence: None,
            created_at: unix_millis_now(),
            world_size,
            shards: Vec::new(),
            entries: BTreeMap::new(),
            metadata: BTreeMap::new(),
            commit: None,
            checksum: String::new(),
        }
    }

    /// The sum of the shard sizes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::checkpoint::Manifest::new("c", 1).total_size(), 0);
    /// ```
    pub fn total_size(&self) -> u64 {
        self.shards
            .iter()
            .fold(0u64, |sum, s| sum.saturating_add(s.size))
    }

    /// The shard written by `rank`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::checkpoint::Manifest::new("c", 1).shard(0).is_none());
    /// ```
    pub fn shard(&self, rank: usize) -> Option<&ShardInfo> {
        self.shards.iter().find(|s| s.rank == rank)
    }

    /// The commit time as a [`SystemTime`] (the Unix epoch for a time the
    /// platform cannot represent, which [`validate`](Self::validate)
    /// refuses).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let mut m = steadfast::checkpoint::Manifest::new("c", 1);
    /// m.created_at = 1_500;
    /// assert_eq!(m.created_at_time(), UNIX_EPOCH + Duration::from_millis(1_500));
    /// ```
    pub fn created_at_time(&self) -> SystemTime {
        created_at_time(self.created_at).unwrap_or(UNIX_EPOCH)
    }

    /// A summary of the checkpoint this manifest commits.
    ///
    /// # Examples
    ///
    /// ```
    /// let info = steadfast::checkpoint::Manifest::new("c", 2).info();
    /// assert_eq!(info.world_size, 2);
    /// ```
    pub fn info(&self) -> CheckpointInfo {
        CheckpointInfo {
            name: self.name.clone(),
            step: self.step,
            sequence: self.sequence,
            created_at: self.created_at_time(),
            world_size: self.world_size,
            total_size: self.total_size(),
        }
    }

    /// The SHA-256 of the manifest's canonical form: compact JSON of every
    /// field except `checksum`.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = steadfast::checkpoint::Manifest::new("c", 1);
    /// assert_eq!(m.compute_checksum().len(), 64);
    /// ```
    pub fn compute_checksum(&self) -> String {
        let mut body = self.clone();
        body.checksum.clear();
        // Serializing a struct of strings, integers and string-keyed maps
        // cannot fail; should it ever, the checksum of nothing would not
        // match any stored checksum and the manifest would be refused.
        let canonical = serde_json::to_vec(&body).unwrap_or_default();
        sha256_hex(&canonical)
    }

    /// Encodes the manifest as it is stored: pretty-printed JSON with a
    /// fresh checksum (whatever `self.checksum` held is replaced).
    ///
    /// # Errors
    ///
    /// [`CheckpointError::ValidationFailed`] if the manifest cannot be
    /// serialized.
    ///
    /// # Examples
    ///
    /// ```
    /// let bytes = steadfast::checkpoint::Manifest::new("c", 1).to_bytes().unwrap();
    /// assert!(String::from_utf8(bytes).unwrap().contains("\"checksum\""));
    /// ```
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut stored = self.clone();
        stored.checksum = self.compute_checksum();
        serde_json::to_vec_pretty(&stored).map_err(|e| CheckpointError::ValidationFailed {
            name: self.name.clone(),
            reason: format!("the manifest cannot be encoded: {e}"),
        })
    }

    /// Decodes and checks the manifest of checkpoint `name`: its format
    /// version, its checksum and its structure ([`Manifest::validate`]).
    ///
    /// # Errors
    ///
    /// - [`CheckpointError::IncompatibleVersion`] for a newer format;
    /// - [`CheckpointError::Corrupted`] (naming the manifest's key) for bytes
    ///   that are not a manifest or whose checksum does not match;
    /// - [`CheckpointError::ValidationFailed`] for a manifest that describes
    ///   an impossible checkpoint.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{CheckpointError, Manifest};
    ///
    /// let err = Manifest::from_bytes("c", br#"{"format_version": 9}"#).unwrap_err();
    /// assert!(matches!(err, CheckpointError::IncompatibleVersion { found: 9, .. }));
    /// let err = Manifest::from_bytes("c", b"").unwrap_err();
    /// assert!(matches!(err, CheckpointError::Corrupted { .. }));
    /// ```
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Manifest> {
        let corrupted = |expected: &str, actual: String| CheckpointError::Corrupted {
            name: name.to_string(),
            shard: manifest_key(name),
            expected: expected.to_string(),
            actual,
        };
        if bytes.is_empty() {
            return Err(corrupted("a JSON manifest", "an empty object".into()));
        }
        let probe: VersionProbe = serde_json::from_slice(bytes).map_err(|e| {
            corrupted(
                "a JSON manifest with a format_version",
                format!("unreadable bytes ({e})"),
            )
        })?;
        if probe.format_version > FORMAT_VERSION {
            return Err(CheckpointError::IncompatibleVersion {
                name: name.to_string(),
                found: probe.format_version,
                supported: FORMAT_VERSION,
            });
        }
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| {
            corrupted(
                &format!("a JSON manifest of format version {}", probe.format_version),
                format!("unreadable bytes ({e})"),
            )
        })?;
        if manifest.checksum.is_empty() {
            return Err(corrupted("a manifest checksum", "none".into()));
        }
        let actual = manifest.compute_checksum();
        if actual != manifest.checksum {
            return Err(corrupted(
                &format!("manifest checksum sha256 {}", manifest.checksum),
                format!("sha256 {actual}"),
            ));
        }
        manifest.validate(name)?;
        Ok(manifest)
    }
}

/// A summary of a committed checkpoint, as [`list`] returns it.
///
/// [`list`]: crate::checkpoint::DistributedCheckpoint::list
///
/// # Examples
///
/// ```
/// let info = steadfast::checkpoint::Manifest::new("step-3", 4).info();
/// assert_eq!(info.name, "step-3");
/// assert_eq!(info.total_size, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The checkpoint's name.
    pub name: String,
    /// Its step, if one was given (metadata: it does not order
    /// checkpoints).
    pub step: Option<u64>,
    /// Its commit sequence, which orders checkpoints (newest highest); `None`
    /// for a checkpoint committed before sequences existed (format version
    /// 1), which sorts before every checkpoint that has one.
    pub sequence: Option<u64>,
    /// When it was committed (wall clock; for people, it orders only
    /// checkpoints without a sequence).
    pub created_at: SystemTime,
    /// How many ranks saved it.
    pub world_size: usize,
    /// The total size of its shards, in bytes.
    pub total_size: u64,
}

/// `millis` after the Unix epoch, if the platform's [`SystemTime`] reaches
/// that far.
pub(super) fn created_at_time(millis: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_millis(millis))
}

/// Milliseconds since the Unix epoch, from the wall clock (0 if the clock is
/// before 1970, which only a broken clock is).
pub(crate) fn unix_millis_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
