//! Graceful degradation: service levels per component and for the whole
//! service, the operations each level allows, and watchers that lower and
//! restore levels from health events.
//!
//! Levels go from best to worst: [`ServiceLevel::Normal`] →
//! [`ReadOnly`](ServiceLevel::ReadOnly) →
//! [`EssentialOnly`](ServiceLevel::EssentialOnly) →
//! [`Offline`](ServiceLevel::Offline). Each allows a set of
//! [`OperationKind`]s:
//!
//! | level | Read | Write | Essential |
//! |---|---|---|---|
//! | Normal | yes | yes | yes |
//! | ReadOnly | yes | no | yes |
//! | EssentialOnly | no | no | yes |
//! | Offline | no | no | no |
//!
//! A component's level is the **worst of the levels its sources set**: the
//! operator (through [`DegradationManager::set_level`]) and each watcher
//! ([`DegradationManager::watch_health`] from a health monitor,
//! [`DegradationManager::watch_breaker`] from a circuit breaker). A watcher that
//! lowered a component raises it back when the cause is gone, without
//! undoing what the operator or another watcher set; a watcher that stops
//! withdraws its levels.
//!
//! The **service level is the worst of the explicitly set service level**
//! ([`DegradationManager::set_service_level`]) **and every component's
//! level**: one component in ReadOnly makes the service ReadOnly. A
//! component's own permission check ([`DegradationManager::allows`]) looks at
//! its level and the explicitly set service level, not at the other
//! components.
//!
//! Every change of a component's level or of the service level is sent to
//! [`DegradationManager::subscribe`]rs as a [`LevelChange`] and logged with
//! target `steadfast::degradation`.
//!
//! # Examples
//!
//! ```
//! use steadfast::degradation::{DegradationManager, OperationKind, ServiceLevel};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let degradation = DegradationManager::new();
//! degradation.set_level("database", ServiceLevel::ReadOnly, "replica lag");
//! assert!(degradation.allows("database", OperationKind::Read));
//! assert!(!degradation.allows("database", OperationKind::Write));
//! assert!(degradation.allows("search", OperationKind::Write));
//! assert_eq!(degradation.service_level(), ServiceLevel::ReadOnly);
//! assert!(!degradation.service_allows(OperationKind::Write));
//! # }
//! ```
mod config;
mod error;
mod level;
mod manager;
mod watch;

pub use config::{HealthRules, HealthRulesBuilder};
pub use error::DegradationError;
pub use level::{LevelChange, OperationKind, ServiceLevel};
pub use manager::DegradationManager;
