//! Options of checkpoints: [`CheckpointOptions`] (how a
//! [`DistributedCheckpoint`](crate::checkpoint::DistributedCheckpoint) does
//! its I/O), [`SaveOptions`] and [`LoadOptions`] (per call).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
/// - `max_manifest_size`: 64 MiB — a manifest larger than this is refused as
///   corrupted rather than read into memory; at least 1 KiB.
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
#[serde(try_from = "CheckpointOptionsFields", into = "CheckpointOptionsFields")]
pub struct CheckpointOptions {
    chunk_size: usize,
    max_manifest_size: u64,
}

impl Default for CheckpointOptions {
    fn default() -> Self {
        CheckpointOptions {
            chunk_size: MIB as usize,
            max_manifest_size: 64 * MIB,
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

    /// Validates the options.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `chunk_size` is 0 or above 1 GiB, or when
    /// `max_manifest_size` is below 1 KiB.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = steadfast::checkpoint::CheckpointOptions::builder().chunk_size(0).build();
    /// assert_eq!(err.unwrap_err().field(), "chunk_size");
    /// ```
    pub fn build(self) -> Result<CheckpointOptions, ConfigError> {
        let o = self.options;
        if o.chunk_size == 0 || o.chunk_size as u64 > 1024 * MIB {
            return Err(ConfigError::new(
                "chunk_size",
                format!("must be between 1 byte and 1 GiB, got {}", o.chunk_size),
            ));
        }
        if o.max_manifest_size < KIB {
            return Err(ConfigError::new(
                "max_manifest_size",
                format!("must be at least 1 KiB, got {}", o.max_manifest_size),
            ));
        }
        Ok(o)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CheckpointOptionsFields {
    chunk_size: usize,
    max_manifest_size: u64,
}

impl Default for CheckpointOptionsFields {
    fn default() -> Self {
        CheckpointOptions::default().into()
    }
}

impl From<CheckpointOptions> for CheckpointOptionsFields {
    fn from(o: CheckpointOptions) -> Self {
        CheckpointOptionsFields {
            chunk_size: o.chunk_size,
            max_manifest_size: o.max_manifest_size,
        }
    }
}

impl TryFrom<CheckpointOptionsFields> for CheckpointOptions {
    type Error = ConfigError;

    fn try_from(f: CheckpointOptionsFields) -> Result<Self, ConfigError> {
        CheckpointOptions::builder()
            .chunk_size(f.chunk_size)
            .max_manifest_size(f.max_manifest_size)
            .build()
    }
}

/// Options of one save.
///
/// # Default
///
/// - `step`: none
/// - `timeout`: 5 minutes — how long each rank waits for the others at each
///   collective step of the save (after writing its shard, and for the
///   commit). Writing the shard itself is bounded by the retry policy.
/// - `metadata`: empty
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::checkpoint::SaveOptions;
///
/// let options = SaveOptions::new()
///     .step(1200)
///     .timeout(Duration::from_secs(60))
///     .metadata("model", "resnet-50");
/// assert_eq!(options.step, Some(1200));
/// assert_eq!(options.metadata["model"], "resnet-50");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SaveOptions {
    /// The step recorded in the manifest.
    pub step: Option<u64>,
    /// How long to wait for the other ranks at each collective step.
    #[serde(with = "crate::serde_duration")]
    pub timeout: Duration,
    /// The user's metadata, recorded in the manifest.
    pub metadata: BTreeMap<String, String>,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            step: None,
            timeout: Duration::from_secs(300),
            metadata: BTreeMap::new(),
        }
    }
}

impl SaveOptions {
    /// The defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = steadfast::checkpoint::SaveOptions::new();
    /// assert_eq!(options.timeout, Duration::from_secs(300));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the step.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::checkpoint::SaveOptions::new().step(7).step, Some(7));
    /// ```
    pub fn step(mut self, step: u64) -> Self {
        self.step = Some(step);
        self
    }

    /// Sets how long to wait for the other ranks at each collective step.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = steadfast::checkpoint::SaveOptions::new().timeout(Duration::from_secs(9));
    /// assert_eq!(options.timeout, Duration::from_secs(9));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds a metadata pair.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = steadfast::checkpoint::SaveOptions::new().metadata("lr", "0.001");
    /// assert_eq!(options.metadata.len(), 1);
    /// ```
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// Options of one load.
///
/// # Default
///
/// - `verify`: `true` — check each shard's SHA-256 digest before returning
///   its bytes. Sizes are always checked; turning this off only skips the
///   digest (for a storage trusted to keep bytes intact).
/// - `strict`: `true` — [`load`](crate::checkpoint::DistributedCheckpoint::load)
///   refuses a checkpoint saved by a different world size. With `false`, a
///   rank reads the shard saved by the same rank number when there is one.
///   Named entries ([`load_entry`](crate::checkpoint::DistributedCheckpoint::load_entry))
///   load at any world size either way.
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::LoadOptions;
///
/// let options = LoadOptions::new().strict(false);
/// assert!(options.verify);
/// assert!(!options.strict);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadOptions {
    /// Check SHA-256 digests.
    pub verify: bool,
    /// Refuse a checkpoint saved by a different world size.
    pub strict: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            verify: true,
            strict: true,
        }
    }
}

impl LoadOptions {
    /// The defaults: verify, strict.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::checkpoint::LoadOptions::new().verify);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets whether digests are checked.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!steadfast::checkpoint::LoadOptions::new().verify(false).verify);
    /// ```
    pub fn verify(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// Sets whether a different world size is refused.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!steadfast::checkpoint::LoadOptions::new().strict(false).strict);
    /// ```
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_round_trips() {
        let options = CheckpointOptions::builder()
            .chunk_size(4096)
            .max_manifest_size(2048)
            .build()
            .unwrap();
        let json = serde_json::to_string(&options).unwrap();
        assert_eq!(
            serde_json::from_str::<CheckpointOptions>(&json).unwrap(),
            options
        );
        assert!(serde_json::from_str::<CheckpointOptions>(r#"{"chunk_size": 0}"#).is_err());
        assert_eq!(
            serde_json::from_str::<CheckpointOptions>("{}").unwrap(),
            CheckpointOptions::default()
        );

        let save = SaveOptions::new()
            .step(3)
            .timeout(Duration::from_millis(1500))
            .metadata("a", "b");
        let json = serde_json::to_string(&save).unwrap();
        assert!(json.contains("\"1s500ms\""), "{json}");
        assert_eq!(serde_json::from_str::<SaveOptions>(&json).unwrap(), save);

        let load = LoadOptions::new().verify(false);
        let json = serde_json::to_string(&load).unwrap();
        assert_eq!(serde_json::from_str::<LoadOptions>(&json).unwrap(), load);
    }

    #[test]
    fn limits() {
        assert!(CheckpointOptions::builder().chunk_size(1).build().is_ok());
        assert!(CheckpointOptions::builder()
            .chunk_size(2 * 1024 * 1024 * 1024)
            .build()
            .is_err());
        assert!(CheckpointOptions::builder()
            .max_manifest_size(1023)
            .build()
            .is_err());
    }
}
