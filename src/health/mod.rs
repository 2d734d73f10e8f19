//! Health monitoring: heartbeats per rank or component, Healthy /
//! Unresponsive / Failed, and a stream of status changes.
//!
//! A [`HealthMonitor`] holds members ([`MemberId`]: ranks of a distributed
//! job and named components of a service). Each member sends heartbeats
//! ([`HealthMonitor::heartbeat`], cheap enough for hot paths); a sweep, run
//! every `check_interval` by a background task ([`HealthMonitor::start`],
//! stopped through its [`MonitorHandle`]) or on demand
//! ([`HealthMonitor::check_now`]), marks the silent members:
//!
//! | status | fixed timeout (default) | phi accrual |
//! |---|---|---|
//! | Healthy | silent for at most `heartbeat_timeout` | phi below its threshold |
//! | Unresponsive | silent for longer than `heartbeat_timeout` | phi at or above its threshold |
//! | Failed | silent for longer than twice `heartbeat_timeout` | the same |
//!
//! Every change is emitted as a [`StatusChange`] to
//! [`HealthMonitor::subscribe`]rs; a member that heartbeats again is Healthy
//! at once. [`CoordinatorHeartbeat`] carries heartbeats between the ranks of
//! a job through its [`Coordinator`](crate::coordinator::Coordinator).
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
//! Failure is not left to phi: with either policy a member is Failed when
//! silent for longer than twice `heartbeat_timeout`. phi flags a member
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
mod handle;
mod liveness;
mod member;
mod monitor;
mod phi;
mod rank_table;
mod registry;
mod status;

pub use config::{
    DetectionPolicy, HealthConfig, HealthConfigBuilder, PhiAccrualConfig, PhiAccrualConfigBuilder,
};
pub use coordinator::{CoordinatorHeartbeat, HeartbeatConfig, HeartbeatConfigBuilder};
pub use error::HealthError;
pub use handle::MonitorHandle;
pub use member::{AsMember, MemberId, MemberRef};
pub use monitor::HealthMonitor;
pub use status::{HealthSnapshot, HealthStatus, MemberHealth, StatusChange, SweepSummary};
