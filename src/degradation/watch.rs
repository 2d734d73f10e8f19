//! Watchers: background tasks that set a component's level from the health
//! of its members ([`DegradationManager::watch_health`]) or from a circuit
//! breaker's state ([`DegradationManager::watch_breaker`]), and withdraw
//! what they set when they stop.

use std::collections::HashMap;

use tokio::sync::broadcast;
use tokio::time::MissedTickBehavior;

use crate::breaker::{CircuitBreaker, State as BreakerState};
use crate::health::{HealthMonitor, HealthStatus, MemberId, MonitorHandle};

use super::manager::Source;
use super::{DegradationError, DegradationManager, HealthRules, ServiceLevel};

impl DegradationManager {
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
    /// [`DegradationError::Watcher`], with
    /// [`HealthError::NoRuntime`](crate::health::HealthError::NoRuntime) as
    /// its source, when called outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::degradation::{DegradationManager, HealthRules, ServiceLevel};
    /// use steadfast::health::{HealthMonitor, MemberId};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    ///     monitor.heartbeat("db-primary")?;
    ///     monitor.heartbeat("cache-1")?; // the replica is silent
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
    ) -> Result<MonitorHandle, DegradationError>
    where
        F: Fn(&MemberId) -> Option<String> + Send + Sync + 'static,
    {
        let manager = self.clone();
        let monitor = monitor.clone();
        let source = self.new_source();
        let mut changes = monitor.subscribe();
        let period = monitor.config().check_interval();
        let watcher = "health watcher";
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
        .map_err(|source| DegradationError::Watcher { watcher, source })
    }

    /// [`watch_health`](DegradationManager::watch_health) with every member
    /// of `monitor` in one `component`.
    ///
    /// # Errors
    ///
    /// [`DegradationError::Watcher`], with
    /// [`HealthError::NoRuntime`](crate::health::HealthError::NoRuntime) as
    /// its source, when called outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::degradation::{DegradationManager, HealthRules, ServiceLevel};
    /// use steadfast::health::HealthMonitor;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    ) -> Result<MonitorHandle, DegradationError> {
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
    /// [`DegradationError::Watcher`], with
    /// [`HealthError::NoRuntime`](crate::health::HealthError::NoRuntime) as
    /// its source, when called outside a tokio runtime.
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
    ) -> Result<MonitorHandle, DegradationError> {
        let manager = self.clone();
        let breaker = breaker.clone();
        let component = component.to_string();
        let source = self.new_source();
        // Subscribed before the first look at the state: no change is lost.
        let mut changes = breaker.subscribe();
        let watcher = "breaker watcher";
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
        .map_err(|source| DegradationError::Watcher { watcher, source })
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
