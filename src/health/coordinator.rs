//! [`CoordinatorHeartbeat`]: heartbeats between the ranks of a job, carried
//! by its [`Coordinator`].
//!
//! Every `interval`, the task raises this rank's signal `key` (its payload is
//! the task's own heartbeat counter, little-endian `u64`), then reads each
//! peer's signal with `wait_for_rank(peer, key, 0, ..)`, which returns at
//! once. A peer whose signal sequence number advanced since the last read
//! has sent a heartbeat, which is fed into the [`HealthMonitor`]; a peer
//! whose number stands still is silent, and the monitor's sweep finds it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::MissedTickBehavior;

use crate::coordinator::Coordinator;
use crate::health::{HealthError, HealthMonitor, MonitorHandle};
use crate::ConfigError;

/// Configuration of a [`CoordinatorHeartbeat`].
///
/// # Default
///
/// - `interval`: 1 s (how often this rank publishes and reads heartbeats)
/// - `key`: `"heartbeat"` (the coordinator signal carrying them)
/// - `register_ranks`: true (add every rank of the job to the monitor when
///   the task starts)
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::health::HeartbeatConfig;
///
/// let config = HeartbeatConfig::builder().interval(Duration::from_millis(500)).build()?;
/// assert_eq!(config.interval(), Duration::from_millis(500));
/// assert_eq!(config.key(), "heartbeat");
/// let json = serde_json::to_string(&config).unwrap();
/// assert_eq!(serde_json::from_str::<HeartbeatConfig>(&json).unwrap(), config);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "HeartbeatConfigRepr", into = "HeartbeatConfigRepr")]
pub struct HeartbeatConfig {
    interval: Duration,
    key: String,
    register_ranks: bool,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            interval: Duration::from_secs(1),
            key: "heartbeat".to_string(),
            register_ranks: true,
        }
    }
}

impl HeartbeatConfig {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = steadfast::health::HeartbeatConfig::builder().key("alive").build()?;
    /// assert_eq!(config.key(), "alive");
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> HeartbeatConfigBuilder {
        HeartbeatConfigBuilder {
            config: HeartbeatConfig::default(),
        }
    }

    /// How often heartbeats are published and read.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = steadfast::health::HeartbeatConfig::default();
    /// assert_eq!(config.interval(), Duration::from_secs(1));
    /// ```
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The coordinator signal that carries heartbeats.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(steadfast::health::HeartbeatConfig::default().key(), "heartbeat");
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether every rank of the job is added to the monitor at start.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::health::HeartbeatConfig::default().register_ranks());
    /// ```
    pub fn register_ranks(&self) -> bool {
        self.register_ranks
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.interval.is_zero() {
            return Err(ConfigError::new("interval", "must be greater than zero"));
        }
        if self.key.is_empty() {
            return Err(ConfigError::new("key", "must not be empty"));
        }
        Ok(())
    }
}

/// Builds a validated [`HeartbeatConfig`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let err = steadfast::health::HeartbeatConfig::builder()
///     .interval(Duration::ZERO)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.field(), "interval");
/// ```
#[derive(Debug, Clone)]
pub struct HeartbeatConfigBuilder {
    config: HeartbeatConfig,
}

impl HeartbeatConfigBuilder {
    /// Sets how often heartbeats are published and read (greater than zero).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = steadfast::health::HeartbeatConfig::builder().interval(Duration::from_secs(2));
    /// assert!(b.build().is_ok());
    /// ```
    pub fn interval(mut self, interval: Duration) -> Self {
        self.config.interval = interval;
        self
    }

    /// Sets the signal key (not empty).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::health::HeartbeatConfig::builder().key("").build().is_err());
    /// ```
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.config.key = key.into();
        self
    }

    /// Sets whether every rank is added to the monitor at start.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = steadfast::health::HeartbeatConfig::builder().register_ranks(false);
    /// assert!(!b.build()?.register_ranks());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn register_ranks(mut self, register: bool) -> Self {
        self.config.register_ranks = register;
        self
    }

    /// Validates and returns the config.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::health::HeartbeatConfig::builder().build().is_ok());
    /// ```
    pub fn build(self) -> Result<HeartbeatConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct HeartbeatConfigRepr {
    #[serde(with = "crate::serde_duration")]
    interval: Duration,
    key: String,
    register_ranks: bool,
}

impl Default for HeartbeatConfigRepr {
    fn default() -> Self {
        HeartbeatConfig::default().into()
    }
}

impl From<HeartbeatConfig> for HeartbeatConfigRepr {
    fn from(c: HeartbeatConfig) -> Self {
        HeartbeatConfigRepr {
            interval: c.interval,
            key: c.key,
            register_ranks: c.register_ranks,
        }
    }
}

impl TryFrom<HeartbeatConfigRepr> for HeartbeatConfig {
    type Error = ConfigError;

    fn try_from(r: HeartbeatConfigRepr) -> Result<Self, ConfigError> {
        let config = HeartbeatConfig {
            interval: r.interval,
            key: r.key,
            register_ranks: r.register_ranks,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Publishes this rank's heartbeats through a [`Coordinator`] and feeds the
/// peers' heartbeats into a [`HealthMonitor`].
///
/// Every `interval` the task raises this rank's signal `key` (its payload:
/// the task's heartbeat counter, little-endian `u64`), then reads each peer's
/// signal with `wait_for_rank(peer, key, 0, ..)`, which returns at once; a
/// peer whose signal sequence number advanced since the last read has sent a
/// heartbeat, and the monitor hears of it. A peer whose number stands still
/// is silent, and the monitor's sweep finds it.
///
/// Each rank of a job runs one, with its own monitor (or one shared by
/// ranks of the same process). This rank's own member is heartbeaten
/// whenever its signal was published. Coordinator errors are logged (target
/// `steadfast::health`) and the task goes on: a rank that cannot publish
/// looks silent to its peers, which is the truth.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::InMemoryCoordinator;
/// use steadfast::health::{CoordinatorHeartbeat, HealthMonitor, HealthStatus, HeartbeatConfig, MemberId};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::health::HealthError> {
/// let ranks = InMemoryCoordinator::new(2);
/// let monitors = [HealthMonitor::default(), HealthMonitor::default()];
/// let mut tasks = Vec::new();
/// for (rank, monitor) in ranks.into_iter().zip(&monitors) {
///     let beat = CoordinatorHeartbeat::new(rank, monitor.clone(), HeartbeatConfig::default());
///     tasks.push(beat.start()?);
///     tasks.push(monitor.start()?);
/// }
/// tokio::time::sleep(Duration::from_secs(120)).await;
/// assert_eq!(monitors[0].status(1usize), Some(HealthStatus::Healthy));
/// for task in tasks {
///     task.stop().await;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct CoordinatorHeartbeat<C: Coordinator> {
    coordinator: C,
    monitor: HealthMonitor,
    config: HeartbeatConfig,
}

impl<C: Coordinator> CoordinatorHeartbeat<C> {
    /// A heartbeat publisher for the rank of `coordinator`, feeding `monitor`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::health::{CoordinatorHeartbeat, HealthMonitor, HeartbeatConfig};
    ///
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let beat = CoordinatorHeartbeat::new(rank, HealthMonitor::default(), HeartbeatConfig::default());
    /// assert_eq!(beat.config().key(), "heartbeat");
    /// ```
    pub fn new(coordinator: C, monitor: HealthMonitor, config: HeartbeatConfig) -> Self {
        CoordinatorHeartbeat {
            coordinator,
            monitor,
            config,
        }
    }

    /// The configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::health::{CoordinatorHeartbeat, HealthMonitor, HeartbeatConfig};
    ///
    /// let rank = InMemoryCoordinator::new(1).remove(0);
    /// let beat = CoordinatorHeartbeat::new(rank, HealthMonitor::default(), HeartbeatConfig::default());
    /// assert_eq!(beat.config().interval(), Duration::from_secs(1));
    /// ```
    pub fn config(&self) -> &HeartbeatConfig {
        &self.config
    }

    /// Starts the task: registers the ranks (if configured), then publishes
    /// and reads heartbeats every `interval` until the handle is stopped or
    /// dropped.
    ///
    /// # Errors
    ///
    /// [`HealthError::NoRuntime`] when called outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::InMemoryCoordinator;
    /// use steadfast::health::{CoordinatorHeartbeat, HealthMonitor, HeartbeatConfig, MemberId};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::health::HealthError> {
    /// let ranks = InMemoryCoordinator::new(3);
    /// let monitor = HealthMonitor::default();
    /// let handle = CoordinatorHeartbeat::new(ranks[0].clone(), monitor.clone(), HeartbeatConfig::default())
    ///     .start()?;
    /// tokio::task::yield_now().await;
    /// assert!(monitor.contains(2usize));
    /// handle.stop().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn start(self) -> Result<MonitorHandle, HealthError> {
        MonitorHandle::spawn("coordinator heartbeat", move |mut stop| async move {
            let CoordinatorHeartbeat {
                coordinator,
                monitor,
                config,
            } = self;
            let me = coordinator.rank();
            let world_size = coordinator.world_size();
            if config.register_ranks() {
                for rank in 0..world_size {
                    monitor.add_member(rank);
                }
            }
            let mut last_seen = vec![0u64; world_size];
            let mut counter = 0u64;
            let mut ticker = tokio::time::interval(config.interval());
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    _ = ticker.tick() => {}
                }
                counter = counter.wrapping_add(1);
                let beat = beat_once(&coordinator, &monitor, &config, me, counter, &mut last_seen);
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    _ = beat => {}
                }
            }
        })
    }
}

/// One round: publish, then read every peer.
async fn beat_once<C: Coordinator>(
    coordinator: &C,
    monitor: &HealthMonitor,
    config: &HeartbeatConfig,
    me: usize,
    counter: u64,
    last_seen: &mut [u64],
) {
    match coordinator
        .signal(config.key(), counter.to_le_bytes().to_vec())
        .await
    {
        Ok(_) => {
            let _ = monitor.heartbeat(me);
        }
        Err(error) => tracing::warn!(
            target: "steadfast::health",
            coordinator = coordinator.name(),
            rank = me,
            %error,
            "could not publish heartbeat"
        ),
    }
    for (peer, seen) in last_seen.iter_mut().enumerate() {
        if peer == me {
            continue;
        }
        match coordinator
            .wait_for_rank(peer, config.key(), 0, config.interval())
            .await
        {
            Ok(signal) if signal.seq > *seen => {
                *seen = signal.seq;
                // A peer removed from the monitor on purpose is not re-added.
                let _ = monitor.heartbeat(peer);
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(
                target: "steadfast::health",
                coordinator = coordinator.name(),
                rank = me,
                peer,
                %error,
                "could not read peer heartbeat"
            ),
        }
    }
}
