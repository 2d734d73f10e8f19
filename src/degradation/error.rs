//! [`DegradationError`]: what can go wrong in the degradation module. Only
//! starting a watcher can fail; levels, checks and events cannot.

use crate::health::HealthError;

/// A degradation watcher could not be started.
///
/// # Examples
///
/// ```
/// use steadfast::breaker::CircuitBreaker;
/// use steadfast::degradation::{DegradationError, DegradationManager, ServiceLevel};
///
/// // Outside a tokio runtime there is nowhere to run the watcher's task.
/// let degradation = DegradationManager::new();
/// let breaker = CircuitBreaker::default();
/// let err = degradation
///     .watch_breaker("payments", &breaker, ServiceLevel::ReadOnly)
///     .unwrap_err();
/// assert!(matches!(err, DegradationError::Watcher { .. }));
/// assert!(std::error::Error::source(&err).is_some());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DegradationError {
    /// The watcher's background task could not be started (it needs a
    /// tokio runtime: [`HealthError::NoRuntime`] is the source).
    #[error("degradation {watcher} could not start")]
    Watcher {
        /// Which watcher: `"health watcher"` or `"breaker watcher"`.
        watcher: &'static str,
        /// Why the task could not start.
        #[source]
        source: HealthError,
    },
}
