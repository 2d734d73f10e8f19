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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::time::{Instant, MissedTickBehavior};

use crate::breaker::{CircuitBreaker, State as BreakerState};
use crate::health::{HealthError, HealthMonitor, HealthStatus, MemberId, MonitorHandle};
use crate::ConfigError;

/// How much of its work a component, or the service, can do; from best to
/// worst.
///
/// # Examples
///
/// ```
/// use steadfast::degradation::{OperationKind, ServiceLevel};
///
/// assert!(ServiceLevel::Normal < ServiceLevel::Offline);
/// assert!(ServiceLevel::ReadOnly.allows(OperationKind::Essential));
/// assert!(!ServiceLevel::EssentialOnly.allows(OperationKind::Read));
/// assert_eq!(ServiceLevel::EssentialOnly.to_string(), "essential-only");
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ServiceLevel {
    /// Everything works.
    #[default]
    Normal,
    /// Reads and essential operations; no writes.
    ReadOnly,
    /// Essential operations only.
    EssentialOnly,
    /// Nothing.
    Offline,
}

impl ServiceLevel {
    /// Whether this level allows operations of `kind` (see the
    /// [module documentation](crate::degradation) for the table).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{OperationKind, ServiceLevel};
    /// assert!(ServiceLevel::Normal.allows(OperationKind::Write));
    /// assert!(!ServiceLevel::Offline.allows(OperationKind::Essential));
    /// ```
    pub fn allows(self, kind: OperationKind) -> bool {
        match self {
            ServiceLevel::Normal => true,
            ServiceLevel::ReadOnly => {
                matches!(kind, OperationKind::Read | OperationKind::Essential)
            }
            ServiceLevel::EssentialOnly => kind == OperationKind::Essential,
            ServiceLevel::Offline => false,
        }
    }
}

impl fmt::Display for ServiceLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceLevel::Normal => "normal",
            ServiceLevel::ReadOnly => "read-only",
            ServiceLevel::EssentialOnly => "essential-only",
            ServiceLevel::Offline => "offline",
        })
    }
}

/// The kind of an operation, for permission checks.
///
/// # Examples
///
/// ```
/// use steadfast::degradation::{OperationKind, ServiceLevel};
/// assert!(ServiceLevel::ReadOnly.allows(OperationKind::Read));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Reads data.
    Read,
    /// Changes data.
    Write,
    /// Must keep working as long as anything does (health checks, shutdown,
    /// saving a checkpoint before exit).
    Essential,
}

/// A level changed.
///
/// # Examples
///
/// ```
/// use steadfast::degradation::{DegradationManager, ServiceLevel};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let degradation = DegradationManager::new();
/// let mut changes = degradation.subscribe();
/// degradation.set_level("queue", ServiceLevel::EssentialOnly, "disk full");
/// let component = changes.recv().await.unwrap();
/// assert_eq!(component.component.as_deref(), Some("queue"));
/// assert_eq!((component.old, component.new), (ServiceLevel::Normal, ServiceLevel::EssentialOnly));
/// assert_eq!(component.reason, "disk full");
/// let service = changes.recv().await.unwrap();
/// assert_eq!(service.component, None); // the service level followed
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelChange {
    /// The component, or `None` for the service level.
    pub component: Option<String>,
    /// The level before.
    pub old: ServiceLevel,
    /// The level now.
    pub new: ServiceLevel,
    /// Why it changed.
    pub reason: String,
    /// When.
    pub at: Instant,
}

/// When a [`DegradationManager::watch_health`] watcher lowers a component,
/// from the health of the members that belong to it.
///
/// The component's level is the worst of the rules that apply:
///
/// - `on_unresponsive`: at least one member Unresponsive or Failed;
/// - `on_any_failed`: at least one member Failed;
/// - `on_majority_failed`: more than half of the members Failed;
/// - `on_all_failed`: every member Failed.
///
/// # Default
///
/// - `on_unresponsive`: Normal (an unresponsive member alone changes
///   nothing)
/// - `on_any_failed`: ReadOnly
/// - `on_majority_failed`: EssentialOnly
/// - `on_all_failed`: Offline
///
/// # Examples
///
/// ```
/// use steadfast::degradation::{HealthRules, ServiceLevel};
///
/// let rules = HealthRules::default();
/// assert_eq!(rules.level_for(8, 0, 0), ServiceLevel::Normal);
/// assert_eq!(rules.level_for(8, 3, 0), ServiceLevel::Normal);
/// assert_eq!(rules.level_for(8, 0, 2), ServiceLevel::ReadOnly);
/// assert_eq!(rules.level_for(8, 0, 5), ServiceLevel::EssentialOnly);
/// assert_eq!(rules.level_for(8, 0, 8), ServiceLevel::Offline);
///
/// let strict = HealthRules::builder().on_unresponsive(ServiceLevel::ReadOnly).build()?;
/// assert_eq!(strict.level_for(8, 1, 0), ServiceLevel::ReadOnly);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "HealthRulesRepr", into = "HealthRulesRepr")]
pub struct HealthRules {
    on_unresponsive: ServiceLevel,
    on_any_failed: ServiceLevel,
    on_majority_failed: ServiceLevel,
    on_all_failed: ServiceLevel,
}

impl Default for HealthRules {
    fn default() -> Self {
        HealthRules {
            on_unresponsive: ServiceLevel::Normal,
            on_any_failed: ServiceLevel::ReadOnly,
            on_majority_failed: ServiceLevel::EssentialOnly,
            on_all_failed: ServiceLevel::Offline,
        }
    }
}

impl HealthRules {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// let rules = HealthRules::builder().on_all_failed(ServiceLevel::EssentialOnly).build()?;
    /// assert_eq!(rules.on_all_failed(), ServiceLevel::EssentialOnly);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> HealthRulesBuilder {
        HealthRulesBuilder {
            rules: HealthRules::default(),
        }
    }

    /// The level when a member is Unresponsive (or Failed).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// assert_eq!(HealthRules::default().on_unresponsive(), ServiceLevel::Normal);
    /// ```
    pub fn on_unresponsive(&self) -> ServiceLevel {
        self.on_unresponsive
    }

    /// The level when at least one member is Failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// assert_eq!(HealthRules::default().on_any_failed(), ServiceLevel::ReadOnly);
    /// ```
    pub fn on_any_failed(&self) -> ServiceLevel {
        self.on_any_failed
    }

    /// The level when more than half of the members are Failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// assert_eq!(HealthRules::default().on_majority_failed(), ServiceLevel::EssentialOnly);
    /// ```
    pub fn on_majority_failed(&self) -> ServiceLevel {
        self.on_majority_failed
    }

    /// The level when every member is Failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// assert_eq!(HealthRules::default().on_all_failed(), ServiceLevel::Offline);
    /// ```
    pub fn on_all_failed(&self) -> ServiceLevel {
        self.on_all_failed
    }

    /// The level for a component of `total` members, of which
    /// `unresponsive` are Unresponsive and `failed` are Failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// assert_eq!(HealthRules::default().level_for(2, 0, 1), ServiceLevel::ReadOnly);
    /// assert_eq!(HealthRules::default().level_for(0, 0, 0), ServiceLevel::Normal);
    /// ```
    pub fn level_for(&self, total: usize, unresponsive: usize, failed: usize) -> ServiceLevel {
        let mut level = ServiceLevel::Normal;
        if unresponsive + failed > 0 {
            level = level.max(self.on_unresponsive);
        }
        if failed > 0 {
            level = level.max(self.on_any_failed);
        }
        if failed.saturating_mul(2) > total {
            level = level.max(self.on_majority_failed);
        }
        if total > 0 && failed >= total {
            level = level.max(self.on_all_failed);
        }
        level
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.on_majority_failed < self.on_any_failed {
            return Err(ConfigError::new(
                "on_majority_failed",
                format!(
                    "must be at least as severe as on_any_failed ({}), got {}",
                    self.on_any_failed, self.on_majority_failed
                ),
            ));
        }
        if self.on_all_failed < self.on_majority_failed {
            return Err(ConfigError::new(
                "on_all_failed",
                format!(
                    "must be at least as severe as on_majority_failed ({}), got {}",
                    self.on_majority_failed, self.on_all_failed
                ),
            ));
        }
        Ok(())
    }
}

/// Builds validated [`HealthRules`]: a rule for more failures may not be
/// milder than a rule for fewer.
///
/// # Examples
///
/// ```
/// use steadfast::degradation::{HealthRules, ServiceLevel};
/// let err = HealthRules::builder()
///     .on_any_failed(ServiceLevel::Offline)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.field(), "on_majority_failed");
/// ```
#[derive(Debug, Clone)]
pub struct HealthRulesBuilder {
    rules: HealthRules,
}

impl HealthRulesBuilder {
    /// Sets the level when a member is Unresponsive (or Failed).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// let b = HealthRules::builder().on_unresponsive(ServiceLevel::ReadOnly);
    /// assert!(b.build().is_ok());
    /// ```
    pub fn on_unresponsive(mut self, level: ServiceLevel) -> Self {
        self.rules.on_unresponsive = level;
        self
    }

    /// Sets the level when at least one member is Failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// let b = HealthRules::builder().on_any_failed(ServiceLevel::Normal);
    /// assert!(b.build().is_ok());
    /// ```
    pub fn on_any_failed(mut self, level: ServiceLevel) -> Self {
        self.rules.on_any_failed = level;
        self
    }

    /// Sets the level when more than half of the members are Failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// let b = HealthRules::builder().on_majority_failed(ServiceLevel::Offline);
    /// assert!(b.build().is_ok());
    /// ```
    pub fn on_majority_failed(mut self, level: ServiceLevel) -> Self {
        self.rules.on_majority_failed = level;
        self
    }

    /// Sets the level when every member is Failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{HealthRules, ServiceLevel};
    /// let b = HealthRules::builder().on_all_failed(ServiceLevel::ReadOnly);
    /// assert_eq!(b.build().unwrap_err().field(), "on_all_failed");
    /// ```
    pub fn on_all_failed(mut self, level: ServiceLevel) -> Self {
        self.rules.on_all_failed = level;
        self
    }

    /// Validates and returns the rules.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::degradation::HealthRules::builder().build().is_ok());
    /// ```
    pub fn build(self) -> Result<HealthRules, ConfigError> {
        self.rules.validate()?;
        Ok(self.rules)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct HealthRulesRepr {
    on_unresponsive: ServiceLevel,
    on_any_failed: ServiceLevel,
    on_majority_failed: ServiceLevel,
    on_all_failed: ServiceLevel,
}

impl Default for HealthRulesRepr {
    fn default() -> Self {
        HealthRules::default().into()
    }
}

impl From<HealthRules> for HealthRulesRepr {
    fn from(r: HealthRules) -> Self {
        HealthRulesRepr {
            on_unresponsive: r.on_unresponsive,
            on_any_failed: r.on_any_failed,
            on_majority_failed: r.on_majority_failed,
            on_all_failed: r.on_all_failed,
        }
    }
}

impl TryFrom<HealthRulesRepr> for HealthRules {
    type Error = ConfigError;

    fn try_from(r: HealthRulesRepr) -> Result<Self, ConfigError> {
        let rules = HealthRules {
            on_unresponsive: r.on_unresponsive,
            on_any_failed: r.on_any_failed,
            on_majority_failed: r.on_majority_failed,
            on_all_failed: r.on_all_failed,
        };
        rules.validate()?;
        Ok(rules)
    }
}

/// Who set a level: the operator (`MANUAL`) or a watcher.
type Source = u64;
const MANUAL: Source = 0;

/// How many level changes are buffered per subscriber.
const EVENT_CAPACITY: usize = 1024;

#[derive(Debug, Default)]
struct Component {
    /// The level each source set (Normal is not stored).
    sources: BTreeMap<Source, ServiceLevel>,
    /// The worst of them.
    level: ServiceLevel,
}

#[derive(Debug, Default)]
struct State {
    components: BTreeMap<String, Component>,
    /// The service level set explicitly.
    service_floor: ServiceLevel,
    /// The worst of the floor and every component.
    service: ServiceLevel,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    events: broadcast::Sender<LevelChange>,
    next_source: AtomicU64,
}

/// Service levels per component and for the service, permission checks,
/// level-change events, and watchers that set levels from health.
///
/// See the [module documentation](crate::degradation). The manager is
/// `Clone` (clones share everything), `Send` and `Sync`.
///
/// # Examples
///
/// ```
/// use steadfast::degradation::{DegradationManager, OperationKind, ServiceLevel};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let degradation = DegradationManager::new();
/// degradation.set_service_level(ServiceLevel::EssentialOnly, "maintenance");
/// assert!(!degradation.allows("cache", OperationKind::Read));
/// assert!(degradation.allows("cache", OperationKind::Essential));
/// degradation.set_service_level(ServiceLevel::Normal, "maintenance over");
/// assert!(degradation.allows("cache", OperationKind::Write));
/// # }
/// ```
#[derive(Clone)]
pub struct DegradationManager {
    inner: Arc<Inner>,
}

impl fmt::Debug for DegradationManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("DegradationManager")
            .field("service", &state.service)
            .field(
                "components",
                &state
                    .components
                    .iter()
                    .map(|(name, c)| (name, c.level))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for DegradationManager {
    fn default() -> Self {
        DegradationManager::new()
    }
}

impl DegradationManager {
    /// A manager with every level Normal. Each subscriber buffers up to
    /// 1024 changes.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{DegradationManager, ServiceLevel};
    /// let degradation = DegradationManager::new();
    /// assert_eq!(degradation.service_level(), ServiceLevel::Normal);
    /// ```
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        DegradationManager {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                events,
                next_source: AtomicU64::new(MANUAL + 1),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before anything
        // that could panic, so a poisoned lock is still usable.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, component: Option<&str>, old: ServiceLevel, new: ServiceLevel, reason: &str) {
        let name = component.unwrap_or("(service)");
        if new > old {
            tracing::warn!(
                target: "steadfast::degradation",
                component = name, %old, %new, reason,
                "service level lowered"
            );
        } else {
            tracing::info!(
                target: "steadfast::degradation",
                component = name, %old, %new, reason,
                "service level restored"
            );
        }
        if self.inner.events.receiver_count() > 0 {
            let _ = self.inner.events.send(LevelChange {
                component: component.map(str::to_string),
                old,
                new,
                reason: reason.to_string(),
                at: Instant::now(),
            });
        }
    }

    /// Recomputes the service level after a change; emits under the lock so
    /// that events keep the order of the changes.
    fn settle_service(&self, state: &mut State, reason: &str) {
        let worst = state
            .components
            .values()
            .map(|c| c.level)
            .max()
            .unwrap_or_default()
            .max(state.service_floor);
        if worst != state.service {
            let old = std::mem::replace(&mut state.service, worst);
            self.emit(None, old, worst, reason);
        }
    }

    /// Sets the level `source` asks for `component`; returns the component's
    /// resulting level.
    fn set_source_level(
        &self,
        component: &str,
        source: Source,
        level: ServiceLevel,
        reason: &str,
    ) -> ServiceLevel {
        let mut state = self.lock();
        let entry = match state.components.get_mut(component) {
            Some(entry) => entry,
            None if level == ServiceLevel::Normal => return ServiceLevel::Normal,
            None => state.components.entry(component.to_string()).or_default(),
        };
        if level == ServiceLevel::Normal {
            entry.sources.remove(&source);
        } else {
            entry.sources.insert(source, level);
        }
        let new = entry.sources.values().copied().max().unwrap_or_default();
        let old = std::mem::replace(&mut entry.level, new);
        if entry.sources.is_empty() {
            state.components.remove(component);
        }
        if old != new {
            self.emit(Some(component), old, new, reason);
            self.settle_service(&mut state, reason);
        }
        new
    }

    /// Withdraws every level `source` set.
    fn clear_source(&self, source: Source, reason: &str) {
        let names: Vec<String> = self
            .lock()
            .components
            .iter()
            .filter(|(_, c)| c.sources.contains_key(&source))
            .map(|(name, _)| name.clone())
            .collect();
        for name in names {
            self.set_source_level(&name, source, ServiceLevel::Normal, reason);
        }
    }

    /// Sets the operator's level for `component`, and returns the
    /// component's resulting level: the worst of this one and those its
    /// watchers set. `Normal` withdraws the operator's level.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{DegradationManager, ServiceLevel};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let degradation = DegradationManager::new();
    /// let level = degradation.set_level("search", ServiceLevel::Offline, "index rebuild");
    /// assert_eq!(level, ServiceLevel::Offline);
    /// assert_eq!(degradation.set_level("search", ServiceLevel::Normal, "rebuilt"), ServiceLevel::Normal);
    /// # }
    /// ```
    pub fn set_level(
        &self,
        component: &str,
        level: ServiceLevel,
        reason: impl Into<String>,
    ) -> ServiceLevel {
        self.set_source_level(component, MANUAL, level, &reason.into())
    }

    /// Sets the service level explicitly: the service is at least this
    /// degraded, and so is every component's permission check.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{DegradationManager, ServiceLevel};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let degradation = DegradationManager::new();
    /// degradation.set_service_level(ServiceLevel::ReadOnly, "migration");
    /// assert_eq!(degradation.service_level(), ServiceLevel::ReadOnly);
    /// assert_eq!(degradation.level("anything"), ServiceLevel::Normal); // its own level
    /// # }
    /// ```
    pub fn set_service_level(&self, level: ServiceLevel, reason: impl Into<String>) {
        let reason = reason.into();
        let mut state = self.lock();
        state.service_floor = level;
        self.settle_service(&mut state, &reason);
    }

    /// A component's own level (Normal for a component no one degraded).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{DegradationManager, ServiceLevel};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let degradation = DegradationManager::new();
    /// assert_eq!(degradation.level("never-set"), ServiceLevel::Normal);
    /// # }
    /// ```
    pub fn level(&self, component: &str) -> ServiceLevel {
        self.lock()
            .components
            .get(component)
            .map_or(ServiceLevel::Normal, |c| c.level)
    }

    /// The service level: the worst of the explicit service level and every
    /// component's level.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{DegradationManager, ServiceLevel};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let degradation = DegradationManager::new();
    /// degradation.set_level("a", ServiceLevel::ReadOnly, "");
    /// degradation.set_level("b", ServiceLevel::EssentialOnly, "");
    /// assert_eq!(degradation.service_level(), ServiceLevel::EssentialOnly);
    /// # }
    /// ```
    pub fn service_level(&self) -> ServiceLevel {
        self.lock().service
    }

    /// Every degraded component and its level, by name.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{DegradationManager, ServiceLevel};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let degradation = DegradationManager::new();
    /// degradation.set_level("b", ServiceLevel::ReadOnly, "");
    /// degradation.set_level("a", ServiceLevel::Offline, "");
    /// assert_eq!(
    ///     degradation.components(),
    ///     vec![("a".to_string(), ServiceLevel::Offline), ("b".to_string(), ServiceLevel::ReadOnly)]
    /// );
    /// # }
    /// ```
    pub fn components(&self) -> Vec<(String, ServiceLevel)> {
        self.lock()
            .components
            .iter()
            .map(|(name, c)| (name.clone(), c.level))
            .collect()
    }

    /// Whether `component` may run an operation of `kind`: its own level
    /// and the explicit service level both allow it.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{DegradationManager, OperationKind, ServiceLevel};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let degradation = DegradationManager::new();
    /// degradation.set_level("db", ServiceLevel::EssentialOnly, "failover");
    /// assert!(!degradation.allows("db", OperationKind::Read));
    /// assert!(degradation.allows("db", OperationKind::Essential));
    /// # }
    /// ```
    pub fn allows(&self, component: &str, kind: OperationKind) -> bool {
        let state = self.lock();
        let own = state
            .components
            .get(component)
            .map_or(ServiceLevel::Normal, |c| c.level);
        own.max(state.service_floor).allows(kind)
    }

    /// Whether the service as a whole may run an operation of `kind`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{DegradationManager, OperationKind, ServiceLevel};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let degradation = DegradationManager::new();
    /// degradation.set_level("db", ServiceLevel::ReadOnly, "failover");
    /// assert!(!degradation.service_allows(OperationKind::Write));
    /// # }
    /// ```
    pub fn service_allows(&self, kind: OperationKind) -> bool {
        self.service_level().allows(kind)
    }

    /// A stream of every level change from now on (a subscriber more than
    /// 1024 changes behind misses the oldest).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::degradation::{DegradationManager, ServiceLevel};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let degradation = DegradationManager::new();
    /// let mut changes = degradation.subscribe();
    /// degradation.set_service_level(ServiceLevel::Offline, "power cut");
    /// assert_eq!(changes.recv().await.unwrap().new, ServiceLevel::Offline);
    /// # }
    /// ```
    pub fn subscribe(&self) -> broadcast::Receiver<LevelChange> {
        self.inner.events.subscribe()
    }

    fn new_source(&self) -> Source {
        self.inner.next_source.fetch_add(1, Ordering::Relaxed)
    }

    /// Starts a task that sets component levels from the health of
    /// `monitor`'s members: each member belongs to the component
    /// `component_of` names (or to none, for `None`), and a component's
    /// level follows `rules` from the counts of its Unresponsive and Failed
    /// members. It re-evaluates on every status change, and every
    /// `check_interval` of the monitor (to see members added or removed).
    /// When the members recover, it raises the level back.
    ///
    /// The task ends when its handle is stopped or dropped, and then
    /// withdraws the levels it set. `component_of` runs while the monitor's
    /// member list is locked: it must not add or remove members.
    ///
    /// # Errors
    ///
    /// [`HealthError::NoRuntime`] when called outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::degradation::{DegradationManager, HealthRules, ServiceLevel};
    /// use steadfast::health::{HealthMonitor, MemberId};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::health::HealthError> {
    /// let monitor = HealthMonitor::default();
    /// monitor.add_member("db-primary");
    /// monitor.add_member("db-replica");
    /// monitor.add_member("cache-1");
    /// let degradation = DegradationManager::new();
    /// let watcher = degradation.watch_health(
    ///     &monitor,
    ///     |member: &MemberId| member.as_component()?.split('-').next().map(str::to_string),
    ///     HealthRules::default(),
    /// )?;
    /// let sweeper = monitor.start()?;
    /// for _ in 0..14 {
    ///     tokio::time::sleep(Duration::from_secs(5)).await;
    ///     monitor.heartbeat(&"db-primary".into())?;
    ///     monitor.heartbeat(&"cache-1".into())?; // the replica is silent
    /// }
    /// assert_eq!(degradation.level("db"), ServiceLevel::ReadOnly);
    /// assert_eq!(degradation.level("cache"), ServiceLevel::Normal);
    /// watcher.stop().await;
    /// assert_eq!(degradation.level("db"), ServiceLevel::Normal); // withdrawn
    /// sweeper.stop().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch_health<F>(
        &self,
        monitor: &HealthMonitor,
        component_of: F,
        rules: HealthRules,
    ) -> Result<MonitorHandle, HealthError>
    where
        F: Fn(&MemberId) -> Option<String> + Send + Sync + 'static,
    {
        let manager = self.clone();
        let monitor = monitor.clone();
        let source = self.new_source();
        let mut changes = monitor.subscribe();
        let period = monitor.config().check_interval();
        MonitorHandle::spawn("degradation health watcher", move |mut stop| async move {
            let _withdraw = Withdraw {
                manager: manager.clone(),
                source,
                reason: "health watcher stopped",
            };
            let mut counts: HashMap<String, Counts> = HashMap::new();
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                apply_health(
                    &manager,
                    &monitor,
                    source,
                    &component_of,
                    &rules,
                    &mut counts,
                );
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    received = changes.recv() => {
                        if matches!(received, Err(broadcast::error::RecvError::Closed)) {
                            break;
                        }
                        // Take every change already queued: one evaluation
                        // covers a whole sweep.
                        while changes.try_recv().is_ok() {}
                    }
                    _ = ticker.tick() => {}
                }
            }
        })
    }

    /// [`watch_health`](DegradationManager::watch_health) with every member
    /// of `monitor` in one `component`.
    ///
    /// # Errors
    ///
    /// [`HealthError::NoRuntime`] when called outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::degradation::{DegradationManager, HealthRules, ServiceLevel};
    /// use steadfast::health::HealthMonitor;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::health::HealthError> {
    /// let monitor = HealthMonitor::default();
    /// for rank in 0..4usize {
    ///     monitor.add_member(rank);
    /// }
    /// let degradation = DegradationManager::new();
    /// let _watcher = degradation.watch_health_as(&monitor, "training", HealthRules::default())?;
    /// let _sweeper = monitor.start()?;
    /// tokio::time::sleep(Duration::from_secs(70)).await; // nobody heartbeats
    /// assert_eq!(degradation.level("training"), ServiceLevel::Offline);
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch_health_as(
        &self,
        monitor: &HealthMonitor,
        component: &str,
        rules: HealthRules,
    ) -> Result<MonitorHandle, HealthError> {
        let component = component.to_string();
        self.watch_health(monitor, move |_| Some(component.clone()), rules)
    }
}

impl DegradationManager {
    /// Starts a task that lowers `component` to `level_when_open` while
    /// `breaker` is Open or HalfOpen, and restores it when the breaker
    /// closes.
    ///
    /// The task ends when its handle is stopped or dropped, and then
    /// withdraws the level it set.
    ///
    /// # Errors
    ///
    /// [`HealthError::NoRuntime`] when called outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::breaker::CircuitBreaker;
    /// use steadfast::degradation::{DegradationManager, OperationKind, ServiceLevel};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let breaker = CircuitBreaker::builder().failure_threshold(1).build()?;
    /// let degradation = DegradationManager::new();
    /// let watcher = degradation.watch_breaker("payments", &breaker, ServiceLevel::ReadOnly)?;
    ///
    /// breaker.try_acquire()?.failure(); // the circuit opens
    /// tokio::task::yield_now().await;
    /// assert!(!degradation.allows("payments", OperationKind::Write));
    ///
    /// breaker.reset(); // closed again
    /// tokio::task::yield_now().await;
    /// assert!(degradation.allows("payments", OperationKind::Write));
    /// watcher.stop().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch_breaker(
        &self,
        component: &str,
        breaker: &CircuitBreaker,
        level_when_open: ServiceLevel,
    ) -> Result<MonitorHandle, HealthError> {
        let manager = self.clone();
        let breaker = breaker.clone();
        let component = component.to_string();
        let source = self.new_source();
        // Subscribed before the first look at the state: no change is lost.
        let mut changes = breaker.subscribe();
        MonitorHandle::spawn("degradation breaker watcher", move |mut stop| async move {
            let _withdraw = Withdraw {
                manager: manager.clone(),
                source,
                reason: "breaker watcher stopped",
            };
            let level_for = |state: BreakerState| match state {
                BreakerState::Closed => ServiceLevel::Normal,
                BreakerState::Open | BreakerState::HalfOpen => level_when_open,
            };
            let state = breaker.state();
            let reason = format!("circuit breaker {state}");
            manager.set_source_level(&component, source, level_for(state), &reason);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    received = changes.recv() => {
                        let (state, reason) = match received {
                            Ok(change) => (
                                change.to,
                                format!(
                                    "circuit breaker {} -> {} ({})",
                                    change.from, change.to, change.reason
                                ),
                            ),
                            Err(broadcast::error::RecvError::Lagged(_)) => {
                                let state = breaker.state();
                                (state, format!("circuit breaker {state}"))
                            }
                            Err(broadcast::error::RecvError::Closed) => break,
                        };
                        manager.set_source_level(&component, source, level_for(state), &reason);
                    }
                }
            }
        })
    }
}

/// Member counts of one component.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    total: usize,
    unresponsive: usize,
    failed: usize,
}

/// Recounts the components from the monitor and sets their levels.
fn apply_health<F>(
    manager: &DegradationManager,
    monitor: &HealthMonitor,
    source: Source,
    component_of: &F,
    rules: &HealthRules,
    counts: &mut HashMap<String, Counts>,
) where
    F: Fn(&MemberId) -> Option<String>,
{
    for c in counts.values_mut() {
        *c = Counts::default();
    }
    monitor.for_each_member(|member, status| {
        let Some(component) = component_of(member) else {
            return;
        };
        let c = counts.entry(component).or_default();
        c.total += 1;
        match status {
            HealthStatus::Healthy => {}
            HealthStatus::Unresponsive => c.unresponsive += 1,
            HealthStatus::Failed => c.failed += 1,
        }
    });
    for (component, c) in counts.iter() {
        let level = rules.level_for(c.total, c.unresponsive, c.failed);
        let reason = format!(
            "health: {} of {} members failed, {} unresponsive",
            c.failed, c.total, c.unresponsive
        );
        manager.set_source_level(component, source, level, &reason);
    }
    // A component left without members is no longer this watcher's concern.
    counts.retain(|_, c| c.total > 0);
}

/// Withdraws a watcher's levels when its task ends (stopped or aborted).
struct Withdraw {
    manager: DegradationManager,
    source: Source,
    reason: &'static str,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        self.manager.clear_source(self.source, self.reason);
    }
}
