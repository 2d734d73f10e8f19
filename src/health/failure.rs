//! Typed failures: what [`HealthMonitor::failure_stream`] reports
//! ([`Failure`], its [`FailureKind`] and [`FailureEvidence`]) and the stream
//! itself ([`FailureStream`]).
//!
//! A member's failure is reported once, when the member turns Failed, as
//! the variant its [`MemberKind`] calls for, with the evidence the monitor
//! had at that moment; it is reported again only after the member became
//! Healthy (it heartbeat) and failed again. A suspected partition is
//! reported once as a [`Failure::SuspectedPartition`] naming the members
//! lost together (see [`health`](crate::health#suspected-partitions)),
//! besides the failures of those of them that turn Failed.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{MemberId, MemberKind, MemberRef};

#[cfg(doc)]
use super::HealthMonitor;

/// What the monitor knew of a member when it reported it failed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::health::FailureEvidence;
/// use tokio::time::Instant;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let last = Instant::now();
/// tokio::time::advance(Duration::from_secs(20)).await;
/// let mut evidence = FailureEvidence::new(last, Instant::now());
/// evidence.missed_heartbeats = 3;
/// assert_eq!(evidence.silent_for, Duration::from_secs(20));
/// assert_eq!(evidence.phi, None);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FailureEvidence {
    /// When the failure was found (the sweep's time, or the time of
    /// [`HealthMonitor::mark_failed`]).
    pub at: Instant,
    /// The member's latest heartbeat (its registration, before the first).
    pub last_heartbeat: Instant,
    /// How long it had been silent at `at`.
    pub silent_for: Duration,
    /// Heartbeats missed in a row in that silence, at the configured
    /// `heartbeat_interval` (each counted once it is half an interval late),
    /// whatever the detection policy.
    pub missed_heartbeats: u64,
    /// Heartbeats missed within the detection window ending at `at`, in
    /// this silence and in earlier gaps, with
    /// [`DetectionPolicy::MissedHeartbeats`](super::DetectionPolicy::MissedHeartbeats);
    /// `None` with the other policies, which keep no such history.
    pub missed_in_window: Option<u64>,
    /// The member's phi at `at`, with the phi-accrual policy.
    pub phi: Option<f64>,
    /// Whether the failure was declared from outside
    /// ([`HealthMonitor::mark_failed`]: a lease expired, a process exited)
    /// rather than found from the member's silence.
    pub declared: bool,
}

impl FailureEvidence {
    /// Evidence of a member last heard from at `last_heartbeat`, found
    /// failed at `at`: `silent_for` is their difference, the counts are
    /// zero, `phi` is `None` and `declared` is false. Set the other fields
    /// as needed (to build a [`Failure`] by hand, in a test or from another
    /// source of failures).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::FailureEvidence;
    /// use tokio::time::Instant;
    ///
    /// let now = Instant::now();
    /// let evidence = FailureEvidence::new(now, now);
    /// assert_eq!(evidence.missed_heartbeats, 0);
    /// assert!(!evidence.declared);
    /// ```
    pub fn new(last_heartbeat: Instant, at: Instant) -> FailureEvidence {
        FailureEvidence {
            at,
            last_heartbeat,
            silent_for: at.saturating_duration_since(last_heartbeat),
            missed_heartbeats: 0,
            missed_in_window: None,
            phi: None,
            declared: false,
        }
    }
}

/// A failure reported by [`HealthMonitor::failure_stream`].
///
/// One variant per kind of member (the variant follows the member's
/// [`MemberKind`]), and [`SuspectedPartition`](Failure::SuspectedPartition)
/// for many members lost together. It displays as one line suitable as the
/// reason of a declared failure.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::health::{DetectionPolicy, Failure, FailureKind, HealthConfig, HealthMonitor};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = HealthConfig::builder()
///     .detection(DetectionPolicy::MissedHeartbeats)
///     .heartbeat_interval(Duration::from_secs(5))
///     .check_interval(Duration::from_secs(1))
///     .build()?;
/// let monitor = HealthMonitor::new(config);
/// let mut failures = monitor.failure_stream();
/// monitor.monitor_node("web-1");
/// tokio::time::advance(Duration::from_secs(18)).await; // 3 beats missed
/// monitor.check_now();
///
/// let failure = failures.try_recv().unwrap();
/// assert_eq!(failure.kind(), FailureKind::NodeCrash);
/// let Failure::NodeCrash { node, evidence } = &failure else { unreachable!() };
/// assert_eq!(node, "web-1");
/// assert_eq!(evidence.missed_heartbeats, 3);
/// assert_eq!(evidence.silent_for, Duration::from_secs(18));
/// assert_eq!(failure.to_string(), "node web-1 crashed: silent for 18s, 3 heartbeats missed in a row, 3 within the window");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Failure {
    /// A node ([`MemberId::Node`]) failed.
    NodeCrash {
        /// The node's id.
        node: String,
        /// What the monitor knew.
        evidence: FailureEvidence,
    },
    /// An agent ([`MemberId::Agent`]) failed.
    AgentFailure {
        /// The agent's id.
        agent: String,
        /// What the monitor knew.
        evidence: FailureEvidence,
    },
    /// A service ([`MemberId::Service`]) failed.
    ServiceFailure {
        /// The service's name.
        service: String,
        /// What the monitor knew.
        evidence: FailureEvidence,
    },
    /// A rank of a distributed job ([`MemberId::Rank`]) failed.
    RankFailure {
        /// The rank.
        rank: usize,
        /// What the monitor knew.
        evidence: FailureEvidence,
    },
    /// A named component ([`MemberId::Component`]) failed.
    ComponentFailure {
        /// The component's name.
        component: String,
        /// What the monitor knew.
        evidence: FailureEvidence,
    },
    /// Many members were lost within one detection window: at least two,
    /// and at least `partition_fraction` of those monitored (see
    /// [`health`](crate::health#suspected-partitions)). They may well be
    /// alive on the other side of a network partition.
    SuspectedPartition {
        /// The members lost within the window, sorted.
        members: Vec<MemberId>,
        /// How many members were monitored when it was found.
        monitored: usize,
        /// When the first of them was found lost.
        first_lost: Instant,
        /// When the suspicion was raised.
        at: Instant,
    },
}

impl Failure {
    /// The failure of `member`, as the variant its kind calls for.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{Failure, FailureEvidence, FailureKind, MemberId};
    /// use tokio::time::Instant;
    ///
    /// let now = Instant::now();
    /// let failure = Failure::of_member(MemberId::Rank(3), FailureEvidence::new(now, now));
    /// assert_eq!(failure.kind(), FailureKind::RankFailure);
    /// assert_eq!(failure.rank(), Some(3));
    /// ```
    pub fn of_member(member: MemberId, evidence: FailureEvidence) -> Failure {
        match member {
            MemberId::Rank(rank) => Failure::RankFailure { rank, evidence },
            MemberId::Component(component) => Failure::ComponentFailure {
                component,
                evidence,
            },
            MemberId::Node(node) => Failure::NodeCrash { node, evidence },
            MemberId::Agent(agent) => Failure::AgentFailure { agent, evidence },
            MemberId::Service(service) => Failure::ServiceFailure { service, evidence },
        }
    }

    /// The kind of failure.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{Failure, FailureEvidence, FailureKind, MemberId};
    /// use tokio::time::Instant;
    ///
    /// let now = Instant::now();
    /// let failure = Failure::of_member(MemberId::service("billing"), FailureEvidence::new(now, now));
    /// assert_eq!(failure.kind(), FailureKind::ServiceFailure);
    /// ```
    pub fn kind(&self) -> FailureKind {
        match self {
            Failure::NodeCrash { .. } => FailureKind::NodeCrash,
            Failure::AgentFailure { .. } => FailureKind::AgentFailure,
            Failure::ServiceFailure { .. } => FailureKind::ServiceFailure,
            Failure::RankFailure { .. } => FailureKind::RankFailure,
            Failure::ComponentFailure { .. } => FailureKind::ComponentFailure,
            Failure::SuspectedPartition { .. } => FailureKind::SuspectedPartition,
        }
    }

    /// The member that failed, borrowed; `None` for a suspected partition.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{Failure, FailureEvidence, MemberId, MemberRef};
    /// use tokio::time::Instant;
    ///
    /// let now = Instant::now();
    /// let failure = Failure::of_member(MemberId::agent("a-1"), FailureEvidence::new(now, now));
    /// assert_eq!(failure.member(), Some(MemberRef::Agent("a-1")));
    /// ```
    pub fn member(&self) -> Option<MemberRef<'_>> {
        Some(match self {
            Failure::NodeCrash { node, .. } => MemberRef::Node(node),
            Failure::AgentFailure { agent, .. } => MemberRef::Agent(agent),
            Failure::ServiceFailure { service, .. } => MemberRef::Service(service),
            Failure::RankFailure { rank, .. } => MemberRef::Rank(*rank),
            Failure::ComponentFailure { component, .. } => MemberRef::Component(component),
            Failure::SuspectedPartition { .. } => return None,
        })
    }

    /// Every member the failure names: the one that failed, or those of a
    /// suspected partition.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{Failure, FailureEvidence, MemberId};
    /// use tokio::time::Instant;
    ///
    /// let now = Instant::now();
    /// let failure = Failure::of_member(MemberId::node("n1"), FailureEvidence::new(now, now));
    /// assert_eq!(failure.members(), vec![MemberId::node("n1")]);
    /// ```
    pub fn members(&self) -> Vec<MemberId> {
        match self {
            Failure::SuspectedPartition { members, .. } => members.clone(),
            other => other
                .member()
                .map(MemberRef::to_member_id)
                .into_iter()
                .collect(),
        }
    }

    /// The rank that failed, for a [`RankFailure`](Failure::RankFailure)
    /// (what a coordinator declares failed).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{Failure, FailureEvidence, MemberId};
    /// use tokio::time::Instant;
    ///
    /// let now = Instant::now();
    /// assert_eq!(Failure::of_member(MemberId::Rank(2), FailureEvidence::new(now, now)).rank(), Some(2));
    /// assert_eq!(Failure::of_member(MemberId::from("db"), FailureEvidence::new(now, now)).rank(), None);
    /// ```
    pub fn rank(&self) -> Option<usize> {
        match self {
            Failure::RankFailure { rank, .. } => Some(*rank),
            _ => None,
        }
    }

    /// The evidence of a member's failure; `None` for a suspected
    /// partition (each of its members that turns Failed is reported with
    /// its own).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{Failure, FailureEvidence, MemberId};
    /// use tokio::time::Instant;
    ///
    /// let now = Instant::now();
    /// let failure = Failure::of_member(MemberId::Rank(0), FailureEvidence::new(now, now));
    /// assert_eq!(failure.evidence().map(|e| e.declared), Some(false));
    /// ```
    pub fn evidence(&self) -> Option<&FailureEvidence> {
        match self {
            Failure::NodeCrash { evidence, .. }
            | Failure::AgentFailure { evidence, .. }
            | Failure::ServiceFailure { evidence, .. }
            | Failure::RankFailure { evidence, .. }
            | Failure::ComponentFailure { evidence, .. } => Some(evidence),
            Failure::SuspectedPartition { .. } => None,
        }
    }

    /// When the failure was found.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{Failure, FailureEvidence, MemberId};
    /// use tokio::time::Instant;
    ///
    /// let now = Instant::now();
    /// assert_eq!(Failure::of_member(MemberId::Rank(0), FailureEvidence::new(now, now)).at(), now);
    /// ```
    pub fn at(&self) -> Instant {
        match self {
            Failure::SuspectedPartition { at, .. } => *at,
            other => other.evidence().map_or_else(Instant::now, |e| e.at),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Failure::SuspectedPartition {
            members, monitored, ..
        } = self
        {
            write!(
                f,
                "suspected partition: {} of {monitored} members lost within one detection window (",
                members.len()
            )?;
            for (i, member) in members.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{member}")?;
            }
            return f.write_str(")");
        }
        let (Some(member), Some(evidence)) = (self.member(), self.evidence()) else {
            return Ok(());
        };
        let verb = if matches!(self, Failure::NodeCrash { .. }) {
            "crashed"
        } else {
            "failed"
        };
        write!(f, "{member} {verb}: ")?;
        if evidence.declared {
            f.write_str("declared failed, ")?;
        }
        write!(
            f,
            "silent for {:?}, {} heartbeats missed in a row",
            evidence.silent_for, evidence.missed_heartbeats
        )?;
        if let Some(window) = evidence.missed_in_window {
            write!(f, ", {window} within the window")?;
        }
        if let Some(phi) = evidence.phi {
            write!(f, ", phi {phi:.2}")?;
        }
        Ok(())
    }
}

/// The kind of a [`Failure`], without its facts: what a handler is
/// registered for.
///
/// # Examples
///
/// ```
/// use steadfast::health::{FailureKind, MemberKind};
///
/// assert_eq!(FailureKind::of_member(MemberKind::Node), FailureKind::NodeCrash);
/// assert_eq!(FailureKind::SuspectedPartition.to_string(), "suspected partition");
/// assert_eq!(serde_json::to_string(&FailureKind::AgentFailure).unwrap(), r#""agent_failure""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// [`Failure::NodeCrash`].
    NodeCrash,
    /// [`Failure::AgentFailure`].
    AgentFailure,
    /// [`Failure::ServiceFailure`].
    ServiceFailure,
    /// [`Failure::RankFailure`].
    RankFailure,
    /// [`Failure::ComponentFailure`].
    ComponentFailure,
    /// [`Failure::SuspectedPartition`].
    SuspectedPartition,
}

impl FailureKind {
    /// The kind of a failure of a member of `kind`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{FailureKind, MemberKind};
    /// assert_eq!(FailureKind::of_member(MemberKind::Rank), FailureKind::RankFailure);
    /// ```
    pub fn of_member(kind: MemberKind) -> FailureKind {
        match kind {
            MemberKind::Rank => FailureKind::RankFailure,
            MemberKind::Component => FailureKind::ComponentFailure,
            MemberKind::Node => FailureKind::NodeCrash,
            MemberKind::Agent => FailureKind::AgentFailure,
            MemberKind::Service => FailureKind::ServiceFailure,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::NodeCrash => "node crash",
            FailureKind::AgentFailure => "agent failure",
            FailureKind::ServiceFailure => "service failure",
            FailureKind::RankFailure => "rank failure",
            FailureKind::ComponentFailure => "component failure",
            FailureKind::SuspectedPartition => "suspected partition",
        })
    }
}

/// The failures a [`HealthMonitor`] reports from the moment the stream was
/// made, in the order they were found; from
/// [`HealthMonitor::failure_stream`].
///
/// It is owned, `Send` and `'static`: move it into the task that acts on
/// failures. It is a [`futures::Stream`] of [`Failure`]s, and also has
/// [`recv`](FailureStream::recv) and [`try_recv`](FailureStream::try_recv).
/// No failure is dropped for a slow reader: failures are rare, so the
/// stream buffers every one until it is read. It ends (`None`) once every
/// clone of the monitor is dropped and the buffered failures are read.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures::StreamExt;
/// use steadfast::health::{Failure, HealthMonitor};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::health::HealthError> {
/// let monitor = HealthMonitor::default();
/// let mut failures = monitor.failure_stream();
/// let handler = tokio::spawn(async move {
///     let mut ranks = Vec::new();
///     while let Some(failure) = failures.next().await {
///         ranks.extend(failure.rank());
///     }
///     ranks
/// });
/// monitor.add_member(4usize);
/// monitor.mark_failed(4usize)?;
/// drop(monitor);
/// assert_eq!(handler.await.unwrap(), vec![4]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct FailureStream {
    receiver: mpsc::UnboundedReceiver<Failure>,
}

impl FailureStream {
    pub(super) fn new(receiver: mpsc::UnboundedReceiver<Failure>) -> FailureStream {
        FailureStream { receiver }
    }

    /// The next failure, waiting for one; `None` once the monitor is gone
    /// and every failure was read.
    ///
    /// # Cancellation
    ///
    /// Cancel-safe: a failure is never lost by dropping this future.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::health::HealthError> {
    /// let monitor = steadfast::health::HealthMonitor::default();
    /// let mut failures = monitor.failure_stream();
    /// monitor.monitor_agent("a-1");
    /// monitor.mark_failed(steadfast::health::MemberId::agent("a-1"))?;
    /// assert_eq!(failures.recv().await.unwrap().to_string().split(':').next(), Some("agent a-1 failed"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<Failure> {
        self.receiver.recv().await
    }

    /// The next failure if one is waiting, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let monitor = steadfast::health::HealthMonitor::default();
    /// let mut failures = monitor.failure_stream();
    /// assert!(failures.try_recv().is_none());
    /// # }
    /// ```
    pub fn try_recv(&mut self) -> Option<Failure> {
        self.receiver.try_recv().ok()
    }
}

impl futures::Stream for FailureStream {
    type Item = Failure;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Failure>> {
        self.receiver.poll_recv(cx)
    }
}
