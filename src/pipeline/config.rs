//! The bulkhead's configuration: [`BulkheadConfig`] and its builder.
//!
//! A configuration is validated when it is built and when it is
//! deserialized, so a [`BulkheadConfig`] value is always usable: the fields
//! are private and read through getters.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::Bulkhead;
use crate::ConfigError;

/// How many calls a [`Bulkhead`] runs at once, and how many wait, for how
/// long.
///
/// Build one with [`BulkheadConfig::builder`] (or build the bulkhead
/// directly with [`Bulkhead::builder`]), or deserialize it; both check every
/// value. The fields are read through getters.
///
/// - `max_concurrent`: the most calls holding a slot at once (at least 1).
/// - `max_queued`: the most callers of [`Bulkhead::acquire`] (or
///   [`Bulkhead::call`]) waiting for a slot at once; 0 refuses a caller at
///   once when every slot is taken.
/// - `queue_timeout`: how long a waiter waits for a slot before it is
///   refused with [`QueueTimeout`](super::BulkheadRejected::QueueTimeout).
///   `None` (or absent in a config file) means no limit: a waiter keeps its
///   place in the queue until a slot frees or its future is dropped. When
///   set it must be greater than zero (to refuse at once, set `max_queued`
///   to 0).
///
/// In JSON a configuration reads
/// `{"max_concurrent": 8, "max_queued": 16, "queue_timeout": "250ms"}`;
/// every field may be left out and takes its default.
///
/// # Default
///
/// - `max_concurrent`: 10
/// - `max_queued`: 0 (no queue: refuse at once when every slot is taken)
/// - `queue_timeout`: none (a waiter waits until a slot frees)
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::BulkheadConfig;
///
/// let config = BulkheadConfig::builder()
///     .max_concurrent(8)
///     .max_queued(16)
///     .queue_timeout(Duration::from_millis(250))
///     .build()?;
/// assert_eq!(config.max_concurrent(), 8);
///
/// let json = serde_json::to_string(&config).unwrap();
/// assert_eq!(json, r#"{"max_concurrent":8,"max_queued":16,"queue_timeout":"250ms"}"#);
/// let back: BulkheadConfig = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, config);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BulkheadConfigRepr", into = "BulkheadConfigRepr")]
pub struct BulkheadConfig {
    max_concurrent: u32,
    max_queued: u32,
    queue_timeout: Option<Duration>,
}

impl Default for BulkheadConfig {
    /// The documented defaults (see the `# Default` list on the type).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::BulkheadConfig;
    /// assert_eq!(BulkheadConfig::default(), BulkheadConfig::builder().build()?);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    fn default() -> Self {
        BulkheadConfig {
            max_concurrent: 10,
            max_queued: 0,
            queue_timeout: None,
        }
    }
}

impl BulkheadConfig {
    /// Checks every rule of the configuration; called by
    /// [`BulkheadConfigBuilder::build`] and by deserialization.
    fn validate(&self) -> Result<(), ConfigError> {
        // tokio's semaphore holds at most `MAX_PERMITS` (`usize::MAX >> 3`)
        // permits, fewer than `u32::MAX` on a 32-bit target.
        let max = u64::try_from(Semaphore::MAX_PERMITS)
            .unwrap_or(u64::MAX)
            .min(u64::from(u32::MAX));
        if self.max_concurrent == 0 || u64::from(self.max_concurrent) > max {
            return Err(ConfigError::new(
                "max_concurrent",
                format!("must be between 1 and {max}, got {}", self.max_concurrent),
            ));
        }
        if self.queue_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new(
                "queue_timeout",
                "must be greater than zero (set max_queued to 0 to refuse at once)",
            ));
        }
        Ok(())
    }

    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::BulkheadConfig;
    ///
    /// let config = BulkheadConfig::builder().max_queued(4).build()?;
    /// assert_eq!(config.max_queued(), 4);
    /// assert_eq!(config.max_concurrent(), 10);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> BulkheadConfigBuilder<BulkheadConfig> {
        BulkheadConfigBuilder::new()
    }

    /// The most calls holding a slot at once.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::pipeline::BulkheadConfig::default().max_concurrent(), 10);
    /// ```
    pub fn max_concurrent(&self) -> u32 {
        self.max_concurrent
    }

    /// The most callers waiting for a slot at once; 0 means no queue.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::pipeline::BulkheadConfig::default().max_queued(), 0);
    /// ```
    pub fn max_queued(&self) -> u32 {
        self.max_queued
    }

    /// How long a waiter waits for a slot; `None` means until one frees.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::pipeline::BulkheadConfig::default().queue_timeout(), None);
    /// ```
    pub fn queue_timeout(&self) -> Option<Duration> {
        self.queue_timeout
    }
}

/// The serialized form of a [`BulkheadConfig`]: every field is optional and
/// defaults as the builder does; a queue without a timeout leaves
/// `queue_timeout` out.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct BulkheadConfigRepr {
    max_concurrent: u32,
    max_queued: u32,
    #[serde(
        with = "crate::serde_duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    queue_timeout: Option<Duration>,
}

impl Default for BulkheadConfigRepr {
    fn default() -> Self {
        BulkheadConfig::default().into()
    }
}

impl From<BulkheadConfig> for BulkheadConfigRepr {
    fn from(c: BulkheadConfig) -> Self {
        BulkheadConfigRepr {
            max_concurrent: c.max_concurrent,
            max_queued: c.max_queued,
            queue_timeout: c.queue_timeout,
        }
    }
}

impl TryFrom<BulkheadConfigRepr> for BulkheadConfig {
    type Error = ConfigError;

    fn try_from(r: BulkheadConfigRepr) -> Result<Self, ConfigError> {
        let config = BulkheadConfig {
            max_concurrent: r.max_concurrent,
            max_queued: r.max_queued,
            queue_timeout: r.queue_timeout,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Builds a [`BulkheadConfig`] (from [`BulkheadConfig::builder`]) or a
/// [`Bulkhead`] (from [`Bulkhead::builder`]).
///
/// Every setter takes the value as is; [`build`](Self::build) checks them all
/// and returns a [`ConfigError`] naming the first field that is wrong. The
/// type parameter only says what `build` returns.
///
/// # Default
///
/// The builder starts from the defaults listed on [`BulkheadConfig`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::Bulkhead;
///
/// let bulkhead = Bulkhead::builder()
///     .max_concurrent(4)
///     .max_queued(8)
///     .queue_timeout(Duration::from_secs(1))
///     .build()?;
/// assert_eq!(bulkhead.config().max_queued(), 8);
///
/// let err = Bulkhead::builder().max_concurrent(0).build().unwrap_err();
/// assert_eq!(err.field(), "max_concurrent");
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[must_use]
pub struct BulkheadConfigBuilder<T = BulkheadConfig> {
    config: BulkheadConfig,
    /// The bulkhead's name (only a bulkhead has one, not its config).
    name: Option<Arc<str>>,
    target: PhantomData<fn() -> T>,
}

impl<T> Clone for BulkheadConfigBuilder<T> {
    fn clone(&self) -> Self {
        BulkheadConfigBuilder {
            config: self.config.clone(),
            name: self.name.clone(),
            target: PhantomData,
        }
    }
}

impl<T> fmt::Debug for BulkheadConfigBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadConfigBuilder")
            .field("config", &self.config)
            .finish()
    }
}

impl<T> Default for BulkheadConfigBuilder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> BulkheadConfigBuilder<T> {
    fn new() -> Self {
        BulkheadConfigBuilder {
            config: BulkheadConfig::default(),
            name: None,
            target: PhantomData,
        }
    }

    /// Starts from an existing configuration instead of the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{BulkheadConfig, BulkheadConfigBuilder};
    ///
    /// let base = BulkheadConfig::builder().max_concurrent(3).build()?;
    /// let tweaked = BulkheadConfigBuilder::<BulkheadConfig>::from_config(&base)
    ///     .max_queued(6)
    ///     .build()?;
    /// assert_eq!(tweaked.max_concurrent(), 3);
    /// assert_eq!(tweaked.max_queued(), 6);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn from_config(config: &BulkheadConfig) -> Self {
        BulkheadConfigBuilder {
            config: config.clone(),
            name: None,
            target: PhantomData,
        }
    }

    /// The most calls holding a slot at once (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::pipeline::BulkheadConfig::builder().max_concurrent(2).build()?;
    /// assert_eq!(c.max_concurrent(), 2);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn max_concurrent(mut self, calls: u32) -> Self {
        self.config.max_concurrent = calls;
        self
    }

    /// The most callers waiting for a slot at once (0: no queue, refuse at
    /// once when every slot is taken).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::pipeline::BulkheadConfig::builder().max_queued(100).build()?;
    /// assert_eq!(c.max_queued(), 100);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn max_queued(mut self, waiters: u32) -> Self {
        self.config.max_queued = waiters;
        self
    }

    /// How long a waiter waits for a slot before it is refused (greater
    /// than zero). Without it a waiter waits until a slot frees.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = steadfast::pipeline::BulkheadConfig::builder()
    ///     .queue_timeout(Duration::from_millis(100))
    ///     .build()?;
    /// assert_eq!(c.queue_timeout(), Some(Duration::from_millis(100)));
    ///
    /// let err = steadfast::pipeline::BulkheadConfig::builder()
    ///     .queue_timeout(Duration::ZERO)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "queue_timeout");
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.config.queue_timeout = Some(timeout);
        self
    }

    /// Removes the queue timeout: a waiter waits until a slot frees (or its
    /// future is dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = steadfast::pipeline::BulkheadConfig::builder()
    ///     .queue_timeout(Duration::from_millis(100))
    ///     .no_queue_timeout()
    ///     .build()?;
    /// assert_eq!(c.queue_timeout(), None);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn no_queue_timeout(mut self) -> Self {
        self.config.queue_timeout = None;
        self
    }
}

impl BulkheadConfigBuilder<BulkheadConfig> {
    /// Checks every value and returns the configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field that is wrong: `max_concurrent`
    /// of zero (or beyond what a tokio semaphore holds), a zero
    /// `queue_timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::BulkheadConfig;
    /// let err = BulkheadConfig::builder().max_concurrent(0).build().unwrap_err();
    /// assert_eq!(err.field(), "max_concurrent");
    /// ```
    pub fn build(self) -> Result<BulkheadConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

impl BulkheadConfigBuilder<Bulkhead> {
    /// Names the bulkhead: with the `metrics` feature its slots in use and
    /// refusals are recorded under the name (label `name`; see
    /// `steadfast::metrics`). A bulkhead without a name records no metrics.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::Bulkhead;
    /// let bulkhead = Bulkhead::builder().name("db").max_concurrent(4).build()?;
    /// assert_eq!(bulkhead.name(), Some("db"));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Checks every value and returns a new bulkhead, every slot free.
    ///
    /// # Errors
    ///
    /// The same [`ConfigError`]s as building a [`BulkheadConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// let bulkhead = steadfast::pipeline::Bulkhead::builder().max_concurrent(2).build()?;
    /// assert_eq!(bulkhead.in_use(), 0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn build(self) -> Result<Bulkhead, ConfigError> {
        self.config.validate()?;
        Ok(Bulkhead::with_name(self.config, self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented() {
        let c = BulkheadConfig::builder().build().unwrap();
        assert_eq!(c, BulkheadConfig::default());
        assert_eq!(c.max_concurrent(), 10);
        assert_eq!(c.max_queued(), 0);
        assert_eq!(c.queue_timeout(), None);
    }

    #[test]
    fn every_bad_value_names_its_field() {
        let b = BulkheadConfig::builder;
        assert_eq!(
            b().max_concurrent(0).build().unwrap_err().field(),
            "max_concurrent"
        );
        assert_eq!(
            b().queue_timeout(Duration::ZERO)
                .build()
                .unwrap_err()
                .field(),
            "queue_timeout"
        );
        assert!(b().max_concurrent(1).max_queued(0).build().is_ok());
    }

    #[test]
    fn deserialization_validates_and_fills_defaults() {
        let c: BulkheadConfig = serde_json::from_str(r#"{"max_queued": 3}"#).unwrap();
        assert_eq!(c.max_queued(), 3);
        assert_eq!(c.max_concurrent(), 10);
        let c: BulkheadConfig = serde_json::from_str(r#"{"queue_timeout": "1m30s"}"#).unwrap();
        assert_eq!(c.queue_timeout(), Some(Duration::from_secs(90)));
        let c: BulkheadConfig = serde_json::from_str(r#"{"queue_timeout": null}"#).unwrap();
        assert_eq!(c.queue_timeout(), None);
        let err = serde_json::from_str::<BulkheadConfig>(r#"{"max_concurrent": 0}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_concurrent"), "{err}");
        let err = serde_json::from_str::<BulkheadConfig>(r#"{"max_concurent": 4}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
    }
}
