//! [`Preset`]: ready-made retry policies, circuit breakers and timeouts for
//! three common cases, usable from code and from a config file
//! (`preset = "rpc"` in an instance, with keys of its own on top).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::breaker::{CircuitBreakerConfig, SlidingWindow};
use crate::retry::{Jitter, RetryPolicy};
use crate::timeout::TimeoutConfig;
use crate::ConfigError;

/// A ready-made retry policy, circuit breaker and timeout for one common
/// case.
///
/// | key | `rpc` | `network` | `storage` |
/// |---|---|---|---|
/// | **retry** `max_retries` | 3 | 5 | 6 |
/// | `initial_delay` | 50ms | 200ms | 500ms |
/// | `max_delay` | 1s | 10s | 30s |
/// | `factor` | 2.0 | 2.0 | 2.0 |
/// | `jitter` | `full` | `full` | `equal` |
/// | `max_elapsed` | 5s | 1m | 10m |
/// | **breaker** `failure_threshold` | 5 | 5 | 3 |
/// | `recovery_timeout` | 10s | 30s | 1m |
/// | `half_open_permits` | 1 | 2 | 1 |
/// | `success_threshold` | 1 | 2 | 1 |
/// | `sliding_window` | last 50 calls | last 1m (1s buckets) | none |
/// | `minimum_calls` | 20 | 20 | 10 (the default, unused) |
/// | `failure_rate_threshold` | 0.5 | 0.5 | none |
/// | `slow_call_duration` | 1s | 5s | none |
/// | `slow_call_rate_threshold` | 0.8 | 0.8 | none |
/// | **timeout** `default_timeout` | 2s | 30s | 5m |
/// | `coordinator_grace` | 1s | 1s | 1s |
///
/// - `rpc`: a call to a service close by (same region, answers in
///   milliseconds): retry fast and briefly, give up within 5 s, open the
///   breaker when half of the last 50 calls failed or 80% were slower than
///   1 s.
/// - `network`: a call over a wider network (another region, a third
///   party): longer backoff, a minute in all, a time-based window.
/// - `storage`: checkpoint storage (an object store, a network disk): a
///   write is worth waiting for, so more retries with long delays and a
///   budget of 10 minutes, a breaker that opens after 3 failures in a row,
///   and 5 minutes per operation.
///
/// In a config file, `preset = "rpc"` in a `retries`, `breakers` or
/// `timeouts` instance starts that instance from the preset's values, and
/// the instance's other keys override them.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::config::{FaultToleranceConfig, Preset};
///
/// let rpc = Preset::Rpc.retry_policy();
/// assert_eq!(rpc.max_retries(), 3);
/// assert_eq!(rpc.initial_delay(), Duration::from_millis(50));
/// assert_eq!("storage".parse::<Preset>()?, Preset::Storage);
///
/// let config = FaultToleranceConfig::from_toml_str(r#"
///     [fault_tolerance.retries.search]
///     preset = "rpc"
///     max_retries = 5
/// "#)?;
/// let search = config.retry("search").unwrap();
/// assert_eq!(search.max_retries(), 5);
/// assert_eq!(search.initial_delay(), Duration::from_millis(50));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Preset {
    /// A call to a nearby service.
    Rpc,
    /// A call over a wider network.
    Network,
    /// Checkpoint storage.
    Storage,
}

impl Preset {
    /// Every preset.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::config::Preset::ALL.len(), 3);
    /// ```
    pub const ALL: [Preset; 3] = [Preset::Rpc, Preset::Network, Preset::Storage];

    /// The name written in a config file: `"rpc"`, `"network"`, `"storage"`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::config::Preset::Network.name(), "network");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Preset::Rpc => "rpc",
            Preset::Network => "network",
            Preset::Storage => "storage",
        }
    }

    /// The preset's retry policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::config::Preset;
    /// use steadfast::retry::Jitter;
    /// let storage = Preset::Storage.retry_policy();
    /// assert_eq!(storage.max_elapsed(), Some(Duration::from_secs(600)));
    /// assert_eq!(storage.jitter(), Jitter::Equal);
    /// ```
    pub fn retry_policy(self) -> RetryPolicy {
        let (retries, initial, max, jitter, elapsed) = match self {
            Preset::Rpc => (3, ms(50), secs(1), Jitter::Full, secs(5)),
            Preset::Network => (5, ms(200), secs(10), Jitter::Full, secs(60)),
            Preset::Storage => (6, ms(500), secs(30), Jitter::Equal, secs(600)),
        };
        RetryPolicy::builder()
            .max_retries(retries)
            .initial_delay(initial)
            .max_delay(max)
            .factor(2.0)
            .jitter(jitter)
            .max_elapsed(elapsed)
            .build()
            // The values above are valid (a test builds every preset).
            .unwrap_or_default()
    }

    /// The preset's circuit breaker configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::config::Preset;
    /// let rpc = Preset::Rpc.breaker();
    /// assert_eq!(rpc.failure_rate_threshold(), Some(0.5));
    /// assert_eq!(rpc.recovery_timeout(), Duration::from_secs(10));
    /// ```
    pub fn breaker(self) -> CircuitBreakerConfig {
        let builder = CircuitBreakerConfig::builder();
        let builder = match self {
            Preset::Rpc => builder
                .failure_threshold(5)
                .recovery_timeout(secs(10))
                .sliding_window(SlidingWindow::count(50))
                .minimum_calls(20)
                .failure_rate_threshold(0.5)
                .slow_call_duration(secs(1))
                .slow_call_rate_threshold(0.8),
            Preset::Network => builder
                .failure_threshold(5)
                .recovery_timeout(secs(30))
                .half_open_permits(2)
                .success_threshold(2)
                .sliding_window(SlidingWindow::time(secs(60)))
                .minimum_calls(20)
                .failure_rate_threshold(0.5)
                .slow_call_duration(secs(5))
                .slow_call_rate_threshold(0.8),
            Preset::Storage => builder.failure_threshold(3).recovery_timeout(secs(60)),
        };
        // The values above are valid (a test builds every preset).
        builder.build().unwrap_or_default()
    }

    /// The preset's timeout configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::config::Preset;
    /// assert_eq!(Preset::Network.timeout().default_timeout(), Duration::from_secs(30));
    /// ```
    pub fn timeout(self) -> TimeoutConfig {
        let after = match self {
            Preset::Rpc => secs(2),
            Preset::Network => secs(30),
            Preset::Storage => secs(300),
        };
        TimeoutConfig::builder()
            .default_timeout(after)
            .build()
            // The values above are valid (a test builds every preset).
            .unwrap_or_default()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = ConfigError;

    /// Reads `"rpc"`, `"network"` or `"storage"` (any case).
    fn from_str(text: &str) -> Result<Self, ConfigError> {
        let wanted = text.trim().to_ascii_lowercase();
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == wanted)
            .ok_or_else(|| {
                ConfigError::new(
                    "preset",
                    format!(
                        "unknown preset {text:?}: expected \"rpc\", \"network\" or \"storage\""
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_builds_from_its_own_values() {
        // `unwrap_or_default` hides a preset that does not validate: each
        // must differ from the default it would fall back to.
        for preset in Preset::ALL {
            assert_ne!(preset.retry_policy(), RetryPolicy::default(), "{preset}");
            assert_ne!(
                preset.breaker(),
                CircuitBreakerConfig::default(),
                "{preset}"
            );
            assert_ne!(preset.timeout(), TimeoutConfig::default(), "{preset}");
            assert_eq!(preset.name().parse::<Preset>().unwrap(), preset);
        }
        assert!("fast".parse::<Preset>().is_err());
    }
}
