//! The [`DegradationManager`]: the level each source (the operator, each
//! watcher) set per component, the service level that follows, permission
//! checks and level-change events.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{LevelChange, OperationKind, ServiceLevel};

/// Who set a level: the operator (`MANUAL`) or a watcher.
pub(super) type Source = u64;
pub(super) const MANUAL: Source = 0;

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
    pub(super) fn set_source_level(
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
    pub(super) fn clear_source(&self, source: Source, reason: &str) {
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

    pub(super) fn new_source(&self) -> Source {
        self.inner.next_source.fetch_add(1, Ordering::Relaxed)
    }
}
