//! The checkpoint manager's configuration: [`CheckpointManagerConfig`], its
//! builder, and what a save that comes due while another is running does
//! ([`OverlapPolicy`]).
//!
//! The config is plain data that (de)serializes with readable durations
//! (`"5m"`, `"7d"`, `"250ms"`), under keys prefixed `checkpoint_` so that
//! they can sit in a job's own flat config file. It is checked by one
//! [`validate`](CheckpointManagerConfig::validate), which the builder and
//! deserialization both call; errors name the field as the config file does
//! (`checkpoint_interval`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint::{validate_name, Chunking, Compression, DigestAlgorithm, SaveOptions};
use crate::error::ConfigError;

use super::location::{validate_replication, ReplicaLocation, StorageLocation};
use super::retention::RetentionPolicy;
use crate::storage::ConsistencyLevel;

/// The config file keys of the four retention rules, in the order
/// [`RetentionPolicy::validate_fields`] takes them.
const RETENTION_FIELDS: [&str; 4] = [
    "checkpoint_keep_last",
    "checkpoint_retention",
    "checkpoint_keep_every_n_steps",
    "checkpoint_keep_period",
];

/// How a checkpoint manager schedules, names, compresses, stores, retains
/// and bounds its checkpoints.
///
/// Plain data: set the fields, or use [`CheckpointManagerConfig::builder`],
/// or deserialize it; [`validate`](Self::validate) checks it (the builder
/// and deserialization call it). With neither `interval` nor
/// `every_n_steps`, checkpoints are taken only on demand.
///
/// # Default
///
/// | field | key | default |
/// |---|---|---|
/// | `interval` | `checkpoint_interval` | none |
/// | `every_n_steps` | `checkpoint_every_n_steps` | none |
/// | `retention` | `checkpoint_retention` (keep for an age), `checkpoint_keep_last`, `checkpoint_keep_every_n_steps`, `checkpoint_keep_period` | keep everything |
/// | `compression` | `checkpoint_compression` | `"none"` |
/// | `chunking` | `checkpoint_chunking`: `true`, `false` or `{ "average_size": 65536 }` (`true`: 1 MiB on average) | none (one object per shard) |
/// | `digest` | `checkpoint_digest`: `"sha256"` or `"blake3"` (the address of chunks) | `"sha256"` |
/// | `storage` | `checkpoint_storage` | none (the manager is given its storage) |
/// | `prefix` | `checkpoint_prefix` | `"checkpoints"` |
/// | `overlap` | `checkpoint_overlap` | `"skip"` |
/// | `save_timeout` | `checkpoint_save_timeout` | `"5m"` |
/// | `load_timeout` | `checkpoint_load_timeout` | none (no limit) |
/// | `replication_factor` | `checkpoint_replication_factor` (or `replication_factor`) | 1 (no replication) |
/// | `consistency_level` | `checkpoint_consistency_level` (or `consistency_level`): `"one"`, `"quorum"`, `"all"` | `"quorum"` |
/// | `geo_distributed` | `checkpoint_geo_distributed` (or `geo_distributed`) | `false` |
/// | `replicas` | `checkpoint_replicas`: `[{ "location": "/mnt/a/ckpt", "domain": "a" }, ...]` | none |
///
/// With `replication_factor` above 1, checkpoints are stored on that many
/// replicas (listed in `checkpoint_replicas`, instead of
/// `checkpoint_storage`) through a
/// [`ReplicatedStorage`](crate::storage::ReplicatedStorage) that
/// [`open_storage`](Self::open_storage) opens: a write succeeds once the
/// consistency level's quorum of replicas holds it (in distinct failure
/// domains with `geo_distributed`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::checkpoint::Compression;
/// use steadfast::manager::{CheckpointManagerConfig, OverlapPolicy, StorageLocation};
///
/// let config: CheckpointManagerConfig = serde_json::from_str(r#"{
///     "checkpoint_interval": "5m",
///     "checkpoint_retention": "7d",
///     "checkpoint_keep_last": 3,
///     "checkpoint_compression": "zstd:1",
///     "checkpoint_storage": "/var/lib/job/checkpoints"
/// }"#)?;
/// assert_eq!(config.interval, Some(Duration::from_secs(300)));
/// assert_eq!(config.retention.max_age(), Some(Duration::from_secs(7 * 86_400)));
/// assert_eq!(config.compression, Compression::Zstd { level: 1 });
/// assert_eq!(config.storage, Some(StorageLocation::Local("/var/lib/job/checkpoints".into())));
/// assert_eq!(config.overlap, OverlapPolicy::Skip);
///
/// let err = serde_json::from_str::<CheckpointManagerConfig>(r#"{"checkpoint_interval": "0s"}"#)
///     .unwrap_err();
/// assert!(err.to_string().contains("checkpoint_interval"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "CheckpointManagerConfigRepr",
    into = "CheckpointManagerConfigRepr"
)]
pub struct CheckpointManagerConfig {
    /// Take a checkpoint every this long (more than zero), when the schedule
    /// runs.
    pub interval: Option<Duration>,
    /// Take a checkpoint every this many calls of `step` (at least 1).
    pub every_n_steps: Option<u64>,
    /// Which checkpoints to keep.
    pub retention: RetentionPolicy,
    /// How shards are stored.
    pub compression: Compression,
    /// Store shards as content-defined chunks, writing only those the
    /// storage lacks and storing states unchanged since the last committed
    /// save by reference ([`CheckpointManagerBuilder::chunking`](super::CheckpointManagerBuilder::chunking));
    /// `None`: one object per shard.
    pub chunking: Option<Chunking>,
    /// The digest that addresses chunks (with [`chunking`](Self::chunking)).
    pub digest: DigestAlgorithm,
    /// Where checkpoints are stored, when the config says so.
    pub storage: Option<StorageLocation>,
    /// The name prefix of every managed checkpoint (a valid checkpoint
    /// name: `run-1`, `jobs/train`): names are `{prefix}/ckpt-...`.
    pub prefix: String,
    /// What a save that comes due while another is in flight does.
    pub overlap: OverlapPolicy,
    /// How long a save may wait for the other ranks at each collective step
    /// (more than zero).
    pub save_timeout: Duration,
    /// How long a restore may take in all (more than zero); none for no
    /// limit.
    pub load_timeout: Option<Duration>,
    /// On how many replicas checkpoints are stored (1: no replication; more
    /// needs as many [`replicas`](Self::replicas)).
    pub replication_factor: usize,
    /// How many replicas a write needs (with replication).
    pub consistency_level: ConsistencyLevel,
    /// Whether a write needs its quorum in distinct failure domains (every
    /// replica then names its own domain).
    pub geo_distributed: bool,
    /// The replicas, when checkpoints are replicated (instead of
    /// [`storage`](Self::storage)).
    pub replicas: Vec<ReplicaLocation>,
}

impl Default for CheckpointManagerConfig {
    /// The documented defaults (see the `# Default` table on the type).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::CheckpointManagerConfig;
    /// assert_eq!(CheckpointManagerConfig::default(), CheckpointManagerConfig::builder().build()?);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    fn default() -> Self {
        CheckpointManagerConfig {
            interval: None,
            every_n_steps: None,
            retention: RetentionPolicy::keep_all(),
            compression: Compression::None,
            chunking: None,
            digest: DigestAlgorithm::Sha256,
            storage: None,
            prefix: CheckpointManagerConfig::DEFAULT_PREFIX.to_string(),
            overlap: OverlapPolicy::Skip,
            save_timeout: SaveOptions::default().timeout,
            load_timeout: None,
            replication_factor: 1,
            consistency_level: ConsistencyLevel::Quorum,
            geo_distributed: false,
            replicas: Vec::new(),
        }
    }
}

impl CheckpointManagerConfig {
    /// The default [`prefix`](Self::prefix).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::CheckpointManagerConfig;
    /// assert_eq!(CheckpointManagerConfig::default().prefix, CheckpointManagerConfig::DEFAULT_PREFIX);
    /// ```
    pub const DEFAULT_PREFIX: &'static str = "checkpoints";

    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::manager::{CheckpointManagerConfig, RetentionPolicy};
    ///
    /// let config = CheckpointManagerConfig::builder()
    ///     .every_n_steps(1000)
    ///     .retention(RetentionPolicy::keep_all().keep_last(5))
    ///     .prefix("run-1")
    ///     .build()?;
    /// assert_eq!(config.every_n_steps, Some(1000));
    /// assert_eq!(config.interval, None);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> CheckpointManagerConfigBuilder {
        CheckpointManagerConfigBuilder {
            config: CheckpointManagerConfig::default(),
        }
    }

    /// Checks every rule of the config; called by
    /// [`CheckpointManagerConfigBuilder::build`] and by deserialization.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the config key: a zero
    /// `checkpoint_interval`, `checkpoint_every_n_steps`,
    /// `checkpoint_save_timeout` or `checkpoint_load_timeout`; a zero
    /// retention rule; a zstd level out of range; a prefix that is not a
    /// valid checkpoint name; an empty storage location, or a storage URL in
    /// a build without the `object-store` feature; a replication factor of
    /// zero, or one that differs from the number of replicas listed (a
    /// factor above 1 needs its replicas); replicas listed beside
    /// `checkpoint_storage`; `geo_distributed` without replicas each in its
    /// own named domain.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::manager::CheckpointManagerConfig;
    ///
    /// let mut config = CheckpointManagerConfig::default();
    /// assert!(config.validate().is_ok()); // checkpoints on demand only
    /// config.interval = Some(Duration::ZERO);
    /// assert_eq!(config.validate().unwrap_err().field(), "checkpoint_interval");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval.is_some_and(|i| i.is_zero()) {
            return Err(ConfigError::new(
                "checkpoint_interval",
                "must be greater than zero when set (leave it out for checkpoints on demand)",
            ));
        }
        if self.every_n_steps == Some(0) {
            return Err(ConfigError::new(
                "checkpoint_every_n_steps",
                "must be at least 1 when set (leave it out for checkpoints on demand)",
            ));
        }
        self.retention.validate_fields(RETENTION_FIELDS)?;
        self.compression
            .validate()
            .map_err(|e| ConfigError::new("checkpoint_compression", e.reason()))?;
        if let Some(storage) = &self.storage {
            storage.validate()?;
        }
        if let Err(e) = validate_name(&self.prefix) {
            return Err(ConfigError::new(
                "checkpoint_prefix",
                format!("must be a valid checkpoint name: {e}"),
            ));
        }
        if self.save_timeout.is_zero() {
            return Err(ConfigError::new(
                "checkpoint_save_timeout",
                "must be greater than zero: it is how long a rank waits for the others",
            ));
        }
        if self.load_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new(
                "checkpoint_load_timeout",
                "must be greater than zero when set (leave it out for no limit)",
            ));
        }
        validate_replication(
            self.replication_factor,
            &self.replicas,
            self.geo_distributed,
            self.storage.as_ref(),
        )
    }
}

/// Builds a [`CheckpointManagerConfig`], validating it in
/// [`build`](Self::build).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::manager::CheckpointManagerConfig;
///
/// let err = CheckpointManagerConfig::builder()
///     .interval(Duration::ZERO)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.field(), "checkpoint_interval");
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct CheckpointManagerConfigBuilder {
    config: CheckpointManagerConfig,
}

impl CheckpointManagerConfigBuilder {
    /// Takes a checkpoint every `interval` when the schedule runs (more than
    /// zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = steadfast::manager::CheckpointManagerConfig::builder()
    ///     .interval(Duration::from_secs(300))
    ///     .build()?;
    /// assert_eq!(config.interval, Some(Duration::from_secs(300)));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn interval(mut self, interval: Duration) -> Self {
        self.config.interval = Some(interval);
        self
    }

    /// Takes a checkpoint every `n` steps (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = steadfast::manager::CheckpointManagerConfig::builder().every_n_steps(1000).build()?;
    /// assert_eq!(config.every_n_steps, Some(1000));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn every_n_steps(mut self, n: u64) -> Self {
        self.config.every_n_steps = Some(n);
        self
    }

    /// Which checkpoints to keep (default: all).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::{CheckpointManagerConfig, RetentionPolicy};
    /// let config = CheckpointManagerConfig::builder()
    ///     .retention(RetentionPolicy::keep_all().keep_last(3))
    ///     .build()?;
    /// assert_eq!(config.retention.last(), Some(3));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn retention(mut self, retention: RetentionPolicy) -> Self {
        self.config.retention = retention;
        self
    }

    /// How shards are stored (default [`Compression::None`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::Compression;
    /// use steadfast::manager::CheckpointManagerConfig;
    /// let config = CheckpointManagerConfig::builder().compression(Compression::zstd()).build()?;
    /// assert!(config.compression.is_compressed());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn compression(mut self, compression: Compression) -> Self {
        self.config.compression = compression;
        self
    }

    /// Stores shards as content-defined chunks of these sizes (default:
    /// one object per shard).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::Chunking;
    /// use steadfast::manager::CheckpointManagerConfig;
    /// let config = CheckpointManagerConfig::builder().chunking(Chunking::default()).build()?;
    /// assert_eq!(config.chunking, Some(Chunking::default()));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn chunking(mut self, chunking: Chunking) -> Self {
        self.config.chunking = Some(chunking);
        self
    }

    /// The digest that addresses chunks (default SHA-256).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::checkpoint::DigestAlgorithm;
    /// use steadfast::manager::CheckpointManagerConfig;
    /// let config = CheckpointManagerConfig::builder().digest(DigestAlgorithm::Blake3).build()?;
    /// assert_eq!(config.digest, DigestAlgorithm::Blake3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn digest(mut self, digest: DigestAlgorithm) -> Self {
        self.config.digest = digest;
        self
    }

    /// Where checkpoints are stored.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::{CheckpointManagerConfig, StorageLocation};
    /// let config = CheckpointManagerConfig::builder()
    ///     .storage(StorageLocation::Local("/tmp/ckpt".into()))
    ///     .build()?;
    /// assert!(config.storage.is_some());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn storage(mut self, storage: StorageLocation) -> Self {
        self.config.storage = Some(storage);
        self
    }

    /// The name prefix of every managed checkpoint (default
    /// [`CheckpointManagerConfig::DEFAULT_PREFIX`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::CheckpointManagerConfig;
    /// assert_eq!(CheckpointManagerConfig::builder().prefix("run-1").build()?.prefix, "run-1");
    /// assert!(CheckpointManagerConfig::builder().prefix("../up").build().is_err());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.prefix = prefix.into();
        self
    }

    /// What a save that comes due while another is in flight does (default
    /// [`OverlapPolicy::Skip`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::{CheckpointManagerConfig, OverlapPolicy};
    /// let config = CheckpointManagerConfig::builder().overlap(OverlapPolicy::Queue).build()?;
    /// assert_eq!(config.overlap, OverlapPolicy::Queue);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn overlap(mut self, overlap: OverlapPolicy) -> Self {
        self.config.overlap = overlap;
        self
    }

    /// How long a save waits for the other ranks at each collective step
    /// (default 5 minutes; more than zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::manager::CheckpointManagerConfig;
    /// let config = CheckpointManagerConfig::builder().save_timeout(Duration::from_secs(60)).build()?;
    /// assert_eq!(config.save_timeout, Duration::from_secs(60));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn save_timeout(mut self, timeout: Duration) -> Self {
        self.config.save_timeout = timeout;
        self
    }

    /// Bounds how long a restore may take (default: no limit; more than
    /// zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::manager::CheckpointManagerConfig;
    /// let config = CheckpointManagerConfig::builder().load_timeout(Duration::from_secs(600)).build()?;
    /// assert_eq!(config.load_timeout, Some(Duration::from_secs(600)));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn load_timeout(mut self, timeout: Duration) -> Self {
        self.config.load_timeout = Some(timeout);
        self
    }

    /// Stores checkpoints on `replicas` (as many as the replication factor,
    /// which this sets), instead of one storage location.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::{CheckpointManagerConfig, ReplicaLocation, StorageLocation};
    /// let replicas = ["/mnt/a", "/mnt/b", "/mnt/c"]
    ///     .map(|p| ReplicaLocation::new(StorageLocation::Local(p.into())));
    /// let config = CheckpointManagerConfig::builder().replicas(replicas).build()?;
    /// assert_eq!(config.replication_factor, 3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn replicas(mut self, replicas: impl IntoIterator<Item = ReplicaLocation>) -> Self {
        self.config.replicas = replicas.into_iter().collect();
        self.config.replication_factor = self.config.replicas.len().max(1);
        self
    }

    /// How many replicas a write needs (default
    /// [`ConsistencyLevel::Quorum`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::CheckpointManagerConfig;
    /// use steadfast::storage::ConsistencyLevel;
    /// let config = CheckpointManagerConfig::builder().consistency_level(ConsistencyLevel::All).build()?;
    /// assert_eq!(config.consistency_level, ConsistencyLevel::All);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn consistency_level(mut self, level: ConsistencyLevel) -> Self {
        self.config.consistency_level = level;
        self
    }

    /// Whether a write needs its quorum in distinct failure domains
    /// (default `false`; needs replicas, each in its own domain).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::{CheckpointManagerConfig, ReplicaLocation, StorageLocation};
    /// let replicas = ["a", "b", "c"]
    ///     .map(|d| ReplicaLocation::new(StorageLocation::Local(format!("/mnt/{d}").into())).domain(d));
    /// let config = CheckpointManagerConfig::builder().replicas(replicas).geo_distributed(true).build()?;
    /// assert!(config.geo_distributed);
    /// assert!(CheckpointManagerConfig::builder().geo_distributed(true).build().is_err());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn geo_distributed(mut self, yes: bool) -> Self {
        self.config.geo_distributed = yes;
        self
    }

    /// Validates and returns the config.
    ///
    /// # Errors
    ///
    /// As [`CheckpointManagerConfig::validate`].
    ///
    /// # Examples
    ///
    /// ```
    /// let err = steadfast::manager::CheckpointManagerConfig::builder().every_n_steps(0).build();
    /// assert_eq!(err.unwrap_err().field(), "checkpoint_every_n_steps");
    /// ```
    pub fn build(self) -> Result<CheckpointManagerConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

/// The serialized form of a [`CheckpointManagerConfig`]: every key optional
/// and defaulting as the builder does, unknown keys refused, durations
/// readable; keys that are not set are left out.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CheckpointManagerConfigRepr {
    #[serde(
        with = "crate::serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    checkpoint_interval: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint_every_n_steps: Option<u64>,
    /// Keep checkpoints younger than this (`RetentionPolicy::keep_for`).
    #[serde(
        with = "crate::serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    checkpoint_retention: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint_keep_last: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint_keep_every_n_steps: Option<u64>,
    #[serde(
        with = "crate::serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    checkpoint_keep_period: Option<Duration>,
    checkpoint_compression: Compression,
    #[serde(skip_serializing_if = "ChunkingKey::is_off")]
    checkpoint_chunking: ChunkingKey,
    #[serde(skip_serializing_if = "is_sha256")]
    checkpoint_digest: DigestAlgorithm,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint_storage: Option<StorageLocation>,
    checkpoint_prefix: String,
    checkpoint_overlap: OverlapPolicy,
    #[serde(with = "crate::serde_duration")]
    checkpoint_save_timeout: Duration,
    #[serde(
        with = "crate::serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    checkpoint_load_timeout: Option<Duration>,
    #[serde(alias = "replication_factor", skip_serializing_if = "is_one")]
    checkpoint_replication_factor: usize,
    #[serde(alias = "consistency_level", skip_serializing_if = "is_quorum")]
    checkpoint_consistency_level: ConsistencyLevel,
    #[serde(alias = "geo_distributed", skip_serializing_if = "is_false")]
    checkpoint_geo_distributed: bool,
    #[serde(alias = "replicas", skip_serializing_if = "Vec::is_empty")]
    checkpoint_replicas: Vec<ReplicaLocation>,
}

/// `checkpoint_chunking`: `true` (the default sizes), `false`, or the sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ChunkingKey {
    Switch(bool),
    Sizes(Chunking),
    #[default]
    Off,
}

impl Serialize for ChunkingKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.chunking() {
            Some(chunking) => chunking.serialize(serializer),
            None => serializer.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for ChunkingKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = ChunkingKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or { \"average_size\": BYTES }")
            }

            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<ChunkingKey, E> {
                Ok(ChunkingKey::Switch(on))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ChunkingKey, A::Error> {
                Chunking::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ChunkingKey::Sizes)
            }
        }

        deserializer.deserialize_any(KeyVisitor)
    }
}

impl ChunkingKey {
    fn is_off(&self) -> bool {
        self.chunking().is_none()
    }

    fn chunking(self) -> Option<Chunking> {
        match self {
            ChunkingKey::Switch(true) => Some(Chunking::default()),
            ChunkingKey::Sizes(chunking) => Some(chunking),
            ChunkingKey::Switch(false) | ChunkingKey::Off => None,
        }
    }
}

fn is_sha256(digest: &DigestAlgorithm) -> bool {
    *digest == DigestAlgorithm::Sha256
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn is_quorum(level: &ConsistencyLevel) -> bool {
    *level == ConsistencyLevel::Quorum
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for CheckpointManagerConfigRepr {
    fn default() -> Self {
        CheckpointManagerConfig::default().into()
    }
}

impl From<CheckpointManagerConfig> for CheckpointManagerConfigRepr {
    fn from(c: CheckpointManagerConfig) -> Self {
        CheckpointManagerConfigRepr {
            checkpoint_interval: c.interval,
            checkpoint_every_n_steps: c.every_n_steps,
            checkpoint_retention: c.retention.max_age(),
            checkpoint_keep_last: c.retention.last(),
            checkpoint_keep_every_n_steps: c.retention.every_n_steps(),
            checkpoint_keep_period: c.retention.period(),
            checkpoint_compression: c.compression,
            checkpoint_chunking: c.chunking.map_or(ChunkingKey::Off, ChunkingKey::Sizes),
            checkpoint_digest: c.digest,
            checkpoint_storage: c.storage,
            checkpoint_prefix: c.prefix,
            checkpoint_overlap: c.overlap,
            checkpoint_save_timeout: c.save_timeout,
            checkpoint_load_timeout: c.load_timeout,
            checkpoint_replication_factor: c.replication_factor,
            checkpoint_consistency_level: c.consistency_level,
            checkpoint_geo_distributed: c.geo_distributed,
            checkpoint_replicas: c.replicas,
        }
    }
}

impl TryFrom<CheckpointManagerConfigRepr> for CheckpointManagerConfig {
    type Error = ConfigError;

    fn try_from(r: CheckpointManagerConfigRepr) -> Result<Self, ConfigError> {
        let mut retention = RetentionPolicy::keep_all();
        if let Some(n) = r.checkpoint_keep_last {
            retention = retention.keep_last(n);
        }
        if let Some(age) = r.checkpoint_retention {
            retention = retention.keep_for(age);
        }
        if let Some(k) = r.checkpoint_keep_every_n_steps {
            retention = retention.keep_every_n_steps(k);
        }
        if let Some(period) = r.checkpoint_keep_period {
            retention = retention.keep_one_per(period);
        }
        let config = CheckpointManagerConfig {
            interval: r.checkpoint_interval,
            every_n_steps: r.checkpoint_every_n_steps,
            retention,
            compression: r.checkpoint_compression,
            chunking: r.checkpoint_chunking.chunking(),
            digest: r.checkpoint_digest,
            storage: r.checkpoint_storage,
            prefix: r.checkpoint_prefix,
            overlap: r.checkpoint_overlap,
            save_timeout: r.checkpoint_save_timeout,
            load_timeout: r.checkpoint_load_timeout,
            replication_factor: r.checkpoint_replication_factor,
            consistency_level: r.checkpoint_consistency_level,
            geo_distributed: r.checkpoint_geo_distributed,
            replicas: r.checkpoint_replicas,
        };
        config.validate()?;
        Ok(config)
    }
}

/// What happens when a save comes due while the previous one is still in
/// flight (at most one save runs per manager).
///
/// Written `"skip"`, `"wait"` or `"queue"` in a config file.
///
/// # Examples
///
/// ```
/// use steadfast::manager::OverlapPolicy;
///
/// assert_eq!(OverlapPolicy::default(), OverlapPolicy::Skip);
/// assert_eq!("queue".parse::<OverlapPolicy>()?, OverlapPolicy::Queue);
/// assert_eq!(serde_json::to_string(&OverlapPolicy::Wait).unwrap(), "\"wait\"");
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OverlapPolicy {
    /// The new save is skipped, and the skip counted and reported (the
    /// default).
    #[default]
    Skip,
    /// The caller waits for the save in flight, then saves.
    Wait,
    /// One save is queued to start when the one in flight ends; a further
    /// one due meanwhile is skipped.
    Queue,
}

impl fmt::Display for OverlapPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OverlapPolicy::Skip => "skip",
            OverlapPolicy::Wait => "wait",
            OverlapPolicy::Queue => "queue",
        })
    }
}

impl FromStr for OverlapPolicy {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "skip" => Ok(OverlapPolicy::Skip),
            "wait" => Ok(OverlapPolicy::Wait),
            "queue" => Ok(OverlapPolicy::Queue),
            _ => Err(ConfigError::new(
                "checkpoint_overlap",
                format!(
                    "unknown overlap policy {text:?}: expected \"skip\", \"wait\" or \"queue\""
                ),
            )),
        }
    }
}

crate::serde_text::serde_as_text!(OverlapPolicy);

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
