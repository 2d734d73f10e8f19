//! The [`HealthMonitor`]: members, heartbeats, sweeps and status changes.
//!
//! Members live in the [registry](super::registry): a slab (`Vec<Slot>`)
//! indexed by a `HashMap<MemberId, usize>` and, for ranks, by a plain array
//! from rank to slot, all behind one `RwLock`. What heartbeats and sweeps
//! touch (the last-heartbeat time in nanoseconds since the monitor's base
//! instant, the status, a failure mark: 16 bytes) is kept apart from the
//! rest: for a rank, in the [rank table](super::rank_table), indexed by rank
//! outside the lock, whose segments never move (`RankTable`); for a named
//! component, in its slot. A slot is 32 bytes (the phi-accrual state, or
//! the history of missed heartbeats, is boxed apart). The data the monitor
//! reports is in [`status`](super::status); the moves between statuses, and
//! what they emit, in [`transition`].
//!
//! A heartbeat of a rank, with the fixed-timeout or missed-heartbeat
//! policy, takes no lock: it reads its rank's entry, checks that the rank
//! is a member and raises the time with `fetch_max`. Other heartbeats take
//! the read lock and find the slot (a named component with a hash lookup);
//! with the phi-accrual policy they also record the interval in the
//! member's window. Either touches nothing else unless the member was not
//! Healthy or, with the missed-heartbeat policy, missed heartbeats since
//! its previous one (then it records the gap in the member's history). A sweep takes the read
//! lock and walks the slab, comparing each member's silence with the
//! thresholds; it allocates only for the events it emits. Adding and
//! removing members take the write lock.
//!
//! Status changes are made under one `transition` mutex, so that the events
//! of one member are emitted in the order its status changed (the mutex
//! also guards the lost members, from which a suspected partition is
//! found, and the failure streams). A heartbeat
//! stores its time before it reads the status, and a sweep stores a status
//! before it re-reads the time (both sequentially consistent), so a heartbeat
//! that races with a sweep is never lost: either the heartbeat sees the new
//! status and restores Healthy, or the sweep sees the new time and does.

mod kinds;
mod queries;
mod transition;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::{Instant, MissedTickBehavior};

use self::transition::{Move, Transitions};
use super::missed::{MissedHistory, MissedParams};
use super::phi::{self, PhiWindow};
use super::rank_table::{Hot, RankTable, NOT_IN_TABLE};
use super::registry::{Detector, PhiSlot, Registry, Slot};
use super::{
    AsMember, DetectionPolicy, HealthConfig, HealthError, HealthStatus, MemberId, MemberRef,
    MonitorHandle, StatusChange, SweepSummary,
};

/// Phi-accrual parameters in nanoseconds, derived once from the config.
#[derive(Debug, Clone, Copy)]
struct PhiParams {
    max_samples: usize,
    pause: f64,
    min_std: f64,
    first_mean: f64,
    first_std: f64,
    /// The standardized silence at which phi reaches the threshold.
    z_threshold: f64,
}

#[derive(Debug)]
struct Inner {
    config: HealthConfig,
    base: Instant,
    timeout: u64,
    failed_after: u64,
    phi: Option<PhiParams>,
    /// The missed-heartbeat terms: the policy's rules with
    /// [`DetectionPolicy::MissedHeartbeats`], the missed counts of a
    /// failure's evidence and the partition window with every policy.
    missed: MissedParams,
    registry: RwLock<Registry>,
    ranks: RankTable,
    transition: Mutex<Transitions>,
    events: broadcast::Sender<StatusChange>,
    /// Members by status and failures detected, for the metrics.
    #[cfg(feature = "metrics")]
    metrics: crate::metrics::HealthMetrics,
}

/// A monitor that goes away takes its members out of the members gauge.
#[cfg(feature = "metrics")]
impl Drop for Inner {
    fn drop(&mut self) {
        let registry = self
            .registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for slot in registry.slots.iter().filter(|s| s.member.is_some()) {
            let mut hot = &slot.own;
            if slot.own.table_rank != NOT_IN_TABLE
                && let Some(table) = self.ranks.get(slot.own.table_rank as usize)
            {
                hot = table;
            }
            self.metrics
                .removed(HealthStatus::decode(hot.status.load(SeqCst)));
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Tracks the health of ranks and components from their heartbeats.
///
/// Members are added and removed at any time. Each calls (or has called on
/// its behalf) [`heartbeat`](HealthMonitor::heartbeat); a sweep, run every
/// `check_interval` by the task of [`start`](HealthMonitor::start) or on
/// demand by [`check_now`](HealthMonitor::check_now), marks the silent ones:
///
/// - **Healthy**: heartbeats arrive in time. A member starts Healthy when it
///   is added; its silence is counted from then.
/// - **Unresponsive**: with [`DetectionPolicy::FixedTimeout`], silent for
///   longer than `heartbeat_timeout` (strictly: silent for exactly the
///   timeout is still Healthy); with [`DetectionPolicy::PhiAccrual`], phi at
///   or above its threshold.
/// - **Failed**: silent for longer than twice `heartbeat_timeout`, with
///   either policy.
///
/// With [`DetectionPolicy::MissedHeartbeats`], a member is Unresponsive
/// while a heartbeat is missing and Failed after `failure_threshold` missed
/// heartbeats in a row or within the detection window (the exact rules are
/// in [`health`](crate::health#missed-heartbeats)). With every policy, a
/// member marked with [`mark_failed`](HealthMonitor::mark_failed) is
/// Failed until its next heartbeat, and every move into Failed is reported
/// to [`failure_stream`](HealthMonitor::failure_stream)s as a typed
/// [`Failure`](crate::health::Failure).
///
/// A member that is not Healthy and heartbeats again becomes Healthy at once,
/// on that heartbeat (an event is emitted). A heartbeat from a member that
/// was never added is refused with [`HealthError::UnknownMember`] rather
/// than registering it, so that a typo cannot create a member that looks
/// healthy.
///
/// Every change is sent to [`subscribe`](HealthMonitor::subscribe)rs as a
/// [`StatusChange`] and logged with target `steadfast::health`. The monitor
/// is cheap to clone (an `Arc`); clones share the members.
///
/// Time is read from `tokio::time`; create the monitor inside the runtime
/// whose clock it should follow.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use steadfast::health::{HealthMonitor, HealthStatus, MemberId};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), steadfast::health::HealthError> {
/// let monitor = HealthMonitor::default(); // 30 s timeout, 5 s sweeps
/// monitor.add_member(0usize);
/// monitor.add_member("database");
/// let sweeper = monitor.start()?;
///
/// tokio::time::sleep(Duration::from_secs(20)).await;
/// monitor.heartbeat(0usize)?; // the database stays silent
/// tokio::time::sleep(Duration::from_secs(20)).await;
///
/// assert_eq!(monitor.status(0usize), Some(HealthStatus::Healthy));
/// assert_eq!(monitor.status("database"), Some(HealthStatus::Unresponsive));
/// assert_eq!(monitor.status(9usize), None);
/// sweeper.stop().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HealthMonitor {
    inner: Arc<Inner>,
}

impl fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthMonitor")
            .field("config", &self.inner.config)
            .field("members", &self.len())
            .finish()
    }
}

impl Default for HealthMonitor {
    /// A monitor with [`HealthConfig::default`].
    fn default() -> Self {
        HealthMonitor::new(HealthConfig::default())
    }
}

impl HealthMonitor {
    /// A monitor with `config` and no members.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::health::{HealthConfig, HealthMonitor};
    ///
    /// let config = HealthConfig::builder()
    ///     .heartbeat_timeout(Duration::from_secs(10))
    ///     .check_interval(Duration::from_secs(1))
    ///     .build()?;
    /// let monitor = HealthMonitor::new(config);
    /// assert!(monitor.is_empty());
    /// # Ok::<(), steadfast::ConfigError>(())
    /// ```
    pub fn new(config: HealthConfig) -> HealthMonitor {
        let timeout = nanos(config.heartbeat_timeout());
        let phi = match config.detection() {
            DetectionPolicy::FixedTimeout | DetectionPolicy::MissedHeartbeats => None,
            DetectionPolicy::PhiAccrual(p) => {
                let first_mean = nanos(p.first_heartbeat_estimate()) as f64;
                let min_std = nanos(p.min_std_deviation()) as f64;
                Some(PhiParams {
                    max_samples: p.max_samples(),
                    pause: nanos(p.acceptable_heartbeat_pause()) as f64,
                    min_std,
                    first_mean,
                    first_std: (first_mean / 4.0).max(min_std),
                    z_threshold: phi::z_for_phi(p.threshold()),
                })
            }
        };
        let (events, _) = broadcast::channel(config.event_capacity());
        HealthMonitor {
            inner: Arc::new(Inner {
                base: Instant::now(),
                timeout,
                failed_after: timeout.saturating_mul(2),
                phi,
                missed: MissedParams::new(&config),
                registry: RwLock::new(Registry::default()),
                ranks: RankTable::new(),
                transition: Mutex::new(Transitions::default()),
                events,
                config,
                #[cfg(feature = "metrics")]
                metrics: crate::metrics::HealthMetrics::new(),
            }),
        }
    }

    /// The monitor's configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let monitor = steadfast::health::HealthMonitor::default();
    /// assert_eq!(monitor.config().heartbeat_timeout(), Duration::from_secs(30));
    /// ```
    pub fn config(&self) -> &HealthConfig {
        &self.inner.config
    }

    fn read(&self) -> RwLockReadGuard<'_, Registry> {
        // Every write leaves the registry consistent before anything that
        // could panic, so a poisoned lock is still usable.
        self.inner
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.inner
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn lock_transition(&self) -> MutexGuard<'_, Transitions> {
        self.inner
            .transition
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn now_nanos(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.inner.base))
    }

    fn instant_at(&self, at: u64) -> Instant {
        self.inner.base + Duration::from_nanos(at)
    }

    /// The hot state of a member's slot: its entry in the rank table for a
    /// rank below [`RANK_TABLE_LIMIT`], the slot's own otherwise.
    #[inline]
    fn hot<'a>(&'a self, slot: &'a Slot) -> &'a Hot {
        if slot.own.table_rank != NOT_IN_TABLE
            && let Some(hot) = self.inner.ranks.get(slot.own.table_rank as usize)
        {
            return hot;
        }
        &slot.own
    }

    /// Adds a member, Healthy, its silence counted from now. Returns `false`
    /// (and changes nothing) if it was already a member.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let monitor = steadfast::health::HealthMonitor::default();
    /// assert!(monitor.add_member(3usize));
    /// assert!(!monitor.add_member(3usize));
    /// assert_eq!(monitor.len(), 1);
    /// # }
    /// ```
    pub fn add_member(&self, member: impl AsMember) -> bool {
        let now = self.now_nanos();
        let mut registry = self.write();
        if registry.contains(member.as_member()) {
            return false;
        }
        let member = member.into_member_id();
        let mut table_rank = NOT_IN_TABLE;
        if let MemberId::Rank(rank) = member
            && let Some(hot) = self.inner.ranks.entry(rank)
        {
            hot.reset(now);
            // The table holds ranks below RANK_TABLE_LIMIT (2^20).
            table_rank = u32::try_from(rank).unwrap_or(NOT_IN_TABLE);
        }
        let own = Hot::pointing_to(table_rank);
        own.reset(now);
        let detector = match (self.inner.config.detection(), self.inner.phi) {
            (_, Some(p)) => Some(Box::new(Detector::Phi(PhiSlot {
                window: Mutex::new(PhiWindow::default()),
                mean: AtomicU64::new((p.first_mean + p.pause).to_bits()),
                std: AtomicU64::new(p.first_std.to_bits()),
            }))),
            (DetectionPolicy::MissedHeartbeats, None) => Some(Box::new(Detector::Missed(
                Mutex::new(MissedHistory::default()),
            ))),
            _ => None,
        };
        let slot = Slot {
            member: Some(Box::new(member.clone())),
            own,
            detector,
        };
        registry.insert(member.clone(), slot);
        drop(registry);
        #[cfg(feature = "metrics")]
        self.inner.metrics.added(HealthStatus::Healthy);
        tracing::info!(target: "steadfast::health", %member, "member added");
        true
    }

    /// Removes a member. Returns whether it was one. No event is emitted;
    /// its later heartbeats are refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::MemberId;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let monitor = steadfast::health::HealthMonitor::default();
    /// monitor.add_member("cache");
    /// assert!(monitor.remove_member("cache"));
    /// assert!(monitor.heartbeat("cache").is_err());
    /// # }
    /// ```
    pub fn remove_member(&self, member: impl AsMember) -> bool {
        let member = member.as_member();
        let mut registry = self.write();
        #[cfg(feature = "metrics")]
        let status = registry
            .get(member)
            .map(|slot| HealthStatus::decode(self.hot(slot).status.load(SeqCst)));
        if !registry.remove(member) {
            return false;
        }
        #[cfg(feature = "metrics")]
        if let Some(status) = status {
            self.inner.metrics.removed(status);
        }
        if let MemberRef::Rank(rank) = member
            && let Some(hot) = self.inner.ranks.get(rank)
        {
            hot.present.store(false, SeqCst);
        }
        let monitored = registry.index.len();
        {
            let mut transitions = self.lock_transition();
            transitions.forget(member);
            self.close_partition(&mut transitions, monitored);
        }
        drop(registry);
        tracing::info!(target: "steadfast::health", %member, "member removed");
        true
    }

    /// Whether `member` is a member.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::MemberId;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let monitor = steadfast::health::HealthMonitor::default();
    /// monitor.add_member(1usize);
    /// assert!(monitor.contains(1usize));
    /// # }
    /// ```
    pub fn contains(&self, member: impl AsMember) -> bool {
        self.read().contains(member.as_member())
    }

    /// How many members there are.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let monitor = steadfast::health::HealthMonitor::default();
    /// monitor.add_member(0usize);
    /// assert_eq!(monitor.len(), 1);
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.read().index.len()
    }

    /// Whether there are no members.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(steadfast::health::HealthMonitor::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a heartbeat of `member`, now.
    ///
    /// Like every method that takes a member, it takes anything that is
    /// [`AsMember`]: a rank as a `usize`, a component as a `&str`, a
    /// `String` or a [`MemberId`], by value or by reference. The member is
    /// only borrowed: a heartbeat never allocates.
    ///
    /// A rank's heartbeat, with the fixed-timeout or missed-heartbeat
    /// policy, takes no lock: a clock read, an array lookup by rank and one
    /// atomic `fetch_max` (about 60 ns on the reference machine of
    /// `BENCHMARKS.md`), so threads that beat for different ranks do not
    /// contend. A named component's takes a hash lookup under a read lock;
    /// with the phi-accrual policy, a heartbeat also takes a short
    /// per-member lock to record the interval, and with the missed-heartbeat
    /// policy so does a heartbeat that ends a gap in which heartbeats were
    /// missed (to record the gap). A member that was Unresponsive or Failed
    /// becomes Healthy at once, and the change is emitted.
    ///
    /// # Errors
    ///
    /// [`HealthError::UnknownMember`] if `member` was never added or was
    /// removed: heartbeats do not register members.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{HealthMonitor, MemberId};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::health::HealthError> {
    /// let monitor = HealthMonitor::default();
    /// monitor.add_member(0usize);
    /// monitor.heartbeat(0usize)?;
    /// assert!(monitor.heartbeat(1usize).is_err());
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn heartbeat(&self, member: impl AsMember) -> Result<(), HealthError> {
        self.heartbeat_of(member.as_member())
    }

    fn heartbeat_of(&self, member: MemberRef<'_>) -> Result<(), HealthError> {
        let now = self.now_nanos();
        if let (MemberRef::Rank(rank), None) = (member, &self.inner.phi)
            && let Some(hot) = self.inner.ranks.get(rank)
        {
            // A rank's entry never moves: no lock on the way.
            if !hot.present.load(SeqCst) {
                return Err(HealthError::UnknownMember {
                    member: member.to_member_id(),
                });
            }
            let previous = hot.last.fetch_max(now, SeqCst);
            let missed = self.missed_in_gap(previous, now);
            if missed > 0 || hot.status.load(SeqCst) != HealthStatus::Healthy.encode() {
                // Removed meanwhile: refused like any unknown member.
                let registry = self.read();
                let slot = registry.slot(member)?;
                self.record_gap(slot, previous, missed, now);
                if hot.status.load(SeqCst) != HealthStatus::Healthy.encode() {
                    self.recover(slot, member, hot, now, previous, registry.index.len());
                }
            }
            return Ok(());
        }
        let registry = self.read();
        let slot = registry.slot(member)?;
        let hot = self.hot(slot);
        let previous = hot.last.fetch_max(now, SeqCst);
        if let (Some(state), Some(params)) = (slot.phi(), &self.inner.phi) {
            let stats = state
                .window
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(now, params.max_samples);
            if let Some((mean, std)) = stats {
                state.mean.store((mean + params.pause).to_bits(), SeqCst);
                state.std.store(std.max(params.min_std).to_bits(), SeqCst);
            }
        }
        self.record_gap(slot, previous, self.missed_in_gap(previous, now), now);
        if hot.status.load(SeqCst) != HealthStatus::Healthy.encode() {
            self.recover(slot, member, hot, now, previous, registry.index.len());
        }
        Ok(())
    }

    /// Heartbeats missed between one at `previous` and one at `now`, with
    /// the missed-heartbeat policy (0 with the others, which keep no
    /// history).
    #[inline]
    fn missed_in_gap(&self, previous: u64, now: u64) -> u64 {
        if matches!(
            self.inner.config.detection(),
            DetectionPolicy::MissedHeartbeats
        ) {
            self.inner.missed.missed(now.saturating_sub(previous))
        } else {
            0
        }
    }

    /// Records in a slot's history that `missed` heartbeats were missed
    /// after one at `previous`, in a gap closed at `now`.
    fn record_gap(&self, slot: &Slot, previous: u64, missed: u64, now: u64) {
        if missed == 0 {
            return;
        }
        if let Some(history) = slot.missed() {
            history.lock().unwrap_or_else(|e| e.into_inner()).record(
                &self.inner.missed,
                previous,
                missed,
                now,
            );
        }
    }

    /// Marks `member` Failed now, whatever its silence says, for callers
    /// that learn of a failure from elsewhere (a rank's lease expired, its
    /// process was seen to exit). It stays Failed until its next heartbeat,
    /// which makes it Healthy again as usual. The change is emitted like any
    /// other; marking a member that is already Failed emits nothing.
    ///
    /// # Errors
    ///
    /// [`HealthError::UnknownMember`] if `member` was never added or was
    /// removed.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::health::{HealthMonitor, HealthStatus, MemberId};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::health::HealthError> {
    /// let monitor = HealthMonitor::default();
    /// let rank = MemberId::Rank(3);
    /// monitor.add_member(3usize);
    /// monitor.mark_failed(&rank)?;
    /// monitor.check_now();
    /// assert_eq!(monitor.status(&rank), Some(HealthStatus::Failed));
    /// monitor.heartbeat(&rank)?;
    /// assert_eq!(monitor.status(&rank), Some(HealthStatus::Healthy));
    /// # Ok(())
    /// # }
    /// ```
    pub fn mark_failed(&self, member: impl AsMember) -> Result<(), HealthError> {
        let member = member.as_member();
        let now = self.now_nanos();
        let registry = self.read();
        let slot = registry.slot(member)?;
        let hot = self.hot(slot);
        let monitored = registry.index.len();
        let mut transitions = self.lock_transition();
        hot.declared_failed.store(true, SeqCst);
        let old = HealthStatus::decode(hot.status.load(SeqCst));
        if old != HealthStatus::Failed {
            hot.status.store(HealthStatus::Failed.encode(), SeqCst);
            let last = hot.last.load(SeqCst);
            let change = Move {
                member,
                old,
                new: HealthStatus::Failed,
                now,
                last,
            };
            self.emit(&mut transitions, slot, change, monitored);
            self.check_partition(&mut transitions, now, monitored);
        }
        Ok(())
    }

    /// Sweeps every member now: marks the silent ones Unresponsive or
    /// Failed (and, should a heartbeat have been missed, the live ones
    /// Healthy), emits the changes and returns what it found.
    ///
    /// The task of [`start`](HealthMonitor::start) calls this every
    /// `check_interval`; callers without a task call it themselves. It walks
    /// the members' atomics under a read lock and allocates only for the
    /// events it emits.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::health::{HealthMonitor, HealthStatus, MemberId};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let monitor = HealthMonitor::default();
    /// monitor.add_member(0usize);
    /// tokio::time::advance(Duration::from_secs(45)).await;
    /// assert_eq!(monitor.check_now().unresponsive, 1);
    /// assert_eq!(monitor.status(0usize), Some(HealthStatus::Unresponsive));
    /// # }
    /// ```
    pub fn check_now(&self) -> SweepSummary {
        let now = self.now_nanos();
        let registry = self.read();
        let monitored = registry.index.len();
        let mut summary = SweepSummary::default();
        for slot in &registry.slots {
            let Some(member) = slot.member.as_deref() else {
                continue;
            };
            let hot = self.hot(slot);
            let last = hot.last.load(SeqCst);
            let mut status = self.evaluate(slot, hot, now, last);
            if status.encode() != hot.status.load(SeqCst) {
                let mut transitions = self.lock_transition();
                status = self.settle(&mut transitions, slot, member, now, monitored, &mut summary);
            }
            summary.members += 1;
            match status {
                HealthStatus::Healthy => summary.healthy += 1,
                HealthStatus::Unresponsive => summary.unresponsive += 1,
                HealthStatus::Failed => summary.failed += 1,
            }
        }
        if summary.changes > 0 {
            self.check_partition(&mut self.lock_transition(), now, monitored);
        }
        drop(registry);
        tracing::trace!(
            target: "steadfast::health",
            members = summary.members,
            unresponsive = summary.unresponsive,
            failed = summary.failed,
            changes = summary.changes,
            "sweep"
        );
        summary
    }

    /// Starts the background sweep: [`check_now`](HealthMonitor::check_now)
    /// at once and then every `check_interval`, until the returned handle is
    /// stopped or dropped (or every clone of the monitor is dropped).
    ///
    /// Each call starts another task; one is enough.
    ///
    /// # Errors
    ///
    /// [`HealthError::NoRuntime`] when called outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::health::{HealthMonitor, HealthStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), steadfast::health::HealthError> {
    /// let monitor = HealthMonitor::default();
    /// monitor.add_member(0usize);
    /// let handle = monitor.start()?;
    /// tokio::time::sleep(Duration::from_secs(66)).await; // the sweep at 65 s finds it
    /// assert_eq!(monitor.failed().len(), 1);
    /// handle.stop().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn start(&self) -> Result<MonitorHandle, HealthError> {
        let monitor = Arc::downgrade(&self.inner);
        let period = self.inner.config.check_interval();
        MonitorHandle::spawn("health monitor sweep", move |mut stop| async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    _ = ticker.tick() => {
                        let Some(inner) = monitor.upgrade() else { break };
                        HealthMonitor { inner }.check_now();
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::rank_table::RANK_TABLE_LIMIT;
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ranks_are_found_through_the_table_and_the_index_alike() {
        let monitor = HealthMonitor::default();
        let beyond = RANK_TABLE_LIMIT + 5;
        for rank in [0, 7, 3, beyond] {
            assert!(monitor.add_member(rank));
        }
        monitor.add_member("cache");
        {
            let registry = monitor.read();
            assert_eq!(
                registry.ranks.len(),
                8,
                "no entry past the highest small rank"
            );
            for rank in [0, 7, 3, beyond] {
                let member = MemberId::Rank(rank);
                assert_eq!(
                    registry.slot_index(member.as_member_ref()),
                    registry.index.get(&member).copied(),
                    "rank {rank}"
                );
            }
            assert_eq!(registry.slot_index(MemberRef::Rank(5)), None);
            assert_eq!(registry.slot_index(MemberRef::Rank(8)), None);
            assert_eq!(registry.slot_index(MemberRef::Rank(beyond + 1)), None);
        }
        for member in [MemberId::Rank(7), MemberId::Rank(beyond), "cache".into()] {
            monitor.heartbeat(&member).unwrap();
            assert!(monitor.remove_member(&member));
            assert!(monitor.heartbeat(&member).is_err(), "{member}");
            assert_eq!(monitor.status(&member), None);
        }
        // A freed slot is reused, and the table points at it.
        assert!(monitor.add_member(42usize));
        let registry = monitor.read();
        let slot = registry.slot_index(MemberRef::Rank(42)).unwrap();
        assert!(slot < 5, "slot {slot} is not one of the freed ones");
        assert_eq!(
            registry.slots[slot].member.as_deref(),
            Some(&MemberId::Rank(42))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_rank_removed_while_failed_comes_back_healthy_and_fresh() {
        let monitor = HealthMonitor::default();
        let rank = MemberId::Rank(2);
        monitor.add_member(2usize);
        monitor.mark_failed(&rank).unwrap();
        tokio::time::advance(Duration::from_secs(100)).await;
        monitor.check_now();
        assert_eq!(monitor.status(&rank), Some(HealthStatus::Failed));
        assert!(monitor.remove_member(&rank));
        assert!(monitor.heartbeat(&rank).is_err());
        assert!(monitor.add_member(2usize));
        assert_eq!(monitor.status(&rank), Some(HealthStatus::Healthy));
        assert_eq!(
            monitor.check_now().failed,
            0,
            "the old mark and silence are gone"
        );
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(monitor.check_now().unresponsive, 1);
        let mut changes = monitor.subscribe();
        monitor.heartbeat(&rank).unwrap();
        let change = changes.try_recv().unwrap();
        assert_eq!(
            (change.member, change.old, change.new),
            (rank, HealthStatus::Unresponsive, HealthStatus::Healthy)
        );
    }

    #[test]
    fn heartbeats_from_many_threads_race_with_adds_removes_and_sweeps() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let monitor = HealthMonitor::default();
        const RANKS: usize = 3000;
        for rank in 0..RANKS {
            monitor.add_member(rank);
        }
        std::thread::scope(|s| {
            for thread in 0..4usize {
                let monitor = &monitor;
                s.spawn(move || {
                    for round in 0..20_000usize {
                        let rank = (round * 7 + thread * 13) % (RANKS + 100);
                        // Ranks past RANKS, and those being removed, are
                        // refused; the others accepted.
                        let _ = monitor.heartbeat(rank);
                    }
                });
            }
            let monitor = &monitor;
            s.spawn(move || {
                for round in 0..2_000usize {
                    let rank = round % RANKS;
                    assert!(monitor.remove_member(rank));
                    if round % 10 == 0 {
                        monitor.check_now();
                    }
                    assert!(monitor.add_member(rank));
                }
            });
        });
        assert_eq!(monitor.len(), RANKS);
        assert_eq!(monitor.check_now().healthy, RANKS);
        for rank in 0..RANKS {
            monitor.heartbeat(rank).unwrap();
        }
        assert!(monitor.heartbeat(MemberId::Rank(RANKS)).is_err());
    }
}
