//! What [`ChaosStorage`](super::ChaosStorage) injects into a storage:
//! [`StorageChaosConfig`] and its validating builder, plain data validated
//! when built and when deserialized, as [`ChaosConfig`](super::ChaosConfig)
//! is.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::{check_latency, check_rate};
use crate::storage::testing::Operation;
use crate::ConfigError;

/// What [`ChaosStorage`](super::ChaosStorage) injects into a storage's
/// calls, and into which calls.
///
/// Each fault has a rate, the probability that one call of a selected
/// operation suffers it:
///
/// - `latency_rate`: the call waits first, for a delay drawn in
///   `min_latency..=max_latency`, on tokio's clock;
/// - `error_rate`: the call fails with
///   [`StorageError::Injected`](crate::storage::StorageError::Injected)
///   (transient) and does not reach the storage;
/// - `drop_rate`: the call is cancelled: it is polled for `drop_after`
///   (zero: never) and dropped, and the caller sees a transient
///   [`StorageError::Backend`](crate::storage::StorageError::Backend) whose
///   source is a [`Dropped`](super::Dropped);
/// - `failed_write_rate` (`put`, `put_if_absent`, `put_stream`'s commit,
///   `delete`): the write lands, and the caller is told it failed
///   ([`StorageError::Injected`](crate::storage::StorageError::Injected)),
///   as when the answer is lost on the way back;
/// - `corrupt_read_rate` (`get`, `get_sized`, `get_range`, `get_stream`):
///   the bytes come back with one bit flipped;
/// - `torn_read_rate` (the same reads): only a prefix of the bytes comes
///   back (`get_sized`, which knows the size to expect, fails with
///   [`StorageError::LengthMismatch`](crate::storage::StorageError::LengthMismatch)).
///
/// `operations` selects the calls chaos touches (by
/// [`Operation`]; `get_sized` counts as
/// [`GetStream`](Operation::GetStream), `exists` as
/// [`Head`](Operation::Head)); the others pass through untouched.
/// `seed` and `enabled` are as in [`ChaosConfig`](super::ChaosConfig).
///
/// In JSON: `{"seed": 7, "corrupt_read_rate": 0.1, "operations": ["get",
/// "get_stream"]}`; every field may be left out.
///
/// # Default
///
/// - `seed`: 0, `enabled`: true
/// - every rate: 0.0 (nothing injected)
/// - `min_latency`, `max_latency`, `drop_after`: 0s
/// - `operations`: every operation
///
/// # Examples
///
/// ```
/// use steadfast::chaos::StorageChaosConfig;
/// use steadfast::storage::testing::Operation;
///
/// let config = StorageChaosConfig::builder()
///     .seed(99)
///     .corrupt_reads(0.2)
///     .failed_writes(0.1)
///     .operations([Operation::Get, Operation::GetStream, Operation::Put])
///     .build()?;
/// assert!(config.targets(Operation::Put));
/// assert!(!config.targets(Operation::Delete));
///
/// let json = serde_json::to_string(&config).unwrap();
/// assert!(json.contains(r#""operations":["put","get","get_stream"]"#));
/// assert_eq!(serde_json::from_str::<StorageChaosConfig>(&json).unwrap(), config);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StorageChaosConfigRepr", into = "StorageChaosConfigRepr")]
pub struct StorageChaosConfig {
    seed: u64,
    enabled: bool,
    latency_rate: f64,
    min_latency: Duration,
    max_latency: Duration,
    error_rate: f64,
    drop_rate: f64,
    drop_after: Duration,
    failed_write_rate: f64,
    corrupt_read_rate: f64,
    torn_read_rate: f64,
    operations: BTreeSet<Operation>,
}

impl Default for StorageChaosConfig {
    /// The documented defaults: nothing is injected, into any operation.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::chaos::StorageChaosConfig;
    /// assert_eq!(StorageChaosConfig::default(), StorageChaosConfig::builder().build()?);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    fn default() -> Self {
        StorageChaosConfig {
            seed: 0,
            enabled: true,
            latency_rate: 0.0,
            min_latency: Duration::ZERO,
            max_latency: Duration::ZERO,
            error_rate: 0.0,
            drop_rate: 0.0,
            drop_after: Duration::ZERO,
            failed_write_rate: 0.0,
            corrupt_read_rate: 0.0,
            torn_read_rate: 0.0,
            operations: Operation::ALL.into_iter().collect(),
        }
    }
}

impl StorageChaosConfig {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = steadfast::chaos::StorageChaosConfig::builder().errors(0.5).build()?;
    /// assert_eq!(config.error_rate(), 0.5);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> StorageChaosConfigBuilder {
        StorageChaosConfigBuilder {
            config: StorageChaosConfig::default(),
        }
    }

    /// Checks every rule: each rate in `0.0..=1.0`, `max_latency` at least
    /// `min_latency`, at least one operation. Called by
    /// [`StorageChaosConfigBuilder::build`] and by deserialization.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::chaos::StorageChaosConfig::default().validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_rate("latency_rate", self.latency_rate)?;
        check_rate("error_rate", self.error_rate)?;
        check_rate("drop_rate", self.drop_rate)?;
        check_rate("failed_write_rate", self.failed_write_rate)?;
        check_rate("corrupt_read_rate", self.corrupt_read_rate)?;
        check_rate("torn_read_rate", self.torn_read_rate)?;
        check_latency(self.min_latency, self.max_latency)?;
        if self.operations.is_empty() {
            return Err(ConfigError::new(
                "operations",
                "must name at least one operation (turn the switch off to inject nothing)",
            ));
        }
        Ok(())
    }

    /// The seed of the random generator.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::chaos::StorageChaosConfig::default().seed(), 0);
    /// ```
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Whether injection starts on.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::chaos::StorageChaosConfig::default().enabled());
    /// ```
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The probability that a call is delayed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::chaos::StorageChaosConfig::default().latency_rate(), 0.0);
    /// ```
    pub fn latency_rate(&self) -> f64 {
        self.latency_rate
    }

    /// The shortest and the longest injected delay.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let range = steadfast::chaos::StorageChaosConfig::default().latency_range();
    /// assert_eq!(range, (Duration::ZERO, Duration::ZERO));
    /// ```
    pub fn latency_range(&self) -> (Duration, Duration) {
        (self.min_latency, self.max_latency)
    }

    /// The probability that a call fails before it reaches the storage.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::chaos::StorageChaosConfig::default().error_rate(), 0.0);
    /// ```
    pub fn error_rate(&self) -> f64 {
        self.error_rate
    }

    /// The probability that a call is cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::chaos::StorageChaosConfig::default().drop_rate(), 0.0);
    /// ```
    pub fn drop_rate(&self) -> f64 {
        self.drop_rate
    }

    /// How long a cancelled call is polled before it is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(steadfast::chaos::StorageChaosConfig::default().drop_after(), Duration::ZERO);
    /// ```
    pub fn drop_after(&self) -> Duration {
        self.drop_after
    }

    /// The probability that a write lands and is reported failed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::chaos::StorageChaosConfig::default().failed_write_rate(), 0.0);
    /// ```
    pub fn failed_write_rate(&self) -> f64 {
        self.failed_write_rate
    }

    /// The probability that a read returns a flipped bit.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::chaos::StorageChaosConfig::default().corrupt_read_rate(), 0.0);
    /// ```
    pub fn corrupt_read_rate(&self) -> f64 {
        self.corrupt_read_rate
    }

    /// The probability that a read returns only a prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::chaos::StorageChaosConfig::default().torn_read_rate(), 0.0);
    /// ```
    pub fn torn_read_rate(&self) -> f64 {
        self.torn_read_rate
    }

    /// The operations chaos touches.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = steadfast::chaos::StorageChaosConfig::default();
    /// assert_eq!(config.operations().len(), 9);
    /// ```
    pub fn operations(&self) -> &BTreeSet<Operation> {
        &self.operations
    }

    /// Whether chaos touches `operation`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::testing::Operation;
    /// assert!(steadfast::chaos::StorageChaosConfig::default().targets(Operation::List));
    /// ```
    pub fn targets(&self, operation: Operation) -> bool {
        self.operations.contains(&operation)
    }
}

/// An [`Operation`] in a config file: its name.
mod operation_names {
    use std::collections::BTreeSet;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::storage::testing::Operation;

    pub(super) fn serialize<S: Serializer>(
        operations: &BTreeSet<Operation>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(operations.iter().map(|o| o.name()))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeSet<Operation>, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names
            .iter()
            .map(|name| {
                Operation::ALL
                    .into_iter()
                    .find(|o| o.name() == name)
                    .ok_or_else(|| {
                        D::Error::custom(format!(
                            "unknown storage operation {name:?} in operations; expected one of {}",
                            Operation::ALL.map(|o| o.name()).join(", ")
                        ))
                    })
            })
            .collect()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct StorageChaosConfigRepr {
    seed: u64,
    enabled: bool,
    latency_rate: f64,
    #[serde(with = "crate::serde_duration")]
    min_latency: Duration,
    #[serde(with = "crate::serde_duration")]
    max_latency: Duration,
    error_rate: f64,
    drop_rate: f64,
    #[serde(with = "crate::serde_duration")]
    drop_after: Duration,
    failed_write_rate: f64,
    corrupt_read_rate: f64,
    torn_read_rate: f64,
    #[serde(with = "operation_names")]
    operations: BTreeSet<Operation>,
}

impl Default for StorageChaosConfigRepr {
    fn default() -> Self {
        StorageChaosConfig::default().into()
    }
}

impl From<StorageChaosConfig> for StorageChaosConfigRepr {
    fn from(c: StorageChaosConfig) -> Self {
        StorageChaosConfigRepr {
            seed: c.seed,
            enabled: c.enabled,
            latency_rate: c.latency_rate,
            min_latency: c.min_latency,
            max_latency: c.max_latency,
            error_rate: c.error_rate,
            drop_rate: c.drop_rate,
            drop_after: c.drop_after,
            failed_write_rate: c.failed_write_rate,
            corrupt_read_rate: c.corrupt_read_rate,
            torn_read_rate: c.torn_read_rate,
            operations: c.operations,
        }
    }
}

impl TryFrom<StorageChaosConfigRepr> for StorageChaosConfig {
    type Error = ConfigError;

    fn try_from(r: StorageChaosConfigRepr) -> Result<Self, ConfigError> {
        let config = StorageChaosConfig {
            seed: r.seed,
            enabled: r.enabled,
            latency_rate: r.latency_rate,
            min_latency: r.min_latency,
            max_latency: r.max_latency,
            error_rate: r.error_rate,
            drop_rate: r.drop_rate,
            drop_after: r.drop_after,
            failed_write_rate: r.failed_write_rate,
            corrupt_read_rate: r.corrupt_read_rate,
            torn_read_rate: r.torn_read_rate,
            operations: r.operations,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Builds a [`StorageChaosConfig`]; [`build`](Self::build) checks every
/// value.
///
/// # Default
///
/// The defaults listed on [`StorageChaosConfig`]: nothing injected.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::chaos::StorageChaosConfig;
///
/// let config = StorageChaosConfig::builder()
///     .seed(3)
///     .latency_between(0.3, Duration::from_millis(1), Duration::from_millis(30))
///     .errors(0.05)
///     .torn_reads(0.05)
///     .drops(0.02, Duration::ZERO)
///     .build()?;
/// assert_eq!(config.torn_read_rate(), 0.05);
/// let err = StorageChaosConfig::builder().corrupt_reads(2.0).build().unwrap_err();
/// assert_eq!(err.field(), "corrupt_read_rate");
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct StorageChaosConfigBuilder {
    config: StorageChaosConfig,
}

impl StorageChaosConfigBuilder {
    /// The seed of the random generator (default 0).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::chaos::StorageChaosConfig::builder().seed(8).build()?;
    /// assert_eq!(c.seed(), 8);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Whether injection starts on (default true).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::chaos::StorageChaosConfig::builder().enabled(false).build()?;
    /// assert!(!c.enabled());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.config.enabled = enabled;
        self
    }

    /// Delays a call with probability `rate`, by `delay`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = steadfast::chaos::StorageChaosConfig::builder()
    ///     .latency(1.0, Duration::from_millis(3))
    ///     .build()?;
    /// assert_eq!(c.latency_rate(), 1.0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn latency(self, rate: f64, delay: Duration) -> Self {
        self.latency_between(rate, delay, delay)
    }

    /// Delays a call with probability `rate`, by a delay drawn in
    /// `min..=max`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = steadfast::chaos::StorageChaosConfig::builder()
    ///     .latency_between(0.5, Duration::from_millis(1), Duration::from_millis(9))
    ///     .build()?;
    /// assert_eq!(c.latency_range().1, Duration::from_millis(9));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn latency_between(mut self, rate: f64, min: Duration, max: Duration) -> Self {
        self.config.latency_rate = rate;
        self.config.min_latency = min;
        self.config.max_latency = max;
        self
    }

    /// Fails a call with probability `rate`, before it reaches the storage.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::chaos::StorageChaosConfig::builder().errors(0.1).build()?;
    /// assert_eq!(c.error_rate(), 0.1);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn errors(mut self, rate: f64) -> Self {
        self.config.error_rate = rate;
        self
    }

    /// Cancels a call with probability `rate`, after polling it for
    /// `after`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = steadfast::chaos::StorageChaosConfig::builder()
    ///     .drops(0.1, Duration::from_millis(5))
    ///     .build()?;
    /// assert_eq!(c.drop_after(), Duration::from_millis(5));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn drops(mut self, rate: f64, after: Duration) -> Self {
        self.config.drop_rate = rate;
        self.config.drop_after = after;
        self
    }

    /// Lands a write and reports it failed, with probability `rate`.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::chaos::StorageChaosConfig::builder().failed_writes(0.3).build()?;
    /// assert_eq!(c.failed_write_rate(), 0.3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn failed_writes(mut self, rate: f64) -> Self {
        self.config.failed_write_rate = rate;
        self
    }

    /// Flips one bit of a read's bytes with probability `rate`.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::chaos::StorageChaosConfig::builder().corrupt_reads(0.3).build()?;
    /// assert_eq!(c.corrupt_read_rate(), 0.3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn corrupt_reads(mut self, rate: f64) -> Self {
        self.config.corrupt_read_rate = rate;
        self
    }

    /// Cuts a read's bytes short with probability `rate`.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::chaos::StorageChaosConfig::builder().torn_reads(0.3).build()?;
    /// assert_eq!(c.torn_read_rate(), 0.3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn torn_reads(mut self, rate: f64) -> Self {
        self.config.torn_read_rate = rate;
        self
    }

    /// The operations chaos touches (default: all).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::testing::Operation;
    /// let c = steadfast::chaos::StorageChaosConfig::builder()
    ///     .operations([Operation::Get])
    ///     .build()?;
    /// assert_eq!(c.operations().len(), 1);
    /// assert!(steadfast::chaos::StorageChaosConfig::builder().operations([]).build().is_err());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn operations(mut self, operations: impl IntoIterator<Item = Operation>) -> Self {
        self.config.operations = operations.into_iter().collect();
        self
    }

    /// Checks every value and returns the configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field: a rate outside `0.0..=1.0` (or
    /// NaN), a `max_latency` below `min_latency`, no operation.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = steadfast::chaos::StorageChaosConfig::builder().torn_reads(-1.0).build();
    /// assert_eq!(err.unwrap_err().field(), "torn_read_rate");
    /// ```
    pub fn build(self) -> Result<StorageChaosConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}
