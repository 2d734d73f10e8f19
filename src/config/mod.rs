//! One configuration for all of fault tolerance (feature `config`):
//! [`FaultToleranceConfig`] reads a whole `[fault_tolerance]` table from
//! TOML, JSON or `STEADFAST_...` environment variables, with named
//! breakers, retries and timeouts as Resilience4j has them, readable
//! durations everywhere, presets, and errors that name the key and its line.
//!
//! Its sections are the config types the rest of the crate defines, read
//! through their own serde forms, which validate them:
//!
//! | section | type | keys |
//! |---|---|---|
//! | `[fault_tolerance.checkpoint]` | [`CheckpointManagerConfig`](crate::manager::CheckpointManagerConfig) | `checkpoint_interval`, `checkpoint_retention`, `checkpoint_compression`, `checkpoint_storage`, ... |
//! | `[fault_tolerance.replication]` | the checkpoint manager's replication | `replication_factor`, `consistency_level`, `geo_distributed`, `replicas` |
//! | `[fault_tolerance.health]` | [`HealthConfig`](crate::health::HealthConfig) | `heartbeat_interval`, `failure_threshold`, `detection_window`, ... |
//! | `[fault_tolerance.recovery]` | [`RecoveryCoordinatorConfig`](crate::recovery::RecoveryCoordinatorConfig) | `recovery_strategy`, `recovery_timeout`, `max_recovery_attempts`, ... |
//! | `[fault_tolerance.prediction]` | [`PredictionConfig`](crate::recovery::prediction::PredictionConfig) | `prediction_enabled`, `prediction_model`, `prediction_interval` |
//! | `[fault_tolerance.degradation]` | [`HealthRules`](crate::degradation::HealthRules) | `on_unresponsive`, `on_any_failed`, ... |
//! | `[fault_tolerance.breakers.NAME]` | [`CircuitBreakerConfig`](crate::breaker::CircuitBreakerConfig) | `failure_threshold`, `failure_rate_threshold`, ... |
//! | `[fault_tolerance.retries.NAME]` | [`RetryPolicy`](crate::retry::RetryPolicy) | `max_retries`, `initial_delay`, ... |
//! | `[fault_tolerance.timeouts.NAME]` | [`TimeoutConfig`](crate::timeout::TimeoutConfig) | `default_timeout`, `coordinator_grace` |
//! | `[fault_tolerance.bulkheads.NAME]` | [`BulkheadConfig`](crate::pipeline::BulkheadConfig) | `max_concurrent`, `max_queued`, `queue_timeout` |
//! | `[fault_tolerance.hedges.NAME]` | [`HedgeConfig`](crate::pipeline::HedgeConfig) | `max_attempts`, `delay`, `percentile`, ... |
//! | `[fault_tolerance.rate_limiters.NAME]` | `RateLimiterConfig` (feature `rate-limit`) | `permits`, `period`, `burst`, ... |
//!
//! The keys of the checkpoint, replication, health, recovery and prediction
//! sections that a job's flat config holds (`checkpoint_interval`,
//! `heartbeat_interval`, `recovery_strategy`, `replication_factor`,
//! `prediction_enabled`, ...) may also be written right under
//! `[fault_tolerance]`; each goes to its section (`failure_threshold` there
//! is the health monitor's). A setting written both ways is an error.
//!
//! # Sources
//!
//! - a TOML text or file ([`from_toml_str`](FaultToleranceConfig::from_toml_str),
//!   [`from_path`](FaultToleranceConfig::from_path) for `*.toml`);
//! - a JSON text or file ([`from_json_str`](FaultToleranceConfig::from_json_str),
//!   `*.json`), the same layout: `{"fault_tolerance": {"health": {...}}}`;
//! - environment variables, which override the file
//!   ([`load`](FaultToleranceConfig::load),
//!   [`with_env_overrides`](FaultToleranceConfig::with_env_overrides)):
//!   `STEADFAST_HEALTH__HEARTBEAT_INTERVAL=5s`,
//!   `STEADFAST_BREAKERS__PAYMENTS__FAILURE_RATE_THRESHOLD=0.5` (keys in
//!   upper case, `__` between them; a value is read as the key expects it).
//!
//! Other top-level tables of a document belong to the application and are
//! left alone; inside `[fault_tolerance]` every key must be known.
//!
//! # Errors
//!
//! A [`ConfigFileError`] names the full key
//! (`fault_tolerance.breakers.payments.failure_rate_threshold`) and where it
//! was written: the line and column of a file, or the environment variable.
//! Unknown keys, wrong types, bad durations and values a section refuses
//! are all errors. A key that needs a cargo feature this build does not
//! include (`rate_limiters` without `rate-limit`, a `checkpoint_storage`
//! URL such as `s3://...` without `object-store`) is an error that names
//! the feature, never ignored.
//!
//! # Presets
//!
//! [`Preset`] holds a retry policy, a breaker and a timeout for RPC calls,
//! calls over a network, and checkpoint storage, with the values in its
//! documentation; `preset = "rpc"` in an instance starts from them.
//!
//! # Example file
//!
//! This file is `examples/fault_tolerance.toml` in the crate; a test reads
//! it.
//!
//! ```toml
#![doc = include_str!("../../examples/fault_tolerance.toml")]
//! ```
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use steadfast::config::FaultToleranceConfig;
//!
//! let file = r#"
//!     [fault_tolerance.health]
//!     heartbeat_interval = "5s"
//!
//!     [fault_tolerance.breakers.payments]
//!     failure_threshold = 3
//! "#;
//! let config = FaultToleranceConfig::from_toml_str(file)?
//!     .with_env_overrides([("STEADFAST_HEALTH__HEARTBEAT_INTERVAL", "2s")])?;
//! assert_eq!(config.health.heartbeat_interval(), Duration::from_secs(2));
//! assert_eq!(config.breaker("payments").unwrap().failure_threshold(), 3);
//! let breaker = config.build_breaker("payments")?;
//! # drop(breaker);
//!
//! let err = FaultToleranceConfig::from_toml_str(
//!     "[fault_tolerance.breakers.payments]\nfailure_treshold = 3\n",
//! ).unwrap_err();
//! assert_eq!(err.key(), Some("fault_tolerance.breakers.payments.failure_treshold"));
//! assert_eq!(err.line(), Some(2));
//! # Ok::<(), steadfast::config::ConfigFileError>(())
//! ```

mod de;
mod env;
mod error;
mod fault_tolerance;
mod instances;
mod json_text;
mod layout;
mod presets;
mod sources;
mod toml_text;
mod tree;

pub use error::{ConfigFileError, Origin};
pub use fault_tolerance::{FaultToleranceConfig, FaultToleranceConfigBuilder};
pub use presets::Preset;
