//! [`CheckpointOptions`]: how a
//! [`DistributedCheckpoint`](crate::checkpoint::DistributedCheckpoint) does
//! its I/O (chunk and frame sizes, the largest manifest it reads, the grace
//! of its clean-ups), with its builder and serde form.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::frames::MAX_FRAME_SIZE;
use crate::error::ConfigError;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// How a [`DistributedCheckpoint`](crate::checkpoint::DistributedCheckpoint)
/// moves bytes.
///
/// # Default
///
/// - `chunk_size`: 1 MiB — the size of each write to a storage stream, and
///   of the buffer a streamed shard is read through; between 1 byte and
///   1 GiB. A save holds up to two chunks per rank in memory (one being
///   filled and hashed, one being written).
/// - `frame_size`: 1 MiB — how many uncompressed bytes each zstd frame of a
///   compressed shard holds (the last one fewer); between 1 byte and
///   [`MAX_FRAME_SIZE`](crate::checkpoint::MAX_FRAME_SIZE). A compressed
///   save holds about three frames per rank in memory (one being filled,
///   one being compressed, one being written) plus zstd's context; a load
///   reads and verifies one frame at a time, and a one-entry load reads
///   only the frames that hold the entry.
/// - `max_manifest_size`: 64 MiB — a manifest larger than this is refused as
///   corrupted rather than read into memory; at least 1 KiB.
/// - `cleanup_grace`: 10 minutes — how old the leftovers of a save that
///   never committed (shards under a prefix without a manifest, temporary
///   objects of interrupted writes) must be before
///   [`cleanup_on_start`](crate::checkpoint::DistributedCheckpoint::cleanup_on_start)
///   and [`retain_last`](crate::checkpoint::DistributedCheckpoint::retain_last)
///   remove them; more than zero. A prefix written to within the grace may
///   be a save in progress, so it is left alone: choose a grace longer than
///   the longest save (from its first shard written to its commit), or a
///   save that takes longer may have its shards removed and fail (rank 0
///   checks every shard before it commits, so it is never committed
///   incomplete).
/// - `chunk_lock_lifetime`: 60 seconds — how long the lock a chunked save or
///   a chunk collection holds in `chunks/locks/` stays valid without being
///   refreshed (its holder refreshes it every quarter of that); at least
///   one second. A lock older than this is taken for the leftover of a
///   process that died. Choose it well above the longest pause a process
///   may take and the clock skew between hosts: see
///   [`collect_chunks`](crate::checkpoint::DistributedCheckpoint::collect_chunks).
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::CheckpointOptions;
///
/// let options = CheckpointOptions::builder().chunk_size(256 * 1024).build()?;
/// assert_eq!(options.chunk_size(), 256 * 1024);
/// assert!(CheckpointOptions::builder().chunk_size(0).build().is_err());
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CheckpointOptionsRepr", into = "CheckpointOptionsRepr")]
pub struct CheckpointOptions {
    chunk_size: usize,
    frame_size: usize,
    max_manifest_size: u64,
    cleanup_grace: Duration,
    chunk_lock_lifetime: Duration,
}

impl Default for CheckpointOptions {
    fn default() -> Self {
        CheckpointOptions {
            chunk_size: MIB as usize,
            frame_size: MIB as usize,
            max_manifest_size: 64 * MIB,
            cleanup_grace: Duration::from_secs(600),
            chunk_lock_lifetime: Duration::from_secs(60),
        }
    }
}

impl CheckpointOptions {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = steadfast::checkpoint::CheckpointOptions::builder().build()?;
    /// assert_eq!(options, Default::default());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> CheckpointOptionsBuilder {
        CheckpointOptionsBuilder {
            options: CheckpointOptions::default(),
        }
    }

    /// The size of each write to a storage stream.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = steadfast::checkpoint::CheckpointOptions::default();
    /// assert_eq!(options.chunk_size(), 1024 * 1024);
    /// ```
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// How many uncompressed bytes each frame of a compressed shard holds.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = steadfast::checkpoint::CheckpointOptions::default();
    /// assert_eq!(options.frame_size(), 1024 * 1024);
    /// ```
    pub fn frame_size(&self) -> usize {
        self.frame_size
    }

    /// The largest manifest that is read.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = steadfast::checkpoint::CheckpointOptions::default();
    /// assert_eq!(options.max_manifest_size(), 64 * 1024 * 1024);
    /// ```
    pub fn max_manifest_size(&self) -> u64 {
        self.max_manifest_size
    }

    /// How old uncommitted leftovers must be before the automatic clean-ups
    /// remove them.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = steadfast::checkpoint::CheckpointOptions::default();
    /// assert_eq!(options.cleanup_grace(), Duration::from_secs(600));
    /// ```
    pub fn cleanup_grace(&self) -> Duration {
        self.cleanup_grace
    }

    /// How long a chunk lock stays valid without being refreshed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = steadfast::checkpoint::CheckpointOptions::default();
    /// assert_eq!(options.chunk_lock_lifetime(), Duration::from_secs(60));
    /// ```
    pub fn chunk_lock_lifetime(&self) -> Duration {
        self.chunk_lock_lifetime
    }

    /// Checks the options: what [`CheckpointOptionsBuilder::build`] and
    /// deserialization both check.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.chunk_size == 0 || self.chunk_size as u64 > 1024 * MIB {
            return Err(ConfigError::new(
                "chunk_size",
                format!("must be between 1 byte and 1 GiB, got {}", self.chunk_size),
            ));
        }
        if self.frame_size == 0 || self.frame_size as u64 > MAX_FRAME_SIZE {
            return Err(ConfigError::new(
                "frame_size",
                format!(
                    "must be between 1 byte and {MAX_FRAME_SIZE} bytes, got {}",
                    self.frame_size
                ),
            ));
        }
        if self.max_manifest_size < KIB {
            return Err(ConfigError::new(
                "max_manifest_size",
                format!("must be at least 1 KiB, got {}", self.max_manifest_size),
            ));
        }
        if self.cleanup_grace.is_zero() {
            return Err(ConfigError::new(
                "cleanup_grace",
                "must be greater than zero: a younger prefix may be a save in progress",
            ));
        }
        if self.chunk_lock_lifetime < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "chunk_lock_lifetime",
                format!(
                    "must be at least one second, got {:?}",
                    self.chunk_lock_lifetime
                ),
            ));
        }
        Ok(())
    }
}

/// Builds [`CheckpointOptions`], validating them in
/// [`build`](Self::build).
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::CheckpointOptions;
/// let err = CheckpointOptions::builder().max_manifest_size(10).build().unwrap_err();
/// assert_eq!(err.field(), "max_manifest_size");
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointOptionsBuilder {
    options: CheckpointOptions,
}

impl CheckpointOptionsBuilder {
    /// Sets the size of each write to a storage stream (1 byte to 1 GiB).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = steadfast::checkpoint::CheckpointOptions::builder().chunk_size(4096);
    /// assert_eq!(b.build()?.chunk_size(), 4096);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.options.chunk_size = bytes;
        self
    }

    /// Sets the largest manifest that is read (at least 1 KiB).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = steadfast::checkpoint::CheckpointOptions::builder().max_manifest_size(1 << 20);
    /// assert_eq!(b.build()?.max_manifest_size(), 1 << 20);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn max_manifest_size(mut self, bytes: u64) -> Self {
        self.options.max_manifest_size = bytes;
        self
    }

    /// Sets how many uncompressed bytes each frame of a compressed shard
    /// holds (1 byte to [`MAX_FRAME_SIZE`](crate::checkpoint::MAX_FRAME_SIZE)).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = steadfast::checkpoint::CheckpointOptions::builder().frame_size(256 * 1024);
    /// assert_eq!(b.build()?.frame_size(), 256 * 1024);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn frame_size(mut self, bytes: usize) -> Self {
        self.options.frame_size = bytes;
        self
    }

    /// Sets how old uncommitted leftovers must be before the automatic
    /// clean-ups remove them (more than zero; longer than the longest save).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = steadfast::checkpoint::CheckpointOptions::builder().cleanup_grace(Duration::from_secs(3600));
    /// assert_eq!(b.build()?.cleanup_grace(), Duration::from_secs(3600));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn cleanup_grace(mut self, grace: Duration) -> Self {
        self.options.cleanup_grace = grace;
        self
    }

    /// Sets how long a chunk lock stays valid without being refreshed (at
    /// least one second).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = steadfast::checkpoint::CheckpointOptions::builder().chunk_lock_lifetime(Duration::from_secs(300));
    /// assert_eq!(b.build()?.chunk_lock_lifetime(), Duration::from_secs(300));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn chunk_lock_lifetime(mut self, lifetime: Duration) -> Self {
        self.options.chunk_lock_lifetime = lifetime;
        self
    }

    /// Validates the options.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `chunk_size` is 0 or above 1 GiB, when
    /// `frame_size` is 0 or above 64 MiB, when `max_manifest_size` is below 1 KiB, when `cleanup_grace` is zero, or when
    /// `chunk_lock_lifetime` is under a second.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = steadfast::checkpoint::CheckpointOptions::builder().chunk_size(0).build();
    /// assert_eq!(err.unwrap_err().field(), "chunk_size");
    /// ```
    pub fn build(self) -> Result<CheckpointOptions, ConfigError> {
        self.options.validate()?;
        Ok(self.options)
    }
}

/// The serde form of [`CheckpointOptions`]: every field optional (the
/// default), unknown fields refused.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CheckpointOptionsRepr {
    chunk_size: usize,
    frame_size: usize,
    max_manifest_size: u64,
    #[serde(with = "crate::serde_duration")]
    cleanup_grace: Duration,
    #[serde(with = "crate::serde_duration")]
    chunk_lock_lifetime: Duration,
}

impl Default for CheckpointOptionsRepr {
    fn default() -> Self {
        CheckpointOptions::default().into()
    }
}

impl From<CheckpointOptions> for CheckpointOptionsRepr {
    fn from(o: CheckpointOptions) -> Self {
        CheckpointOptionsRepr {
            chunk_size: o.chunk_size,
            frame_size: o.frame_size,
            max_manifest_size: o.max_manifest_size,
            cleanup_grace: o.cleanup_grace,
            chunk_lock_lifetime: o.chunk_lock_lifetime,
        }
    }
}

impl TryFrom<CheckpointOptionsRepr> for CheckpointOptions {
    type Error = ConfigError;

    fn try_from(f: CheckpointOptionsRepr) -> Result<Self, ConfigError> {
        let options = CheckpointOptions {
            chunk_size: f.chunk_size,
            frame_size: f.frame_size,
            max_manifest_size: f.max_manifest_size,
            cleanup_grace: f.cleanup_grace,
            chunk_lock_lifetime: f.chunk_lock_lifetime,
        };
        options.validate()?;
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunk_lock_lifetime_is_validated_and_read_from_config() {
        let read: CheckpointOptions =
            serde_json::from_str(r#"{"chunk_lock_lifetime": "5m"}"#).unwrap();
        assert_eq!(read.chunk_lock_lifetime(), Duration::from_secs(300));
        assert!(
            serde_json::from_str::<CheckpointOptions>(r#"{"chunk_lock_lifetime": "10ms"}"#)
                .is_err()
        );
        let err = CheckpointOptions::builder()
            .chunk_lock_lifetime(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "chunk_lock_lifetime");
    }
}
