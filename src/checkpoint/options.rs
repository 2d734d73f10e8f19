//! Options of each call: [`SaveOptions`] and [`LoadOptions`]; the options
//! of a [`DistributedCheckpoint`](crate::checkpoint::DistributedCheckpoint)
//! itself, [`CheckpointOptions`], are in `config.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::chunks::Chunking;
use super::compression::Compression;
#[cfg(any(doc, test))]
use super::config::CheckpointOptions;
use super::digest::DigestAlgorithm;
use crate::error::ConfigError;

/// Options of one save: plain data, built with [`SaveOptions::builder`]
/// (validated) or with the chained setters of [`SaveOptions::new`].
///
/// # Default
///
/// - `step`: none
/// - `timeout`: 5 minutes — how long each rank waits for the others at each
///   collective step of the save (after writing its shard, and for the
///   commit); more than zero. Writing the shard itself is bounded by the
///   retry policy.
/// - `metadata`: empty
/// - `compression`: none
/// - `chunking`: none — the shard is one object; with a [`Chunking`], it is
///   stored as content-defined chunks under `chunks/` (see
///   [`SaveOptions::chunking`])
/// - `digest`: SHA-256 — the digest that addresses chunks (only used when
///   chunking)
/// - `base`: none — the committed checkpoint whose chunks the entries marked
///   unchanged ([`ShardData::with_unchanged_entry`]) refer to
///
/// [`ShardData::with_unchanged_entry`]: crate::checkpoint::ShardData::with_unchanged_entry
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
/// assert!(options.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SaveOptionsRepr", into = "SaveOptionsRepr")]
pub struct SaveOptions {
    /// The step recorded in the manifest.
    pub step: Option<u64>,
    /// How long to wait for the other ranks at each collective step.
    pub timeout: Duration,
    /// The user's metadata, recorded in the manifest.
    pub metadata: BTreeMap<String, String>,
    /// How the shard's bytes are stored (raw by default).
    pub compression: Compression,
    /// Store the shard as content-defined chunks cut this way (`None`: one
    /// shard object, as before).
    pub chunking: Option<Chunking>,
    /// The digest that addresses the chunks of a chunked save.
    pub digest: DigestAlgorithm,
    /// The committed checkpoint whose chunks unchanged entries refer to.
    pub base: Option<String>,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            step: None,
            timeout: Duration::from_secs(300),
            metadata: BTreeMap::new(),
            compression: Compression::None,
            chunking: None,
            digest: DigestAlgorithm::Sha256,
            base: None,
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

    /// A builder starting from the defaults, validating in
    /// [`build`](SaveOptionsBuilder::build).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::SaveOptions;
    /// let options = SaveOptions::builder().step(3).build()?;
    /// assert_eq!(options, SaveOptions::new().step(3));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> SaveOptionsBuilder {
        SaveOptionsBuilder {
            options: SaveOptions::default(),
        }
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

    /// Sets how the shard's bytes are stored: raw, or in zstd frames of
    /// [`CheckpointOptions::frame_size`] uncompressed bytes each, compressed
    /// on the blocking pool while the previous frame is written.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{Compression, SaveOptions};
    /// let options = SaveOptions::new().compression(Compression::zstd_level(1));
    /// assert_eq!(options.compression, Compression::Zstd { level: 1 });
    /// ```
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Stores the shard as content-defined chunks: each entry (or the
    /// stream) is cut by FastCDC as `chunking` says, each chunk is stored
    /// once under `chunks/<digest>` (compressed as one zstd frame when
    /// [`compression`](Self::compression) is zstd), and only the chunks the
    /// storage does not hold yet are written. The shard object is then the
    /// chunk index ([`ChunkIndex`](crate::checkpoint::ChunkIndex)).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{Chunking, SaveOptions};
    /// let options = SaveOptions::new().chunking(Chunking::default());
    /// assert_eq!(options.chunking.unwrap().average_size(), 1 << 20);
    /// ```
    pub fn chunking(mut self, chunking: Chunking) -> Self {
        self.chunking = Some(chunking);
        self
    }

    /// Sets the digest that addresses the chunks of a chunked save
    /// (SHA-256 by default; the rest of the checkpoint stays SHA-256).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{DigestAlgorithm, SaveOptions};
    /// let options = SaveOptions::new().digest(DigestAlgorithm::Blake3);
    /// assert_eq!(options.digest, DigestAlgorithm::Blake3);
    /// ```
    pub fn digest(mut self, digest: DigestAlgorithm) -> Self {
        self.digest = digest;
        self
    }

    /// Sets the committed checkpoint whose chunks the entries marked
    /// unchanged ([`ShardData::with_unchanged_entry`]) refer to: such an
    /// entry is stored by reference to the base's chunks, without its bytes
    /// being read or hashed. Needs [`chunking`](Self::chunking), and a base
    /// saved chunked with the same digest and codec.
    ///
    /// [`ShardData::with_unchanged_entry`]: crate::checkpoint::ShardData::with_unchanged_entry
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::SaveOptions;
    /// let options = SaveOptions::new().base("step-9");
    /// assert_eq!(options.base.as_deref(), Some("step-9"));
    /// ```
    pub fn base(mut self, name: impl Into<String>) -> Self {
        self.base = Some(name.into());
        self
    }

    /// Checks the options, as [`SaveOptionsBuilder::build`] and
    /// deserialization do.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for a zero `timeout` (no rank could wait for
    /// another), a zstd level out of range ([`Compression::validate`]), or
    /// a `base` without `chunking`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::checkpoint::SaveOptions;
    /// let err = SaveOptions::new().timeout(Duration::ZERO).validate().unwrap_err();
    /// assert_eq!(err.field(), "timeout");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout.is_zero() {
            return Err(ConfigError::new(
                "timeout",
                "must be greater than zero: it is how long a rank waits for the others",
            ));
        }
        if self.base.is_some() && self.chunking.is_none() {
            return Err(ConfigError::new(
                "base",
                "a base checkpoint is only used by a chunked save: set chunking too",
            ));
        }
        if let Some(chunking) = &self.chunking {
            chunking.validate()?;
        }
        self.compression.validate()
    }
}

/// Builds [`SaveOptions`], validating them in [`build`](Self::build).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::checkpoint::SaveOptions;
///
/// let options = SaveOptions::builder()
///     .step(40)
///     .timeout(Duration::from_secs(30))
///     .metadata("run", "a")
///     .build()?;
/// assert_eq!(options.timeout, Duration::from_secs(30));
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct SaveOptionsBuilder {
    options: SaveOptions,
}

impl SaveOptionsBuilder {
    /// Sets the step recorded in the manifest.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = steadfast::checkpoint::SaveOptions::builder().step(5).build()?;
    /// assert_eq!(options.step, Some(5));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn step(mut self, step: u64) -> Self {
        self.options.step = Some(step);
        self
    }

    /// Sets how long to wait for the other ranks at each collective step
    /// (more than zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = steadfast::checkpoint::SaveOptions::builder().timeout(Duration::from_secs(2));
    /// assert_eq!(b.build()?.timeout, Duration::from_secs(2));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// Adds a metadata pair.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = steadfast::checkpoint::SaveOptions::builder().metadata("k", "v").build()?;
    /// assert_eq!(options.metadata["k"], "v");
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets how the shard's bytes are stored.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{Compression, SaveOptions};
    /// let options = SaveOptions::builder().compression(Compression::zstd()).build()?;
    /// assert!(options.compression.is_compressed());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn compression(mut self, compression: Compression) -> Self {
        self.options.compression = compression;
        self
    }

    /// Stores the shard as content-defined chunks ([`SaveOptions::chunking`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{Chunking, SaveOptions};
    /// let options = SaveOptions::builder().chunking(Chunking::default()).build()?;
    /// assert!(options.chunking.is_some());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn chunking(mut self, chunking: Chunking) -> Self {
        self.options.chunking = Some(chunking);
        self
    }

    /// Sets the digest that addresses chunks ([`SaveOptions::digest`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{DigestAlgorithm, SaveOptions};
    /// let options = SaveOptions::builder().digest(DigestAlgorithm::Blake3).build()?;
    /// assert_eq!(options.digest, DigestAlgorithm::Blake3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn digest(mut self, digest: DigestAlgorithm) -> Self {
        self.options.digest = digest;
        self
    }

    /// Sets the base checkpoint of unchanged entries ([`SaveOptions::base`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::{Chunking, SaveOptions};
    /// let options = SaveOptions::builder().chunking(Chunking::default()).base("step-1").build()?;
    /// assert_eq!(options.base.as_deref(), Some("step-1"));
    /// // A base without chunking is refused.
    /// assert!(SaveOptions::builder().base("step-1").build().is_err());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn base(mut self, name: impl Into<String>) -> Self {
        self.options.base = Some(name.into());
        self
    }

    /// Validates the options.
    ///
    /// # Errors
    ///
    /// As [`SaveOptions::validate`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let err = steadfast::checkpoint::SaveOptions::builder().timeout(Duration::ZERO).build();
    /// assert_eq!(err.unwrap_err().field(), "timeout");
    /// ```
    pub fn build(self) -> Result<SaveOptions, ConfigError> {
        self.options.validate()?;
        Ok(self.options)
    }
}

/// The serde form of [`SaveOptions`]: every field optional (the default),
/// unknown fields refused, the timeout as a duration string (`"1m30s"`).
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SaveOptionsRepr {
    step: Option<u64>,
    #[serde(with = "crate::serde_duration")]
    timeout: Duration,
    metadata: BTreeMap<String, String>,
    compression: Compression,
    #[serde(skip_serializing_if = "Option::is_none")]
    chunking: Option<Chunking>,
    digest: DigestAlgorithm,
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<String>,
}

impl Default for SaveOptionsRepr {
    fn default() -> Self {
        SaveOptions::default().into()
    }
}

impl From<SaveOptions> for SaveOptionsRepr {
    fn from(o: SaveOptions) -> Self {
        SaveOptionsRepr {
            step: o.step,
            timeout: o.timeout,
            metadata: o.metadata,
            compression: o.compression,
            chunking: o.chunking,
            digest: o.digest,
            base: o.base,
        }
    }
}

impl TryFrom<SaveOptionsRepr> for SaveOptions {
    type Error = ConfigError;

    fn try_from(r: SaveOptionsRepr) -> Result<Self, ConfigError> {
        let options = SaveOptions {
            step: r.step,
            timeout: r.timeout,
            metadata: r.metadata,
            compression: r.compression,
            chunking: r.chunking,
            digest: r.digest,
            base: r.base,
        };
        options.validate()?;
        Ok(options)
    }
}

/// Options of one load: plain data, built with [`LoadOptions::builder`] or
/// with the chained setters of [`LoadOptions::new`].
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
#[serde(try_from = "LoadOptionsRepr", into = "LoadOptionsRepr")]
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

    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::LoadOptions;
    /// let options = LoadOptions::builder().verify(false).build()?;
    /// assert_eq!(options, LoadOptions::new().verify(false));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> LoadOptionsBuilder {
        LoadOptionsBuilder {
            options: LoadOptions::default(),
        }
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

    /// Checks the options, as [`LoadOptionsBuilder::build`] and
    /// deserialization do. Every combination of the two switches is valid.
    ///
    /// # Errors
    ///
    /// None today; a [`ConfigError`] should a rule be added.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::checkpoint::LoadOptions::new().verify(false).validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// Builds [`LoadOptions`], validating them in [`build`](Self::build).
///
/// # Examples
///
/// ```
/// use steadfast::checkpoint::LoadOptions;
/// let options = LoadOptions::builder().strict(false).build()?;
/// assert!(options.verify && !options.strict);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LoadOptionsBuilder {
    options: LoadOptions,
}

impl LoadOptionsBuilder {
    /// Sets whether digests are checked.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = steadfast::checkpoint::LoadOptions::builder().verify(false).build()?;
    /// assert!(!options.verify);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn verify(mut self, verify: bool) -> Self {
        self.options.verify = verify;
        self
    }

    /// Sets whether a different world size is refused.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = steadfast::checkpoint::LoadOptions::builder().strict(false).build()?;
    /// assert!(!options.strict);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn strict(mut self, strict: bool) -> Self {
        self.options.strict = strict;
        self
    }

    /// Validates the options.
    ///
    /// # Errors
    ///
    /// As [`LoadOptions::validate`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::checkpoint::LoadOptions::builder().build().is_ok());
    /// ```
    pub fn build(self) -> Result<LoadOptions, ConfigError> {
        self.options.validate()?;
        Ok(self.options)
    }
}

/// The serde form of [`LoadOptions`]: every field optional (the default),
/// unknown fields refused.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LoadOptionsRepr {
    verify: bool,
    strict: bool,
}

impl Default for LoadOptionsRepr {
    fn default() -> Self {
        LoadOptions::default().into()
    }
}

impl From<LoadOptions> for LoadOptionsRepr {
    fn from(o: LoadOptions) -> Self {
        LoadOptionsRepr {
            verify: o.verify,
            strict: o.strict,
        }
    }
}

impl TryFrom<LoadOptionsRepr> for LoadOptions {
    type Error = ConfigError;

    fn try_from(r: LoadOptionsRepr) -> Result<Self, ConfigError> {
        let options = LoadOptions {
            verify: r.verify,
            strict: r.strict,
        };
        options.validate()?;
        Ok(options)
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
        assert!(serde_json::from_str::<CheckpointOptions>(r#"{"frame_size": 0}"#).is_err());
        let framed: CheckpointOptions = serde_json::from_str(r#"{"frame_size": 4096}"#).unwrap();
        assert_eq!(framed.frame_size(), 4096);
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
    fn every_type_validates_when_built_and_when_deserialized() {
        assert!(serde_json::from_str::<SaveOptions>(r#"{"timeout": "0s"}"#).is_err());
        assert!(serde_json::from_str::<SaveOptions>(r#"{"stepp": 1}"#).is_err());
        assert_eq!(
            serde_json::from_str::<SaveOptions>("{}").unwrap(),
            SaveOptions::default()
        );
        assert_eq!(
            serde_json::from_str::<SaveOptions>(r#"{"step": 4, "timeout": "10s"}"#).unwrap(),
            SaveOptions::new().step(4).timeout(Duration::from_secs(10))
        );
        assert!(SaveOptions::builder()
            .timeout(Duration::ZERO)
            .build()
            .is_err());
        assert!(serde_json::from_str::<LoadOptions>(r#"{"verify": false, "x": 1}"#).is_err());
        assert_eq!(
            serde_json::from_str::<LoadOptions>(r#"{"strict": false}"#).unwrap(),
            LoadOptions::new().strict(false)
        );
        assert!(serde_json::from_str::<CheckpointOptions>(r#"{"max_manifest_size": 1}"#).is_err());
        assert!(serde_json::from_str::<CheckpointOptions>(r#"{"chunk": 1}"#).is_err());
        assert!(serde_json::from_str::<CheckpointOptions>(r#"{"cleanup_grace": "0s"}"#).is_err());
        assert_eq!(
            serde_json::from_str::<CheckpointOptions>(r#"{"cleanup_grace": "1h"}"#)
                .unwrap()
                .cleanup_grace(),
            Duration::from_secs(3600)
        );
        assert!(CheckpointOptions::builder()
            .cleanup_grace(Duration::ZERO)
            .build()
            .is_err());
    }

    #[test]
    fn chunked_save_options_round_trip_and_validate() {
        use crate::checkpoint::{Chunking, DigestAlgorithm};
        let options = SaveOptions::builder()
            .chunking(Chunking::with_average_size(65536).unwrap())
            .digest(DigestAlgorithm::Blake3)
            .base("step-1")
            .build()
            .unwrap();
        let json = serde_json::to_string(&options).unwrap();
        assert!(
            json.contains(r#""chunking":{"average_size":65536}"#),
            "{json}"
        );
        assert!(json.contains(r#""digest":"blake3""#), "{json}");
        assert!(json.contains(r#""base":"step-1""#), "{json}");
        assert_eq!(serde_json::from_str::<SaveOptions>(&json).unwrap(), options);
        // Absent: not chunked, SHA-256, no base.
        let plain: SaveOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(plain.chunking, None);
        assert_eq!(plain.digest, DigestAlgorithm::Sha256);
        assert_eq!(plain.base, None);
        assert!(!serde_json::to_string(&plain).unwrap().contains("chunking"));
        // A base is only used by a chunked save.
        let err = SaveOptions::new().base("b").validate().unwrap_err();
        assert_eq!(err.field(), "base");
        assert!(serde_json::from_str::<SaveOptions>(r#"{"base": "b"}"#).is_err());
        assert!(
            serde_json::from_str::<SaveOptions>(r#"{"chunking": {"average_size": 1}}"#).is_err()
        );
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
