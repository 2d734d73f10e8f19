//! [`EtcdConfig`]: how an [`EtcdCoordinator`](super::EtcdCoordinator)
//! reaches etcd and which rank it plays, and its validating builder.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::retry::{Jitter, RetryPolicy};

/// How an [`EtcdCoordinator`](super::EtcdCoordinator) reaches etcd and which rank it plays.
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
/// - `member_id`: none: the coordinator makes one unique per process
///   (`p{pid}-{lease id in hex}`)
/// - `standby`: false (the process holds `rank`)
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
#[serde(try_from = "EtcdConfigRepr", into = "EtcdConfigRepr")]
pub struct EtcdConfig {
    pub(super) endpoints: Vec<String>,
    pub(super) prefix: String,
    pub(super) rank: usize,
    pub(super) world_size: usize,
    pub(super) lease_ttl: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) op_timeout: Duration,
    pub(super) retry: RetryPolicy,
    pub(super) member_id: Option<String>,
    pub(super) standby: bool,
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
                member_id: None,
                standby: false,
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

    /// Checks the values: the one check that both
    /// [`EtcdConfigBuilder::build`] and deserialization run. A prefix is
    /// checked with its trailing slashes ignored.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        if self.endpoints.is_empty() {
            return Err(ConfigError::new(
                "endpoints",
                "must name at least one endpoint",
            ));
        }
        for endpoint in &self.endpoints {
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
        let trimmed = self.prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(ConfigError::new(
                "prefix",
                format!(
                    "must not be empty (got {:?}); use one prefix per job",
                    self.prefix
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
        if self.world_size == 0 {
            return Err(ConfigError::new("world_size", "must be at least 1"));
        }
        if self.rank >= self.world_size {
            return Err(ConfigError::new(
                "rank",
                format!(
                    "must be below world_size {}, got {}",
                    self.world_size, self.rank
                ),
            ));
        }
        if self.lease_ttl.subsec_nanos() != 0 || self.lease_ttl < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "lease_ttl",
                format!(
                    "must be a whole number of seconds, at least 1s (etcd leases count in seconds), got {:?}",
                    self.lease_ttl
                ),
            ));
        }
        if self.lease_ttl.as_secs() > i64::MAX as u64 {
            return Err(ConfigError::new("lease_ttl", "is too large"));
        }
        for (field, value) in [
            ("connect_timeout", self.connect_timeout),
            ("op_timeout", self.op_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(field, "must be greater than zero"));
            }
        }
        if let Some(member) = &self.member_id {
            crate::coordinator::validate_member_id(member).map_err(|e| {
                ConfigError::new("member_id", e.to_string().replace("invalid argument: ", ""))
            })?;
        }
        Ok(())
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

    /// How long [`EtcdCoordinator::connect`](super::EtcdCoordinator::connect) tries before it gives up.
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

    /// The member id set for this process, if one was set; without one the
    /// coordinator makes one (see
    /// [`Membership::member_id`](crate::coordinator::Membership::member_id)).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().prefix("job").member_id("host-3").build()?;
    /// assert_eq!(config.member_id(), Some("host-3"));
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn member_id(&self) -> Option<&str> {
        self.member_id.as_deref()
    }

    /// Whether the process joins as a standby: it holds no rank until it
    /// enters an epoch that gives it one.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().prefix("job").standby(true).build()?;
    /// assert!(config.standby());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn standby(&self) -> bool {
        self.standby
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

    /// Sets how long [`EtcdCoordinator::connect`](super::EtcdCoordinator::connect) tries to reach etcd.
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

    /// Sets this process's member id, unique among the job's members for
    /// its lifetime ([`validate_member_id`](crate::coordinator::validate_member_id)
    /// says which ids are valid). Without one, the coordinator makes one
    /// from the process id and its lease id.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// assert!(EtcdConfig::builder().prefix("j").member_id("node-7:0").build().is_ok());
    /// let err = EtcdConfig::builder().prefix("j").member_id("a/b").build().unwrap_err();
    /// assert_eq!(err.field(), "member_id");
    /// ```
    pub fn member_id(mut self, member: impl Into<String>) -> Self {
        self.config.member_id = Some(member.into());
        self
    }

    /// Joins as a standby: the process registers as a live member under
    /// `{prefix}/standby/{member_id}` and holds no rank until it enters an
    /// epoch that gives it one. `rank` is then ignored; `world_size` is
    /// still the job's (that of epoch 0).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::coordinator::EtcdConfig;
    /// let config = EtcdConfig::builder().prefix("j").world_size(4).standby(true).build()?;
    /// assert!(config.standby());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn standby(mut self, standby: bool) -> Self {
        self.config.standby = standby;
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
        let mut config = self.config;
        config.validate()?;
        // Validated with its trailing slashes ignored; stored without them.
        config.prefix = config.prefix.trim_end_matches('/').to_string();
        Ok(config)
    }
}

/// The serialized form of an [`EtcdConfig`]; every field but `prefix` is
/// optional and defaults as the builder does.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct EtcdConfigRepr {
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
    #[serde(skip_serializing_if = "Option::is_none")]
    member_id: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    standby: bool,
}

impl Default for EtcdConfigRepr {
    fn default() -> Self {
        EtcdConfig::builder().config.into()
    }
}

impl From<EtcdConfig> for EtcdConfigRepr {
    fn from(c: EtcdConfig) -> Self {
        EtcdConfigRepr {
            endpoints: c.endpoints,
            prefix: c.prefix,
            rank: c.rank,
            world_size: c.world_size,
            lease_ttl: c.lease_ttl,
            connect_timeout: c.connect_timeout,
            op_timeout: c.op_timeout,
            retry: c.retry,
            member_id: c.member_id,
            standby: c.standby,
        }
    }
}

impl TryFrom<EtcdConfigRepr> for EtcdConfig {
    type Error = ConfigError;

    fn try_from(f: EtcdConfigRepr) -> std::result::Result<Self, ConfigError> {
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
                member_id: f.member_id,
                standby: f.standby,
            },
        }
        .build()
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
            (config().member_id(""), "member_id"),
            (config().member_id("a b"), "member_id"),
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

        let spare: EtcdConfig =
            serde_json::from_str(r#"{"prefix": "job", "member_id": "spare-1", "standby": true}"#)
                .unwrap();
        assert_eq!(
            (spare.member_id(), spare.standby()),
            (Some("spare-1"), true)
        );
        assert_eq!(
            serde_json::from_value::<EtcdConfig>(serde_json::to_value(&spare).unwrap()).unwrap(),
            spare
        );
        let bad = serde_json::from_str::<EtcdConfig>(r#"{"prefix": "job", "member_id": "a/b"}"#);
        assert!(bad.unwrap_err().to_string().contains("member_id"));
    }
}
