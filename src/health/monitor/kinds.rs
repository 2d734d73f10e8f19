//! Members of kinds node, agent and service
//! ([`HealthMonitor::monitor_node`] and its siblings), and the stream of
//! typed failures ([`HealthMonitor::failure_stream`]).

use tokio::sync::mpsc;

use super::super::{FailureStream, MemberId};
use super::HealthMonitor;

impl HealthMonitor {
    /// Adds a node ([`MemberId::Node`]) to the monitored members, Healthy,
    /// its silence counted from now; its failure is reported as a
    /// [`Failure::NodeCrash`](crate::health::Failure::NodeCrash). Returns
    /// `false` (and changes nothing) if it was already a member. The node
    /// heartbeats with `monitor.heartbeat(MemberRef::Node(id))` (no
    /// allocation) or `monitor.heartbeat(MemberId::node(id))`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{HealthMonitor, HealthStatus, MemberId, MemberRef};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::health::HealthError> {
    /// let monitor = HealthMonitor::default();
    /// assert!(monitor.monitor_node("web-1"));
    /// assert!(!monitor.monitor_node("web-1"));
    /// monitor.heartbeat(MemberRef::Node("web-1"))?;
    /// assert_eq!(monitor.status(MemberId::node("web-1")), Some(HealthStatus::Healthy));
    /// assert_eq!(monitor.status("web-1"), None); // a component of that name is another member
    /// # Ok(())
    /// # }
    /// ```
    pub fn monitor_node(&self, id: impl Into<String>) -> bool {
        self.add_member(MemberId::Node(id.into()))
    }

    /// Adds an agent ([`MemberId::Agent`]) to the monitored members; its
    /// failure is reported as a
    /// [`Failure::AgentFailure`](crate::health::Failure::AgentFailure).
    /// Otherwise as [`monitor_node`](HealthMonitor::monitor_node).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{HealthMonitor, MemberRef};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::health::HealthError> {
    /// let monitor = HealthMonitor::default();
    /// monitor.monitor_agent("trainer-7");
    /// monitor.heartbeat(MemberRef::Agent("trainer-7"))?;
    /// assert!(monitor.heartbeat(MemberRef::Node("trainer-7")).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn monitor_agent(&self, id: impl Into<String>) -> bool {
        self.add_member(MemberId::Agent(id.into()))
    }

    /// Adds a service ([`MemberId::Service`]) to the monitored members; its
    /// failure is reported as a
    /// [`Failure::ServiceFailure`](crate::health::Failure::ServiceFailure).
    /// Otherwise as [`monitor_node`](HealthMonitor::monitor_node).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{HealthMonitor, MemberId};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let monitor = HealthMonitor::default();
    /// monitor.monitor_service("billing");
    /// assert!(monitor.contains(MemberId::service("billing")));
    /// # }
    /// ```
    pub fn monitor_service(&self, name: impl Into<String>) -> bool {
        self.add_member(MemberId::Service(name.into()))
    }

    /// A stream of the failures found from now on: each member's, once per
    /// failure, as the [`Failure`](crate::health::Failure) variant of its
    /// kind with its [`FailureEvidence`](crate::health::FailureEvidence),
    /// and suspected partitions.
    ///
    /// A member's failure is reported when it turns Failed (by its silence
    /// or through [`mark_failed`](HealthMonitor::mark_failed)); it is
    /// reported again only after it heartbeat (Healthy) and failed again.
    /// Members already Failed when the stream is made are not reported. A
    /// suspected partition is reported once (see
    /// [`health`](crate::health#suspected-partitions)), and again only
    /// after it closed. Each call makes an independent stream; the stream
    /// is owned, `Send` and `'static`, and buffers every failure until it
    /// is read.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::health::{Failure, FailureKind, HealthMonitor};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::health::HealthError> {
    /// let monitor = HealthMonitor::default(); // Failed after 60 s of silence
    /// let mut failures = monitor.failure_stream();
    /// monitor.monitor_service("billing");
    /// let sweeper = monitor.start()?;
    /// tokio::time::sleep(Duration::from_secs(70)).await;
    ///
    /// let failure = failures.recv().await.unwrap();
    /// assert_eq!(failure.kind(), FailureKind::ServiceFailure);
    /// let evidence = failure.evidence().unwrap();
    /// assert_eq!(evidence.silent_for, Duration::from_secs(65)); // found by the sweep at 65 s
    /// assert_eq!(evidence.missed_heartbeats, 12); // at the default 5 s interval
    /// assert!(failures.try_recv().is_none()); // once per failure
    /// sweeper.stop().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn failure_stream(&self) -> FailureStream {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.lock_transition().failures.push(sender);
        FailureStream::new(receiver)
    }
}
