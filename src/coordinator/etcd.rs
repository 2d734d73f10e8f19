//! [`EtcdCoordinator`]: the ranks of a job meet through an etcd cluster, so
//! that they can run as separate processes on separate machines (feature
//! `etcd`).
//!
//! The key layout, the protocols and the failure handling are documented on
//! [`EtcdCoordinator`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, GetResponse, PutOptions,
    Txn, TxnOp, TxnOpResponse, WatchOptions, WatchStream,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Coordinator, CoordinatorError, Result, Signal};
use crate::error::ConfigError;
use crate::health::{HealthMonitor, MemberId};
use crate::retry::{Backoff, Jitter, RetryError, RetryPolicy};

const TARGET: &str = "steadfast::coordinator";

/// How an [`EtcdCoordinator`] reaches etcd and which rank it plays.
///
/// Built with [`EtcdConfig::builder`], validated by
/// [`EtcdConfigBuilder::build`]; (de)serializes with readable durations
/// (`"10s"`, `"500ms"`) and is validated when read.
///
/// # Default
///
/// - `endpoints`: `["http://127.0.0.1:2379"]`
/// - `prefix`: none (must be set)
/// - `rank`: 0
/// - `world_size`: 1
/// - `lease_ttl`: 10 s (keep-alive every TTL/3)
/// - `connect_timeout`: 5 s
/// - `op_timeout`: 5 s
/// - `retry`: [`EtcdConfig::default_retry`]: 8 retries, 100 ms doubling to
///   2 s, equal jitter, at most 30 s in all
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::EtcdConfig;
///
/// let config = EtcdConfig::builder()
///     .endpoints(["http://10.0.0.5:2379", "http://10.0.0.6:2379"])
///     .prefix("/jobs/train-42")
///     .rank(3)
///     .world_size(8)
///     .lease_ttl(Duration::from_secs(15))
///     .build()?;
/// assert_eq!(config.prefix(), "/jobs/train-42");
///
/// let json = serde_json::to_string(&config).unwrap();
/// assert!(json.contains("\"lease_ttl\":\"15s\""));
/// let back: EtcdConfig = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, config);
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "EtcdConfigFields", into = "EtcdConfigFields")]
pub struct EtcdConfig {
    endpoints: Vec<String>,
    prefix: String,
    rank: usize,
    world_size: usize,
    lease_ttl: Duration,
    connect_timeout: Duration,
    op_timeout: Duration,
    retry: RetryPolicy,
}

impl EtcdConfig {
    /// A builder starting from the defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().prefix("job").build()?;
    /// assert_eq!(config.world_size(), 1);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn builder() -> EtcdConfigBuilder {
        EtcdConfigBuilder {
            config: EtcdConfig {
                endpoints: vec!["http://127.0.0.1:2379".to_string()],
                prefix: String::new(),
                rank: 0,
                world_size: 1,
                lease_ttl: Duration::from_secs(10),
                connect_timeout: Duration::from_secs(5),
                op_timeout: Duration::from_secs(5),
                retry: EtcdConfig::default_retry(),
            },
        }
    }

    /// The retry policy used when none is set: 8 retries, delays from
    /// 100 ms doubling up to 2 s with equal jitter, at most 30 s in all. It
    /// rides out an etcd restart or a leader election.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// assert_eq!(EtcdConfig::default_retry().max_retries(), 8);
    /// ```
    pub fn default_retry() -> RetryPolicy {
        RetryPolicy::builder()
            .max_retries(8)
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_secs(2))
            .jitter(Jitter::Equal)
            .max_elapsed(Duration::from_secs(30))
            .build()
            .unwrap_or_default()
    }

    /// The etcd endpoints (`http://host:port` or `host:port`).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().prefix("job").build()?;
    /// assert_eq!(config.endpoints(), ["http://127.0.0.1:2379"]);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The job prefix, without a trailing `/`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().prefix("jobs/a/").build()?;
    /// assert_eq!(config.prefix(), "jobs/a");
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// This process's rank.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().prefix("job").rank(2).world_size(4).build()?;
    /// assert_eq!(config.rank(), 2);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks of the job.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().prefix("job").world_size(4).build()?;
    /// assert_eq!(config.world_size(), 4);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// The TTL of this rank's lease.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().prefix("job").build()?;
    /// assert_eq!(config.lease_ttl(), Duration::from_secs(10));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// How long [`EtcdCoordinator::connect`] tries before it gives up.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().prefix("job").build()?;
    /// assert_eq!(config.connect_timeout(), Duration::from_secs(5));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The timeout of one etcd call (one attempt).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().prefix("job").build()?;
    /// assert_eq!(config.op_timeout(), Duration::from_secs(5));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn op_timeout(&self) -> Duration {
        self.op_timeout
    }

    /// The policy under which transient etcd errors are retried.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().prefix("job").build()?;
    /// assert_eq!(config.retry(), &EtcdConfig::default_retry());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }
}

/// Builds an [`EtcdConfig`], validating it in [`build`](Self::build).
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::EtcdConfig;
///
/// let err = EtcdConfig::builder().prefix("my job").build().unwrap_err();
/// assert_eq!(err.field(), "prefix");
/// let err = EtcdConfig::builder().prefix("job").rank(4).world_size(4).build().unwrap_err();
/// assert_eq!(err.field(), "rank");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct EtcdConfigBuilder {
    config: EtcdConfig,
}

impl EtcdConfigBuilder {
    /// Sets the etcd endpoints, `http://host:port` or `host:port`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().endpoints(["127.0.0.1:2379"]).prefix("job").build()?;
    /// assert_eq!(config.endpoints().len(), 1);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn endpoints<I, S>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.endpoints = endpoints.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the endpoints from a comma-separated list, as in an environment
    /// variable (`http://a:2379,http://b:2379`). Empty items are skipped.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder()
    ///     .endpoints_csv("http://a:2379, http://b:2379")
    ///     .prefix("job")
    ///     .build()?;
    /// assert_eq!(config.endpoints(), ["http://a:2379", "http://b:2379"]);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn endpoints_csv(self, endpoints: &str) -> Self {
        self.endpoints(
            endpoints
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty()),
        )
    }

    /// Sets the job prefix under which every key of the job lives. Use one
    /// prefix per run of a job: a rank cannot join while another process
    /// holds its rank under the same prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().prefix("/jobs/run-7").build()?;
    /// assert_eq!(config.prefix(), "/jobs/run-7");
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.prefix = prefix.into();
        self
    }

    /// Sets this process's rank, in `0..world_size`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().prefix("job").world_size(2).rank(1).build()?;
    /// assert_eq!(config.rank(), 1);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn rank(mut self, rank: usize) -> Self {
        self.config.rank = rank;
        self
    }

    /// Sets the number of ranks of the job (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// assert!(EtcdConfig::builder().prefix("job").world_size(0).build().is_err());
    /// ```
    pub fn world_size(mut self, world_size: usize) -> Self {
        self.config.world_size = world_size;
        self
    }

    /// Sets the TTL of this rank's lease: a whole number of seconds, at
    /// least 1 s (etcd may raise it to its own minimum). A rank that does
    /// not reach etcd for this long is considered dead.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::EtcdConfig;
    /// assert!(EtcdConfig::builder().prefix("j").lease_ttl(Duration::from_secs(3)).build().is_ok());
    /// assert!(EtcdConfig::builder().prefix("j").lease_ttl(Duration::from_millis(1500)).build().is_err());
    /// ```
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.config.lease_ttl = ttl;
        self
    }

    /// Sets how long [`EtcdCoordinator::connect`] tries to reach etcd.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().prefix("j").connect_timeout(Duration::from_secs(1)).build()?;
    /// assert_eq!(config.connect_timeout(), Duration::from_secs(1));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Sets the timeout of one etcd call.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().prefix("j").op_timeout(Duration::from_secs(2)).build()?;
    /// assert_eq!(config.op_timeout(), Duration::from_secs(2));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.config.op_timeout = timeout;
        self
    }

    /// Sets the policy under which transient etcd errors are retried.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// use steadfast::retry::RetryPolicy;
    /// let config = EtcdConfig::builder().prefix("j").retry(RetryPolicy::no_retry()).build()?;
    /// assert_eq!(config.retry().max_retries(), 0);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Validates the configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when there is no endpoint, an endpoint is empty,
    /// holds whitespace or asks for `https` (TLS is not built in); when the
    /// prefix is empty or holds whitespace or control characters; when the
    /// world size is 0 or the rank is not below it; when the lease TTL is
    /// not a whole number of seconds of at least 1; or when a timeout is
    /// zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// let err = EtcdConfig::builder().build().unwrap_err();
    /// assert_eq!(err.field(), "prefix");
    /// ```
    pub fn build(self) -> std::result::Result<EtcdConfig, ConfigError> {
        let mut c = self.config;
        if c.endpoints.is_empty() {
            return Err(ConfigError::new(
                "endpoints",
                "must name at least one endpoint",
            ));
        }
        for endpoint in &c.endpoints {
            if endpoint.is_empty() || endpoint.chars().any(|ch| ch.is_whitespace()) {
                return Err(ConfigError::new(
                    "endpoints",
                    format!("{endpoint:?} is not an endpoint (empty or holds whitespace)"),
                ));
            }
            if endpoint.starts_with("https://") {
                return Err(ConfigError::new(
                    "endpoints",
                    format!("{endpoint:?} needs TLS, which this build does not enable"),
                ));
            }
        }
        let trimmed = c.prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(ConfigError::new(
                "prefix",
                format!(
                    "must not be empty (got {:?}); use one prefix per job",
                    c.prefix
                ),
            ));
        }
        if trimmed
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control())
        {
            return Err(ConfigError::new(
                "prefix",
                format!("must not hold spaces or control characters, got {trimmed:?}"),
            ));
        }
        c.prefix = trimmed.to_string();
        if c.world_size == 0 {
            return Err(ConfigError::new("world_size", "must be at least 1"));
        }
        if c.rank >= c.world_size {
            return Err(ConfigError::new(
                "rank",
                format!("must be below world_size {}, got {}", c.world_size, c.rank),
            ));
        }
        if c.lease_ttl.subsec_nanos() != 0 || c.lease_ttl < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "lease_ttl",
                format!(
                    "must be a whole number of seconds, at least 1s (etcd leases count in seconds), got {:?}",
                    c.lease_ttl
                ),
            ));
        }
        if c.lease_ttl.as_secs() > i64::MAX as u64 {
            return Err(ConfigError::new("lease_ttl", "is too large"));
        }
        for (field, value) in [
            ("connect_timeout", c.connect_timeout),
            ("op_timeout", c.op_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(field, "must be greater than zero"));
            }
        }
        Ok(c)
    }
}

/// The serialized form of an [`EtcdConfig`]; every field but `prefix` is
/// optional and defaults as the builder does.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct EtcdConfigFields {
    endpoints: Vec<String>,
    prefix: String,
    rank: usize,
    world_size: usize,
    #[serde(with = "crate::serde_duration")]
    lease_ttl: Duration,
    #[serde(with = "crate::serde_duration")]
    connect_timeout: Duration,
    #[serde(with = "crate::serde_duration")]
    op_timeout: Duration,
    retry: RetryPolicy,
}

impl Default for EtcdConfigFields {
    fn default() -> Self {
        EtcdConfig::builder().config.into()
    }
}

impl From<EtcdConfig> for EtcdConfigFields {
    fn from(c: EtcdConfig) -> Self {
        EtcdConfigFields {
            endpoints: c.endpoints,
            prefix: c.prefix,
            rank: c.rank,
            world_size: c.world_size,
            lease_ttl: c.lease_ttl,
            connect_timeout: c.connect_timeout,
            op_timeout: c.op_timeout,
            retry: c.retry,
        }
    }
}

impl TryFrom<EtcdConfigFields> for EtcdConfig {
    type Error = ConfigError;

    fn try_from(f: EtcdConfigFields) -> std::result::Result<Self, ConfigError> {
        EtcdConfigBuilder {
            config: EtcdConfig {
                endpoints: f.endpoints,
                prefix: f.prefix,
                rank: f.rank,
                world_size: f.world_size,
                lease_ttl: f.lease_ttl,
                connect_timeout: f.connect_timeout,
                op_timeout: f.op_timeout,
                retry: f.retry,
            },
        }
        .build()
    }
}

/// What a member key says about its rank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct MemberValue {
    world_size: usize,
    state: MemberState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MemberState {
    Running,
    Left,
}

/// A change in the membership of a job, from
/// [`EtcdCoordinator::watch_members`].
///
/// # Examples
///
/// ```
/// use steadfast::coordinator::MemberEvent;
///
/// let event = MemberEvent::Left { rank: 2, graceful: false };
/// assert_eq!(event.rank(), 2);
/// assert!(event.is_failure());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberEvent {
    /// The rank's member key exists: it connected (or was there when the
    /// watch started).
    Joined {
        /// The rank.
        rank: usize,
    },
    /// The rank's member key is gone.
    Left {
        /// The rank.
        rank: usize,
        /// `true` when the rank left through
        /// [`EtcdCoordinator::shutdown`]; `false` when its lease expired (its
        /// process died, hung, or lost etcd for longer than the TTL).
        graceful: bool,
    },
}

impl MemberEvent {
    /// The rank the event is about.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::MemberEvent;
    /// assert_eq!(MemberEvent::Joined { rank: 1 }.rank(), 1);
    /// ```
    pub fn rank(&self) -> usize {
        match *self {
            MemberEvent::Joined { rank } | MemberEvent::Left { rank, .. } => rank,
        }
    }

    /// Whether the event says the rank failed: it left without shutting
    /// down.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::MemberEvent;
    /// assert!(!MemberEvent::Left { rank: 0, graceful: true }.is_failure());
    /// ```
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            MemberEvent::Left {
                graceful: false,
                ..
            }
        )
    }
}

/// A stream of [`MemberEvent`]s, from [`EtcdCoordinator::watch_members`].
///
/// It first yields a `Joined` event for every rank alive when the watch
/// starts, then each change. An etcd error is yielded as an `Err` item and
/// the watch goes on, re-established once etcd answers again. Dropping the
/// stream stops the background task that feeds it.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use steadfast::coordinator::{EtcdConfig, EtcdCoordinator, MemberEvent};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
/// # let prefix = format!("doc-member-watch-{}", std::process::id());
/// let config = EtcdConfig::builder().endpoints_csv(&endpoints).prefix(prefix).build()?;
/// let rank0 = EtcdCoordinator::connect(config).await?;
/// let mut members = rank0.watch_members();
/// assert_eq!(members.next().await.transpose()?, Some(MemberEvent::Joined { rank: 0 }));
/// # rank0.shutdown(std::time::Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
pub struct MemberWatch {
    events: mpsc::Receiver<Result<MemberEvent>>,
    task: AbortOnDrop,
}

impl fmt::Debug for MemberWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberWatch")
            .field("finished", &self.task.0.is_finished())
            .finish_non_exhaustive()
    }
}

impl futures::Stream for MemberWatch {
    type Item = Result<MemberEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The background task of [`EtcdCoordinator::report_liveness`]; dropping
/// it stops the reporting.
///
/// # Examples
///
/// ```
/// # use steadfast::coordinator::{EtcdConfig, EtcdCoordinator};
/// # use steadfast::health::HealthMonitor;
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
/// # let prefix = format!("doc-reporter-{}", std::process::id());
/// # let config = EtcdConfig::builder().endpoints_csv(&endpoints).prefix(prefix).build()?;
/// let coordinator = EtcdCoordinator::connect(config).await?;
/// let monitor = HealthMonitor::default();
/// let reporter = coordinator.report_liveness(&monitor);
/// assert!(!reporter.is_finished());
/// drop(reporter); // stops reporting
/// # coordinator.shutdown(std::time::Duration::from_millis(100)).await.ok();
/// # Ok(())
/// # }
/// ```
pub struct LivenessReporter {
    task: AbortOnDrop,
}

impl LivenessReporter {
    /// Whether the reporting task has ended (it ends only when its member
    /// watch does).
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::coordinator::{EtcdConfig, EtcdCoordinator};
    /// # use steadfast::health::HealthMonitor;
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
    /// # let prefix = format!("doc-reporter-finished-{}", std::process::id());
    /// # let config = EtcdConfig::builder().endpoints_csv(&endpoints).prefix(prefix).build()?;
    /// let coordinator = EtcdCoordinator::connect(config).await?;
    /// let reporter = coordinator.report_liveness(&HealthMonitor::default());
    /// assert!(!reporter.is_finished());
    /// # coordinator.shutdown(std::time::Duration::from_millis(100)).await.ok();
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_finished(&self) -> bool {
        self.task.0.is_finished()
    }
}

impl fmt::Debug for LivenessReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LivenessReporter")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// The lifecycle of a coordinator's lease.
const ACTIVE: u8 = 0;
const LEASE_LOST: u8 = 1;
const SHUT_DOWN: u8 = 2;

struct Inner {
    config: EtcdConfig,
    client: Client,
    lease_id: i64,
    lease_ttl_secs: i64,
    /// The next round of each collective, shared by the clones of a handle.
    next_barrier: AtomicU64,
    next_gather: AtomicU64,
    /// [`ACTIVE`], [`LEASE_LOST`] or [`SHUT_DOWN`].
    state: Arc<AtomicU8>,
    keep_alive: Mutex<Option<AbortOnDrop>>,
}

/// A [`Coordinator`] whose ranks meet through etcd: each rank is its own
/// process, on any machine that reaches the etcd cluster.
///
/// Handles are cheap to clone and share one lease and one set of round
/// counters; dropping the last one stops the lease keep-alive (its keys
/// expire after the TTL).
///
/// # How it works
///
/// Every rank connects with an [`EtcdConfig`] naming the same etcd
/// endpoints, the same job prefix and the same world size, and its own rank.
/// All keys of a job live under its prefix, so two jobs with different
/// prefixes never see each other:
///
/// | key | value | written by |
/// |---|---|---|
/// | `{prefix}/members/{rank}` | `{"world_size":N,"state":"running"}` | the rank, when it connects |
/// | `{prefix}/barrier/{round}/{rank}` | empty | the rank, when it reaches barrier round `round` |
/// | `{prefix}/gather/{round}/{rank}` | the rank's payload | the rank, in all-gather round `round` |
/// | `{prefix}/barrier/{round}/broken`, `{prefix}/gather/{round}/broken` | the missing ranks, `2,3` | the first rank whose wait timed out |
/// | `{prefix}/signal/{key}/{rank}` | 8-byte big-endian sequence number, then the payload | the rank, for each signal |
/// | `{prefix}/done/{rank}` | empty | the rank, in [`EtcdCoordinator::shutdown`] |
///
/// **Liveness.** Each rank holds an etcd *lease* with a TTL (10 s by
/// default) and attaches every key it writes to it. A background task keeps
/// the lease alive every TTL/3. When a process dies, or loses etcd for longer
/// than the TTL, etcd expires the lease and deletes its keys: its member key
/// disappears, which [`EtcdCoordinator::watch_members`] reports, and nothing
/// the dead rank wrote lingers. Dropping the last handle of a coordinator
/// stops the keep-alive, so its keys expire after the TTL;
/// [`EtcdCoordinator::shutdown`] leaves at once instead.
///
/// **Collectives** ([`barrier`](Coordinator::barrier),
/// [`all_gather`](Coordinator::all_gather)) are numbered by round, one
/// counter per kind, and complete when the keys of all `world_size` ranks
/// exist in that round. A rank writes its key, reads the round, and, if it
/// is incomplete, follows it with an etcd WATCH that starts at the revision
/// of that read, so that no arrival between the read and the watch is
/// missed. Nothing polls. When its timeout expires, the rank marks the round
/// *broken* in a transaction that succeeds only if the missing ranks are
/// still missing, and fails with [`CoordinatorError::Timeout`] naming them;
/// the other ranks (and any late one) then fail with
/// [`CoordinatorError::Broken`] instead of completing a round that another
/// rank gave up on. Once a round completes, each rank deletes its key of the
/// round before (every rank has left that one).
///
/// **Signals** ([`signal`](Coordinator::signal),
/// [`wait_for_rank`](Coordinator::wait_for_rank)) are one key per rank and
/// signal key; the sequence number is raised with a compare-and-swap
/// transaction, and a wait follows the key with a watch.
///
/// **Failures.** Every etcd call has a timeout (`op_timeout`) and transient
/// errors (etcd unavailable, a connection reset, a leader election, a call
/// that did not answer in time) are retried under the configured
/// [`RetryPolicy`]; a watch that breaks (etcd restarted) is re-established
/// from a fresh read. Errors map to [`CoordinatorError::Unavailable`]
/// (transient) or [`CoordinatorError::Backend`] (permanent). An unreachable
/// etcd fails [`EtcdCoordinator::connect`] within `connect_timeout`; an etcd
/// that stays unreachable for longer than the retry policy allows fails a
/// wait with `Unavailable`, even before its own timeout.
///
/// **One prefix per run.** A rank registers only if no other process holds
/// its member key under the prefix, and refuses to join ranks of another
/// world size. Keys of a crashed run expire with their leases; until then,
/// start the next run under a new prefix (`/jobs/train-42/attempt-2`).
///
/// **Health.** [`EtcdCoordinator::report_liveness`] turns the leases into
/// heartbeats of a [`HealthMonitor`], so that a rank whose lease expires
/// ends up Failed there.
///
/// # Examples
///
/// Four ranks, here tasks of one process (each would normally be its own
/// process, started with its own rank):
///
/// ```
/// use std::time::Duration;
/// use steadfast::coordinator::{Coordinator, EtcdConfig, EtcdCoordinator};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
/// let prefix = format!("doc-example-{}", std::process::id());
/// let mut tasks = Vec::new();
/// for rank in 0..4 {
///     let config = EtcdConfig::builder()
///         .endpoints_csv(&endpoints)
///         .prefix(prefix.clone())
///         .rank(rank)
///         .world_size(4)
///         .build()?;
///     tasks.push(tokio::spawn(async move {
///         let coordinator = EtcdCoordinator::connect(config).await?;
///         let all = coordinator
///             .all_gather(vec![rank as u8], Duration::from_secs(30))
///             .await?;
///         assert_eq!(all, vec![vec![0], vec![1], vec![2], vec![3]]);
///         coordinator.barrier(Duration::from_secs(30)).await?;
///         coordinator.shutdown(Duration::from_secs(30)).await
///     }));
/// }
/// for task in tasks {
///     task.await??;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct EtcdCoordinator {
    inner: Arc<Inner>,
}

impl fmt::Debug for EtcdCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdCoordinator")
            .field("endpoints", &self.inner.config.endpoints)
            .field("prefix", &self.inner.config.prefix)
            .field("rank", &self.inner.config.rank)
            .field("world_size", &self.inner.config.world_size)
            .field("lease_id", &self.inner.lease_id)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collective {
    Barrier,
    AllGather,
}

impl Collective {
    fn name(self) -> &'static str {
        match self {
            Collective::Barrier => "barrier",
            Collective::AllGather => "all_gather",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Collective::Barrier => "barrier",
            Collective::AllGather => "gather",
        }
    }
}

/// The keys under `dir` that a wait follows, by the part after `dir`, with
/// their values.
type View = BTreeMap<String, Vec<u8>>;

/// What a collective round looks like in a [`View`].
enum RoundOutcome {
    Complete(Vec<Vec<u8>>),
    Broken(Vec<usize>),
}

fn round_outcome(view: &View, world_size: usize) -> Option<RoundOutcome> {
    if let Some(value) = view.get(BROKEN) {
        return Some(RoundOutcome::Broken(decode_ranks(value)));
    }
    let mut values = Vec::with_capacity(world_size);
    for rank in 0..world_size {
        values.push(view.get(&rank.to_string())?.clone());
    }
    Some(RoundOutcome::Complete(values))
}

fn missing_ranks(view: &View, world_size: usize) -> Vec<usize> {
    (0..world_size)
        .filter(|rank| !view.contains_key(&rank.to_string()))
        .collect()
}

const BROKEN: &str = "broken";

/// Parses a key segment that must be exactly a rank number.
fn parse_rank(segment: &str) -> Option<usize> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if segment.len() > 1 && segment.starts_with('0') {
        return None;
    }
    segment.parse().ok()
}

fn encode_ranks(ranks: &[usize]) -> Vec<u8> {
    ranks
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
        .into_bytes()
}

fn decode_ranks(value: &[u8]) -> Vec<usize> {
    String::from_utf8_lossy(value)
        .split(',')
        .filter_map(|r| parse_rank(r.trim()))
        .collect()
}

fn encode_signal(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(8 + payload.len());
    value.extend_from_slice(&seq.to_be_bytes());
    value.extend_from_slice(payload);
    value
}

fn decode_signal(value: &[u8]) -> Option<Signal> {
    let (seq, payload) = value.split_first_chunk::<8>()?;
    Some(Signal {
        seq: u64::from_be_bytes(*seq),
        payload: payload.to_vec(),
    })
}

/// The instant `timeout` from now, or about 30 years away when that cannot
/// be represented (`Duration::MAX` means "wait as long as it takes").
fn deadline_after(timeout: Duration) -> Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

fn revision_of(resp: &GetResponse) -> i64 {
    resp.header().map(|h| h.revision()).unwrap_or(0)
}

impl EtcdCoordinator {
    /// Connects to etcd, takes a lease, and registers this rank under
    /// `{prefix}/members/{rank}`.
    ///
    /// Transient failures are retried under the configured policy, all
    /// within `connect_timeout`.
    ///
    /// # Errors
    ///
    /// - [`CoordinatorError::Unavailable`] when etcd cannot be reached
    ///   within `connect_timeout`; the message names the endpoints and the
    ///   last error.
    /// - [`CoordinatorError::Backend`] when another process holds this rank
    ///   under the prefix (a rank of a crashed process is released when its
    ///   lease expires), or on a permanent etcd error.
    /// - [`CoordinatorError::InvalidArgument`] when another rank registered
    ///   with a different world size.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::{CoordinatorError, EtcdConfig, EtcdCoordinator};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Nothing listens on port 1: a clear error within the connect timeout.
    /// let config = EtcdConfig::builder()
    ///     .endpoints(["http://127.0.0.1:1"])
    ///     .prefix("doc-unreachable")
    ///     .connect_timeout(Duration::from_millis(500))
    ///     .build()?;
    /// let err = EtcdCoordinator::connect(config).await.unwrap_err();
    /// assert!(matches!(err, CoordinatorError::Unavailable { .. }));
    /// assert!(err.to_string().contains("127.0.0.1:1"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(config: EtcdConfig) -> Result<EtcdCoordinator> {
        let connect_timeout = config.connect_timeout;
        let last_error = Mutex::new(None::<String>);
        let attempt = Self::connect_inner(config.clone(), &last_error);
        match tokio::time::timeout(connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => {
                let last = last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .unwrap_or_else(|| "no answer".to_string());
                tracing::warn!(
                    target: TARGET,
                    coordinator = "etcd",
                    endpoints = ?config.endpoints,
                    prefix = %config.prefix,
                    rank = config.rank,
                    ?connect_timeout,
                    last_error = %last,
                    "could not connect to etcd"
                );
                Err(CoordinatorError::Unavailable {
                    message: format!(
                        "could not reach etcd at {:?} within {connect_timeout:?} (last error: {last})",
                        config.endpoints
                    ),
                    source: None,
                })
            }
        }
    }

    async fn connect_inner(
        config: EtcdConfig,
        last_error: &Mutex<Option<String>>,
    ) -> Result<EtcdCoordinator> {
        let record = |e: &CoordinatorError| {
            *last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        };
        let keep_alive_interval = (config.lease_ttl / 3).max(Duration::from_millis(500));
        let options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(keep_alive_interval, config.op_timeout)
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(|e| from_etcd("connecting to etcd", e))
            .inspect_err(&record)?;
        let ttl = i64::try_from(config.lease_ttl.as_secs()).unwrap_or(i64::MAX);
        let op_timeout = config.op_timeout;
        let grant = retry_call(
            &config.retry,
            "lease grant",
            op_timeout,
            &client,
            |mut c| async move { c.lease_grant(ttl, None).await },
            &record,
        )
        .await?;
        let lease_id = grant.id();
        let granted_ttl = grant.ttl().max(1);

        let member_key = member_key(&config.prefix, config.rank);
        let value = serde_json::to_vec(&MemberValue {
            world_size: config.world_size,
            state: MemberState::Running,
        })
        .map_err(|e| CoordinatorError::Backend {
            message: format!("encoding the member value: {e}"),
            source: Some(Box::new(e)),
        })?;
        let members_dir = format!("{}/members/", config.prefix);
        let registered = {
            let member_key = member_key.clone();
            let members_dir = members_dir.clone();
            retry_call(
                &config.retry,
                "register",
                op_timeout,
                &client,
                move |mut c| {
                    let txn = Txn::new()
                        .when([Compare::create_revision(
                            member_key.clone(),
                            CompareOp::Equal,
                            0,
                        )])
                        .and_then([
                            TxnOp::put(
                                member_key.clone(),
                                value.clone(),
                                Some(PutOptions::new().with_lease(lease_id)),
                            ),
                            TxnOp::get(members_dir.clone(), Some(GetOptions::new().with_prefix())),
                        ])
                        .or_else([TxnOp::get(member_key.clone(), None)]);
                    async move { c.txn(txn).await }
                },
                &record,
            )
            .await?
        };
        if !registered.succeeded() {
            let holder = registered
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.lease()),
                    _ => None,
                })
                .unwrap_or(0);
            revoke_best_effort(&client, lease_id, op_timeout).await;
            // Re-registering with our own lease cannot happen: it is new.
            return Err(CoordinatorError::Backend {
                message: format!(
                    "rank {} of job {:?} is already registered by another process (its key {member_key:?} \
                     is held by lease {holder:#x}); a rank of a process that died is released when its \
                     lease expires, within {:?}",
                    config.rank, config.prefix, config.lease_ttl
                ),
                source: None,
            });
        }
        // Check that the ranks already there agree on the world size.
        let members = registered
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Get(get) => Some(get),
                _ => None,
            });
        if let Some(members) = members {
            for kv in members.kvs() {
                let Some(rank) = kv
                    .key()
                    .strip_prefix(members_dir.as_bytes())
                    .and_then(|s| std::str::from_utf8(s).ok())
                    .and_then(parse_rank)
                else {
                    continue;
                };
                if let Ok(other) = serde_json::from_slice::<MemberValue>(kv.value()) {
                    if other.world_size != config.world_size {
                        revoke_best_effort(&client, lease_id, op_timeout).await;
                        return Err(CoordinatorError::InvalidArgument(format!(
                            "rank {rank} of job {:?} runs with world size {}, this rank ({}) with {}",
                            config.prefix, other.world_size, config.rank, config.world_size
                        )));
                    }
                }
            }
        }

        let state = Arc::new(AtomicU8::new(ACTIVE));
        let keep_alive = tokio::spawn(keep_alive_loop(
            client.clone(),
            lease_id,
            Duration::from_secs(granted_ttl.unsigned_abs()),
            Arc::clone(&state),
            config.prefix.clone(),
            config.rank,
        ));
        tracing::info!(
            target: TARGET,
            coordinator = "etcd",
            prefix = %config.prefix,
            rank = config.rank,
            world_size = config.world_size,
            lease_id,
            lease_ttl_secs = granted_ttl,
            "rank registered"
        );
        Ok(EtcdCoordinator {
            inner: Arc::new(Inner {
                config,
                client,
                lease_id,
                lease_ttl_secs: granted_ttl,
                next_barrier: AtomicU64::new(0),
                next_gather: AtomicU64::new(0),
                state,
                keep_alive: Mutex::new(Some(AbortOnDrop(keep_alive))),
            }),
        })
    }

    /// The configuration this coordinator was connected with.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::coordinator::{EtcdConfig, EtcdCoordinator};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
    /// # let prefix = format!("doc-config-{}", std::process::id());
    /// let config = EtcdConfig::builder().endpoints_csv(&endpoints).prefix(prefix).build()?;
    /// let coordinator = EtcdCoordinator::connect(config.clone()).await?;
    /// assert_eq!(coordinator.config(), &config);
    /// # coordinator.shutdown(std::time::Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn config(&self) -> &EtcdConfig {
        &self.inner.config
    }

    /// The id of this rank's etcd lease.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::coordinator::{EtcdConfig, EtcdCoordinator};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
    /// # let prefix = format!("doc-lease-{}", std::process::id());
    /// let config = EtcdConfig::builder().endpoints_csv(&endpoints).prefix(prefix).build()?;
    /// let coordinator = EtcdCoordinator::connect(config).await?;
    /// assert_ne!(coordinator.lease_id(), 0);
    /// # coordinator.shutdown(std::time::Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn lease_id(&self) -> i64 {
        self.inner.lease_id
    }

    /// The lease TTL etcd granted (it may raise the configured one to its
    /// minimum).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use steadfast::coordinator::{EtcdConfig, EtcdCoordinator};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
    /// # let prefix = format!("doc-ttl-{}", std::process::id());
    /// let config = EtcdConfig::builder().endpoints_csv(&endpoints).prefix(prefix).build()?;
    /// let coordinator = EtcdCoordinator::connect(config).await?;
    /// assert!(coordinator.lease_ttl() >= Duration::from_secs(10));
    /// # coordinator.shutdown(Duration::from_secs(5)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.inner.lease_ttl_secs.unsigned_abs())
    }

    /// The ranks whose member key exists now (their lease is alive), sorted.
    ///
    /// # Errors
    ///
    /// [`CoordinatorError::Unavailable`] when etcd cannot be read after
    /// retries.
    ///
    /// # Examples
    ///
    /// ```
    /// # use steadfast::coordinator::{EtcdConfig, EtcdCoordinator};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
    /// # let prefix = format!("doc-alive-{}", std::process::id());
    /// let config = EtcdConfig::builder()
    ///     .endpoints_csv(&endpoints)
    ///     .prefix(prefix)
    ///     .rank(1)
    ///     .world_size(3)
    ///     .build()?;
    /// let rank1 = EtcdCoordinator::connect(config).await?;
    /// assert_eq!(rank1.members_alive().await?, vec![1]);
    /// # rank1.shutdown(std::time::Duration::from_millis(100)).await.ok();
    /// # Ok(())
    /// # }
    /// ```
    pub async fn members_alive(&self) -> Result<Vec<usize>> {
        let dir = self.members_dir();
        let resp = self
            .call("get members", {
                let dir = dir.clone();
                move |mut c| {
                    let dir = dir.clone();
                    async move { c.get(dir, Some(GetOptions::new().with_prefix())).await }
                }
            })
            .await?;
        let world_size = self.inner.config.world_size;
        let mut ranks: Vec<usize> = resp
            .kvs()
            .iter()
            .filter_map(|kv| suffix_of(kv.key(), &dir).and_then(parse_rank))
            .filter(|&rank| rank < world_size)
            .collect();
        ranks.sort_unstable();
        ranks.dedup();
        Ok(ranks)
    }

    /// Follows the members of the job: a `Joined` event for every rank
    /// alive now, then one event per change. A rank whose lease expires
    /// yields `Left { graceful: false }`.
    ///
    /// The watch runs in a background task on its own etcd stream until the
    /// returned [`MemberWatch`] is dropped; it survives etcd restarts (it
    /// re-reads the members and reports the difference).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use steadfast::coordinator::{EtcdConfig, EtcdCoordinator, MemberEvent};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
    /// let prefix = format!("doc-watch-{}", std::process::id());
    /// let config = |rank| {
    ///     EtcdConfig::builder()
    ///         .endpoints_csv(&endpoints)
    ///         .prefix(prefix.clone())
    ///         .rank(rank)
    ///         .world_size(2)
    ///         .build()
    /// };
    /// let rank0 = EtcdCoordinator::connect(config(0)?).await?;
    /// let mut members = rank0.watch_members();
    /// assert_eq!(members.next().await.transpose()?, Some(MemberEvent::Joined { rank: 0 }));
    ///
    /// let rank1 = EtcdCoordinator::connect(config(1)?).await?;
    /// assert_eq!(members.next().await.transpose()?, Some(MemberEvent::Joined { rank: 1 }));
    /// rank1.shutdown(std::time::Duration::from_millis(100)).await.ok();
    /// assert_eq!(
    ///     members.next().await.transpose()?,
    ///     Some(MemberEvent::Left { rank: 1, graceful: true })
    /// );
    /// # rank0.shutdown(std::time::Duration::from_millis(100)).await.ok();
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch_members(&self) -> MemberWatch {
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(member_watch_loop(
            self.inner.client.clone(),
            self.inner.config.clone(),
            tx,
        ));
        MemberWatch {
            events: rx,
            task: AbortOnDrop(task),
        }
    }

    /// Feeds `monitor` with the liveness etcd sees: every rank of the job
    /// becomes a member of the monitor ([`MemberId::Rank`]), and a rank is
    /// heard from (one heartbeat every half `heartbeat_timeout`) for as long
    /// as its lease lives.
    ///
    /// When a rank's lease expires (its process died or lost etcd for longer
    /// than the TTL), it is marked Failed at once
    /// ([`HealthMonitor::mark_failed`]) and its heartbeats stop, so it stays
    /// Failed until it joins again. A rank that never connects is marked
    /// Unresponsive and then Failed by the monitor's own sweep, after
    /// `heartbeat_timeout` and twice that. A rank that
    /// leaves through [`shutdown`](Self::shutdown) is removed from the
    /// monitor instead: a clean exit is not a failure. While etcd itself is
    /// unreachable, the ranks last seen alive keep being heard from: an etcd
    /// outage is not a failure of the ranks.
    ///
    /// The reporting runs in a background task (with its own member watch)
    /// until the returned [`LivenessReporter`] is dropped. The monitor must
    /// be swept ([`HealthMonitor::start`]) for failures to show.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::coordinator::{EtcdConfig, EtcdCoordinator};
    /// use steadfast::health::{HealthConfig, HealthMonitor, HealthStatus, MemberId};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
    /// # let prefix = format!("doc-liveness-{}", std::process::id());
    /// let config = EtcdConfig::builder()
    ///     .endpoints_csv(&endpoints)
    ///     .prefix(prefix)
    ///     .world_size(2)
    ///     .build()?;
    /// let rank0 = EtcdCoordinator::connect(config).await?;
    /// let monitor = HealthMonitor::new(HealthConfig::default());
    /// let _sweeper = monitor.start()?;
    /// let _reporter = rank0.report_liveness(&monitor);
    /// // Both ranks are members; rank 1 fails unless it connects in time.
    /// assert_eq!(monitor.len(), 2);
    /// assert_eq!(monitor.status(&MemberId::Rank(0)), Some(HealthStatus::Healthy));
    /// # rank0.shutdown(Duration::from_millis(100)).await.ok();
    /// # Ok(())
    /// # }
    /// ```
    pub fn report_liveness(&self, monitor: &HealthMonitor) -> LivenessReporter {
        for rank in 0..self.inner.config.world_size {
            monitor.add_member(rank);
        }
        let members = self.watch_members();
        let task = tokio::spawn(liveness_loop(
            members,
            monitor.clone(),
            self.inner.config.prefix.clone(),
        ));
        LivenessReporter {
            task: AbortOnDrop(task),
        }
    }

    /// Leaves the job cleanly: marks this rank done, waits (at most
    /// `timeout`) until every other rank is done too or gone, marks the
    /// member key as left, and revokes the lease, which deletes every key
    /// this rank wrote. Waiting first means no peer still waiting on one of
    /// this rank's keys sees it vanish. Afterwards every operation of this
    /// coordinator (and its clones) fails.
    ///
    /// # Errors
    ///
    /// [`CoordinatorError::Timeout`] naming the ranks that were neither done
    /// nor gone in time (the lease is revoked all the same), or an etcd
    /// error.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use steadfast::coordinator::{Coordinator, EtcdConfig, EtcdCoordinator};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(endpoints) = std::env::var("STEADFAST_ETCD_ENDPOINTS") else { return Ok(()) };
    /// # let prefix = format!("doc-shutdown-{}", std::process::id());
    /// let config = EtcdConfig::builder().endpoints_csv(&endpoints).prefix(prefix).build()?;
    /// let coordinator = EtcdCoordinator::connect(config).await?;
    /// coordinator.barrier(Duration::from_secs(5)).await?;
    /// coordinator.shutdown(Duration::from_secs(5)).await?;
    /// assert!(coordinator.barrier(Duration::from_secs(5)).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn shutdown(&self, timeout: Duration) -> Result<()> {
        self.check_usable()?;
        let deadline = deadline_after(timeout);
        let prefix = self.inner.config.prefix.clone();
        let rank = self.inner.config.rank;
        let lease = self.inner.lease_id;
        let done_key = format!("{prefix}/done/{rank}");
        self.call("put done", move |mut c| {
            let key = done_key.clone();
            async move {
                c.put(key, Vec::new(), Some(PutOptions::new().with_lease(lease)))
                    .await
            }
        })
        .await?;

        // Each other rank must be done or gone (no member key).
        let world_size = self.inner.config.world_size;
        let job_dir = format!("{prefix}/");
        let finished = |view: &View| {
            let pending = pending_shutdown(view, world_size);
            pending.is_empty().then_some(())
        };
        let mut view = View::new();
        let outcome = self
            .follow("shutdown", &job_dir, true, deadline, &mut view, finished)
            .await;
        let result = match outcome {
            Ok(Some(())) => Ok(()),
            Ok(None) => {
                let missing = pending_shutdown(&view, world_size);
                tracing::warn!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %prefix,
                    rank,
                    ?missing,
                    "shutdown did not see every rank finish in time"
                );
                Err(CoordinatorError::Timeout {
                    operation: "shutdown",
                    after: timeout,
                    missing,
                })
            }
            Err(e) => Err(e),
        };

        // Say "left" on the member key, so that watchers can tell a clean
        // exit from a death, then drop everything with the lease.
        let member_key = member_key(&prefix, rank);
        let left = serde_json::to_vec(&MemberValue {
            world_size,
            state: MemberState::Left,
        })
        .unwrap_or_default();
        let _ = self
            .call("put left", move |mut c| {
                let key = member_key.clone();
                let value = left.clone();
                async move {
                    c.put(key, value, Some(PutOptions::new().with_lease(lease)))
                        .await
                }
            })
            .await;
        self.inner.state.store(SHUT_DOWN, Ordering::SeqCst);
        if let Some(task) = self
            .inner
            .keep_alive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            drop(task);
        }
        let revoked = retry_call(
            &self.inner.config.retry,
            "lease revoke",
            self.inner.config.op_timeout,
            &self.inner.client,
            move |mut c| async move { c.lease_revoke(lease).await },
            |_| {},
        )
        .await;
        tracing::info!(
            target: TARGET,
            coordinator = "etcd",
            prefix = %prefix,
            rank,
            revoked = revoked.is_ok(),
            "rank left the job"
        );
        result.and(revoked.map(drop))
    }

    fn members_dir(&self) -> String {
        format!("{}/members/", self.inner.config.prefix)
    }

    fn check_usable(&self) -> Result<()> {
        match self.inner.state.load(Ordering::SeqCst) {
            ACTIVE => Ok(()),
            LEASE_LOST => Err(CoordinatorError::Backend {
                message: format!(
                    "the etcd lease of rank {} of job {:?} expired: etcd did not hear from this \
                     rank within {}s, so the other ranks consider it failed",
                    self.inner.config.rank, self.inner.config.prefix, self.inner.lease_ttl_secs
                ),
                source: None,
            }),
            _ => Err(CoordinatorError::Backend {
                message: format!(
                    "rank {} of job {:?} has shut down",
                    self.inner.config.rank, self.inner.config.prefix
                ),
                source: None,
            }),
        }
    }

    /// One etcd call with a timeout per attempt, retried under the policy.
    async fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut + Send,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>> + Send,
        T: Send,
    {
        self.check_usable()?;
        retry_call(
            &self.inner.config.retry,
            what,
            self.inner.config.op_timeout,
            &self.inner.client,
            op,
            |_| {},
        )
        .await
    }

    /// One etcd call with a timeout, not retried.
    async fn call_once<T, Fut>(&self, what: &str, op: impl FnOnce(Client) -> Fut) -> Result<T>
    where
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let op_timeout = self.inner.config.op_timeout;
        match tokio::time::timeout(op_timeout, op(self.inner.client.clone())).await {
            Ok(result) => result.map_err(|e| from_etcd(what, e)),
            Err(_) => Err(op_timed_out(what, op_timeout)),
        }
    }

    /// Reads the keys under `key` (a prefix when `prefix` is set), then
    /// follows them with a watch that starts right after that read, calling
    /// `decide` on every new state until it returns `Some`.
    ///
    /// Returns `Ok(None)` when `deadline` passes first, leaving the last
    /// state seen in `view`. A watch that breaks (etcd restarted, the
    /// revision was compacted) is re-established from a fresh read.
    async fn follow<R>(
        &self,
        what: &'static str,
        key: &str,
        prefix: bool,
        deadline: Instant,
        view: &mut View,
        mut decide: impl FnMut(&View) -> Option<R> + Send,
    ) -> Result<Option<R>> {
        let mut backoff: Option<Backoff> = None;
        loop {
            let read = self.call(what, |mut c| {
                let key = key.to_string();
                let options = prefix.then(|| GetOptions::new().with_prefix());
                async move { c.get(key, options).await }
            });
            let resp = match tokio::time::timeout_at(deadline, read).await {
                Err(_) => return Ok(None),
                Ok(resp) => resp?,
            };
            view.clear();
            for kv in resp.kvs() {
                if let Some(suffix) = suffix_of(kv.key(), key) {
                    view.insert(suffix.to_string(), kv.value().to_vec());
                }
            }
            if let Some(result) = decide(view) {
                return Ok(Some(result));
            }
            let start = revision_of(&resp).saturating_add(1);
            let watch = self.call("watch", |mut c| {
                let key = key.to_string();
                let mut options = WatchOptions::new().with_start_revision(start);
                if prefix {
                    options = options.with_prefix();
                }
                async move { c.watch(key, Some(options)).await }
            });
            let mut stream: WatchStream = match tokio::time::timeout_at(deadline, watch).await {
                Err(_) => return Ok(None),
                Ok(stream) => stream?,
            };
            loop {
                let message = match tokio::time::timeout_at(deadline, stream.message()).await {
                    Err(_) => return Ok(None),
                    Ok(message) => message,
                };
                match message {
                    Ok(Some(resp)) => {
                        if resp.canceled() {
                            tracing::debug!(
                                target: TARGET,
                                coordinator = "etcd",
                                operation = what,
                                key,
                                reason = resp.cancel_reason(),
                                compact_revision = resp.compact_revision(),
                                "watch canceled; reading again"
                            );
                            break;
                        }
                        backoff = None;
                        for event in resp.events() {
                            let Some(kv) = event.kv() else { continue };
                            let Some(suffix) = suffix_of(kv.key(), key) else {
                                continue;
                            };
                            match event.event_type() {
                                EventType::Put => {
                                    view.insert(suffix.to_string(), kv.value().to_vec());
                                }
                                EventType::Delete => {
                                    view.remove(suffix);
                                }
                            }
                        }
                        if let Some(result) = decide(view) {
                            return Ok(Some(result));
                        }
                    }
                    Ok(None) => {
                        tracing::debug!(
                            target: TARGET,
                            coordinator = "etcd",
                            operation = what,
                            key,
                            "watch stream ended; reading again"
                        );
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(
                            target: TARGET,
                            coordinator = "etcd",
                            operation = what,
                            key,
                            error = %e,
                            "watch broke; reading again"
                        );
                        break;
                    }
                }
            }
            // A watch that keeps breaking at once is not retried in a tight
            // loop: wait the policy's backoff, bounded by the deadline.
            let delay = backoff
                .get_or_insert_with(|| self.inner.config.retry.backoff())
                .next()
                .unwrap_or(self.inner.config.retry.max_delay());
            if tokio::time::timeout_at(deadline, tokio::time::sleep(delay))
                .await
                .is_err()
            {
                return Ok(None);
            }
        }
    }

    async fn collective(
        &self,
        kind: Collective,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<Vec<u8>>> {
        self.check_usable()?;
        let deadline = deadline_after(timeout);
        let counter = match kind {
            Collective::Barrier => &self.inner.next_barrier,
            Collective::AllGather => &self.inner.next_gather,
        };
        let round = counter.fetch_add(1, Ordering::SeqCst);
        let prefix = &self.inner.config.prefix;
        let rank = self.inner.config.rank;
        let world_size = self.inner.config.world_size;
        let dir = format!("{prefix}/{}/{round}/", kind.dir());
        let my_key = format!("{dir}{rank}");
        let broken_key = format!("{dir}{BROKEN}");
        let lease = self.inner.lease_id;
        tracing::debug!(
            target: TARGET,
            coordinator = "etcd",
            prefix = %prefix,
            rank,
            operation = kind.name(),
            round,
            "arriving"
        );

        // Arrive, unless the round is already broken.
        let arrive = self.call(kind.name(), |mut c| {
            let txn = Txn::new()
                .when([Compare::create_revision(
                    broken_key.clone(),
                    CompareOp::Equal,
                    0,
                )])
                .and_then([TxnOp::put(
                    my_key.clone(),
                    data.clone(),
                    Some(PutOptions::new().with_lease(lease)),
                )])
                .or_else([TxnOp::get(broken_key.clone(), None)]);
            async move { c.txn(txn).await }
        });
        let arrived = match tokio::time::timeout_at(deadline, arrive).await {
            Ok(arrived) => arrived?,
            Err(_) => {
                return Err(CoordinatorError::Unavailable {
                    message: format!(
                        "could not record the arrival of rank {rank} at {} round {round} within {timeout:?}",
                        kind.name()
                    ),
                    source: None,
                })
            }
        };
        if !arrived.succeeded() {
            let missing = arrived
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Get(get) => get.kvs().first().map(|kv| decode_ranks(kv.value())),
                    _ => None,
                })
                .unwrap_or_default();
            return Err(self.broken(kind, round, missing));
        }

        let mut view = View::new();
        let outcome = self
            .follow(kind.name(), &dir, true, deadline, &mut view, |view| {
                round_outcome(view, world_size)
            })
            .await?;
        let outcome = match outcome {
            Some(outcome) => outcome,
            None => self.break_round(kind, round, &dir, view, timeout).await?,
        };
        match outcome {
            RoundOutcome::Complete(values) => {
                self.forget_previous_round(kind, round);
                tracing::debug!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %prefix,
                    rank,
                    operation = kind.name(),
                    round,
                    "round complete"
                );
                Ok(values)
            }
            RoundOutcome::Broken(missing) => Err(self.broken(kind, round, missing)),
        }
    }

    fn broken(&self, kind: Collective, round: u64, missing: Vec<usize>) -> CoordinatorError {
        tracing::warn!(
            target: TARGET,
            coordinator = "etcd",
            prefix = %self.inner.config.prefix,
            rank = self.inner.config.rank,
            operation = kind.name(),
            round,
            ?missing,
            "round is broken: another rank timed out waiting"
        );
        CoordinatorError::Broken {
            operation: kind.name(),
            round,
            missing,
        }
    }

    /// The deadline passed: marks the round broken, naming the ranks still
    /// missing, unless they arrived meanwhile. Returns the outcome when the
    /// round turned out complete or broken by another rank, and the timeout
    /// error otherwise.
    async fn break_round(
        &self,
        kind: Collective,
        round: u64,
        dir: &str,
        mut view: View,
        timeout: Duration,
    ) -> Result<RoundOutcome> {
        let world_size = self.inner.config.world_size;
        let broken_key = format!("{dir}{BROKEN}");
        let lease = self.inner.lease_id;
        // Each failed attempt means another rank arrived (or broke the
        // round), so this ends after at most world_size + 1 attempts.
        for _ in 0..=world_size {
            let missing = missing_ranks(&view, world_size);
            let mut compares = vec![Compare::create_revision(
                broken_key.clone(),
                CompareOp::Equal,
                0,
            )];
            compares.extend(
                missing
                    .iter()
                    .map(|r| Compare::create_revision(format!("{dir}{r}"), CompareOp::Equal, 0)),
            );
            let txn = Txn::new()
                .when(compares)
                .and_then([TxnOp::put(
                    broken_key.clone(),
                    encode_ranks(&missing),
                    Some(PutOptions::new().with_lease(lease)),
                )])
                .or_else([TxnOp::get(
                    dir.to_string(),
                    Some(GetOptions::new().with_prefix()),
                )]);
            let resp = match self
                .call_once("mark round broken", |mut c| async move { c.txn(txn).await })
                .await
            {
                Ok(resp) => resp,
                Err(e) => {
                    tracing::warn!(
                        target: TARGET,
                        coordinator = "etcd",
                        prefix = %self.inner.config.prefix,
                        rank = self.inner.config.rank,
                        operation = kind.name(),
                        round,
                        ?missing,
                        error = %e,
                        "timed out, and could not mark the round broken"
                    );
                    return Err(CoordinatorError::Timeout {
                        operation: kind.name(),
                        after: timeout,
                        missing,
                    });
                }
            };
            if resp.succeeded() {
                tracing::warn!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %self.inner.config.prefix,
                    rank = self.inner.config.rank,
                    operation = kind.name(),
                    round,
                    ?missing,
                    "timed out; round marked broken"
                );
                return Err(CoordinatorError::Timeout {
                    operation: kind.name(),
                    after: timeout,
                    missing,
                });
            }
            view.clear();
            for op in resp.op_responses() {
                if let TxnOpResponse::Get(get) = op {
                    for kv in get.kvs() {
                        if let Some(suffix) = suffix_of(kv.key(), dir) {
                            view.insert(suffix.to_string(), kv.value().to_vec());
                        }
                    }
                }
            }
            if let Some(outcome) = round_outcome(&view, world_size) {
                return Ok(outcome);
            }
        }
        Err(CoordinatorError::Timeout {
            operation: kind.name(),
            after: timeout,
            missing: missing_ranks(&view, world_size),
        })
    }

    /// Once round `round` is complete, every rank has left round
    /// `round - 1`: delete this rank's key there, in the background.
    fn forget_previous_round(&self, kind: Collective, round: u64) {
        let Some(previous) = round.checked_sub(1) else {
            return;
        };
        let key = format!(
            "{}/{}/{previous}/{}",
            self.inner.config.prefix,
            kind.dir(),
            self.inner.config.rank
        );
        let mut client = self.inner.client.clone();
        let op_timeout = self.inner.config.op_timeout;
        tokio::spawn(async move {
            if let Ok(Err(e)) =
                tokio::time::timeout(op_timeout, client.delete(key.clone(), None)).await
            {
                tracing::debug!(
                    target: TARGET,
                    coordinator = "etcd",
                    key,
                    error = %e,
                    "could not delete a finished round's key (its lease will)"
                );
            }
        });
    }

    fn check_signal_key(key: &str) -> Result<()> {
        if key.is_empty() {
            return Err(CoordinatorError::InvalidArgument(
                "a signal key must not be empty".into(),
            ));
        }
        if key.chars().any(char::is_control) {
            return Err(CoordinatorError::InvalidArgument(format!(
                "a signal key must not hold control characters, got {key:?}"
            )));
        }
        Ok(())
    }

    fn check_rank(&self, rank: usize) -> Result<()> {
        let world_size = self.inner.config.world_size;
        if rank >= world_size {
            return Err(CoordinatorError::InvalidRank { rank, world_size });
        }
        Ok(())
    }

    fn signal_key(&self, key: &str, rank: usize) -> String {
        format!("{}/signal/{key}/{rank}", self.inner.config.prefix)
    }
}

/// The ranks that are neither done nor gone, in a view of the whole job.
fn pending_shutdown(view: &View, world_size: usize) -> Vec<usize> {
    (0..world_size)
        .filter(|rank| {
            let done = view.contains_key(&format!("done/{rank}"));
            let member = view.contains_key(&format!("members/{rank}"));
            !done && member
        })
        .collect()
}

fn member_key(prefix: &str, rank: usize) -> String {
    format!("{prefix}/members/{rank}")
}

/// The part of `key` after `dir`, when `key` starts with `dir` and is UTF-8.
fn suffix_of<'a>(key: &'a [u8], dir: &str) -> Option<&'a str> {
    std::str::from_utf8(key.strip_prefix(dir.as_bytes())?).ok()
}

fn op_timed_out(what: &str, after: Duration) -> CoordinatorError {
    CoordinatorError::Unavailable {
        message: format!("etcd did not answer {what} within {after:?}"),
        source: None,
    }
}

/// One etcd call with a timeout per attempt, retried under `policy` while it
/// fails with a transient error. `record` sees every failed attempt.
async fn retry_call<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    op_timeout: Duration,
    client: &Client,
    mut op: F,
    mut record: impl FnMut(&CoordinatorError) + Send,
) -> Result<T>
where
    F: FnMut(Client) -> Fut + Send,
    Fut: Future<Output = std::result::Result<T, etcd_client::Error>> + Send,
    T: Send,
{
    let result = policy
        .retry(|| {
            let attempt = op(client.clone());
            async move {
                match tokio::time::timeout(op_timeout, attempt).await {
                    Ok(result) => result.map_err(|e| from_etcd(what, e)),
                    Err(_) => Err(op_timed_out(what, op_timeout)),
                }
            }
        })
        .when(|e: &CoordinatorError| {
            record(e);
            matches!(e, CoordinatorError::Unavailable { .. })
        })
        .notify(|attempt: u32, e: &CoordinatorError, delay: Duration| {
            tracing::debug!(
                target: TARGET,
                coordinator = "etcd",
                operation = what,
                attempt,
                ?delay,
                error = %e,
                "etcd call failed; retrying"
            );
        })
        .await;
    result.map_err(RetryError::into_inner)
}

async fn revoke_best_effort(client: &Client, lease: i64, op_timeout: Duration) {
    let mut client = client.clone();
    let _ = tokio::time::timeout(op_timeout, client.lease_revoke(lease)).await;
}

/// Keeps the lease alive every TTL/3 until the coordinator is dropped or
/// shut down (the task is aborted), or etcd says the lease expired.
async fn keep_alive_loop(
    client: Client,
    lease_id: i64,
    ttl: Duration,
    state: Arc<AtomicU8>,
    prefix: String,
    rank: usize,
) {
    let interval = (ttl / 3).max(Duration::from_millis(100));
    let retry_delay = interval.min(Duration::from_millis(500));
    let mut keeper = None;
    loop {
        if keeper.is_none() {
            let mut lease = client.lease_client();
            match tokio::time::timeout(interval, lease.keep_alive(lease_id)).await {
                Ok(Ok(pair)) => keeper = Some(pair),
                Ok(Err(e)) => {
                    tracing::warn!(
                        target: TARGET,
                        coordinator = "etcd",
                        prefix = %prefix,
                        rank,
                        lease_id,
                        error = %e,
                        "could not open the lease keep-alive; retrying"
                    );
                    tokio::time::sleep(retry_delay).await;
                    continue;
                }
                Err(_) => {
                    tracing::warn!(
                        target: TARGET,
                        coordinator = "etcd",
                        prefix = %prefix,
                        rank,
                        lease_id,
                        "etcd did not answer the lease keep-alive; retrying"
                    );
                    continue;
                }
            }
        }
        let Some((sender, responses)) = keeper.as_mut() else {
            continue;
        };
        let renewed = tokio::time::timeout(interval, async {
            sender.keep_alive().await?;
            responses.message().await
        })
        .await;
        match renewed {
            Ok(Ok(Some(resp))) if resp.ttl() <= 0 => {
                state
                    .compare_exchange(ACTIVE, LEASE_LOST, Ordering::SeqCst, Ordering::SeqCst)
                    .ok();
                tracing::error!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %prefix,
                    rank,
                    lease_id,
                    "the lease expired: the other ranks consider this rank failed"
                );
                return;
            }
            Ok(Ok(Some(resp))) => {
                tracing::trace!(
                    target: TARGET,
                    coordinator = "etcd",
                    rank,
                    lease_id,
                    ttl = resp.ttl(),
                    "lease renewed"
                );
                tokio::time::sleep(interval).await;
            }
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                tracing::warn!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %prefix,
                    rank,
                    lease_id,
                    "lease keep-alive failed; reconnecting"
                );
                keeper = None;
                tokio::time::sleep(retry_delay).await;
            }
        }
    }
}

/// Feeds a [`MemberWatch`]: reads the members, reports the difference with
/// what it reported before, follows them with a watch, and starts over when
/// the watch breaks.
async fn member_watch_loop(
    client: Client,
    config: EtcdConfig,
    tx: mpsc::Sender<Result<MemberEvent>>,
) {
    let dir = format!("{}/members/", config.prefix);
    let world_size = config.world_size;
    let rank_of = |key: &[u8]| {
        suffix_of(key, &dir)
            .and_then(parse_rank)
            .filter(|&r| r < world_size)
    };
    let mut known: BTreeSet<usize> = BTreeSet::new();
    let mut backoff = config.retry.backoff();
    loop {
        let read = retry_call(
            &config.retry,
            "get members",
            config.op_timeout,
            &client,
            |mut c| {
                let dir = dir.clone();
                async move { c.get(dir, Some(GetOptions::new().with_prefix())).await }
            },
            |_| {},
        )
        .await;
        let resp = match read {
            Ok(resp) => resp,
            Err(e) => {
                if tx.send(Err(e)).await.is_err() {
                    return;
                }
                tokio::time::sleep(backoff.next().unwrap_or(config.retry.max_delay())).await;
                continue;
            }
        };
        let now: BTreeSet<usize> = resp
            .kvs()
            .iter()
            .filter_map(|kv| rank_of(kv.key()))
            .collect();
        for &rank in known.difference(&now) {
            if tx
                .send(Ok(MemberEvent::Left {
                    rank,
                    graceful: false,
                }))
                .await
                .is_err()
            {
                return;
            }
        }
        for &rank in now.difference(&known) {
            if tx.send(Ok(MemberEvent::Joined { rank })).await.is_err() {
                return;
            }
        }
        known = now;
        let start = revision_of(&resp).saturating_add(1);
        let watch = retry_call(
            &config.retry,
            "watch members",
            config.op_timeout,
            &client,
            |mut c| {
                let dir = dir.clone();
                let options = WatchOptions::new()
                    .with_start_revision(start)
                    .with_prefix()
                    .with_prev_key();
                async move { c.watch(dir, Some(options)).await }
            },
            |_| {},
        )
        .await;
        let mut stream = match watch {
            Ok(stream) => stream,
            Err(e) => {
                if tx.send(Err(e)).await.is_err() {
                    return;
                }
                tokio::time::sleep(backoff.next().unwrap_or(config.retry.max_delay())).await;
                continue;
            }
        };
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                () = tx.closed() => return,
            };
            let resp = match message {
                Ok(Some(resp)) if !resp.canceled() => resp,
                _ => break,
            };
            backoff = config.retry.backoff();
            for event in resp.events() {
                let Some(rank) = event.kv().and_then(|kv| rank_of(kv.key())) else {
                    continue;
                };
                let event = match event.event_type() {
                    EventType::Put => {
                        if !known.insert(rank) {
                            continue;
                        }
                        MemberEvent::Joined { rank }
                    }
                    EventType::Delete => {
                        if !known.remove(&rank) {
                            continue;
                        }
                        let graceful = event
                            .prev_kv()
                            .and_then(|kv| serde_json::from_slice::<MemberValue>(kv.value()).ok())
                            .is_some_and(|v| v.state == MemberState::Left);
                        MemberEvent::Left { rank, graceful }
                    }
                };
                tracing::info!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %config.prefix,
                    member = rank,
                    ?event,
                    "membership changed"
                );
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        }
        tracing::debug!(
            target: TARGET,
            coordinator = "etcd",
            prefix = %config.prefix,
            "member watch broke; reading again"
        );
        tokio::time::sleep(backoff.next().unwrap_or(config.retry.max_delay())).await;
    }
}

/// Feeds a [`HealthMonitor`] from a member watch; see
/// [`EtcdCoordinator::report_liveness`].
async fn liveness_loop(mut members: MemberWatch, monitor: HealthMonitor, prefix: String) {
    use futures::StreamExt;

    let mut alive: BTreeSet<usize> = BTreeSet::new();
    let period = (monitor.config().heartbeat_timeout() / 2).max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = members.next() => {
                let Some(event) = event else { return };
                match event {
                    Ok(MemberEvent::Joined { rank }) => {
                        monitor.add_member(rank);
                        let _ = monitor.heartbeat(&MemberId::Rank(rank));
                        alive.insert(rank);
                    }
                    Ok(MemberEvent::Left { rank, graceful: true }) => {
                        alive.remove(&rank);
                        monitor.remove_member(&MemberId::Rank(rank));
                    }
                    Ok(MemberEvent::Left { rank, graceful: false }) => {
                        alive.remove(&rank);
                        tracing::warn!(
                            target: TARGET,
                            coordinator = "etcd",
                            prefix = %prefix,
                            member = rank,
                            "lease of a rank expired; reporting it failed"
                        );
                        // A member the caller removed stays removed.
                        let _ = monitor.mark_failed(&MemberId::Rank(rank));
                    }
                    Err(e) => tracing::warn!(
                        target: TARGET,
                        coordinator = "etcd",
                        prefix = %prefix,
                        error = %e,
                        "member watch failed; the ranks last seen alive are still heard from"
                    ),
                }
            }
            _ = ticker.tick() => {
                for &rank in &alive {
                    // A member the caller removed stays removed.
                    let _ = monitor.heartbeat(&MemberId::Rank(rank));
                }
            }
        }
    }
}

/// gRPC status codes (as numbers) that say a retry may succeed:
/// `CANCELLED` (the connection went away), `DEADLINE_EXCEEDED`,
/// `RESOURCE_EXHAUSTED`, `ABORTED` and `UNAVAILABLE` (etcd down, no leader,
/// leader changed, request timed out in etcd).
const TRANSIENT_GRPC_CODES: [i32; 5] = [1, 4, 8, 10, 14];
/// `UNKNOWN` and `INTERNAL`: transient when they carry a transport error.
const TRANSPORT_GRPC_CODES: [i32; 2] = [2, 13];

fn is_transient_etcd(err: &etcd_client::Error) -> bool {
    use etcd_client::Error as E;
    match err {
        E::IoError(_)
        | E::TransportError(_)
        | E::WatchError(_)
        | E::LeaseKeepAliveError(_)
        | E::EndpointError(_) => true,
        E::GRpcStatus(status) => {
            let code = i32::from(status.code());
            TRANSIENT_GRPC_CODES.contains(&code)
                || (TRANSPORT_GRPC_CODES.contains(&code)
                    && std::error::Error::source(status).is_some())
        }
        _ => false,
    }
}

/// Maps an etcd client error: transient ones to
/// [`CoordinatorError::Unavailable`], the others to
/// [`CoordinatorError::Backend`].
fn from_etcd(context: &str, err: etcd_client::Error) -> CoordinatorError {
    let message = format!("{context}: {err}");
    if is_transient_etcd(&err) {
        CoordinatorError::Unavailable {
            message,
            source: Some(Box::new(err)),
        }
    } else {
        CoordinatorError::Backend {
            message,
            source: Some(Box::new(err)),
        }
    }
}

#[async_trait]
impl Coordinator for EtcdCoordinator {
    fn rank(&self) -> usize {
        self.inner.config.rank
    }

    fn world_size(&self) -> usize {
        self.inner.config.world_size
    }

    fn name(&self) -> &str {
        "etcd"
    }

    async fn barrier(&self, timeout: Duration) -> Result<()> {
        self.collective(Collective::Barrier, Vec::new(), timeout)
            .await
            .map(drop)
    }

    async fn all_gather(&self, data: Vec<u8>, timeout: Duration) -> Result<Vec<Vec<u8>>> {
        self.collective(Collective::AllGather, data, timeout).await
    }

    async fn signal(&self, key: &str, payload: Vec<u8>) -> Result<u64> {
        Self::check_signal_key(key)?;
        self.check_usable()?;
        let etcd_key = self.signal_key(key, self.inner.config.rank);
        let lease = self.inner.lease_id;
        // Compare-and-swap on the key's revision: a concurrent signal from a
        // clone of this handle makes the swap fail, and it is tried again.
        for _ in 0..64 {
            let current = self
                .call("signal", |mut c| {
                    let key = etcd_key.clone();
                    async move { c.get(key, None).await }
                })
                .await?;
            let (seq, mod_revision) = current
                .kvs()
                .first()
                .map(|kv| {
                    (
                        decode_signal(kv.value()).map_or(0, |s| s.seq),
                        kv.mod_revision(),
                    )
                })
                .unwrap_or((0, 0));
            let next = seq.saturating_add(1);
            let value = encode_signal(next, &payload);
            let swapped = self
                .call("signal", |mut c| {
                    let txn = Txn::new()
                        .when([Compare::mod_revision(
                            etcd_key.clone(),
                            CompareOp::Equal,
                            mod_revision,
                        )])
                        .and_then([TxnOp::put(
                            etcd_key.clone(),
                            value.clone(),
                            Some(PutOptions::new().with_lease(lease)),
                        )]);
                    async move { c.txn(txn).await }
                })
                .await?;
            if swapped.succeeded() {
                tracing::debug!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %self.inner.config.prefix,
                    rank = self.inner.config.rank,
                    key,
                    seq = next,
                    "signal raised"
                );
                return Ok(next);
            }
        }
        Err(CoordinatorError::Backend {
            message: format!("signal {key:?} kept changing under concurrent writers"),
            source: None,
        })
    }

    async fn wait_for_rank(
        &self,
        rank: usize,
        key: &str,
        min_seq: u64,
        timeout: Duration,
    ) -> Result<Signal> {
        self.check_rank(rank)?;
        Self::check_signal_key(key)?;
        self.check_usable()?;
        let deadline = deadline_after(timeout);
        let etcd_key = self.signal_key(key, rank);
        let current = |view: &View| {
            view.get("")
                .and_then(|v| decode_signal(v))
                .unwrap_or_default()
        };
        let mut view = View::new();
        let found = self
            .follow(
                "wait_for_rank",
                &etcd_key,
                false,
                deadline,
                &mut view,
                |view| {
                    let signal = current(view);
                    (signal.seq >= min_seq).then_some(signal)
                },
            )
            .await?;
        match found {
            Some(signal) => Ok(signal),
            None => {
                tracing::warn!(
                    target: TARGET,
                    coordinator = "etcd",
                    prefix = %self.inner.config.prefix,
                    rank = self.inner.config.rank,
                    waited_for = rank,
                    key,
                    min_seq,
                    "wait for rank timed out"
                );
                Err(CoordinatorError::Timeout {
                    operation: "wait_for_rank",
                    after: timeout,
                    missing: vec![rank],
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EtcdConfigBuilder {
        EtcdConfig::builder().prefix("job")
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = config().build().unwrap();
        assert_eq!(c.endpoints(), ["http://127.0.0.1:2379"]);
        assert_eq!(c.rank(), 0);
        assert_eq!(c.world_size(), 1);
        assert_eq!(c.lease_ttl(), Duration::from_secs(10));
        assert_eq!(c.connect_timeout(), Duration::from_secs(5));
        assert_eq!(c.op_timeout(), Duration::from_secs(5));
        assert_eq!(c.retry(), &EtcdConfig::default_retry());
        let retry = EtcdConfig::default_retry();
        assert_eq!(retry.initial_delay(), Duration::from_millis(100));
        assert_eq!(retry.max_delay(), Duration::from_secs(2));
        assert_eq!(retry.max_elapsed(), Some(Duration::from_secs(30)));
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let cases: Vec<(EtcdConfigBuilder, &str)> = vec![
            (EtcdConfig::builder(), "prefix"),
            (config().prefix("/"), "prefix"),
            (config().prefix("a b"), "prefix"),
            (config().prefix("a\tb"), "prefix"),
            (config().endpoints(Vec::<String>::new()), "endpoints"),
            (config().endpoints([""]), "endpoints"),
            (config().endpoints(["http://a :1"]), "endpoints"),
            (config().endpoints(["https://a:1"]), "endpoints"),
            (config().world_size(0), "world_size"),
            (config().world_size(2).rank(2), "rank"),
            (config().lease_ttl(Duration::ZERO), "lease_ttl"),
            (config().lease_ttl(Duration::from_millis(2500)), "lease_ttl"),
            (config().connect_timeout(Duration::ZERO), "connect_timeout"),
            (config().op_timeout(Duration::ZERO), "op_timeout"),
        ];
        for (builder, field) in cases {
            let err = builder.clone().build().unwrap_err();
            assert_eq!(err.field(), field, "{builder:?}: {err}");
        }
    }

    #[test]
    fn prefix_loses_its_trailing_slashes() {
        assert_eq!(
            config().prefix("/jobs/a//").build().unwrap().prefix(),
            "/jobs/a"
        );
    }

    #[test]
    fn config_serde_round_trip_with_readable_durations() {
        let c = config()
            .endpoints(["http://10.1.2.3:2379", "10.1.2.4:2379"])
            .rank(3)
            .world_size(4)
            .lease_ttl(Duration::from_secs(15))
            .connect_timeout(Duration::from_millis(1500))
            .build()
            .unwrap();
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["lease_ttl"], "15s");
        assert_eq!(json["connect_timeout"], "1s500ms");
        assert_eq!(json["op_timeout"], "5s");
        let back: EtcdConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);

        let minimal: EtcdConfig =
            serde_json::from_str(r#"{"prefix": "job", "world_size": 2, "lease_ttl": "3s"}"#)
                .unwrap();
        assert_eq!(minimal.world_size(), 2);
        assert_eq!(minimal.lease_ttl(), Duration::from_secs(3));

        let invalid = serde_json::from_str::<EtcdConfig>(r#"{"prefix": "job", "rank": 1}"#);
        assert!(invalid.unwrap_err().to_string().contains("rank"));
        let unknown = serde_json::from_str::<EtcdConfig>(r#"{"prefix": "job", "ttl": "1s"}"#);
        assert!(unknown.is_err());
    }

    #[test]
    fn ranks_parse_strictly() {
        assert_eq!(parse_rank("0"), Some(0));
        assert_eq!(parse_rank("17"), Some(17));
        for bad in ["", "01", "-1", "+1", "1/2", "members/1", "broken", " 1"] {
            assert_eq!(parse_rank(bad), None, "{bad:?}");
        }
        assert_eq!(decode_ranks(&encode_ranks(&[2, 3, 10])), vec![2, 3, 10]);
        assert_eq!(decode_ranks(b""), Vec::<usize>::new());
    }

    #[test]
    fn signals_encode_sequence_and_payload() {
        let value = encode_signal(7, b"ready");
        assert_eq!(
            decode_signal(&value),
            Some(Signal {
                seq: 7,
                payload: b"ready".to_vec()
            })
        );
        assert_eq!(decode_signal(&encode_signal(1, b"")).unwrap().payload, b"");
        assert_eq!(decode_signal(b"short"), None);
    }

    #[test]
    fn round_outcome_needs_every_rank_or_a_broken_mark() {
        let mut view = View::new();
        view.insert("0".into(), b"a".to_vec());
        view.insert("2".into(), b"c".to_vec());
        view.insert("9".into(), b"stray".to_vec());
        assert!(round_outcome(&view, 3).is_none());
        assert_eq!(missing_ranks(&view, 3), vec![1]);
        view.insert("1".into(), b"b".to_vec());
        match round_outcome(&view, 3) {
            Some(RoundOutcome::Complete(values)) => {
                assert_eq!(values, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
            }
            _ => panic!("round should be complete"),
        }
        view.insert(BROKEN.into(), encode_ranks(&[1]));
        match round_outcome(&view, 3) {
            Some(RoundOutcome::Broken(missing)) => assert_eq!(missing, vec![1]),
            _ => panic!("a broken mark wins over completion"),
        }
    }

    #[test]
    fn shutdown_waits_for_ranks_that_are_alive_and_not_done() {
        let mut view = View::new();
        for r in 0..3 {
            view.insert(format!("members/{r}"), Vec::new());
        }
        view.insert("done/0".into(), Vec::new());
        assert_eq!(pending_shutdown(&view, 3), vec![1, 2]);
        view.remove("members/2");
        assert_eq!(pending_shutdown(&view, 3), vec![1]);
    }

    #[test]
    fn etcd_errors_map_by_kind() {
        let io = etcd_client::Error::IoError(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        ));
        let mapped = from_etcd("get", io);
        assert!(matches!(mapped, CoordinatorError::Unavailable { .. }));
        assert!(std::error::Error::source(&mapped).is_some());
        let invalid = from_etcd("connect", etcd_client::Error::InvalidArgs("bad".into()));
        assert!(matches!(invalid, CoordinatorError::Backend { .. }));
        assert!(invalid.to_string().contains("connect"));
        let watch = from_etcd("watch", etcd_client::Error::WatchError("closed".into()));
        assert!(matches!(watch, CoordinatorError::Unavailable { .. }));
    }

    #[test]
    fn public_types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<EtcdConfig>();
        assert_send_sync::<EtcdCoordinator>();
        assert_send_sync::<MemberEvent>();
        fn assert_send<T: Send>() {}
        assert_send::<MemberWatch>();
        assert_send_sync::<LivenessReporter>();
    }

    #[test]
    fn deadline_after_saturates() {
        let now = Instant::now();
        assert!(deadline_after(Duration::MAX) > now);
    }
}
