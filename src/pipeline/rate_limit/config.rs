//! The rate limiter's configuration: [`RateLimiterConfig`], its builder, and
//! [`RateLimitMode`].
//!
//! A configuration is validated when it is built and when it is
//! deserialized, so a [`RateLimiterConfig`] value is always usable: the
//! fields are private and read through getters.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::Quota;
use serde::{Deserialize, Serialize};

use super::{KeyedRateLimiter, RateLimiter};
use crate::ConfigError;

/// The longest a full burst may take to refill, in nanoseconds: half of what
/// governor's `u64` of nanoseconds holds (about 292 years), so that its
/// sums of times never overflow.
const MAX_SPAN_NANOS: u128 = (u64::MAX / 2) as u128;

/// What a rate limiter does with a call that finds no permit free.
///
/// In JSON a mode reads `"reject"` or `"wait"`.
///
/// # Examples
///
/// ```
/// use steadfast::pipeline::RateLimitMode;
///
/// assert_eq!(RateLimitMode::default(), RateLimitMode::Reject);
/// assert_eq!(serde_json::to_string(&RateLimitMode::Wait).unwrap(), r#""wait""#);
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RateLimitMode {
    /// Refuse the call at once, saying how long until a permit frees.
    #[default]
    Reject,
    /// Wait for a permit, for at most the configured `max_wait`; a call
    /// whose permit would come later is refused at once.
    Wait,
}

/// How many calls a [`RateLimiter`] (or each key of a
/// [`KeyedRateLimiter`]) lets through, and what it does with the others.
///
/// Build one with [`RateLimiterConfig::builder`] (or build the limiter
/// directly with [`RateLimiter::builder`] or [`KeyedRateLimiter::builder`]),
/// or deserialize it; both check every value. The fields are read through
/// getters.
///
/// - `permits` per `period`: the sustained rate. Permits come back one at a
///   time, one every `period / permits`
///   ([`replenish_interval`](Self::replenish_interval), rounded up to the
///   nanosecond so that the rate is never exceeded).
/// - `burst`: how many permits may be taken at once after a quiet spell;
///   the same as `permits` unless set.
/// - `mode`: [`RateLimitMode::Reject`] refuses a call that finds no permit;
///   [`RateLimitMode::Wait`] waits for one, for at most `max_wait`.
/// - `max_wait`: in wait mode, the longest a call waits for a permit (a
///   call whose permit would come later is refused at once, without
///   waiting); greater than zero. Not used in reject mode.
///
/// In JSON a configuration reads
/// `{"permits": 50, "period": "1s", "burst": 10, "mode": "wait", "max_wait": "200ms"}`;
/// every field may be left out and takes its default.
///
/// # Default
///
/// - `permits`: 100
/// - `period`: 1 s
/// - `burst`: the same as `permits`
/// - `mode`: reject
/// - `max_wait`: 1 s
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::{RateLimitMode, RateLimiterConfig};
///
/// let config = RateLimiterConfig::builder()
///     .rate(50, Duration::from_secs(1))
///     .burst(10)
///     .mode(RateLimitMode::Wait)
///     .max_wait(Duration::from_millis(200))
///     .build()?;
/// assert_eq!(config.replenish_interval(), Duration::from_millis(20));
///
/// let json = serde_json::to_string(&config).unwrap();
/// assert_eq!(
///     json,
///     r#"{"permits":50,"period":"1s","burst":10,"mode":"wait","max_wait":"200ms"}"#
/// );
/// let back: RateLimiterConfig = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, config);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RateLimiterConfigRepr", into = "RateLimiterConfigRepr")]
pub struct RateLimiterConfig {
    permits: u32,
    period: Duration,
    burst: Option<u32>,
    mode: RateLimitMode,
    max_wait: Duration,
}

impl Default for RateLimiterConfig {
    /// The documented defaults (see the `# Default` list on the type).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RateLimiterConfig;
    /// assert_eq!(RateLimiterConfig::default(), RateLimiterConfig::builder().build()?);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    fn default() -> Self {
        RateLimiterConfig {
            permits: 100,
            period: Duration::from_secs(1),
            burst: None,
            mode: RateLimitMode::Reject,
            max_wait: Duration::from_secs(1),
        }
    }
}

impl RateLimiterConfig {
    /// Checks every rule of the configuration; called by
    /// [`RateLimiterConfigBuilder::build`] and by deserialization.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.permits == 0 {
            return Err(ConfigError::new("permits", "must be at least 1, got 0"));
        }
        if self.period.is_zero() {
            return Err(ConfigError::new("period", "must be greater than zero"));
        }
        if self.burst == Some(0) {
            return Err(ConfigError::new("burst", "must be at least 1, got 0"));
        }
        if self.period.as_nanos() > MAX_SPAN_NANOS {
            return Err(ConfigError::new(
                "period",
                format!("must be at most {MAX_SPAN_NANOS} ns (about 292 years)"),
            ));
        }
        let refill = self.interval_nanos() * u128::from(self.burst());
        if refill > MAX_SPAN_NANOS {
            return Err(ConfigError::new(
                "burst",
                format!(
                    "a full burst of {} takes {refill} ns to refill, more than {MAX_SPAN_NANOS} \
                     ns (about 292 years)",
                    self.burst()
                ),
            ));
        }
        if self.mode == RateLimitMode::Wait && self.max_wait.is_zero() {
            return Err(ConfigError::new(
                "max_wait",
                "must be greater than zero in wait mode (use mode reject to refuse at once)",
            ));
        }
        Ok(())
    }

    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::RateLimiterConfig;
    ///
    /// let config = RateLimiterConfig::builder().rate(10, Duration::from_secs(1)).build()?;
    /// assert_eq!(config.permits(), 10);
    /// assert_eq!(config.burst(), 10);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> RateLimiterConfigBuilder<RateLimiterConfig> {
        RateLimiterConfigBuilder::new()
    }

    /// How many permits come back per [`period`](Self::period).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::pipeline::RateLimiterConfig::default().permits(), 100);
    /// ```
    pub fn permits(&self) -> u32 {
        self.permits
    }

    /// The period over which [`permits`](Self::permits) permits come back.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = steadfast::pipeline::RateLimiterConfig::default();
    /// assert_eq!(config.period(), Duration::from_secs(1));
    /// ```
    pub fn period(&self) -> Duration {
        self.period
    }

    /// How many permits may be taken at once after a quiet spell: the value
    /// set, or [`permits`](Self::permits) when none was.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RateLimiterConfig;
    /// assert_eq!(RateLimiterConfig::default().burst(), 100);
    /// let config = RateLimiterConfig::builder().burst(5).build()?;
    /// assert_eq!(config.burst(), 5);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.permits)
    }

    /// What a call that finds no permit does: wait or be refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{RateLimitMode, RateLimiterConfig};
    /// assert_eq!(RateLimiterConfig::default().mode(), RateLimitMode::Reject);
    /// ```
    pub fn mode(&self) -> RateLimitMode {
        self.mode
    }

    /// In wait mode, the longest a call waits for a permit.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = steadfast::pipeline::RateLimiterConfig::default();
    /// assert_eq!(config.max_wait(), Duration::from_secs(1));
    /// ```
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// The time between two permits coming back: `period / permits`,
    /// rounded up to the nanosecond.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::RateLimiterConfig;
    ///
    /// let config = RateLimiterConfig::builder().rate(3, Duration::from_secs(1)).build()?;
    /// assert_eq!(config.replenish_interval(), Duration::from_nanos(333_333_334));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn replenish_interval(&self) -> Duration {
        let nanos = u64::try_from(self.interval_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(nanos)
    }

    /// `period / permits` in nanoseconds, rounded up (at least 1 for a
    /// valid configuration).
    fn interval_nanos(&self) -> u128 {
        self.period
            .as_nanos()
            .div_ceil(u128::from(self.permits.max(1)))
    }

    /// The governor quota of this configuration.
    pub(super) fn quota(&self) -> Quota {
        let burst = NonZeroU32::new(self.burst()).unwrap_or(NonZeroU32::MIN);
        // A validated configuration has an interval of at least 1 ns, so
        // `with_period` returns a quota; the fallback is never taken.
        Quota::with_period(self.replenish_interval())
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst)
    }
}

/// The serialized form of a [`RateLimiterConfig`]: every field is optional
/// and defaults as the builder does; an unset burst is left out.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RateLimiterConfigRepr {
    permits: u32,
    #[serde(with = "crate::serde_duration")]
    period: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    burst: Option<u32>,
    mode: RateLimitMode,
    #[serde(with = "crate::serde_duration")]
    max_wait: Duration,
}

impl Default for RateLimiterConfigRepr {
    fn default() -> Self {
        RateLimiterConfig::default().into()
    }
}

impl From<RateLimiterConfig> for RateLimiterConfigRepr {
    fn from(c: RateLimiterConfig) -> Self {
        RateLimiterConfigRepr {
            permits: c.permits,
            period: c.period,
            burst: c.burst,
            mode: c.mode,
            max_wait: c.max_wait,
        }
    }
}

impl TryFrom<RateLimiterConfigRepr> for RateLimiterConfig {
    type Error = ConfigError;

    fn try_from(r: RateLimiterConfigRepr) -> Result<Self, ConfigError> {
        let config = RateLimiterConfig {
            permits: r.permits,
            period: r.period,
            burst: r.burst,
            mode: r.mode,
            max_wait: r.max_wait,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Builds a [`RateLimiterConfig`] (from [`RateLimiterConfig::builder`]), a
/// [`RateLimiter`] (from [`RateLimiter::builder`]) or a
/// [`KeyedRateLimiter`] (from [`KeyedRateLimiter::builder`]).
///
/// Every setter takes the value as is; [`build`](Self::build) checks them
/// all and returns a [`ConfigError`] naming the first field that is wrong.
/// The type parameter only says what `build` returns.
///
/// # Default
///
/// The builder starts from the defaults listed on [`RateLimiterConfig`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::RateLimiter;
///
/// let limiter = RateLimiter::builder().rate(20, Duration::from_secs(1)).burst(5).build()?;
/// assert_eq!(limiter.config().burst(), 5);
///
/// let err = RateLimiter::builder().permits(0).build().unwrap_err();
/// assert_eq!(err.field(), "permits");
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
#[must_use]
pub struct RateLimiterConfigBuilder<T = RateLimiterConfig> {
    config: RateLimiterConfig,
    target: PhantomData<fn() -> T>,
}

impl<T> Clone for RateLimiterConfigBuilder<T> {
    fn clone(&self) -> Self {
        RateLimiterConfigBuilder {
            config: self.config.clone(),
            target: PhantomData,
        }
    }
}

impl<T> fmt::Debug for RateLimiterConfigBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiterConfigBuilder")
            .field("config", &self.config)
            .finish()
    }
}

impl<T> Default for RateLimiterConfigBuilder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> RateLimiterConfigBuilder<T> {
    fn new() -> Self {
        RateLimiterConfigBuilder {
            config: RateLimiterConfig::default(),
            target: PhantomData,
        }
    }

    /// Starts from an existing configuration instead of the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{RateLimiterConfig, RateLimiterConfigBuilder};
    ///
    /// let base = RateLimiterConfig::builder().permits(7).build()?;
    /// let tweaked = RateLimiterConfigBuilder::<RateLimiterConfig>::from_config(&base)
    ///     .burst(2)
    ///     .build()?;
    /// assert_eq!((tweaked.permits(), tweaked.burst()), (7, 2));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn from_config(config: &RateLimiterConfig) -> Self {
        RateLimiterConfigBuilder {
            config: config.clone(),
            target: PhantomData,
        }
    }

    /// The sustained rate: `permits` permits per `period` (both must be
    /// greater than zero). The same as [`permits`](Self::permits) and
    /// [`period`](Self::period) together.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = steadfast::pipeline::RateLimiterConfig::builder()
    ///     .rate(600, Duration::from_secs(60))
    ///     .build()?;
    /// assert_eq!(c.replenish_interval(), Duration::from_millis(100));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn rate(self, permits: u32, period: Duration) -> Self {
        self.permits(permits).period(period)
    }

    /// How many permits come back per period (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::pipeline::RateLimiterConfig::builder().permits(5).build()?;
    /// assert_eq!(c.permits(), 5);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn permits(mut self, permits: u32) -> Self {
        self.config.permits = permits;
        self
    }

    /// The period over which the permits come back (greater than zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = steadfast::pipeline::RateLimiterConfig::builder()
    ///     .period(Duration::from_secs(60))
    ///     .build()?;
    /// assert_eq!(c.period(), Duration::from_secs(60));
    ///
    /// let err = steadfast::pipeline::RateLimiterConfig::builder()
    ///     .period(Duration::ZERO)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "period");
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn period(mut self, period: Duration) -> Self {
        self.config.period = period;
        self
    }

    /// How many permits may be taken at once after a quiet spell (at least
    /// 1). Without it the burst is the number of permits per period.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::pipeline::RateLimiterConfig::builder().burst(1).build()?;
    /// assert_eq!(c.burst(), 1);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn burst(mut self, burst: u32) -> Self {
        self.config.burst = Some(burst);
        self
    }

    /// What a call that finds no permit does (reject by default).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{RateLimitMode, RateLimiterConfig};
    /// let c = RateLimiterConfig::builder().mode(RateLimitMode::Wait).build()?;
    /// assert_eq!(c.mode(), RateLimitMode::Wait);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn mode(mut self, mode: RateLimitMode) -> Self {
        self.config.mode = mode;
        self
    }

    /// In wait mode, the longest a call waits for a permit (greater than
    /// zero in wait mode). It does not set the mode.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::pipeline::{RateLimitMode, RateLimiterConfig};
    ///
    /// let c = RateLimiterConfig::builder()
    ///     .mode(RateLimitMode::Wait)
    ///     .max_wait(Duration::from_millis(50))
    ///     .build()?;
    /// assert_eq!(c.max_wait(), Duration::from_millis(50));
    ///
    /// let err = RateLimiterConfig::builder()
    ///     .mode(RateLimitMode::Wait)
    ///     .max_wait(Duration::ZERO)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "max_wait");
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.config.max_wait = max_wait;
        self
    }
}

impl RateLimiterConfigBuilder<RateLimiterConfig> {
    /// Checks every value and returns the configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field that is wrong: zero `permits`, a
    /// zero `period` (or one past about 292 years), a zero `burst` (or one
    /// that takes past about 292 years to refill), a zero `max_wait` in
    /// wait mode.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::RateLimiterConfig;
    /// let err = RateLimiterConfig::builder().burst(0).build().unwrap_err();
    /// assert_eq!(err.field(), "burst");
    /// ```
    pub fn build(self) -> Result<RateLimiterConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

impl RateLimiterConfigBuilder<RateLimiter> {
    /// Checks every value and returns a new rate limiter, its burst
    /// available.
    ///
    /// # Errors
    ///
    /// The same [`ConfigError`]s as building a [`RateLimiterConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let limiter = steadfast::pipeline::RateLimiter::builder().burst(2).build()?;
    /// assert!(limiter.check().is_ok());
    /// # Ok(())
    /// # }
    /// ```
    pub fn build(self) -> Result<RateLimiter, ConfigError> {
        self.config.validate()?;
        Ok(RateLimiter::new(self.config))
    }
}

impl<K> RateLimiterConfigBuilder<KeyedRateLimiter<K>>
where
    K: Hash + Eq + Clone + Send + Sync,
{
    /// Checks every value and returns a new keyed rate limiter, holding no
    /// key yet.
    ///
    /// # Errors
    ///
    /// The same [`ConfigError`]s as building a [`RateLimiterConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::KeyedRateLimiter;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::ConfigError> {
    /// let limiter = KeyedRateLimiter::<String>::builder().burst(2).build()?;
    /// assert!(limiter.check(&"alice".to_string()).is_ok());
    /// # Ok(())
    /// # }
    /// ```
    pub fn build(self) -> Result<KeyedRateLimiter<K>, ConfigError> {
        self.config.validate()?;
        Ok(KeyedRateLimiter::new(self.config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented() {
        let c = RateLimiterConfig::builder().build().unwrap();
        assert_eq!(c, RateLimiterConfig::default());
        assert_eq!(c.permits(), 100);
        assert_eq!(c.period(), Duration::from_secs(1));
        assert_eq!(c.burst(), 100);
        assert_eq!(c.mode(), RateLimitMode::Reject);
        assert_eq!(c.max_wait(), Duration::from_secs(1));
        assert_eq!(c.replenish_interval(), Duration::from_millis(10));
    }

    #[test]
    fn every_bad_value_names_its_field() {
        let b = RateLimiterConfig::builder;
        let field = |r: Result<RateLimiterConfig, ConfigError>| r.unwrap_err().field();
        assert_eq!(field(b().permits(0).build()), "permits");
        assert_eq!(field(b().period(Duration::ZERO).build()), "period");
        assert_eq!(field(b().burst(0).build()), "burst");
        assert_eq!(field(b().period(Duration::MAX).build()), "period");
        assert_eq!(
            field(
                b().rate(1, Duration::from_secs(200 * 365 * 86_400))
                    .burst(2)
                    .build()
            ),
            "burst"
        );
        assert_eq!(
            field(
                b().mode(RateLimitMode::Wait)
                    .max_wait(Duration::ZERO)
                    .build()
            ),
            "max_wait"
        );
        // A zero max_wait is not used in reject mode.
        assert!(b().max_wait(Duration::ZERO).build().is_ok());
        // The smallest interval: one nanosecond.
        let c = b().rate(u32::MAX, Duration::from_nanos(1)).build().unwrap();
        assert_eq!(c.replenish_interval(), Duration::from_nanos(1));
    }

    #[test]
    fn the_interval_rounds_up_so_the_rate_is_never_exceeded() {
        let c = RateLimiterConfig::builder()
            .rate(3, Duration::from_secs(1))
            .build()
            .unwrap();
        assert_eq!(c.replenish_interval(), Duration::from_nanos(333_333_334));
        let quota = c.quota();
        assert_eq!(quota.replenish_interval(), c.replenish_interval());
        assert_eq!(quota.burst_size().get(), 3);
    }

    #[test]
    fn deserialization_validates_and_fills_defaults() {
        let c: RateLimiterConfig = serde_json::from_str(r#"{"permits": 3}"#).unwrap();
        assert_eq!((c.permits(), c.burst()), (3, 3));
        assert_eq!(c.period(), Duration::from_secs(1));
        let c: RateLimiterConfig =
            serde_json::from_str(r#"{"period": "1m", "mode": "wait", "max_wait": "250ms"}"#)
                .unwrap();
        assert_eq!(c.period(), Duration::from_secs(60));
        assert_eq!(c.mode(), RateLimitMode::Wait);
        assert_eq!(c.max_wait(), Duration::from_millis(250));
        let c: RateLimiterConfig = serde_json::from_str(r#"{"burst": null}"#).unwrap();
        assert_eq!(c.burst(), 100);
        assert_eq!(
            serde_json::to_string(&RateLimiterConfig::default()).unwrap(),
            r#"{"permits":100,"period":"1s","mode":"reject","max_wait":"1s"}"#
        );
        for (json, field) in [
            (r#"{"permits": 0}"#, "permits"),
            (r#"{"period": "0s"}"#, "period"),
            (r#"{"burst": 0}"#, "burst"),
            (r#"{"mode": "wait", "max_wait": 0}"#, "max_wait"),
        ] {
            let err = serde_json::from_str::<RateLimiterConfig>(json)
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{json}: {err}");
        }
        let err = serde_json::from_str::<RateLimiterConfig>(r#"{"mode": "queue"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant"), "{err}");
        let err = serde_json::from_str::<RateLimiterConfig>(r#"{"permit": 4}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
    }
}
