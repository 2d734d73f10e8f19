//! Health monitoring: heartbeats per rank, component, node, agent or
//! service; Healthy / Unresponsive / Failed; a stream of status changes and
//! a stream of typed failures.
//!
//! A [`HealthMonitor`] holds members ([`MemberId`]: ranks of a distributed
//! job, named components of a service, and nodes, agents and services of a
//! cluster, added with [`HealthMonitor::monitor_node`],
//! [`monitor_agent`](HealthMonitor::monitor_agent) and
//! [`monitor_service`](HealthMonitor::monitor_service)). Each member sends
//! heartbeats ([`HealthMonitor::heartbeat`], cheap enough for hot paths); a
//! sweep, run every `check_interval` by a background task
//! ([`HealthMonitor::start`], stopped through its [`MonitorHandle`]) or on
//! demand ([`HealthMonitor::check_now`]), marks the silent members. With
//! `T` the `heartbeat_timeout`, `I` the `heartbeat_interval` and `N` the
//! `failure_threshold`:
//!
//! | status | fixed timeout (default) | phi accrual | missed heartbeats |
//! |---|---|---|---|
//! | Healthy | silent for at most `T` | phi below its threshold | no heartbeat missing (silent for at most `1.5·I`) |
//! | Unresponsive | silent for longer than `T` | phi at or above its threshold | a heartbeat missing, fewer than `N` missed in a row and within the window |
//! | Failed | silent for longer than `2·T` | silent for longer than `2·T` | `N` missed in a row (silent for longer than `(N + 0.5)·I`), or `N` missed within `detection_window` counting the current silence |
//!
//! With every policy, a member marked with [`HealthMonitor::mark_failed`]
//! is Failed, and a member that is not Healthy and heartbeats again is
//! Healthy at once, on that heartbeat. Every change is emitted as a
//! [`StatusChange`] to [`HealthMonitor::subscribe`]rs, and every move into
//! Failed as a [`Failure`] to [`HealthMonitor::failure_stream`]s.
//! [`CoordinatorHeartbeat`] carries heartbeats between the ranks of a job
//! through its [`Coordinator`](crate::coordinator::Coordinator).
//!
//! # Missed heartbeats
//!
//! [`DetectionPolicy::MissedHeartbeats`] judges members in the terms an
//! operator configures: members beat every `heartbeat_interval` (`I`, 5 s
//! by default); a member is Failed after `failure_threshold` (`N`, 3)
//! missed heartbeats, in a row or scattered over the `detection_window`
//! (`W`, 30 s). The rules, exactly:
//!
//! 1. After a heartbeat at `L`, the `k`-th next one is due at `L + k·I`. It
//!    counts as **missed** once half an interval has passed beyond that
//!    with no heartbeat: from `t_k = L + k·I + I/2` on (strictly after
//!    it), so that jitter of up to half an interval is never a miss. A
//!    silence of `s` therefore holds `max(0, ⌈(s - I/2) / I⌉ - 1)` missed
//!    heartbeats: none up to `1.5·I`, one up to `2.5·I`, and so on. The
//!    silence before the first heartbeat is counted from the member's
//!    registration.
//! 2. A miss is **within the window** at `now` if `now - W ≤ t_k`: the
//!    window is the last `W` of time, sliding, inclusive at its old end.
//!    Misses of earlier gaps (closed by a heartbeat) count as well as
//!    those of the current silence.
//! 3. A member with **no heartbeat missing** now (silent for at most
//!    `1.5·I`) is **Healthy**, whatever its earlier misses.
//! 4. A member with a heartbeat missing is **Failed** when `N` or more
//!    are missed in the current silence (silent for longer than
//!    `(N + 0.5)·I`: a member silent for `N` intervals in a row is Failed
//!    at once, whatever the window), or when `N` or more are missed within
//!    the window (a member that keeps missing beats now and then); it is
//!    **Unresponsive** otherwise.
//! 5. A Failed member stays Failed until it heartbeats, even once old
//!    misses slide out of the window, so that a failure is reported once.
//!
//! With `I = 5 s`, `N = 3`, `W = 30 s`: a member gone silent is
//! Unresponsive after 7.5 s and Failed after 17.5 s; a member that misses
//! one beat at a time (a gap of 10 s between heartbeats) three times within
//! 30 s is Failed at its third miss. A window shorter than `N·I` leaves only
//! the rule of misses in a row in effect. `heartbeat_timeout` plays no part
//! in this policy; sweep at least every `I` (`check_interval`) for the
//! rules to be applied on time.
//!
//! With the other policies the same counting gives the
//! `missed_heartbeats` of a failure's [`FailureEvidence`], as evidence only.
//!
//! # Failures
//!
//! [`HealthMonitor::failure_stream`] reports each member that turns Failed,
//! once, as the variant of its kind ([`Failure::NodeCrash`],
//! [`Failure::AgentFailure`], [`Failure::ServiceFailure`],
//! [`Failure::RankFailure`], [`Failure::ComponentFailure`]) with the
//! evidence: its last heartbeat, how long it was silent, the heartbeats it
//! missed in a row and within the window, phi with the phi-accrual policy,
//! and whether it was declared failed from outside. A member is reported
//! again only after it heartbeat and failed again.
//!
//! # Suspected partitions
//!
//! When many members are lost at once, the likelier cause is the network
//! between them and this process rather than each of them. A member is
//! *lost* when a sweep (or [`HealthMonitor::mark_failed`]) finds it leaving
//! Healthy, and stays lost until it is Healthy again or removed. A
//! [`Failure::SuspectedPartition`] naming the members is reported when, at
//! the end of a sweep that lost a member (or at a `mark_failed`), the
//! members lost within the last `detection_window` number at least two and
//! at least `partition_fraction` (one half by default) of the monitored
//! members, rounded up. It is reported once: no other is reported until the
//! suspicion closes, when fewer members than that quorum remain lost. The
//! members' own failures are reported besides, as each turns Failed.
//!
//! # The phi-accrual failure detector
//!
//! A fixed timeout must be long enough for the slowest member and the worst
//! network, and is then slow to notice a member that usually beats fast. The
//! phi-accrual detector (Hayashibara, Défago, Yared and Katayama, *The φ
//! Accrual Failure Detector*, 2004) instead learns each member's rhythm and
//! turns its silence into a suspicion level:
//!
//! 1. Each heartbeat's inter-arrival time (since the member's previous
//!    heartbeat) enters a sliding window of the last `max_samples`
//!    intervals; the window's mean `μ` and population standard deviation
//!    `σ` are kept from exact integer running sums.
//! 2. The intervals are modelled as normally distributed with mean
//!    `μ' = μ + acceptable_heartbeat_pause` and standard deviation
//!    `σ' = max(σ, min_std_deviation)`. Until a first interval is measured,
//!    `μ = first_heartbeat_estimate` and `σ = μ / 4`.
//! 3. After a silence of `t` since the last heartbeat, the probability that
//!    the next heartbeat is still to come is
//!    `P_later(t) = 1 - CDF(t) = Q((t - μ') / σ')`, with `Q` the upper tail
//!    of the standard normal distribution, and
//!    **`phi(t) = -log10(P_later(t))`**.
//!
//! phi = 1 means a 10% chance that the member is merely late, phi = 8 one in
//! 10⁸. The member is Unresponsive once phi reaches `threshold`. `Q` is
//! computed in the log domain (a positive-term series of `erf` below
//! `z = 3`, the continued fraction of the Mills ratio above), so phi stays
//! exact and finite long after `P_later` underflows a `f64`. A sweep does not
//! evaluate `Q` for each member: phi grows with `z = (t - μ') / σ'`, so it
//! compares `z` with the `z` at which phi equals the threshold, computed
//! once.
//!
//! Failure is not left to phi: with this policy, as with the fixed
//! timeout, a member is Failed when silent for longer than twice
//! `heartbeat_timeout`. phi flags a member
//! early and adaptively; Failed, which callers act on (degrading a service,
//! replacing a rank), waits for a bound the operator chose.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use steadfast::health::{HealthMonitor, HealthStatus, MemberId};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), steadfast::health::HealthError> {
//! let monitor = HealthMonitor::default();
//! let mut changes = monitor.subscribe();
//! for rank in 0..4usize {
//!     monitor.add_member(rank);
//! }
//! let sweeper = monitor.start()?;
//! for _ in 0..10 {
//!     tokio::time::sleep(Duration::from_secs(10)).await;
//!     for rank in 0..3usize {
//!         monitor.heartbeat(rank)?; // rank 3 is silent
//!     }
//! }
//! let change = changes.recv().await.unwrap();
//! assert_eq!((change.member, change.new), (MemberId::Rank(3), HealthStatus::Unresponsive));
//! assert_eq!(monitor.failed(), vec![MemberId::Rank(3)]);
//! sweeper.stop().await;
//! # Ok(())
//! # }
//! ```

mod config;
mod coordinator;
mod error;
mod failure;
mod handle;
mod liveness;
mod member;
mod missed;
mod monitor;
mod phi;
mod phi_config;
mod rank_table;
mod registry;
mod status;

pub use config::{DetectionPolicy, HealthConfig, HealthConfigBuilder};
pub use coordinator::{CoordinatorHeartbeat, HeartbeatConfig, HeartbeatConfigBuilder};
pub use error::HealthError;
pub use failure::{Failure, FailureEvidence, FailureKind, FailureStream};
pub use handle::MonitorHandle;
pub use member::{AsMember, MemberId, MemberKind, MemberRef};
pub use monitor::HealthMonitor;
pub use phi_config::{PhiAccrualConfig, PhiAccrualConfigBuilder};
pub use status::{HealthSnapshot, HealthStatus, MemberHealth, StatusChange, SweepSummary};
