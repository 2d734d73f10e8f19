//! The hedge's configuration: [`HedgeConfig`] and its builder.
//!
//! A configuration is validated when it is built and when it is
//! deserialized, so a [`HedgeConfig`] value is always usable: the fields are
//! private and read through getters.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Hedge;
use crate::ConfigError;

/// When a [`Hedge`] starts another attempt, and how many it runs at once.
///
/// Build one with [`HedgeConfig::builder`] (or build the hedge directly with
/// [`Hedge::builder`]), or deserialize it; both check every value. The
/// fields are read through getters.
///
/// - `max_attempts`: the most attempts of one call, the first included
///   (between 1 and [`HedgeConfig::MAX_ATTEMPTS`]). All of them may be in
///   flight at once; 1 turns hedging off.
/// - `delay`: how long the attempts in flight may go unanswered before the
///   next one starts. With a `percentile` it is the delay used until enough
///   latencies are recorded. It must be greater than zero when
///   `max_attempts` is above 1 (a zero delay would start every attempt at
///   once: a fan-out, not a hedge).
/// - `percentile`: when set (a number in (0, 100], for example 95), the
///   delay is that percentile of the latencies of the last `window`
///   successful attempts, once at least `min_samples` of them are recorded;
///   see [`Hedge`] for how they are recorded.
/// - `window`: how many recent latencies the percentile is taken over
///   (between 1 and [`HedgeConfig::MAX_WINDOW`]).
/// - `min_samples`: how many latencies must be recorded before the
///   percentile replaces `delay` (between 1 and `window`).
/// - `hedge_on_failure`: whether a failed attempt starts the next one at
///   once (`true`), or leaves it to the delay (`false`: a failure only
///   takes the attempt out of the race; hedges start on time alone).
///
/// In JSON a configuration reads
/// `{"max_attempts": 3, "delay": "50ms", "percentile": 95.0, "window": 200}`;
/// every field may be left out and takes its default, and `percentile` left
/// out (or `null`) means a fixed delay.
///
/// # Default
///
/// - `max_attempts`: 2 (the first attempt and one hedge)
/// - `delay`: 100 ms
/// - `percentile`: none (the delay is fixed)
/// - `window`: 100
/// - `min_samples`: 20
/// - `hedge_on_failure`: `true`
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::HedgeConfig;
///
/// let config = HedgeConfig::builder()
///     .max_attempts(3)
///     .delay(Duration::from_millis(50))
///     .percentile(95.0)
///     .window(200)
///     .build()?;
/// assert_eq!(config.percentile(), Some(95.0));
///
/// let json = serde_json::to_string(&config).unwrap();
/// assert_eq!(
///     json,
///     r#"{"max_attempts":3,"delay":"50ms","percentile":95.0,"window":200,"min_samples":20,"hedge_on_failure":true}"#
/// );
/// let back: HedgeConfig = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, config);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "HedgeConfigRepr", into = "HedgeConfigRepr")]
pub struct HedgeConfig {
    max_attempts: u32,
    delay: Duration,
    percentile: Option<f64>,
    window: u32,
    min_samples: u32,
    hedge_on_failure: bool,
}

impl Default for HedgeConfig {
    /// The documented defaults (see the `# Default` list on the type).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::HedgeConfig;
    /// assert_eq!(HedgeConfig::default(), HedgeConfig::builder().build()?);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    fn default() -> Self {
        HedgeConfig {
            max_attempts: 2,
            delay: Duration::from_millis(100),
            percentile: None,
            window: 100,
            min_samples: 20,
            hedge_on_failure: true,
        }
    }
}

impl HedgeConfig {
    /// The most attempts a configuration allows for one call.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::HedgeConfig;
    /// let err = HedgeConfig::builder()
    ///     .max_attempts(HedgeConfig::MAX_ATTEMPTS + 1)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "max_attempts");
    /// ```
    pub const MAX_ATTEMPTS: u32 = 16;

    /// The largest latency window a configuration allows (each recorded
    /// latency moves at most this many entries of a sorted array).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::HedgeConfig;
    /// let err = HedgeConfig::builder()
    ///     .window(HedgeConfig::MAX_WINDOW + 1)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "window");
    /// ```
    pub const MAX_WINDOW: u32 = 4_096;

    /// Checks every rule of the configuration; called by
    /// [`HedgeConfigBuilder::build`] and by deserialization.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 || self.max_attempts > Self::MAX_ATTEMPTS {
            return Err(ConfigError::new(
                "max_attempts",
                format!(
                    "must be between 1 and {}, got {}",
                    Self::MAX_ATTEMPTS,
                    self.max_attempts
                ),
            ));
        }
        if self.delay.is_zero() && self.max_attempts > 1 {
            return Err(ConfigError::new(
                "delay",
                format!(
                    "must be greater than zero when max_attempts is above 1 (got {}): \
                     a zero delay starts every attempt at once",
                    self.max_attempts
                ),
            ));
        }
        if let Some(p) = self.percentile {
            // Written so that NaN fails too.
            if !(p > 0.0 && p <= 100.0) {
                return Err(ConfigError::new(
                    "percentile",
                    format!("must be in (0, 100], got {p}"),
                ));
            }
        }
        if self.window == 0 || self.window > Self::MAX_WINDOW {
            return Err(ConfigError::new(
                "window",
                format!(
                    "must be between 1 and {}, got {}",
                    Self::MAX_WINDOW,
                    self.window
                ),
            ));
        }
        if self.min_samples == 0 || self.min_samples > self.window {
            return Err(ConfigError::new(
                "min_samples",
                format!(
                    "must be between 1 and window ({}), got {}",
                    self.window, self.min_samples
                ),
            ));
        }
        Ok(())
    }

    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::HedgeConfig;
    ///
    /// let config = HedgeConfig::builder().max_attempts(3).build()?;
    /// assert_eq!(config.max_attempts(), 3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> HedgeConfigBuilder<HedgeConfig> {
        HedgeConfigBuilder::new()
    }

    /// The most attempts of one call, the first included.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::pipeline::HedgeConfig::default().max_attempts(), 2);
    /// ```
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The fixed delay before the next attempt (with a percentile: the delay
    /// used until enough latencies are recorded).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(
    ///     steadfast::pipeline::HedgeConfig::default().delay(),
    ///     Duration::from_millis(100)
    /// );
    /// ```
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The percentile of recent latencies used as the delay, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::pipeline::HedgeConfig::default().percentile(), None);
    /// ```
    pub fn percentile(&self) -> Option<f64> {
        self.percentile
    }

    /// How many recent latencies the percentile is taken over.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::pipeline::HedgeConfig::default().window(), 100);
    /// ```
    pub fn window(&self) -> u32 {
        self.window
    }

    /// How many latencies must be recorded before the percentile is used.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::pipeline::HedgeConfig::default().min_samples(), 20);
    /// ```
    pub fn min_samples(&self) -> u32 {
        self.min_samples
    }

    /// Whether a failed attempt starts the next one at once.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::pipeline::HedgeConfig::default().hedge_on_failure());
    /// ```
    pub fn hedge_on_failure(&self) -> bool {
        self.hedge_on_failure
    }
}

/// The serialized form of a [`HedgeConfig`]: every field is optional and
/// defaults as the builder does; a fixed delay leaves `percentile` out.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct HedgeConfigRepr {
    max_attempts: u32,
    #[serde(with = "crate::serde_duration")]
    delay: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    percentile: Option<f64>,
    window: u32,
    min_samples: u32,
    hedge_on_failure: bool,
}

impl Default for HedgeConfigRepr {
    fn default() -> Self {
        HedgeConfig::default().into()
    }
}

impl From<HedgeConfig> for HedgeConfigRepr {
    fn from(c: HedgeConfig) -> Self {
        HedgeConfigRepr {
            max_attempts: c.max_attempts,
            delay: c.delay,
            percentile: c.percentile,
            window: c.window,
            min_samples: c.min_samples,
            hedge_on_failure: c.hedge_on_failure,
        }
    }
}

impl TryFrom<HedgeConfigRepr> for HedgeConfig {
    type Error = ConfigError;

    fn try_from(r: HedgeConfigRepr) -> Result<Self, ConfigError> {
        let config = HedgeConfig {
            max_attempts: r.max_attempts,
            delay: r.delay,
            percentile: r.percentile,
            window: r.window,
            min_samples: r.min_samples,
            hedge_on_failure: r.hedge_on_failure,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Builds a [`HedgeConfig`] (from [`HedgeConfig::builder`]) or a [`Hedge`]
/// (from [`Hedge::builder`]).
///
/// Every setter takes the value as is; [`build`](Self::build) checks them all
/// and returns a [`ConfigError`] naming the first field that is wrong. The
/// type parameter only says what `build` returns.
///
/// # Default
///
/// The builder starts from the defaults listed on [`HedgeConfig`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::pipeline::Hedge;
///
/// let hedge = Hedge::builder()
///     .max_attempts(3)
///     .delay(Duration::from_millis(20))
///     .build()?;
/// assert_eq!(hedge.config().max_attempts(), 3);
///
/// let err = Hedge::builder().delay(Duration::ZERO).build().unwrap_err();
/// assert_eq!(err.field(), "delay");
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[must_use]
pub struct HedgeConfigBuilder<T = HedgeConfig> {
    config: HedgeConfig,
    target: PhantomData<fn() -> T>,
}

impl<T> Clone for HedgeConfigBuilder<T> {
    fn clone(&self) -> Self {
        HedgeConfigBuilder {
            config: self.config.clone(),
            target: PhantomData,
        }
    }
}

impl<T> fmt::Debug for HedgeConfigBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeConfigBuilder")
            .field("config", &self.config)
            .finish()
    }
}

impl<T> Default for HedgeConfigBuilder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> HedgeConfigBuilder<T> {
    fn new() -> Self {
        HedgeConfigBuilder {
            config: HedgeConfig::default(),
            target: PhantomData,
        }
    }

    /// Starts from an existing configuration instead of the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::{HedgeConfig, HedgeConfigBuilder};
    ///
    /// let base = HedgeConfig::builder().max_attempts(4).build()?;
    /// let tweaked = HedgeConfigBuilder::<HedgeConfig>::from_config(&base)
    ///     .percentile(99.0)
    ///     .build()?;
    /// assert_eq!(tweaked.max_attempts(), 4);
    /// assert_eq!(tweaked.percentile(), Some(99.0));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn from_config(config: &HedgeConfig) -> Self {
        HedgeConfigBuilder {
            config: config.clone(),
            target: PhantomData,
        }
    }

    /// The most attempts of one call, the first included (between 1 and
    /// [`HedgeConfig::MAX_ATTEMPTS`]; 1 turns hedging off).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::pipeline::HedgeConfig::builder().max_attempts(3).build()?;
    /// assert_eq!(c.max_attempts(), 3);
    ///
    /// let err = steadfast::pipeline::HedgeConfig::builder().max_attempts(0).build().unwrap_err();
    /// assert_eq!(err.field(), "max_attempts");
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = attempts;
        self
    }

    /// How long the attempts in flight may go unanswered before the next one
    /// starts (greater than zero when `max_attempts` is above 1); with a
    /// [`percentile`](Self::percentile), the delay used until enough
    /// latencies are recorded.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = steadfast::pipeline::HedgeConfig::builder()
    ///     .delay(Duration::from_millis(30))
    ///     .build()?;
    /// assert_eq!(c.delay(), Duration::from_millis(30));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn delay(mut self, delay: Duration) -> Self {
        self.config.delay = delay;
        self
    }

    /// Takes the delay from recent latencies: this percentile, in (0, 100],
    /// of the last [`window`](Self::window) successful attempts, once
    /// [`min_samples`](Self::min_samples) are recorded.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::pipeline::HedgeConfig::builder().percentile(95.0).build()?;
    /// assert_eq!(c.percentile(), Some(95.0));
    ///
    /// let err = steadfast::pipeline::HedgeConfig::builder()
    ///     .percentile(0.0)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "percentile");
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn percentile(mut self, percentile: f64) -> Self {
        self.config.percentile = Some(percentile);
        self
    }

    /// Goes back to a fixed delay.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::pipeline::HedgeConfig::builder()
    ///     .percentile(90.0)
    ///     .fixed_delay()
    ///     .build()?;
    /// assert_eq!(c.percentile(), None);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn fixed_delay(mut self) -> Self {
        self.config.percentile = None;
        self
    }

    /// How many recent latencies the percentile is taken over (between 1 and
    /// [`HedgeConfig::MAX_WINDOW`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::pipeline::HedgeConfig::builder().window(500).build()?;
    /// assert_eq!(c.window(), 500);
    ///
    /// let err = steadfast::pipeline::HedgeConfig::builder().window(0).build().unwrap_err();
    /// assert_eq!(err.field(), "window");
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn window(mut self, samples: u32) -> Self {
        self.config.window = samples;
        self
    }

    /// How many latencies must be recorded before the percentile replaces
    /// the fixed delay (between 1 and the window).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::pipeline::HedgeConfig::builder().min_samples(5).build()?;
    /// assert_eq!(c.min_samples(), 5);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn min_samples(mut self, samples: u32) -> Self {
        self.config.min_samples = samples;
        self
    }

    /// Whether a failed attempt starts the next one at once (`true`, the
    /// default) or leaves it to the delay (`false`).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = steadfast::pipeline::HedgeConfig::builder().hedge_on_failure(false).build()?;
    /// assert!(!c.hedge_on_failure());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn hedge_on_failure(mut self, start_next: bool) -> Self {
        self.config.hedge_on_failure = start_next;
        self
    }
}

impl HedgeConfigBuilder<HedgeConfig> {
    /// Checks every value and returns the configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field that is wrong: `max_attempts` of
    /// zero or above [`HedgeConfig::MAX_ATTEMPTS`], a zero `delay` with
    /// `max_attempts` above 1, a `percentile` outside (0, 100] (or NaN), a
    /// `window` of zero or above [`HedgeConfig::MAX_WINDOW`], `min_samples`
    /// of zero or above the window.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::pipeline::HedgeConfig;
    /// let err = HedgeConfig::builder().min_samples(200).build().unwrap_err();
    /// assert_eq!(err.field(), "min_samples");
    /// ```
    pub fn build(self) -> Result<HedgeConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

impl HedgeConfigBuilder<Hedge> {
    /// Checks every value and returns a new hedge, with no latency recorded.
    ///
    /// # Errors
    ///
    /// The same [`ConfigError`]s as building a [`HedgeConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// let hedge = steadfast::pipeline::Hedge::builder().max_attempts(3).build()?;
    /// assert_eq!(hedge.snapshot().calls, 0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn build(self) -> Result<Hedge, ConfigError> {
        self.config.validate()?;
        Ok(Hedge::new(self.config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented() {
        let c = HedgeConfig::builder().build().unwrap();
        assert_eq!(c, HedgeConfig::default());
        assert_eq!(c.max_attempts(), 2);
        assert_eq!(c.delay(), Duration::from_millis(100));
        assert_eq!(c.percentile(), None);
        assert_eq!(c.window(), 100);
        assert_eq!(c.min_samples(), 20);
        assert!(c.hedge_on_failure());
    }

    #[test]
    fn every_bad_value_names_its_field() {
        let b = HedgeConfig::builder;
        let field = |r: Result<HedgeConfig, ConfigError>| r.unwrap_err().field();
        assert_eq!(field(b().max_attempts(0).build()), "max_attempts");
        assert_eq!(field(b().max_attempts(17).build()), "max_attempts");
        assert_eq!(field(b().delay(Duration::ZERO).build()), "delay");
        assert_eq!(
            field(b().max_attempts(3).delay(Duration::ZERO).build()),
            "delay"
        );
        for p in [0.0, -1.0, 100.5, f64::NAN, f64::INFINITY] {
            assert_eq!(field(b().percentile(p).build()), "percentile", "{p}");
        }
        assert_eq!(field(b().window(0).build()), "window");
        assert_eq!(field(b().window(4_097).build()), "window");
        assert_eq!(field(b().min_samples(0).build()), "min_samples");
        assert_eq!(field(b().window(10).build()), "min_samples");

        // The edges that are allowed.
        assert!(b().max_attempts(1).delay(Duration::ZERO).build().is_ok());
        assert!(b().max_attempts(16).build().is_ok());
        assert!(b().percentile(100.0).build().is_ok());
        assert!(b().percentile(0.001).build().is_ok());
        assert!(b().window(1).min_samples(1).build().is_ok());
        assert!(b().window(4_096).build().is_ok());
    }

    #[test]
    fn deserialization_validates_and_fills_defaults() {
        let c: HedgeConfig = serde_json::from_str(r#"{"max_attempts": 3}"#).unwrap();
        assert_eq!(c.max_attempts(), 3);
        assert_eq!(c.delay(), Duration::from_millis(100));
        let c: HedgeConfig =
            serde_json::from_str(r#"{"delay": "1.5s", "percentile": 95}"#).unwrap();
        assert_eq!(c.delay(), Duration::from_millis(1_500));
        assert_eq!(c.percentile(), Some(95.0));
        let c: HedgeConfig = serde_json::from_str(r#"{"percentile": null}"#).unwrap();
        assert_eq!(c.percentile(), None);
        for (json, field) in [
            (r#"{"max_attempts": 0}"#, "max_attempts"),
            (r#"{"delay": "0s"}"#, "delay"),
            (r#"{"percentile": 101}"#, "percentile"),
            (r#"{"window": 0}"#, "window"),
            (r#"{"min_samples": 0}"#, "min_samples"),
        ] {
            let err = serde_json::from_str::<HedgeConfig>(json)
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{json}: {err}");
        }
        let err = serde_json::from_str::<HedgeConfig>(r#"{"max_attempt": 4}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
    }
}
