//! Service levels and what they allow: [`ServiceLevel`], [`OperationKind`],
//! and the [`LevelChange`] events a
//! [`DegradationManager`](super::DegradationManager) sends.

use std::fmt;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

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
