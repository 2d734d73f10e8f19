//! [`Replica`] and [`ReplicatedStorageBuilder`]: the replicas of a
//! [`ReplicatedStorage`], their failure domains, and the settings checked
//! when the storage is built.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use super::{repair, ConsistencyLevel, InFlight, Inner, ReplicatedStorage, Slot};
use crate::error::ConfigError;
use crate::storage::CheckpointStorage;

/// One replica of a [`ReplicatedStorage`]: a storage and, optionally, the
/// failure domain it lives in (a rack, a disk, a region).
///
/// # Examples
///
/// ```
/// use steadfast::storage::{MemoryStorage, Replica};
///
/// let replica = Replica::new(MemoryStorage::new()).domain("rack-a");
/// assert_eq!(replica.failure_domain(), Some("rack-a"));
/// ```
#[derive(Debug, Clone)]
pub struct Replica {
    storage: Arc<dyn CheckpointStorage>,
    domain: Option<String>,
}

impl Replica {
    /// A replica on `storage` (an `Arc<dyn CheckpointStorage>` works too),
    /// in no named failure domain.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use steadfast::storage::{CheckpointStorage, MemoryStorage, Replica};
    ///
    /// let shared: Arc<dyn CheckpointStorage> = Arc::new(MemoryStorage::new());
    /// let replica = Replica::new(shared);
    /// assert_eq!(replica.failure_domain(), None);
    /// ```
    pub fn new<S: CheckpointStorage>(storage: S) -> Self {
        Replica {
            storage: Arc::new(storage),
            domain: None,
        }
    }

    /// Places the replica in failure domain `domain`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{MemoryStorage, Replica};
    /// let replica = Replica::new(MemoryStorage::new()).domain("eu-west-1");
    /// assert_eq!(replica.failure_domain(), Some("eu-west-1"));
    /// ```
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The replica's failure domain, if it was given one.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{MemoryStorage, Replica};
    /// assert_eq!(Replica::new(MemoryStorage::new()).failure_domain(), None);
    /// ```
    pub fn failure_domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }
}

/// Builds a [`ReplicatedStorage`]; [`build`](Self::build) checks the
/// replicas against the consistency level and the domain rule.
///
/// # Examples
///
/// ```
/// use steadfast::storage::{MemoryStorage, Replica, ReplicatedStorage};
///
/// let err = ReplicatedStorage::builder()
///     .replica(Replica::new(MemoryStorage::new()).domain("a"))
///     .replica(Replica::new(MemoryStorage::new()).domain("a"))
///     .replica(Replica::new(MemoryStorage::new()).domain("b"))
///     .require_distinct_domains(true)
///     .consistency(steadfast::storage::ConsistencyLevel::All)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.field(), "geo_distributed");
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ReplicatedStorageBuilder {
    replicas: Vec<Replica>,
    level: ConsistencyLevel,
    distinct_domains: bool,
    allow_put_if_absent_at_one: bool,
    max_repairs_in_flight: usize,
}

impl ReplicatedStorageBuilder {
    /// The defaults listed on [`ReplicatedStorage::builder`].
    pub(super) fn new() -> Self {
        ReplicatedStorageBuilder {
            replicas: Vec::new(),
            level: ConsistencyLevel::default(),
            distinct_domains: false,
            allow_put_if_absent_at_one: false,
            max_repairs_in_flight: 16,
        }
    }

    /// Adds a replica; replicas are numbered `#0`, `#1`, ... in the order
    /// they are added, which is also the order `put_if_absent` takes.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{MemoryStorage, Replica, ReplicatedStorage};
    /// let storage = ReplicatedStorage::builder().replica(Replica::new(MemoryStorage::new())).build()?;
    /// assert_eq!(storage.replica_count(), 1);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn replica(mut self, replica: Replica) -> Self {
        self.replicas.push(replica);
        self
    }

    /// Adds several replicas, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{MemoryStorage, Replica, ReplicatedStorage};
    /// let storage = ReplicatedStorage::builder()
    ///     .replicas((0..3).map(|_| Replica::new(MemoryStorage::new())))
    ///     .build()?;
    /// assert_eq!(storage.replica_count(), 3);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn replicas(mut self, replicas: impl IntoIterator<Item = Replica>) -> Self {
        self.replicas.extend(replicas);
        self
    }

    /// The consistency level (default [`ConsistencyLevel::Quorum`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{ConsistencyLevel, MemoryStorage, Replica, ReplicatedStorage};
    /// let storage = ReplicatedStorage::builder()
    ///     .replicas((0..3).map(|_| Replica::new(MemoryStorage::new())))
    ///     .consistency(ConsistencyLevel::One)
    ///     .build()?;
    /// assert_eq!(storage.write_quorum(), 1);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn consistency(mut self, level: ConsistencyLevel) -> Self {
        self.level = level;
        self
    }

    /// Acknowledges a write only when W replicas in W distinct failure
    /// domains hold it (default `false`); every replica then needs a domain,
    /// and there must be at least W distinct ones.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{MemoryStorage, Replica, ReplicatedStorage};
    /// let err = ReplicatedStorage::builder()
    ///     .replicas((0..3).map(|_| Replica::new(MemoryStorage::new())))
    ///     .require_distinct_domains(true)
    ///     .build()
    ///     .unwrap_err();
    /// assert!(err.reason().contains("domain"));
    /// ```
    pub fn require_distinct_domains(mut self, yes: bool) -> Self {
        self.distinct_domains = yes;
        self
    }

    /// The config file's name for
    /// [`require_distinct_domains`](Self::require_distinct_domains).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{MemoryStorage, Replica, ReplicatedStorage};
    /// let storage = ReplicatedStorage::builder()
    ///     .replicas(["a", "b", "c"].map(|d| Replica::new(MemoryStorage::new()).domain(d)))
    ///     .geo_distributed(true)
    ///     .build()?;
    /// assert_eq!(storage.write_quorum(), 2);
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn geo_distributed(self, yes: bool) -> Self {
        self.require_distinct_domains(yes)
    }

    /// Lets `put_if_absent` run at [`ConsistencyLevel::One`] (default
    /// `false`: it is refused with
    /// [`StorageError::ConditionalWriteNeedsQuorum`](crate::storage::StorageError::ConditionalWriteNeedsQuorum)). At `One`, two
    /// writers whose first replicas fail differently can each create the
    /// key on a different replica, and both succeed: opt in only where no
    /// two writers ever create the same key.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{ConsistencyLevel, MemoryStorage, Replica, ReplicatedStorage};
    /// let storage = ReplicatedStorage::builder()
    ///     .replicas((0..3).map(|_| Replica::new(MemoryStorage::new())))
    ///     .consistency(ConsistencyLevel::One)
    ///     .allow_put_if_absent_at_one(true)
    ///     .build()?;
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn allow_put_if_absent_at_one(mut self, yes: bool) -> Self {
        self.allow_put_if_absent_at_one = yes;
        self
    }

    /// How many read repairs may run at once (default 16, at least 1);
    /// repairs found beyond it are skipped and counted
    /// ([`RepairStats::skipped`](super::RepairStats::skipped)), for [`ReplicatedStorage::repair`] to fix.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::{MemoryStorage, Replica, ReplicatedStorage};
    /// assert!(ReplicatedStorage::builder()
    ///     .replica(Replica::new(MemoryStorage::new()))
    ///     .max_repairs_in_flight(0)
    ///     .build()
    ///     .is_err());
    /// ```
    pub fn max_repairs_in_flight(mut self, n: usize) -> Self {
        self.max_repairs_in_flight = n;
        self
    }

    /// Checks the settings and builds the storage.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`]: no replica (`replicas`); no repair allowed in
    /// flight (`max_repairs_in_flight`); with distinct domains required, a
    /// replica without a domain or fewer distinct domains than W
    /// (`geo_distributed`).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::storage::ReplicatedStorage;
    /// assert_eq!(ReplicatedStorage::builder().build().unwrap_err().field(), "replicas");
    /// ```
    pub fn build(self) -> Result<ReplicatedStorage, ConfigError> {
        let n = self.replicas.len();
        if n == 0 {
            return Err(ConfigError::new(
                "replicas",
                "at least one replica is needed",
            ));
        }
        if self.max_repairs_in_flight == 0 {
            return Err(ConfigError::new(
                "max_repairs_in_flight",
                "must be at least 1",
            ));
        }
        let write_quorum = self.level.write_quorum(n);
        if self.distinct_domains {
            if let Some(i) = self.replicas.iter().position(|r| r.domain.is_none()) {
                return Err(ConfigError::new(
                    "geo_distributed",
                    format!(
                        "replica #{i} has no failure domain, and distinct domains are required"
                    ),
                ));
            }
            let mut domains: Vec<&str> = self
                .replicas
                .iter()
                .filter_map(|r| r.domain.as_deref())
                .collect();
            domains.sort_unstable();
            domains.dedup();
            if domains.len() < write_quorum {
                return Err(ConfigError::new(
                    "geo_distributed",
                    format!(
                        "a write needs {write_quorum} replicas in distinct failure domains at \
                         consistency level {}, but the replicas are in {} domain(s): {domains:?}",
                        self.level,
                        domains.len()
                    ),
                ));
            }
        }
        let replicas = self
            .replicas
            .into_iter()
            .enumerate()
            .map(|(i, r)| Slot {
                name: match &r.domain {
                    Some(d) => format!("#{i} ({d})"),
                    None => format!("#{i}"),
                },
                storage: r.storage,
                domain: r.domain,
                failed_at: Mutex::new(None),
            })
            .collect();
        Ok(ReplicatedStorage {
            inner: Arc::new(Inner {
                replicas,
                level: self.level,
                distinct_domains: self.distinct_domains,
                allow_put_if_absent_at_one: self.allow_put_if_absent_at_one,
                write_quorum,
                read_quorum: self.level.read_quorum(n),
                writes: Arc::new(InFlight::new()),
                repairs: Arc::new(InFlight::new()),
                repair_permits: Arc::new(Semaphore::new(self.max_repairs_in_flight)),
                stats: repair::Counters::default(),
                tails: Mutex::new(HashMap::new()),
                tickets: AtomicU64::new(0),
            }),
        })
    }
}
